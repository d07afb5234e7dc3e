"""Ranking one request: features from the Feast online store, the task's sub-network, sorted scores.

A request names a customer, a task (flow + use case), candidate item ids and optionally a search
query and the impression's own context columns (the model's `impression_context`: on the
storefront the page and channel it comes from); the model's feature spec says which flows, use
cases and columns exist, nothing here names a dataset. The customer's profile and recent activity are read
from the online store (serving feature service) per request; the candidates' catalogue entries and
vectors come from an in-memory snapshot of the store's item views (`Catalogue`, refreshed every
few minutes);
the query's vector comes from the store's query_embeddings view, or is encoded on the spot for a
query never seen before (kept in memory, never written from the request path).

Unknown customers and items get cold-start defaults (the spec's unknown bucket for categorical
codes, zeros for numbers and vectors, an empty history) and are flagged in the result. Position is
not known before ranking: every candidate is scored at position 0 (every impression context
column the request leaves out is 0).

Requests that cannot be scored (unknown task, negative id, too many candidates, NaN) raise
RequestError naming the field; the service answers them with a 4xx.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from grec.data.batch import Batch
from grec.data.contract import HISTORY_VOCABULARY
from grec.data.spec import FeatureSpec
from grec.data.text import SentenceEncoder, text_hash
from grec.errors import UserError
from grec.serving.limits import MAX_CANDIDATES, MAX_ID, MAX_TEXT_CHARS

# An impression context column the request leaves out: 0 (for a position, the slot every candidate
# is scored at; its real slot is what ranking decides).
REQUEST_CONTEXT_DEFAULT = 0


class RequestError(UserError, ValueError):
    """A request the service refuses: the message names the field and the reason."""


def _check_id(name: str, value, kind: str = "int64") -> None:
    """Refuse what is not a value of the column's type in the logs: a string where the logs hold
    strings (ids, categories), a boolean where they hold booleans, else a non-negative int64
    (bool is not a number here)."""
    if kind == "string":
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT_CHARS:
            raise RequestError(f"{name}: must be a non-empty string (this model's values are strings), got {value!r}")
    elif kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise RequestError(f"{name}: must be true or false, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_ID:
        raise RequestError(f"{name}: must be a non-negative integer of at most {MAX_ID} (int64), got {value!r}")


@dataclass
class RankRequest:
    customer_id: int | str  # as the logs have it
    flow: str
    use_case: str
    item_ids: list[int | str]
    search_query: str = ""
    context: dict[str, float] = field(default_factory=dict)  # the impression's own context features (page...)

    def validate(self, spec: FeatureSpec, max_candidates: int = MAX_CANDIDATES) -> None:
        """Refuse what the model cannot score, naming the field: the model's own flows, use cases
        and impression context columns (its feature spec), never another dataset's."""
        tasks = spec.tasks
        if self.flow not in tasks.flows:
            raise RequestError(f"flow: unknown flow {self.flow!r}; this model's flows: {list(tasks.flows)}")
        if self.use_case not in tasks.use_cases:
            raise RequestError(f"use_case: unknown use case {self.use_case!r}; this model's use cases: {list(tasks.use_cases)}")
        _check_id("customer_id", self.customer_id, spec.value_types.get("customer_id", "int64"))
        unknown = sorted(set(self.context) - set(spec.impression_context))
        if unknown:
            raise RequestError(f"{unknown[0]}: not an input of this model; its request context: {spec.impression_context}")
        for name, value in self.context.items():
            if name in spec.context_categorical:
                _check_id(name, value, spec.value_types.get(name, "int64"))
            if name in spec.context_numerical and not (isinstance(value, (int, float, np.number)) and math.isfinite(value)):
                raise RequestError(f"{name}: must be a finite number, got {value!r}")
        if not self.item_ids:
            raise RequestError("item_ids: at least one candidate is needed")
        if len(self.item_ids) > max_candidates:
            raise RequestError(f"item_ids: {len(self.item_ids)} candidates, at most {max_candidates} per request")
        for i, item in enumerate(self.item_ids):
            _check_id(f"item_ids[{i}]", item, spec.value_types.get("item_id", "int64"))
        if not isinstance(self.search_query, str):
            raise RequestError(f"search_query: must be text, got {type(self.search_query).__name__}")
        if len(self.search_query) > MAX_TEXT_CHARS:
            raise RequestError(f"search_query: {len(self.search_query):,} characters, at most {MAX_TEXT_CHARS:,} "
                               "(GREC_SERVE_MAX_TEXT_CHARS)")
        if self.search_query.strip() and not spec.has("search"):
            raise RequestError("search_query: this model's data has no search text")


