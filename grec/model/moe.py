"""Sparse mixture of experts with stacked expert weights and four routing granularities (Sec. 3.3).

The router returns its logits; top-k selection, capacity and the auxiliary losses are explicit
values in `MoEOutput`, never module state. Expert weights are stacked (`[E, D, H]`, `[E, H, D]`),
so dispatch is plain indexing and a task's sub-network can be cut out by indexing too.

Routing granularities (what the gate sees):
- token:          GATE(x_s)                     Eq. 5, each token on its own
- sentence:       GATE(mean_s x_s)              Eq. 6, one decision per example
- task:           GATE(task_id)                 Eq. 7, one decision per task
- task_sentence:  GATE(mean_s task_token_s)     Eq. 8, the task as a sentence [flow, (page...,) use case]
With task and task_sentence routing the chosen experts depend on the task alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

ROUTINGS = ("token", "sentence", "task", "task_sentence")


@dataclass
class Routing:
    """Which experts each token uses. S_r is S for token routing, 1 otherwise (shared by the example)."""

    logits: torch.Tensor  # (B, S_r, E) fp32, the router's raw output
    expert_index: torch.Tensor  # (B, S, K) chosen experts, best first
    gates: torch.Tensor  # (B, S, K) their weights, renormalised over the K
    kept: torch.Tensor  # (B, S, K) False where the expert was over capacity for this example


@dataclass
class MoEOutput:
    """What any mixing layer returns (dense baselines have no routing and no auxiliary losses)."""

    y: torch.Tensor  # (B, S, D)
    routing: Routing | None = None
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)  # unweighted: load_balance, router_z


class Router(nn.Module):
    """RMSNorm then a bias-free linear gate, computed in fp32 for stable softmax."""

    def __init__(self, d_in: int, n_experts: int):
        super().__init__()
        self.norm = nn.RMSNorm(d_in)
        self.gate = nn.Linear(d_in, n_experts, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, S_r, d_in) -> logits (B, S_r, E) fp32."""
        return F.linear(self.norm(x.float()), self.gate.weight.float())


def route(logits: torch.Tensor, n_tokens: int, top_k: int, capacity: int | None) -> Routing:
    """Top-k of the softmax, then per-example capacity: each expert takes at most `capacity` tokens
    of one example; first choices of all tokens queue before second choices (GShard's priority)."""
    B, S_r, E = logits.shape
    probs = logits.softmax(-1)
    gates, index = probs.topk(top_k, dim=-1)  # (B, S_r, K)
    gates = gates / gates.sum(-1, keepdim=True)
    gates, index = gates.expand(B, n_tokens, top_k), index.expand(B, n_tokens, top_k)  # (B, S, K)
    if capacity is None:
        kept = torch.ones_like(index, dtype=torch.bool)
    else:
        queue = F.one_hot(index.transpose(1, 2).reshape(B, top_k * n_tokens), E)  # (B, K*S, E), k-major
        position = ((queue.cumsum(1) - 1) * queue).sum(-1)  # (B, K*S) place in its expert's queue
        kept = (position < capacity).view(B, top_k, n_tokens).transpose(1, 2)  # (B, S, K)
    return Routing(logits, index, gates, kept)


def load_balance_loss(logits: torch.Tensor, expert_index: torch.Tensor) -> torch.Tensor:
    """Switch/GShard balance: E * sum_e f_e * P_e, f = share of assignments, P = mean router prob.

    Equals 1 when assignments and probabilities are uniform; gradients flow through P only.
    """
    E = logits.shape[-1]
    probs = logits.softmax(-1).reshape(-1, E).mean(0)  # (E,)
    share = F.one_hot(expert_index.reshape(-1), E).float().mean(0)  # (E,)
    return E * (share * probs).sum()


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE's z-loss: keeps router logits small, so the softmax stays well conditioned."""
    return logits.logsumexp(-1).square().mean()


class StackedExperts(nn.Module):
    """E two-layer MLPs stored as stacked tensors: w1 [E, D, H], w2 [E, H, D]."""

    def __init__(self, n_experts: int, d_model: int, hidden: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(n_experts, d_model, hidden))
        self.b1 = nn.Parameter(torch.zeros(n_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(n_experts, hidden, d_model))
        self.b2 = nn.Parameter(torch.zeros(n_experts, d_model))
        nn.init.normal_(self.w1, std=d_model**-0.5)
        nn.init.normal_(self.w2, std=hidden**-0.5 / 2)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """x (A, D) through expert e -> (A, D)."""
        return torch.addmm(self.b2[e], F.gelu(torch.addmm(self.b1[e], x, self.w1[e])), self.w2[e])

    def dispatch(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """Run only the kept (token, expert) assignments, grouped by expert. x (B, S, D) -> (B, S, D)."""
        B, S, D = x.shape
        K = routing.expert_index.shape[-1]
        token = torch.arange(B * S, device=x.device).repeat_interleave(K)  # (B*S*K,)
        keep = routing.kept.reshape(-1)
        token, expert, gate = token[keep], routing.expert_index.reshape(-1)[keep], routing.gates.reshape(-1)[keep]
        order = torch.argsort(expert, stable=True)
        token, expert, gate = token[order], expert[order], gate[order]
        counts = torch.bincount(expert, minlength=self.w1.shape[0]).tolist()
        inputs = x.reshape(B * S, D)[token]  # (A, D)
        outputs = [self.expert(e, chunk) for e, chunk in enumerate(inputs.split(counts)) if len(chunk)]
        out = torch.cat(outputs) if outputs else inputs.new_zeros(0, D)
        mixed = x.new_zeros(B * S, D).index_add_(0, token, out * gate.unsqueeze(-1).to(out.dtype))
        return mixed.view(B, S, D)


class SparseMoE(nn.Module):
    """y = x + sum_k g_k E_k(LN(x)) over the top-k experts chosen by the configured routing."""

    def __init__(
        self,
        d_model: int,
        n_experts: int,
        top_k: int,
        hidden: int,
        routing: str,
        capacity: int | None,
        n_tasks: int,
    ):
        super().__init__()
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be in [1, n_experts={n_experts}], got {top_k}")
        self.routing, self.top_k, self.capacity = routing, top_k, capacity
        self.norm = nn.LayerNorm(d_model)
        self.task_ids = nn.Embedding(n_tasks, d_model) if routing == "task" else None
        self.router = Router(d_model, n_experts)
        self.experts = StackedExperts(n_experts, d_model, hidden)

    def gate_input(self, h: torch.Tensor, task: torch.Tensor, task_sentence: torch.Tensor) -> torch.Tensor:
        """What the gate sees: (B, S, D) for token routing, (B, 1, D) otherwise."""
        if self.routing == "token":
            return h
        if self.routing == "sentence":
            return h.mean(1, keepdim=True)
        if self.routing == "task":
            return self.task_ids(task).unsqueeze(1)
        return task_sentence.mean(1, keepdim=True)

    def forward(self, x: torch.Tensor, task: torch.Tensor, task_sentence: torch.Tensor) -> MoEOutput:
        """x (B, S, D); task (B,); task_sentence (B, T + 1, D) -> MoEOutput."""
        h = self.norm(x)
        logits = self.router(self.gate_input(h, task, task_sentence))  # (B, S_r, E)
        routing = route(logits, x.shape[1], self.top_k, self.capacity)
        aux = {"load_balance": load_balance_loss(logits, routing.expert_index), "router_z": router_z_loss(logits)}
        return MoEOutput(x + self.experts.dispatch(h, routing), routing, aux)
