"""The wide & deep input layer (GRec Fig. 2) and the behaviour-sequence encoder (Sec. 3.2).

Every example becomes a short sentence of S = 5 tokens of width D:
[behaviour, context, search, candidate item, task]. The mixing layer (MoE or a baseline's) and the
towers read that sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from grec.data.batch import Batch, Features
from grec.data.spec import FeatureSpec
from grec.model.attention import ParallelBlock
from grec.model.interactions import CandidateMatches, FieldVectors, HistoryAttributes, ProfileMatches
from grec.model.match import N_NETWORK_INPUTS, attribute_network_inputs, n_attribute_inputs, network_inputs

N_TOKENS = 5  # behaviour, context, search, item, task


@dataclass
class InputConfig:
    """Input sizes (from the fitted FeatureSpec) and the widths of the shared input layers."""

    context_cardinalities: list[int]
    item_cardinalities: list[int]
    n_items: int
    n_pages: int
    n_context_numerical: int
    n_item_numerical: int
    search_dim: int
    image_dim: int
    text_dim: int
    seq_len: int = 20
    n_flows: int = 3  # routes: one per flow, or per combination of the task token columns' values
    n_use_cases: int = 4
    # With task token columns beside the flow (TaskVocabulary.tokens): each route's token codes,
    # (routes, columns) (TaskVocabulary.route_codes). None: the route is the flow, one token.
    route_tokens: list[list[int]] | None = None
    d_model: int = 32
    d_field: int = 16  # embedding width of each categorical field
    n_heads: int = 4
    n_seq_layers: int = 1
    mlp_ratio: int = 2
    dropout: float = 0.1
    # The candidate's match with the request (grec.model.match: query-description cosine, viewed
    # before, how often, how recently) added to the item token: the wide cross features of wide &
    # deep. Off in model folders saved before it existed.
    match_features: bool = False
    # How the candidate's attributes meet the history's items' (share with the candidate's value,
    # views since, numerical gaps: grec.model.match.attribute_features), engineered from the
    # contract's item columns: the same features the trees get. Off in older model folders.
    attribute_features: bool = False
    # The same, learned (grec.model.interactions): the history's items with their attributes, per
    # item column the candidate against the history and the query, and every context column
    # against every item column. Off in older model folders.
    learned_interactions: bool = False
    # Each number read through periodic embeddings (NumberEmbeddings) into the deep part, besides
    # the wide linear part: thresholds and bumps a tree finds in one split. Off in older folders.
    number_embeddings: bool = False

    @staticmethod
    def sizes_from(spec: FeatureSpec) -> dict:
        return dict(
            context_cardinalities=list(spec.context_cardinalities),
            item_cardinalities=list(spec.item_cardinalities),
            n_items=spec.n_items,
            n_pages=spec.n_pages,
            n_context_numerical=len(spec.context_numerical),
            n_item_numerical=len(spec.item_numerical),
            search_dim=spec.search_dim,
            image_dim=spec.image_dim,
            text_dim=spec.text_dim,
            seq_len=spec.seq_len,
            n_flows=len(spec.tasks.flows),
            n_use_cases=len(spec.tasks.use_cases),
            route_tokens=spec.tasks.route_codes if len(spec.tasks.tokens) > 1 else None,
        )

    @property
    def n_tasks(self) -> int:
        return self.n_flows * self.n_use_cases


class CategoricalFields(nn.Module):
    """One embedding table per field (index `cardinality` is the unknown bucket), stacked."""

    def __init__(self, cardinalities: list[int], d_field: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(k + 1, d_field) for k in cardinalities)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., F) -> (..., F, d_field)."""
        return torch.stack([table(codes[..., i]) for i, table in enumerate(self.tables)], dim=-2)


