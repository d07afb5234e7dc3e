"""The model's inputs as tensors: Features (one row per impression, or per candidate when
serving) and Batch (the rows to score over them).

Dimension letters: N impressions, R task rows, L sequence length, F feature fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

# Which Features fields describe the candidate item; the others describe the request (its customer,
# context, query, history and flow), the same for every candidate of one ranking request.
ITEM_FIELDS = ("item", "item_categorical", "item_numerical", "item_image", "item_text")


@dataclass
class Features:
    """Model inputs, one row per impression (or per candidate at serving time)."""

    context_categorical: torch.Tensor  # (N, Fc) long, code in [0, cardinality]; cardinality = unknown
    context_numerical: torch.Tensor  # (N, Fn) float, signed log1p
    search: torch.Tensor  # (N, Ds) float, query vector (zeros: no search)
    item: torch.Tensor  # (N,) long, item_id + 2; 0 pad, 1 unknown
    item_categorical: torch.Tensor  # (N, Fi) long
    item_numerical: torch.Tensor  # (N, Fin) float, signed log1p
    item_image: torch.Tensor  # (N, Dimg) float
    item_text: torch.Tensor  # (N, Dtxt) float
    seq_items: torch.Tensor  # (N, L) long, right-aligned (most recent last), 0 = padding
    seq_pages: torch.Tensor  # (N, L) long, aligned with seq_items
    flow: torch.Tensor  # (N,) long, index into the task vocabulary's flows
    # the history's items with their attributes, from the spec's item_attributes (unknown: the unknown
    # code and zeros), encoded as the candidate's are
    seq_item_categorical: torch.Tensor  # (N, L, Fi) long
    seq_item_numerical: torch.Tensor  # (N, L, Fin) float

    def __len__(self) -> int:
        return len(self.item)

    def take(self, index: torch.Tensor) -> Features:
        return Features(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    @classmethod
    def candidates(cls, request: Features, items: dict[str, torch.Tensor]) -> Features:
        """The N candidates of one request: their item fields (`items`, N rows each) beside the
        request side of `request` (its first row), broadcast to N rows as views, not copies."""
        n = len(items["item"])
        fields = {}
        for f in dataclasses.fields(cls):
            if f.name in ITEM_FIELDS:
                fields[f.name] = items[f.name]
            else:
                value = getattr(request, f.name)[:1]
                fields[f.name] = value.expand(n, *value.shape[1:])
        return cls(**fields)

    def to(self, device) -> Features:
        return Features(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


@dataclass
class Batch:
    """R rows to score, over the features of the N examples they come from.

    Rows of one impression (its CTR, ATC, CTCVR and CVR rows) share one feature row, so the input
    layer encodes each example once however many tasks it is scored for.
    """

    features: Features  # N examples
    example: torch.Tensor  # (R,) long, row -> index into features
    use_case: torch.Tensor  # (R,) long, index into the task vocabulary's use cases

    @classmethod
    def single(cls, features: Features, use_case: torch.Tensor) -> Batch:
        """One row per feature row."""
        return cls(features, torch.arange(len(features), device=use_case.device), use_case)

    @property
    def flow(self) -> torch.Tensor:  # (R,) long
        return self.features.flow[self.example]

    def task(self, n_use_cases: int) -> torch.Tensor:  # (R,) long, flow-major task id
        return self.flow * n_use_cases + self.use_case

    def select(self, rows: torch.Tensor) -> Batch:
        """A sub-batch of some rows, holding only the features those rows use."""
        unique, example = torch.unique(self.example[rows], return_inverse=True)
        return Batch(self.features.take(unique), example, self.use_case[rows])

    def __len__(self) -> int:
        return len(self.use_case)

    def to(self, device) -> Batch:
        return Batch(self.features.to(device), self.example.to(device), self.use_case.to(device))

