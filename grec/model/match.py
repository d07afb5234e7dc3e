"""Match features: how the candidate item relates to this request, computed from the inputs every
model already has. A team adds these to its per-task trees first; they are the wide cross features
of wide & deep:

- query_description_cosine: cosine of the search-query vector and the item-description vector
  (NaN without a search query: its vector is zeros);
- candidate_viewed, candidate_views: whether and how often the candidate is in the viewed history;
- candidate_last_viewed_ago: views since the candidate's last view (NaN if never viewed);
- history_length: how many views the history holds.

And, for every item column of the contract (so for any dataset, under its own column names), how
the candidate's attributes meet the attributes of the history's items (grec.data.item_attributes):

- history_share_<col> (categorical): the share of the history's items with the candidate's value
  ("how much of what this customer viewed shares the candidate's genre");
- history_since_<col> (categorical): views since the last such item (NaN if none);
- history_gap_<col> (numerical): the candidate's value minus the history's mean (encoded values).

Histories without known items leave them NaN. The trees take them as they are (NaN is LightGBM's
missing value); the networks take `network_inputs` and `attribute_network_inputs`, NaN-free with
indicators.
"""

from __future__ import annotations

import torch

from grec.data.batch import Features

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


def attribute_names(item_categorical: list[str], item_numerical: list[str]) -> list[str]:
    """The names of `attribute_features`' columns, from the contract's item columns."""
    return ([f"history_{kind}_{c}" for c in item_categorical for kind in ("share", "since")]
            + [f"history_gap_{c}" for c in item_numerical])


def n_attribute_inputs(n_categorical: int, n_numerical: int) -> int:
    """How many values `attribute_network_inputs` gives."""
    return 2 * n_categorical + n_numerical + 1


def known_history(f: Features, cardinalities: torch.Tensor) -> torch.Tensor:
    """(N, L) bool: history slots holding an item whose attributes the spec's table knows (an item
    the training rows never showed carries the unknown code in every column)."""
    first = f.seq_item_categorical[..., 0] if f.seq_item_categorical.shape[-1] else None
    known = f.seq_items > 0
    return known if first is None else known & (first < cardinalities[0])


def attribute_features(f: Features, cardinalities: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
    """Features of N examples -> (N, 2 Fi + Fn) float32 in `attribute_names` order.
    cardinalities (Fi,): each item column's unknown code; `known`: known_history's (N, L), where
    the caller has it."""
    seq, cand = f.seq_item_categorical, f.item_categorical  # (N, L, Fi), (N, Fi)
    L = seq.shape[1]
    known = known_history(f, cardinalities) if known is None else known  # (N, L)
    count = known.sum(1, keepdim=True).float()  # (N, 1)
    nan = torch.tensor(float("nan"))
    same = (seq == cand[:, None, :]) & known[..., None] & (cand < cardinalities)[:, None, :]  # (N, L, Fi)
    share = torch.where(count > 0, same.sum(1).float() / count.clamp_min(1), nan)  # (N, Fi)
    last = torch.where(same, torch.arange(L, device=seq.device)[None, :, None], -1).amax(1)  # (N, Fi)
    since = torch.where(last >= 0, (L - 1 - last).float(), nan)
    mean = (f.seq_item_numerical * known[..., None]).sum(1) / count.clamp_min(1)  # (N, Fn)
    gap = torch.where(count > 0, f.item_numerical.float() - mean, nan)
    paired = torch.stack([share, since], dim=2).flatten(1)  # (N, 2 Fi): share, since per column
    return torch.cat([paired, gap], dim=1)


def attribute_network_inputs(f: Features, cardinalities: torch.Tensor) -> torch.Tensor:
    """(N, 2 Fi + Fn + 1): the attribute features NaN-free for a network: share (0 without a
    known history), 1 / (1 + views since) (0 if none), gap (0 without a known history), and
    log1p of the known history's length."""
    known = known_history(f, cardinalities)  # (N, L)
    a = attribute_features(f, cardinalities, known)
    n_cat = f.seq_item_categorical.shape[-1]
    paired, gap = a[:, :2 * n_cat].view(len(a), n_cat, 2), a[:, 2 * n_cat:]
    share = torch.nan_to_num(paired[..., 0])
    recency = torch.where(torch.isnan(paired[..., 1]), torch.zeros_like(share), 1 / (1 + paired[..., 1]))
    count = known.sum(1, keepdim=True).float()
    return torch.cat([torch.stack([share, recency], 2).flatten(1), torch.nan_to_num(gap), torch.log1p(count)], dim=1)
