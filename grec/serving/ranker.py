"""Ranking one request: features from the Feast online store, the task's sub-network, sorted scores.

A request names a customer, a task (flow + use case), candidate item ids and optionally a search
query and the impression's own context columns (the model's `impression_context`: on the
storefront the page and channel it comes from); the model's feature spec says which flows, use
cases and columns exist, nothing here names a dataset. The customer's profile and recent activity are read
from the online store (serving feature service) per request and encoded once (one row); the
candidates' rows are gathered from the worker's encoded catalogue (grec.serving.catalogue, swapped
when the store changes), so no candidate is encoded per request. The query's vector comes from the
store's query_embeddings view, or is encoded on the spot for a query never seen before (kept in
memory, never written from the request path). Each stage's time is kept on the result (`stages`).

Unknown customers and items get cold-start defaults (the spec's unknown bucket for categorical
codes, zeros for numbers and vectors, an empty history) and are flagged in the result. Position is
not known before ranking: every candidate is scored at position 0 (every impression context
column the request leaves out is 0).

Requests that cannot be scored (unknown task, negative id, too many candidates, NaN) raise
RequestError naming the field; the service answers them with a 4xx. A store that does not answer
within its deadline raises grec.serving.store_guard.StoreUnavailable naming it: a 503.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import torch

from grec.data.batch import Batch, Features
from grec.data.spec import FeatureSpec
from grec.data.text import SentenceEncoder, text_hash
from grec.errors import UserError
from grec.serving.catalogue import Catalogue, Snapshot, request_columns
from grec.serving.limits import MAX_CANDIDATES, MAX_ID, MAX_TEXT_CHARS, STORE_TIMEOUT_SECONDS
from grec.serving.store_guard import GuardedStore

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
    flow: str  # the route: the flow, or the task token columns' values joined with '+' ("AAL+home")
    use_case: str
    item_ids: list[int | str]
    search_query: str = ""
    context: dict[str, float] = field(default_factory=dict)  # the impression's own context features (page...)

    def validate(self, spec: FeatureSpec, max_candidates: int = MAX_CANDIDATES) -> None:
        """Refuse what the model cannot score, naming the field: the model's own flows, use cases
        and impression context columns (its feature spec), never another dataset's."""
        tasks = spec.tasks
        if self.flow not in tasks.flows:
            if len(tasks.tokens) == 1:
                raise RequestError(f"flow: unknown flow {self.flow!r}; this model's flows: {list(tasks.flows)}")
            raise RequestError(f"{'+'.join(tasks.tokens)}: {self.flow!r} is not one of this model's task token "
                               f"combinations: {list(tasks.flows)}")
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
    stages: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds (see Ranker.rank)
    scored: ScoredRows | None = field(repr=False, default=None)  # what was scored (for the log)

    def log_row(self, request_id: str, customer_id, use_case: str, model: str, event_timestamp: datetime | None = None,
                **labels) -> dict[str, object]:
        """This answer's prediction log row: what was scored (ScoredRows.log_row), who and which task,
        the model, when the page asked (`event_timestamp`, default now: what the page's impressions are
        logged with, so their outcomes join back on customer, item and time) and any further labels
        (an experiment's arm)."""
        logged_at = datetime.now(timezone.utc)
        return self.scored.log_row() | {
            "request_id": request_id, "logged_at": logged_at, "event_timestamp": event_timestamp or logged_at,
            "endpoint": "rank", "use_case": use_case, "customer_id": customer_id,
            "cold_start_customer": self.cold_start_customer, "model": model, **labels}

    @property
    def features(self) -> pd.DataFrame:
        """What was scored, one row per candidate in request order, in the training-set layout, with
        its score and rank: built on demand, never on the request path."""
        return self.scored.frame()


@dataclass(frozen=True)
class ScoredRows:
    """One scored request, kept as references: the catalogue snapshot's rows, the request side's
    columns, the scores in request order."""

    snapshot: Snapshot
    rows: np.ndarray  # (N,) each candidate's row in snapshot.table
    item_ids: list
    request: dict[str, object]
    scores: np.ndarray  # (N,) request order

    def log_row(self) -> dict[str, object]:
        """The prediction log's row of this request (grec.serving.prediction_log): the request side
        once, the candidates as lists in request order, the catalogue snapshot their features are."""
        return {**self.request, "item_id": self.item_ids, "score": self.scores, "rank": _ranks(self.scores),
                "cold_start_item": self.rows == self.snapshot.size, "candidates": len(self.rows),
                "catalogue_at": datetime.fromtimestamp(self.snapshot.loaded_at, timezone.utc)}

    def frame(self) -> pd.DataFrame:
        """One row per candidate in request order, in the training-set layout: its catalogue row,
        the request's columns, its score, rank (0 = first) and whether it was cold-start."""
        frame = self.snapshot.table.iloc[self.rows].reset_index(drop=True)
        frame["item_id"] = pd.Series(self.item_ids, dtype=object)
        for key, value in self.request.items():
            frame[key] = [value] * len(frame)
        return frame.assign(score=self.scores, rank=_ranks(self.scores), cold_start_item=self.rows == self.snapshot.size)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """(N,) each candidate's place in the ranking (0 = first; ties keep request order)."""
    return np.argsort(np.argsort(-scores, kind="stable"), kind="stable")


