"""Per-use-case towers: one small MLP per use case (CTR, ATC, CVR, CTCVR), weights stacked [U, ...]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UseCaseTowers(nn.Module):
    def __init__(self, d_in: int, hidden: int, n_use_cases: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(n_use_cases, d_in, hidden))
        self.b1 = nn.Parameter(torch.zeros(n_use_cases, hidden))
        self.w2 = nn.Parameter(torch.empty(n_use_cases, hidden))
        self.b2 = nn.Parameter(torch.zeros(n_use_cases))
        nn.init.normal_(self.w1, std=d_in**-0.5)
        nn.init.normal_(self.w2, std=hidden**-0.5)

    def tower(self, u: int, x: torch.Tensor) -> torch.Tensor:
        """x (A, d_in) through use case u's tower -> logits (A,)."""
        return F.gelu(x @ self.w1[u] + self.b1[u]) @ self.w2[u] + self.b2[u]

    def forward(self, x: torch.Tensor, use_case: torch.Tensor) -> torch.Tensor:
        """x (B, d_in), use_case (B,) -> logits (B,). Each row runs only its own tower."""
        logits = x.new_empty(x.shape[0])
        for u in range(self.w1.shape[0]):
            rows = (use_case == u).nonzero().squeeze(1)
            if len(rows):
                logits[rows] = self.tower(u, x[rows])
        return logits
