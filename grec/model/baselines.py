"""The baselines GRec is measured against, on the same inputs, skeleton and training loop:

- MMoE (Ma et al., KDD 2018): every expert runs on every token; one softmax gate per task, computed
  from the sentence (mean of the tokens). The paper's baseline uses 4 experts.
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

BASELINES = ("mmoe", "shared_bottom", "single_task")


@dataclass
class BaselineConfig(InputConfig):
    arch: str = "mmoe"  # one of BASELINES
    n_experts: int = 4  # MMoE only
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
