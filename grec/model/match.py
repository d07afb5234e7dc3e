"""Match features: how the candidate item relates to this request, computed from the inputs every
model already has. A team adds these to its per-task trees first; they are the wide cross features
of wide & deep:

- query_description_cosine: cosine of the search-query vector and the item-description vector
  (NaN without a search query: its vector is zeros);
- candidate_viewed, candidate_views: whether and how often the candidate is in the viewed history;
- candidate_last_viewed_ago: views since the candidate's last view (NaN if never viewed);
- history_length: how many views the history holds.

The trees take them as they are (NaN is LightGBM's missing value); the networks take
`network_inputs`, NaN-free with indicators.
"""

from __future__ import annotations

import torch

from grec.data.dataset import Features

NAMES = ("query_description_cosine", "candidate_viewed", "candidate_views", "candidate_last_viewed_ago", "history_length")
N_NETWORK_INPUTS = 6


def match_features(f: Features) -> torch.Tensor:
    """Features of N examples -> (N, 5) float32 in NAMES order."""
    seq, item = f.seq_items, f.item  # (N, L) right-aligned, 0 = padding; (N,) same id shift, 1 = unknown
    hit = (seq == item[:, None]) & (item[:, None] > 1)  # (N, L): known candidates only
    L = seq.shape[1]
    position = torch.arange(L, device=seq.device)
    last = torch.where(hit, position, -1).amax(1)  # (N,) index of the latest view, -1 if none
    nan = torch.full_like(last, float("nan"), dtype=torch.float32)
    ago = torch.where(last >= 0, (L - 1 - last).float(), nan)
    query, text = f.search.float(), f.item_text.float()
    norms = query.norm(dim=1) * text.norm(dim=1)
    cosine = torch.where(norms > 0, (query * text).sum(1) / norms.clamp_min(1e-12), nan)
    return torch.stack([cosine, hit.any(1).float(), hit.sum(1).float(), ago, (seq > 0).sum(1).float()], dim=1)


def network_inputs(f: Features) -> torch.Tensor:
    """(N, 6): the match features with the NaNs made explicit for a network: cosine (0 without a
    query) and a has-query flag, viewed flag, log1p(views), 1 / (1 + views since) (0 if never),
    log1p(history length)."""
    m = match_features(f)
    has_query = ~torch.isnan(m[:, 0])
    recency = torch.where(torch.isnan(m[:, 3]), torch.zeros_like(m[:, 3]), 1 / (1 + m[:, 3]))
    return torch.stack([torch.nan_to_num(m[:, 0]), has_query.float(), m[:, 1], torch.log1p(m[:, 2]), recency,
                        torch.log1p(m[:, 4])], dim=1)
