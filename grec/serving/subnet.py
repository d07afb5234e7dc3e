"""Per-task dense sub-networks cut out of a trained GRec (Task-MoE's extraction, made exact).

With task or task-sentence routing the router's input depends on the task alone, so for task t the
chosen experts e_1..e_k, their gate weights g_1..g_k and which (token, expert) pairs fit the
capacity are constants. The mixing layer for t is then, per token s with kept experts J_s:

    y_s = x_s + GELU(LN(x_s) @ [W1_e]_{e in J_s} + [b1_e]) @ [g_e W2_e]_{e in J_s} + sum_e g_e b2_e

one `[D, |J|H]` and one `[|J|H, D]` matrix product: the experts' first layers stacked side by side,
each gate folded into its expert's second layer, no router. Tokens sharing a kept set share one
fused pair (under capacity 2 with five tokens: tokens 0-1 use all k experts, tokens 2-4 none).

Token-level models route each token by its content; they have no fixed sub-network and serve
through the full MoE.

Dimension letters: B rows, S tokens, D model width, H expert hidden width, K top-k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from grec.model.grec import GRec, ModelOutput, MultiTaskNet
from grec.model.moe import MoEOutput

TASK_ROUTINGS = ("task", "task_sentence")


class FusedExperts(nn.Module):
    """The mixing layer of one task as dense matrices, one fused pair per group of tokens."""

    def __init__(self, norm: nn.LayerNorm, groups: list[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]):
        super().__init__()
        self.norm = norm
        # a run of tokens (capacity keeps a prefix) becomes a slice: a view, not a gathered copy
        self.tokens = [slice(t[0], t[-1] + 1) if t == list(range(t[0], t[-1] + 1)) else t for t, *_ in groups]
        self.w1 = nn.ParameterList(nn.Parameter(w1, requires_grad=False) for _, w1, _, _, _ in groups)  # [D, |J|H]
        self.b1 = nn.ParameterList(nn.Parameter(b1, requires_grad=False) for _, _, b1, _, _ in groups)  # [|J|H]
        self.w2 = nn.ParameterList(nn.Parameter(w2, requires_grad=False) for _, _, _, w2, _ in groups)  # [|J|H, D]
        self.b2 = nn.ParameterList(nn.Parameter(b2, requires_grad=False) for _, _, _, _, b2 in groups)  # [D]

    def forward(self, x: torch.Tensor, task=None, task_sentence=None) -> MoEOutput:
        """x (B, S, D) -> MoEOutput(y (B, S, D)); the task arguments are fixed at export and ignored."""
        y = x.clone()
        for rows, w1, b1, w2, b2 in zip(self.tokens, self.w1, self.b1, self.w2, self.b2):
            part = x[:, rows]  # (B, |group|, D)
            # one contiguous (B*|group|, D) matrix and bias-fused products: a matmul on the strided
            # (B, |group|, D) view costs about four times as much on CPU
            flat = self.norm(part).reshape(-1, part.shape[-1])
            y[:, rows] = part + torch.addmm(b2, F.gelu(torch.addmm(b1, flat, w1)), w2).view_as(part)
        return MoEOutput(y)


class TaskSubNetwork(nn.Module):
    """GRec for one task: the full model's inputs, fusion block and the task's tower around the
    task's fused experts. Every row of a batch must belong to `task`."""

    def __init__(self, model: GRec, task: int):
        super().__init__()
        moe = model.mixing
        if moe.routing not in TASK_ROUTINGS:
            raise ValueError(f"a {moe.routing!r}-routed model has no fixed sub-network per task; "
                             f"serve it through the full MoE (sub-networks need one of {TASK_ROUTINGS})")
        self.task, self.config = task, model.config
        self.use_case = task % model.config.n_use_cases
        self.inputs, self.fusion, self.norm, self.towers = model.inputs, model.fusion, model.norm, model.towers
        self.register_buffer("pairs", model.pairs, persistent=False)
        self.mixing = FusedExperts(moe.norm, _fused_groups(model, task))

    # The full model's path, with the fused experts as its mixing layer and only the task's tower.
    forward, score_request, interactions = MultiTaskNet.forward, MultiTaskNet.score_request, MultiTaskNet.interactions

    def head(self, tokens: torch.Tensor, task_sentence: torch.Tensor, batch) -> ModelOutput:
        """tokens (B, S, D) -> fusion -> fused experts -> the task's use-case tower."""
        y = self.mixing(self.fusion(tokens)).y  # (B, S, D)
        tower_in = torch.cat([self.norm(y.flatten(1)), self.interactions(y)], dim=-1)
        return ModelOutput(self.towers.tower(self.use_case, tower_in))


@torch.no_grad()
def _fused_groups(model: GRec, task: int) -> list:
    """[(tokens, W1 [D, |J|H], b1 [|J|H], W2 [|J|H, D], b2 [D])] for the token groups of `task`
    that pass through at least one expert."""
    moe, c = model.mixing, model.config
    r = model.task_routing()
    index, gates, kept = r.expert_index[task], r.gates[task], r.kept[task]  # (S, K)
    n_tokens = index.shape[0]
    experts = moe.experts
    groups: dict[tuple, list[int]] = {}
    for s in range(n_tokens):
        chosen = tuple((int(index[s, k]), float(gates[s, k])) for k in range(moe.top_k) if kept[s, k])
        if chosen:
            groups.setdefault(chosen, []).append(s)
    out = []
    for chosen, tokens in groups.items():
        e = torch.tensor([i for i, _ in chosen])
        g = torch.tensor([w for _, w in chosen], dtype=experts.w2.dtype)
        w1 = experts.w1[e].permute(1, 0, 2).reshape(c.d_model, -1)  # [K, D, H] -> [D, K*H]
        b1 = experts.b1[e].reshape(-1)  # [K*H]
        w2 = (experts.w2[e] * g[:, None, None]).reshape(-1, c.d_model)  # [K*H, D], gate folded in
        b2 = (experts.b2[e] * g[:, None]).sum(0)  # [D]
        out.append((tokens, w1.clone(), b1.clone(), w2.clone(), b2.clone()))
    return out


def export_subnetworks(model: GRec) -> dict[int, TaskSubNetwork]:
    """{task id: its dense sub-network}, sharing the full model's non-expert weights."""
    model.eval()
    return {t: TaskSubNetwork(model, t).eval() for t in range(model.config.n_tasks)}
