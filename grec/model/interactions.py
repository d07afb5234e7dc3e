"""Interactions the network learns between the candidate and the request, attribute by attribute,
for any contract: the history's items and the search query meet the candidate's item columns.

Item attributes have one embedding table per column, shared by the candidate and the history's
items (the item encoder's tables, looked up once per forward pass: grec.model.inputs.Embedded),
so "a history of the candidate's genre" is the same vector whichever item carried it. From there:

- the history's items enter the behaviour encoder with their attributes (id + page + attributes),
  so the candidate's target attention over the encoded history can weigh items like it (DIN);
- `CandidateMatches`, per item column f: how the candidate's value of f meets the history's values
  (mean and max over the known history items of <e_f(candidate), e_f(item)>), how the query meets
  it (<W_f query, e_f(candidate)>), and how the query meets the candidate's description vector.
  These 3 Fi + 1 values, projected to width D, join the candidate's token (as the engineered match
  features do), so they reach the history's target attention, the fusion block and the towers.

And the customer side against the candidate (`ProfileMatches`): every context column (the
customer's profile, the impression's own columns) against every item column, each pair its own dot
product of field vectors (a factorization machine's cross between the two sides), so "the job is
in the seeker's home city" or "the price suits the bill" is one learned value, not something the
towers must find in two compressed tokens.

Dimension letters: N rows, L history length, Fi item categorical columns, Fn numerical, d field width.
"""

from __future__ import annotations

import torch
from torch import nn

from grec.data.batch import Features
from grec.model.match import known_history


class HistoryAttributes(nn.Module):
    """The history's items' attributes -> one vector of width D each, from the candidate's own
    embedding tables (`fields`, the item encoder's CategoricalFields), so the candidate and the
    history's items share them."""

    def __init__(self, fields: nn.Module, n_numerical: int, d_field: int, d_model: int):
        super().__init__()
        self.fields = fields
        self.proj = nn.Linear(len(fields.tables) * d_field + n_numerical, d_model)

    def forward(self, embedded: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """embedded (..., Fi, d) field embeddings, numbers (..., Fn) -> (..., D)."""
        return self.proj(torch.cat([embedded.flatten(-2), numbers], dim=-1))


class CandidateMatches(nn.Module):
    """Per item column: the candidate against the history's items and against the query (see the
    module docstring) -> (N, D) to add to the candidate's token."""

    def __init__(self, cardinalities: list[int], search_dim: int, text_dim: int, d_field: int, d_model: int):
        super().__init__()
        self.d_field = d_field
        n = len(cardinalities)
        self.register_buffer("cardinalities", torch.tensor(cardinalities, dtype=torch.long), persistent=False)
        self.query = nn.Linear(search_dim, n * d_field, bias=False)  # the query in each column's space
        self.query_text = nn.Linear(search_dim, d_field, bias=False)
        self.text = nn.Linear(text_dim, d_field, bias=False)
        self.proj = nn.Linear(3 * n + 1, d_model)

    def forward(self, f: Features, candidate: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """candidate (N, Fi, d) and history (N, L, Fi, d): the field embeddings -> (N, D)."""
        scale = self.d_field ** -0.5
        known = known_history(f, self.cardinalities)[..., None]  # (N, L, 1)
        sim = torch.einsum("nlfd,nfd->nlf", history, candidate) * scale  # (N, L, Fi)
        mean = (sim * known).sum(1) / known.sum(1).clamp_min(1)  # (N, Fi)
        peak = sim.masked_fill(~known, float("-inf")).amax(1)  # (N, Fi)
        peak = torch.where(torch.isinf(peak), torch.zeros_like(peak), peak)  # no known history: 0
        query = (self.query(f.search).view_as(candidate) * candidate).sum(-1) * scale  # (N, Fi): 0 without a query
        text = (self.query_text(f.search) * self.text(f.item_text)).sum(-1, keepdim=True) * scale  # (N, 1)
        return self.proj(torch.cat([mean, peak, query, text], dim=-1))  # (N, D)


class FieldVectors(nn.Module):
    """A side's columns as field vectors: its categorical columns' embeddings and each numerical
    column's own vector scaled by its normalised value."""

    def __init__(self, n_numerical: int, d_field: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(n_numerical, affine=False)
        self.numerical = nn.Parameter(torch.randn(n_numerical, d_field) * d_field ** -0.5)

    def forward(self, embedded: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """embedded (N, F, d), numbers (N, Fn) -> (N, F + Fn, d)."""
        return torch.cat([embedded, self.norm(numbers.float())[:, :, None] * self.numerical], dim=1)


class ProfileMatches(nn.Module):
    """Every context column against every item column: (N, A x B) dot products -> (N, D)."""

    def __init__(self, context: FieldVectors, item: FieldVectors, n_context: int, n_item: int, d_field: int,
                 d_model: int):
        super().__init__()
        self.context, self.item, self.d_field = context, item, d_field
        self.proj = nn.Linear(n_context * n_item, d_model)

    def forward(self, f: Features, context: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """context (N, Fc, d) and item (N, Fi, d): the field embeddings -> (N, D)."""
        a = self.context(context, f.context_numerical)  # (N, A, d)
        b = self.item(item, f.item_numerical)  # (N, B, d)
        cross = torch.einsum("nad,nbd->nab", a, b) * self.d_field ** -0.5  # (N, A, B)
        return self.proj(cross.flatten(1))  # (N, D)
