"""GRec: wide & deep inputs -> parallel-transformer fusion -> task-sentence sparse MoE -> towers."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import torch
from torch import nn

from grec.data.batch import Batch
from grec.model.attention import ParallelBlock
from grec.model.inputs import N_TOKENS, InputConfig, InputLayer
from grec.model.moe import MoEOutput, Routing, SparseMoE, route
from grec.model.towers import UseCaseTowers


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B,) one logit per row, for the row's task
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)  # unweighted
    aux_loss: torch.Tensor | float = 0.0  # weighted sum: add it to the task loss
    routing: Routing | None = None


@dataclass
class GRecConfig(InputConfig):
    n_experts: int = 8
    top_k: int = 4
    expert_hidden: int = 64
    capacity: int | None = 2  # tokens one expert takes from one example (the paper's setting)
    routing: str = "task_sentence"
    tower_hidden: int = 64
    load_balance_coef: float = 1e-2
    router_z_coef: float = 1e-3


def config_to_json(config) -> str:
    """Config JSON with the model class named, so `grec.model.load_model` can rebuild it."""
    return json.dumps({"model": type(config).__name__, **dataclasses.asdict(config)}, indent=2)


class MultiTaskNet(nn.Module):
    """The skeleton GRec and its baselines share: inputs -> fusion block -> mixing -> towers.

    Only the mixing layer differs (sparse MoE, MMoE, or a dense feed-forward), so a comparison
    between them measures the mixing layer and nothing else.
    """

    def __init__(self, config: InputConfig, mixing: nn.Module):
        super().__init__()
        self.config = config
        self.inputs = InputLayer(config)
        self.fusion = ParallelBlock(config.d_model, config.n_heads, config.mlp_ratio, config.dropout)
        self.mixing = mixing
        self.norm = nn.LayerNorm(N_TOKENS * config.d_model)
        self.register_buffer("pairs", torch.triu_indices(N_TOKENS, N_TOKENS, offset=1), persistent=False)  # (2, S(S-1)/2)
        d_tower = N_TOKENS * config.d_model + self.pairs.shape[1]
        self.towers = UseCaseTowers(d_tower, config.tower_hidden, config.n_use_cases)

    def interactions(self, y: torch.Tensor) -> torch.Tensor:
        """Dot products between every pair of tokens (DLRM's interaction): match signals such as
        search intent x candidate item, explicit instead of left for the towers to discover.
        y (B, S, D) -> (B, S*(S-1)/2)."""
        gram = torch.einsum("bsd,btd->bst", y, y) / y.shape[-1] ** 0.5  # (B, S, S)
        return gram[:, self.pairs[0], self.pairs[1]]

    def forward(self, batch: Batch) -> ModelOutput:
        return self.head(*self.inputs(batch), batch)

    def score_request(self, batch: Batch) -> ModelOutput:
        """The candidates of one request (one customer, so one context, search and history):
        the customer side is encoded once (InputLayer.request)."""
        return self.head(*self.inputs.request(batch), batch)

    def head(self, tokens: torch.Tensor, task_sentence: torch.Tensor, batch: Batch) -> ModelOutput:
        """tokens (B, S, D), task_sentence (B, T + 1, D) -> fusion -> mixing -> towers."""
        task = batch.task(self.config.n_use_cases)  # (B,)
        mixed: MoEOutput = self.mixing(self.fusion(tokens), task, task_sentence)  # y (B, S, D)
        tower_in = torch.cat([self.norm(mixed.y.flatten(1)), self.interactions(mixed.y)], dim=-1)
        logits = self.towers(tower_in, batch.use_case)  # (B,)
        weighted = sum(getattr(self.config, f"{k}_coef") * v for k, v in mixed.aux_losses.items())
        return ModelOutput(logits, mixed.aux_losses, weighted, mixed.routing)


class GRec(MultiTaskNet):
    def __init__(self, config: GRecConfig):
        c = config
        super().__init__(c, SparseMoE(c.d_model, c.n_experts, c.top_k, c.expert_hidden, c.routing, c.capacity, c.n_tasks))

    @torch.no_grad()
    def task_routing(self) -> Routing:
        """Every task's routing, one row per task (route-major), where the router sees the task alone
        (task or task-sentence routing): its experts, gates and capacity pattern need no example."""
        c, moe = self.config, self.mixing
        if moe.routing not in ("task", "task_sentence"):
            raise ValueError(f"a {moe.routing!r}-routed model routes each example by its content, not by its task")
        task = torch.arange(c.n_tasks, device=self.inputs.token_types.device)
        sentence = self.inputs.task.sentence(task // c.n_use_cases, task % c.n_use_cases)  # (tasks, T + 1, D)
        return route(moe.router(moe.gate_input(None, task, sentence)), N_TOKENS, moe.top_k, moe.capacity)