@dataclass
class RankResult:
    task: str
    item_ids: list[int | str]  # best first, as the request named them
    scores: list[float]  # probability of the task's label, aligned with item_ids
    cold_start_items: list[int | str]  # candidates the catalogue does not know
    cold_start_customer: bool
    features: pd.DataFrame = field(repr=False, default=None)  # what was scored, one row per candidate (for the log)


class RequestTexts:
    """Text vectors for one request: those already known (the store's), else encoded now and kept
    in memory (bounded), never persisted from the request path."""

    def __init__(self, encoder: SentenceEncoder, cache_size: int = 50_000):
        self.encoder, self.cache_size = encoder, cache_size
        self.known: dict[str, np.ndarray] = {}

    def remember(self, texts, vectors) -> None:
        for text, vector in zip(texts, vectors):
            if vector is not None and len(self.known) < self.cache_size:
                self.known[text_hash(text)] = np.asarray(vector, dtype=np.float32)

    def lookup(self, texts) -> np.ndarray:
        texts = [str(t) for t in texts]
        missing = sorted({t for t in texts if text_hash(t) not in self.known})
        if missing:
            self.remember(missing, self.encoder.encode(missing))
        zeros = np.zeros(self.encoder.dim, dtype=np.float32)
        return np.stack([self.known.get(text_hash(t), zeros) if t.strip() else zeros for t in texts])


def _is_text(spec: FeatureSpec, history: str) -> bool:
    """Whether a history column lists strings (the logs' item ids or pages are strings)."""
    return spec.value_types.get(HISTORY_VOCABULARY[history]) == "string"


class Catalogue:
    """Every catalogue item's serving features, read from the online store in one call and kept in
    memory, refreshed every `refresh_seconds`: the catalogue is small and changes rarely, so a
    request reads only its customer from the store. Unknown ids get cold-start rows."""

    def __init__(self, reader, spec: FeatureSpec, texts: RequestTexts, refresh_seconds: float = 300.0):
        self.reader, self.spec, self.texts, self.refresh_seconds = reader, spec, texts, refresh_seconds
        self._table, self._loaded_at = None, -math.inf

    def _load(self) -> pd.DataFrame:
        from grec.features import sources

        ids = pd.read_parquet(sources.source_path("item_catalog"), columns=["item_id"])["item_id"].unique()
        items = self.reader.items(ids)
        known = items[self.spec.item_numerical[0]].notna()
        items = items[known].reset_index(drop=True)
        table = pd.DataFrame({"item_id": items["item_id"]})  # values as the logs have them: the spec maps them
        for name in self.spec.item_categorical:
            table[name] = items[name]
        for name in self.spec.item_numerical:
            table[name] = items[name].astype(np.float64)
        if self.spec.has("item_vectors"):
            self.texts.remember(items["description"], items["text_embedding"])
            table["image_embedding"] = [np.asarray(v, np.float32) for v in items["image_embedding"]]
            table["description"] = items["description"].astype(str)
        # a source without item vectors: the constants the model was trained with
        return self.spec.fill_absent(table, "items").set_index("item_id", drop=False)

    def rows(self, item_ids: list[int]) -> tuple[pd.DataFrame, np.ndarray]:
        """(one row per id, in order; known mask)."""
        if time.monotonic() - self._loaded_at > self.refresh_seconds:
            self._table, self._loaded_at = self._load(), time.monotonic()
        table = self._table
        position = table.index.get_indexer(pd.Index(list(item_ids), dtype=object))
        known = position >= 0
        if len(table):
            rows = table.iloc[np.where(known, position, 0)].reset_index(drop=True)  # each id's row (any row where unknown)
        else:  # a store without items: every candidate is cold-start
            rows = pd.DataFrame(index=range(len(position)), columns=table.columns)
        rows["item_id"] = pd.Series(list(item_ids), dtype=object)
        if not known.all():
            for name in self.spec.item_categorical:  # no value: the vocabulary's unknown bucket
                rows[name] = rows[name].astype(object).where(known, None)
            for name in self.spec.item_numerical:
                rows[name] = rows[name].where(known, 0.0)
        if not known.all():
            zeros = np.zeros(self.spec.image_dim, dtype=np.float32)
            rows["image_embedding"] = [v if k else zeros for v, k in zip(rows["image_embedding"], known)]
            rows["description"] = rows["description"].where(known, "")
        return rows, known