class NumberEmbeddings(nn.Module):
    """Each numerical column -> a vector of width d: cos and sin of the (normalised) value at k
    learned frequencies, then a linear layer of the column's own and ReLU ("PLR" embeddings of
    Gorishniy et al., NeurIPS 2022, which let a network find what a tree's split finds: a threshold,
    a band of values). Frequencies start at N(0, sigma)."""

    def __init__(self, n_numerical: int, d_field: int, k: int = 16, sigma: float = 0.1):
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_numerical, k) * sigma)
        self.weight = nn.Parameter(torch.randn(n_numerical, 2 * k, d_field) * (2 * k) ** -0.5)
        self.bias = nn.Parameter(torch.zeros(n_numerical, d_field))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, Fn) normalised -> (B, Fn, d)."""
        z = 2 * torch.pi * self.frequencies * x[..., None]  # (B, Fn, k)
        periodic = torch.cat([torch.cos(z), torch.sin(z)], dim=-1)  # (B, Fn, 2k)
        return F.relu(torch.einsum("bnk,nkd->bnd", periodic, self.weight) + self.bias)


class WideAndDeep(nn.Module):
    """Deep: categorical embeddings (and, where configured, number embeddings) -> FF. Wide:
    normalised numericals -> FF. Joined to width D."""

    def __init__(self, cardinalities: list[int], n_numerical: int, d_field: int, d_model: int,
                 number_embeddings: bool = False):
        super().__init__()
        self.fields = CategoricalFields(cardinalities, d_field)
        self.numbers = NumberEmbeddings(n_numerical, d_field) if number_embeddings else None
        n_deep = len(cardinalities) + (n_numerical if number_embeddings else 0)
        self.deep = nn.Linear(n_deep * d_field, d_model)
        self.norm = nn.BatchNorm1d(n_numerical)
        self.wide = nn.Linear(n_numerical, d_model)

    def forward(self, codes: torch.Tensor, numerical: torch.Tensor,
                embedded: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`embedded`: the codes' field embeddings (B, F, d) where already looked up."""
        embedded = self.fields(codes) if embedded is None else embedded
        normal = self.norm(numerical)  # (B, Fn)
        if self.numbers is not None:
            embedded = torch.cat([embedded, self.numbers(normal)], dim=1)  # (B, F + Fn, d)
        deep = F.leaky_relu(self.deep(embedded.flatten(1)), 0.2)  # (B, D)
        wide = F.leaky_relu(self.wide(normal), 0.2)  # (B, D)
        return deep, wide


class ContextEncoder(nn.Module):
    def __init__(self, c: InputConfig):
        super().__init__()
        self.wide_deep = WideAndDeep(c.context_cardinalities, c.n_context_numerical, c.d_field, c.d_model,
                                     c.number_embeddings)
        self.proj = nn.Linear(2 * c.d_model, c.d_model)

    def forward(self, f: Features, embedded: torch.Tensor | None = None) -> torch.Tensor:
        deep, wide = self.wide_deep(f.context_categorical, f.context_numerical, embedded)
        return self.proj(torch.cat([deep, wide], dim=-1))  # (B, D)


class ItemEncoder(nn.Module):
    """Item id + item wide & deep + image and text embeddings, concatenated into one item vector.
    Its categorical tables (`wide_deep.fields.tables`) also embed the history's items' attributes."""

    def __init__(self, c: InputConfig, item_ids: nn.Embedding):
        super().__init__()
        self.item_ids = item_ids
        self.wide_deep = WideAndDeep(c.item_cardinalities, c.n_item_numerical, c.d_field, c.d_model,
                                     c.number_embeddings)
        self.image = nn.Linear(c.image_dim, c.d_model)
        self.text = nn.Linear(c.text_dim, c.d_model)
        self.proj = nn.Linear(5 * c.d_model, c.d_model)

    def forward(self, f: Features, embedded: torch.Tensor | None = None) -> torch.Tensor:
        deep, wide = self.wide_deep(f.item_categorical, f.item_numerical, embedded)
        parts = [self.item_ids(f.item), deep, wide, self.image(f.item_image), self.text(f.item_text)]
        return self.proj(torch.cat(parts, dim=-1))  # (B, D)


