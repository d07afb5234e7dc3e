"""PaLM-style parallel transformer block with multi-query attention (GRec Sec. 3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiQueryAttention(nn.Module):
    """h query heads share one key/value head: K and V are projected to (1, d_head) (Eq. 1-2)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        assert d_model % n_heads == 0, "d_model must be divisible by n_heads"
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(d_model, 2 * self.d_head, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, D); key_mask (B, L) True where a key may be attended to -> (B, L, D)."""
        B, L, D = x.shape
        h, dh = self.n_heads, self.d_head
        # All h query heads read the one key/value head, so they stack into one (B, h*L, dh) matrix
        # and attention is two batched matmuls: on CPU about twice as fast as SDPA's kernel at the
        # short lengths here (5 tokens, 21 history states), and the same numbers.
        q = self.q(x).view(B, L, h, dh).transpose(1, 2).reshape(B, h * L, dh)  # (B, hL, dh)
        k, v = self.kv(x).split(dh, dim=-1)  # (B, L, dh) each
        scores = torch.bmm(q, k.transpose(1, 2)) * dh**-0.5  # (B, hL, L)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, :], float("-inf"))
        y = torch.bmm(scores.softmax(-1), v).view(B, h, L, dh)  # (B, h, L, dh)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.up(x).chunk(2, dim=-1)
        return self.down(F.silu(a) * b)


class ParallelBlock(nn.Module):
    """y = x + MLP(LN(x)) + Attention(LN(x))  (Eq. 4): one norm, attention and MLP side by side."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.attn = MultiQueryAttention(d_model, n_heads)
        self.mlp = SwiGLU(d_model, mlp_ratio * d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(x)  # (B, L, D)
        return x + self.drop(self.attn(h, key_mask) + self.mlp(h))