class Ranker:
    """Scores the candidates of one request with the task's sub-network (or the full model for
    token-routed models and baselines), the customer side encoded once per request."""

    def __init__(self, model: torch.nn.Module, spec: FeatureSpec, reader, encoder: SentenceEncoder | None = None,
                 max_candidates: int = MAX_CANDIDATES):
        from grec.serving.subnet import TASK_ROUTINGS, export_subnetworks

        self.model, self.spec, self.reader, self.max_candidates = model.eval(), spec, reader, max_candidates
        routing = getattr(model.config, "routing", None)
        self.subnetworks = export_subnetworks(model) if routing in TASK_ROUTINGS else {}
        self.texts = RequestTexts(encoder or SentenceEncoder())
        self.catalogue = Catalogue(reader, spec, self.texts)

    def net(self, task: int) -> torch.nn.Module:
        return self.subnetworks.get(task, self.model)

    # -- features --------------------------------------------------------------------------

    def request_frame(self, request: RankRequest) -> tuple[pd.DataFrame, bool, list[int]]:
        """One row per candidate in the training-set layout, plus the cold-start flags."""
        spec = self.spec
        customer = self.reader.customer(request.customer_id)
        profile = [c for c in spec.context_categorical + spec.context_numerical if c not in spec.impression_context]
        # A customer the store does not know (no profile columns: the unknown bucket for all).
        cold_customer = bool(profile) and all(customer.get(c) is None for c in profile)
        columns: dict[str, object] = {}
        for name in profile:
            value = customer.get(name)
            if name in spec.context_categorical:
                columns[name] = value  # None (an unknown customer): the vocabulary's unknown bucket
            else:
                columns[name] = 0.0 if value is None else float(value)
        for name in spec.impression_context:  # what the request says, else the slot every candidate is scored at
            columns[name] = request.context.get(name, REQUEST_CONTEXT_DEFAULT)
        columns |= {"search_query": request.search_query, "flow": request.flow}
        items, known = self.catalogue.rows(request.item_ids)
        n = len(items)
        for name in ("viewed_item_ids", "visited_page_ids"):
            history = np.asarray(customer.get(name) or [], dtype=object if _is_text(spec, name) else np.int64)
            columns[name] = [history] * n
        frame = pd.concat([items, pd.DataFrame({k: v if isinstance(v, list) else [v] * n for k, v in columns.items()})],
                          axis=1)
        cold_items = [i for i, k in zip(request.item_ids, known) if not k]
        return frame, cold_customer, cold_items

    def query_vector(self, query: str) -> None:
        """Put the store's vector of `query` (if it has one) where `lookup` finds it."""
        if not self.spec.has("search") or not query.strip() or text_hash(query) in self.texts.known:
            return
        found = self.reader.store.get_online_features(
            features=["query_embeddings:query_embedding"], entity_rows=[{"query_hash": text_hash(query)}]).to_dict()
        self.texts.remember([query], found["query_embedding"])

    # -- scoring ---------------------------------------------------------------------------

    @torch.no_grad()
    def rank(self, request: RankRequest) -> RankResult:
        request.validate(self.spec, self.max_candidates)
        frame, cold_customer, cold_items = self.request_frame(request)
        self.query_vector(request.search_query)
        tasks = self.spec.tasks
        use_case = tasks.use_cases.index(request.use_case)
        task = tasks.flows.index(request.flow) * len(tasks.use_cases) + use_case
        features = self.spec.encode(frame, self.texts)
        batch = Batch.single(features, torch.full((len(frame),), use_case))
        scores = torch.sigmoid(self.net(task).score_request(batch).logits.float()).numpy()
        order = np.argsort(-scores, kind="stable")
        return RankResult(f"{request.flow}+{request.use_case}", [request.item_ids[i] for i in order],
                          [float(scores[i]) for i in order], cold_items, cold_customer, frame.assign(score=scores))

    @torch.no_grad()
    def score_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """Feature rows (the pyfunc's request layout: input columns + use_case) -> (N,) scores,
        each row through its task's sub-network."""
        frame = self.spec.fill_absent(frame)
        missing = [c for c in [*self.spec.input_columns(), "use_case"] if c not in frame.columns]
        if missing:
            raise RequestError(f"rows: missing columns {missing}")
        for column in frame.columns:
            values = frame[column]
            if values.dtype.kind == "f" and values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0])
                raise RequestError(f"rows[{row}].{column}: NaN is not a value")
        tasks = self.spec.tasks  # the model's own vocabulary (the storefront's, or a loaded dataset's)
        for name, known in (("flow", tasks.flows), ("use_case", tasks.use_cases)):
            bad = ~frame[name].isin(known)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise RequestError(f"rows[{row}].{name}: unknown value {frame[name].iloc[row]!r}; known: {list(known)}")
        features = self.spec.encode(frame.reset_index(drop=True), self.texts)
        use_case = torch.from_numpy(pd.Categorical(frame["use_case"], categories=tasks.use_cases).codes.astype(np.int64))
        task = features.flow * len(tasks.use_cases) + use_case
        out = np.empty(len(frame), dtype=np.float32)
        for t in task.unique().tolist():
            rows = (task == t).nonzero().squeeze(1)
            batch = Batch.single(features.take(rows), use_case[rows])
            out[rows.numpy()] = torch.sigmoid(self.net(t)(batch).logits.float()).numpy()
        return out


