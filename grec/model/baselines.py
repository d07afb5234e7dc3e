"""The baselines GRec is measured against, on the same inputs, skeleton and training loop:

- MMoE (Ma et al., KDD 2018): every expert runs on every token; one softmax gate per task, computed
  from the sentence (mean of the tokens). The paper's baseline uses 4 experts.
- PLE (Tang et al., RecSys 2020): shared experts and each task's own experts, two levels of
  progressive extraction; a row runs every task's first-level experts (the shared gate mixes them).
- Shared-bottom: one dense feed-forward shared by all tasks, then the per-use-case towers.
- Single-task: one shared-bottom model per task, each trained on its own task's rows only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from grec.data.batch import Batch
from grec.model.grec import ModelOutput, MultiTaskNet
from grec.model.inputs import InputConfig
from grec.model.moe import MoEOutput, StackedExperts

BASELINES = ("mmoe", "ple", "shared_bottom", "single_task")


@dataclass
class BaselineConfig(InputConfig):
    arch: str = "mmoe"  # one of BASELINES
    n_experts: int = 4  # MMoE's experts; PLE's shared experts per level
    n_task_experts: int = 1  # PLE only: each task's own experts per level
    expert_hidden: int = 64  # per MMoE expert; the shared bottom gets n_experts * expert_hidden
    tower_hidden: int = 64


class MMoELayer(nn.Module):
    """y = x + sum_e g_{t,e}(mean_s h) E_e(h), h = LN(x): all experts, a gate per task."""

    def __init__(self, d_model: int, n_experts: int, hidden: int, n_tasks: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.gates = nn.Parameter(torch.zeros(n_tasks, d_model, n_experts))
        self.experts = StackedExperts(n_experts, d_model, hidden)

    def forward(self, x: torch.Tensor, task: torch.Tensor, task_sentence: torch.Tensor) -> MoEOutput:
        h = self.norm(x)  # (B, S, D)
        gate = torch.einsum("bd,bde->be", h.mean(1), self.gates[task]).softmax(-1)  # (B, E)
        w = self.experts
        hidden = F.gelu(torch.einsum("bsd,edh->bseh", h, w.w1) + w.b1)  # (B, S, E, H)
        out = torch.einsum("bseh,ehd->bsed", hidden, w.w2) + w.b2  # (B, S, E, D)
        return MoEOutput(x + torch.einsum("bsed,be->bsd", out, gate))


class PLELayer(nn.Module):
    """Progressive layered extraction (Tang et al., RecSys 2020), two levels, on the skeleton's tokens.

    Each level has shared experts and every task's own experts. A task's gate (from the mean of its
    branch's tokens, as MMoE's) mixes the shared experts and its own; on the first level a shared
    gate mixes every expert, the tasks' included, into the second level's shared input. A row needs
    only its own task's branch, but the shared gate needs every task's experts: the cost of a row
    grows with the number of tasks (the paper's point against it).
    y = x + (the row's task branch after the second level).
    """

    def __init__(self, d_model: int, n_shared: int, n_own: int, hidden: int, n_tasks: int):
        super().__init__()
        self.n_own = n_own
        self.norm = nn.LayerNorm(d_model)
        self.shared = nn.ModuleList(StackedExperts(n_shared, d_model, hidden) for _ in range(2))
        self.own = nn.ModuleList(StackedExperts(n_tasks * n_own, d_model, hidden) for _ in range(2))  # task-major
        self.task_gates = nn.Parameter(torch.zeros(2, n_tasks, d_model, n_shared + n_own))
        self.shared_gate = nn.Parameter(torch.zeros(d_model, n_shared + n_tasks * n_own))  # first level only

    def forward(self, x: torch.Tensor, task: torch.Tensor, task_sentence: torch.Tensor) -> MoEOutput:
        h = self.norm(x)  # (B, S, D)
        shared = run_all(self.shared[0], h)  # (B, S, Es, D)
        own = run_all(self.own[0], h)  # (B, S, T*Eo, D): the shared gate mixes them all
        mine = own.unflatten(2, (-1, self.n_own))[torch.arange(len(task)), :, task]  # (B, S, Eo, D)
        branch = mix(torch.cat([shared, mine], 2), h, self.task_gates[0, task])  # (B, S, D)
        shared_next = mix(torch.cat([shared, own], 2), h, self.shared_gate.expand(len(task), -1, -1))
        shared = run_all(self.shared[1], shared_next)  # (B, S, Es, D)
        mine = run_own(self.own[1], branch, task, self.n_own)  # (B, S, Eo, D)
        return MoEOutput(x + mix(torch.cat([shared, mine], 2), branch, self.task_gates[1, task]))


def run_all(experts: StackedExperts, h: torch.Tensor) -> torch.Tensor:
    """Every expert on every token. h (B, S, D) -> (B, S, E, D)."""
    hidden = F.gelu(torch.einsum("bsd,edh->bseh", h, experts.w1) + experts.b1)  # (B, S, E, H)
    return torch.einsum("bseh,ehd->bsed", hidden, experts.w2) + experts.b2


def run_own(experts: StackedExperts, h: torch.Tensor, task: torch.Tensor, n_own: int) -> torch.Tensor:
    """Each row through its own task's experts only. h (B, S, D), task (B,) -> (B, S, Eo, D)."""
    index = task.unsqueeze(1) * n_own + torch.arange(n_own, device=task.device)  # (B, Eo)
    hidden = F.gelu(torch.einsum("bsd,bedh->bseh", h, experts.w1[index]) + experts.b1[index].unsqueeze(1))
    return torch.einsum("bseh,behd->bsed", hidden, experts.w2[index]) + experts.b2[index].unsqueeze(1)


def mix(outputs: torch.Tensor, h: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """Expert outputs (B, S, E, D) weighted by a softmax gate read from the mean token of h (B, S, D)
    through per-row gate weights (B, D, E) -> (B, S, D)."""
    weight = torch.einsum("bd,bde->be", h.mean(1), gates).softmax(-1)  # (B, E)
    return torch.einsum("bsed,be->bsd", outputs, weight)


class DenseBottom(nn.Module):
    """y = x + FFN(LN(x)): the shared bottom, one network for every task."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))

    def forward(self, x: torch.Tensor, task: torch.Tensor, task_sentence: torch.Tensor) -> MoEOutput:
        return MoEOutput(x + self.ffn(self.norm(x)))


class MMoE(MultiTaskNet):
    def __init__(self, config: BaselineConfig):
        c = config
        super().__init__(c, MMoELayer(c.d_model, c.n_experts, c.expert_hidden, c.n_tasks))


class PLE(MultiTaskNet):
    def __init__(self, config: BaselineConfig):
        c = config
        super().__init__(c, PLELayer(c.d_model, c.n_experts, c.n_task_experts, c.expert_hidden, c.n_tasks))


class SharedBottom(MultiTaskNet):
    def __init__(self, config: BaselineConfig):
        super().__init__(config, DenseBottom(config.d_model, config.n_experts * config.expert_hidden))


class SingleTask(nn.Module):
    """One shared-bottom model per task. Each member is trained on its own task's rows only
    (`grec.train` does that); at inference a row goes to its task's member."""

    def __init__(self, config: BaselineConfig):
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(SharedBottom(config) for _ in range(config.n_tasks))

    def forward(self, batch: Batch) -> ModelOutput:
        logits = batch.use_case.new_zeros(batch.use_case.shape, dtype=torch.float32)
        task = batch.task(self.config.n_use_cases)
        for t, member in enumerate(self.members):
            rows = (task == t).nonzero().squeeze(1)
            if len(rows):
                logits[rows] = member(batch.select(rows)).logits
        return ModelOutput(logits)