class BehaviourEncoder(nn.Module):
    """Recently viewed items and their pages -> parallel blocks with multi-query attention.

    The sequence is encoded once per example; the candidate item then reads it through target
    attention (DIN-style), so "has this customer been looking at items like this one" survives the
    pooling. A learned start token is always present, so an empty history still has a key.
    """

    def __init__(self, c: InputConfig, item_ids: nn.Embedding, attributes: HistoryAttributes | None = None):
        super().__init__()
        self.item_ids = item_ids
        self.attributes = attributes  # the history's items with their attributes, where configured
        self.pages = nn.Embedding(c.n_pages + 2, c.d_model, padding_idx=0)
        self.positions = nn.Parameter(torch.zeros(c.seq_len + 1, c.d_model))
        self.start = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.blocks = nn.ModuleList(
            ParallelBlock(c.d_model, c.n_heads, c.mlp_ratio, c.dropout) for _ in range(c.n_seq_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.query = nn.Linear(c.d_model, c.d_model, bias=False)
        self.pool = nn.Linear(3 * c.d_model, c.d_model)
        nn.init.normal_(self.positions, std=0.02)
        nn.init.normal_(self.start, std=0.02)

    def encode(self, f: Features, history: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The item-independent part, once per customer: f (N rows) -> (states (N, L+1, D),
        valid (N, L+1) bool, pooled (N, 2D) = [mean, max] over the valid states). `history`: the
        history's items' field embeddings (N, L, Fi, d) where already looked up."""
        B, L = f.seq_items.shape
        events = self.item_ids(f.seq_items) + self.pages(f.seq_pages)  # (B, L, D)
        if self.attributes is not None:
            history = self.attributes.fields(f.seq_item_categorical) if history is None else history
            events = events + self.attributes(history, f.seq_item_numerical)  # (B, L, D)
        x = torch.cat([self.start.expand(B, 1, -1), events], dim=1) + self.positions  # (B, L+1, D)
        valid = torch.cat([f.seq_items.new_ones(B, 1, dtype=torch.bool), f.seq_items > 0], dim=1)  # (B, L+1)
        for block in self.blocks:
            x = block(x, valid)
        x = self.norm(x)
        w = valid.unsqueeze(-1).to(x.dtype)  # (B, L+1, 1)
        mean = (x * w).sum(1) / w.sum(1)  # (B, D)
        peak = x.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(1)  # (B, D)
        return x, valid, torch.cat([mean, peak], dim=-1)

    def read(self, encoded: tuple[torch.Tensor, torch.Tensor, torch.Tensor], item: torch.Tensor) -> torch.Tensor:
        """The candidate's target attention over encoded histories -> (N, D). `encoded` has N rows,
        or one row shared by all N candidates of a request (broadcast, not copied)."""
        x, valid, pooled = (t.expand(len(item), *t.shape[1:]) for t in encoded)
        scores = torch.einsum("bld,bd->bl", x, self.query(item)) / x.shape[-1] ** 0.5  # (N, L+1)
        target = torch.einsum("bl,bld->bd", scores.masked_fill(~valid, float("-inf")).softmax(-1), x)  # (N, D)
        return self.pool(torch.cat([pooled, target], dim=-1))  # (N, D)

    def forward(self, f: Features, item: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        """f: features of N examples; item (N, D) the candidate's vector -> (N, D)."""
        return self.read(self.encode(f, history), item)


class TaskTokens(nn.Module):
    """The task sentence (the paper's eq. 8): a token per task token column and the use case's,
    e.g. [AAL, CVR], or [AAL, home, CVR] where the contract names a page column too. Each column's
    values have their own embeddings; a route is looked up as its columns' codes."""

    def __init__(self, c: InputConfig):
        super().__init__()
        routes = torch.tensor(c.route_tokens if c.route_tokens else [[r] for r in range(c.n_flows)])  # (R, T)
        self.register_buffer("routes", routes, persistent=False)
        sizes = (routes.max(0).values + 1).tolist()
        self.flows = nn.Embedding(sizes[0], c.d_model)  # the first column: the flow
        self.others = nn.ModuleList(nn.Embedding(n, c.d_model) for n in sizes[1:])
        self.use_cases = nn.Embedding(c.n_use_cases, c.d_model)

    def sentence(self, route: torch.Tensor, use_case: torch.Tensor) -> torch.Tensor:
        """route (B,), use_case (B,) -> (B, T + 1, D)."""
        codes = self.routes[route]  # (B, T)
        tokens = [self.flows(codes[:, 0]), *(table(codes[:, i + 1]) for i, table in enumerate(self.others))]
        return torch.stack([*tokens, self.use_cases(use_case)], dim=1)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.sentence(batch.flow, batch.use_case)  # (B, T + 1, D)


class Embedded(NamedTuple):
    """The categorical columns' field embeddings, looked up once per forward pass and shared by
    the encoders and the learned interactions."""

    context: torch.Tensor  # (N, Fc, d)
    item: torch.Tensor  # (N, Fi, d)
    history: torch.Tensor | None  # (N, L, Fi, d): the history's items (learned interactions only)


class InputLayer(nn.Module):
    """Batch -> (tokens (B, S, D), task sentence (B, 2, D))."""

    def __init__(self, c: InputConfig):
        super().__init__()
        item_ids = nn.Embedding(c.n_items + 2, c.d_model, padding_idx=0)  # shared by item and history
        self.context = ContextEncoder(c)
        self.search = nn.Linear(c.search_dim, c.d_model)
        self.item = ItemEncoder(c, item_ids)
        attributes, self.matches, self.profile = None, None, None
        if c.learned_interactions:  # the candidate's attribute tables, shared with the history's items
            attributes = HistoryAttributes(self.item.wide_deep.fields, c.n_item_numerical, c.d_field, c.d_model)
            self.matches = CandidateMatches(c.item_cardinalities, c.search_dim, c.text_dim, c.d_field, c.d_model)
            self.profile = ProfileMatches(FieldVectors(c.n_context_numerical, c.d_field),
                                          FieldVectors(c.n_item_numerical, c.d_field),
                                          len(c.context_cardinalities) + c.n_context_numerical,
                                          len(c.item_cardinalities) + c.n_item_numerical, c.d_field, c.d_model)
        self.behaviour = BehaviourEncoder(c, item_ids, attributes)
        self.task = TaskTokens(c)
        self.match = nn.Linear(N_NETWORK_INPUTS, c.d_model) if c.match_features else None
        self.attribute_match = None
        if c.attribute_features:
            self.register_buffer("item_cardinalities", torch.tensor(c.item_cardinalities, dtype=torch.long),
                                 persistent=False)
            self.attribute_match = nn.Linear(n_attribute_inputs(len(c.item_cardinalities), c.n_item_numerical),
                                             c.d_model)
        self.token_types = nn.Parameter(torch.zeros(N_TOKENS, c.d_model))
        nn.init.normal_(self.token_types, std=0.02)

    def embed(self, f: Features, customer: Features | None = None) -> Embedded:
        """The field embeddings of N rows; with `customer` (one row: a request's), the context and
        the history are looked up once from it and broadcast to the N candidates (views, not copies)."""
        side = f if customer is None else customer
        context = self.context.wide_deep.fields(side.context_categorical)
        history = None
        if self.matches is not None:
            history = self.item.wide_deep.fields(side.seq_item_categorical)
        if customer is not None:
            n = len(f)
            context = context.expand(n, *context.shape[1:])
            history = None if history is None else history.expand(n, *history.shape[1:])
        return Embedded(context, self.item.wide_deep.fields(f.item_categorical), history)

    def candidate(self, f: Features, embedded: Embedded) -> torch.Tensor:
        """The candidate item's vector, with its match to the request where configured -> (N, D)."""
        item = self.item(f, embedded.item)
        if self.match is not None:
            item = item + self.match(network_inputs(f))
        if self.attribute_match is not None:
            item = item + self.attribute_match(attribute_network_inputs(f, self.item_cardinalities))
        if self.matches is not None:
            item = item + self.matches(f, embedded.item, embedded.history) + self.profile(f, embedded.context, embedded.item)
        return item  # (N, D)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        f = batch.features
        embedded = self.embed(f)
        item = self.candidate(f, embedded)  # (N, D)
        per_example = torch.stack([
            self.behaviour(f, item, embedded.history), self.context(f, embedded.context),
            F.leaky_relu(self.search(f.search), 0.2), item,
        ], dim=1)  # (N, S-1, D): computed once per example, shared by all its rows
        return self._with_task(per_example, batch)

    def request(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Like forward, for the candidates of one request: every example shares the customer side
        (context, search, history), which is encoded once from the first example, not once per
        candidate. Only the item, the history read by it, and the task vary."""
        f = batch.features
        customer = f.take(torch.zeros(1, dtype=torch.long, device=f.item.device))
        embedded = self.embed(f, customer)
        item = self.candidate(f, embedded)  # (N, D): each candidate row carries the request's query and history
        n = len(item)
        history = None if embedded.history is None else embedded.history[:1]
        per_example = torch.stack([
            self.behaviour.read(self.behaviour.encode(customer, history), item),
            self.context(customer, embedded.context[:1]).expand(n, -1),
            F.leaky_relu(self.search(customer.search), 0.2).expand(n, -1),
            item,
        ], dim=1)  # (N, S-1, D)
        return self._with_task(per_example, batch)

    def _with_task(self, per_example: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        task_sentence = self.task(batch)  # (B, T + 1, D)
        tokens = torch.cat([per_example[batch.example], task_sentence.mean(1, keepdim=True)], dim=1)
        return tokens + self.token_types, task_sentence  # (B, S, D), (B, T + 1, D)