def _one(value) -> np.ndarray:
    """A one-row column holding `value` as it is (a list or vector stays one cell)."""
    cell = np.empty(1, dtype=object)
    cell[0] = value
    return cell


class Stages:
    """Wall time per stage of one request, in milliseconds: `mark(name)` closes the stage that
    began at the previous mark."""

    def __init__(self):
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = (now - self._last) * 1e3
        self._last = now


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


class Ranker:
    """Scores the candidates of one request with the task's sub-network (or the full model for
    token-routed models and baselines), the customer side encoded once per request."""

    def __init__(self, model: torch.nn.Module, spec: FeatureSpec, reader, encoder: SentenceEncoder | None = None,
                 max_candidates: int = MAX_CANDIDATES, store_timeout: float = STORE_TIMEOUT_SECONDS):
        from grec.features.store import online_store_description
        from grec.serving.subnet import TASK_ROUTINGS, export_subnetworks

        self.model, self.spec, self.reader, self.max_candidates = model.eval(), spec, reader, max_candidates
        routing = getattr(model.config, "routing", None)
        self.subnetworks = export_subnetworks(model) if routing in TASK_ROUTINGS else {}
        # every request-path read of the store within a deadline (a 503 past it); the probe reads a
        # customer no store holds, so readiness costs one round trip
        unknown = "" if spec.value_types.get("customer_id") == "string" else 0
        self.store = GuardedStore(online_store_description(reader.store), store_timeout, lambda: reader.customer(unknown))
        self.texts = RequestTexts(encoder or SentenceEncoder())
        if spec.has("search"):  # loaded now: the first query the store has no vector for would wait seconds for it
            self.texts.encoder.model
        self.catalogue = Catalogue(reader, spec, self.texts)
        self.catalogue.snapshot  # read and encoded before the first request
        self.compiled: dict[int, torch.nn.Module] = {}  # task -> compiled scorer (`compile`)

    def net(self, task: int) -> torch.nn.Module:
        return self.subnetworks.get(task, self.model)

    def compile_or_explain(self) -> dict:
        """`compile`, or why not: a missing C++ compiler (Inductor needs one; the slim serving image
        has none) or a failed compile leaves the eager path serving, said in the log and the result."""
        import logging
        import shutil

        log = logging.getLogger(__name__)
        compiler = os.environ.get("CXX") or next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
        if compiler is None:
            log.warning("no C++ compiler on PATH: the task networks serve uncompiled (about 2x slower to score)")
            return {"compiled": False, "reason": "no C++ compiler on PATH (torch.compile's Inductor needs one)"}
        try:
            return {"compiled": True, "seconds": round(self.compile(), 1), "tasks": len(self.compiled)}
        except Exception as e:  # a compiler bug or a mismatch: the eager path is the model as registered
            log.exception("compiling the task networks failed; serving them uncompiled")
            self.compiled = {}
            return {"compiled": False, "reason": f"{type(e).__name__}: {e}"[:500]}

    def compile(self, only: list[int] | None = None) -> float:
        """Compile every task's scoring path (or the tasks `only`; grec.serving.compiled), each
        checked against the eager one on an example request of the catalogue's items; returns the
        seconds it took."""
        from grec.serving.compiled import compile_tasks

        tasks, examples = self.spec.tasks, {}
        chosen = range(tasks.n_tasks) if only is None else only
        snapshot = self.catalogue.snapshot
        rows = np.arange(min(50, snapshot.size))
        ids = snapshot.table["item_id"].iloc[rows].tolist()
        pages = self.spec.vocabulary("page")
        pages = list(getattr(pages, "values", range(pages.size)))  # (older specs: integer codes)
        k = min(5, len(ids), len(pages))
        history = {"viewed_item_ids": ids[:k], "visited_page_ids": pages[:k]}  # a customer who viewed some
        for task in chosen:
            flow, use_case = tasks.flows[task // len(tasks.use_cases)], task % len(tasks.use_cases)
            request_side, _ = self.encode_request(RankRequest(None, flow, tasks.use_cases[use_case], ids), history,
                                                  snapshot.cold_item)
            features = Features.candidates(request_side, self.catalogue.items(snapshot, rows, ids))
            examples[task] = Batch.single(features, torch.full((len(rows),), use_case))
        self.compiled, seconds = compile_tasks({t: self.net(t) for t in chosen}, examples)
        return seconds

    # -- features ----------------------------------------------------------------------------

    def _read(self, request: RankRequest) -> tuple[dict, dict | None]:
        """What a request reads from the online store, as one call on the store guard's pool: the
        customer's features, and the store's vector of a search query not yet in memory (None when
        there is none to read)."""
        query, found = request.search_query, None
        if self.spec.has("search") and query.strip() and text_hash(query) not in self.texts.known:
            found = self.reader.store.get_online_features(
                features=["query_embeddings:query_embedding"], entity_rows=[{"query_hash": text_hash(query)}]).to_dict()
        return self.reader.customer(request.customer_id), found

    def _customer(self, request: RankRequest, read: tuple[dict, dict | None]) -> tuple[dict, bool]:
        """The customer's features and whether the store knows them; a query's vector put where
        RequestTexts.lookup finds it."""
        customer, found = read
        if found is not None:
            self.texts.remember([request.search_query], found["query_embedding"])
        spec = self.spec
        profile = [c for c in spec.context_categorical + spec.context_numerical if c not in spec.impression_context]
        # A customer the store does not know (no profile columns: the unknown bucket for all).
        return customer, bool(profile) and all(customer.get(c) is None for c in profile)

    def encode_request(self, request: RankRequest, customer: dict, cold_item: dict) -> tuple[Features, dict]:
        """The request side (customer, context, query, history, flow) encoded once: one row (with
        the cold-start item's columns beside it, not used), and its columns (for the log)."""
        columns = request_columns(self.spec, customer, request.flow, request.search_query, request.context,
                                  REQUEST_CONTEXT_DEFAULT)
        return self.spec.encode({k: _one(v) for k, v in (cold_item | columns).items()}, self.texts), columns

    # -- scoring ---------------------------------------------------------------------------

    def rank(self, request: RankRequest) -> RankResult:
        """Stages (milliseconds on the result): validate, read (customer and query from the store),
        encode (the request side once, the candidates gathered from the catalogue), score."""
        clock = self._validated(request)
        customer, cold_customer = self._customer(request, self.store.call(self._read, request))
        clock.mark("read")
        return self._ranked(request, customer, cold_customer, clock)

    async def rank_async(self, request: RankRequest) -> RankResult:
        """`rank` on a worker's event loop: the store reads awaited (the loop takes other requests
        while they wait), the rest run on the loop. Served this way, a request skips the hand-over
        to a thread pool and back that BentoML gives a synchronous endpoint (5-6% of a worker's
        CPU per request at concurrency 8, measured)."""
        clock = self._validated(request)
        customer, cold_customer = self._customer(request, await self.store.acall(self._read, request))
        clock.mark("read")
        return self._ranked(request, customer, cold_customer, clock)

    def _validated(self, request: RankRequest) -> Stages:
        clock = Stages()
        request.validate(self.spec, self.max_candidates)
        clock.mark("validate")
        return clock

    @torch.no_grad()
    def _ranked(self, request: RankRequest, customer: dict, cold_customer: bool, clock: Stages) -> RankResult:
        snapshot, rows = self.catalogue.lookup(request.item_ids)
        request_side, columns = self.encode_request(request, customer, snapshot.cold_item)
        features = Features.candidates(request_side, self.catalogue.items(snapshot, rows, request.item_ids))
        clock.mark("encode")
        tasks = self.spec.tasks
        use_case = tasks.use_cases.index(request.use_case)
        task = tasks.flows.index(request.flow) * len(tasks.use_cases) + use_case
        batch = Batch.single(features, torch.full((len(rows),), use_case))
        logits = self.compiled[task](batch) if task in self.compiled else self.net(task).score_request(batch).logits
        scores = torch.sigmoid(logits.float()).numpy()
        clock.mark("score")
        order = np.argsort(-scores, kind="stable")
        cold = rows == snapshot.size
        return RankResult(f"{request.flow}+{request.use_case}", [request.item_ids[i] for i in order],
                          scores[order].tolist(), [i for i, c in zip(request.item_ids, cold) if c], cold_customer,
                          clock.stages, ScoredRows(snapshot, rows, list(request.item_ids), columns, scores))

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
        for name, known in (*zip(tasks.tokens, tasks.token_values), ("use_case", tasks.use_cases)):
            bad = ~frame[name].isin(known)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise RequestError(f"rows[{row}].{name}: unknown value {frame[name].iloc[row]!r}; known: {list(known)}")
        routes = pd.Series(tasks.routes_of(frame))
        if not routes.isin(tasks.flows).all():
            row = int(np.flatnonzero(~routes.isin(tasks.flows).to_numpy())[0])
            raise RequestError(f"rows[{row}]: {routes[row]!r} is not one of this model's task token combinations: "
                               f"{list(tasks.flows)}")
        features = self.spec.encode(frame.reset_index(drop=True), self.texts)
        use_case = torch.from_numpy(pd.Categorical(frame["use_case"], categories=tasks.use_cases).codes.astype(np.int64))
        task = features.flow * len(tasks.use_cases) + use_case
        out = np.empty(len(frame), dtype=np.float32)
        for t in task.unique().tolist():
            rows = (task == t).nonzero().squeeze(1)
            batch = Batch.single(features.take(rows), use_case[rows])
            out[rows.numpy()] = torch.sigmoid(self.net(t)(batch).logits.float()).numpy()
        return out


