"""The BentoML ranking service.

Endpoints: `/rank` (one customer, a task, candidate ids: sorted candidates with scores; each
stage's time in its Server-Timing header), `/score` (feature rows for batch use, adaptively
batched), `/metadata` (what is served, since when); BentoML's own `/healthz`, `/livez` and
`/readyz` (ready once the model and the catalogue are loaded and while the online store answers,
via `__is_ready__`).

The model is the BentoML model named by `GREC_BENTO_MODEL` (default `grec:latest`), imported from
the MLflow registry's champion by `grec package` / `grec serve` (grec.serving.bento), and packaged
inside the Bento. Features come from the Feast online store in `$GREC_HOME`. Bad requests get a
4xx naming the field (pydantic validation, or grec.serving.ranker.RequestError; the limits of
grec.serving.limits; a body over its size a 413, one not JSON a 415, grec.serving.middleware), with
the error body the OpenAPI document declares; a store that does not answer within its deadline is a
503 naming it (grec.serving.store_guard). Every request's features and scores go to the prediction
log, off the request path. With GREC_SERVE_FOLLOW (what `grec serve` sets), each worker follows the
registry's alias and swaps a new version in whole (grec.serving.rollout).
"""

from __future__ import annotations

import os
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, create_model

from grec import settings

settings.use_bentoml_home()

import bentoml  # noqa: E402

from grec.data.spec import FeatureSpec  # noqa: E402
from grec.serving import limits  # noqa: E402
from grec.serving.experiment import CHALLENGER, CHAMPION, Split  # noqa: E402
from grec.serving.middleware import RequestLimits  # noqa: E402
from grec.serving.requests import (  # noqa: E402
    FORBID_EXTRA, rank_context, rank_input_model, rank_output_model, score_row_model)

MODEL_TAG = os.environ.get("GREC_BENTO_MODEL", "grec:latest")
# BentoML's request path reads a pydantic attribute the way pydantic 2.11 deprecates: a warning
# formatted and written to the log on nearly every request (13,160 in 14,000 requests measured).
warnings.filterwarnings("ignore", message="Accessing the 'model_fields' attribute on the instance", module="_bentoml_impl")
# One worker process per core: a request is mostly Python (feature read, encoding, small matrix
# products), so processes, not threads, are what scale it; each worker's torch gets its share of cores.
WORKERS = int(os.environ.get("GREC_SERVE_WORKERS", os.cpu_count() or 1))
# The prediction log's loss window: a worker killed without its shutdown loses what it answered
# since its last write, at most this many seconds (each write is one part file per worker).
LOG_FLUSH_SECONDS = limits.seconds("GREC_SERVE_LOG_FLUSH_SECONDS", 5.0)
# Each task's network compiled before the worker is ready (grec.serving.compiled): scoring 2-3x
# faster, start-up a minute longer the first time (Inductor's cache in the state folder after).
COMPILE = os.environ.get("GREC_SERVE_COMPILE", "1").strip() not in ("0", "false", "no", "")
# MODEL@ALIAS of the registry to follow (`grec serve` sets it): a worker serves each new version the
# alias names within FOLLOW_SECONDS, swapped in without a refused request (grec.serving.rollout).
FOLLOW = os.environ.get("GREC_SERVE_FOLLOW", "").strip()
FOLLOW_SECONDS = limits.seconds("GREC_SERVE_FOLLOW_SECONDS", 5.0)
# An A/B experiment (grec.serving.experiment): the registry's NAME@ALIAS or NAME:VERSION that a
# share of the customers are ranked by, split by a stable hash of the customer id.
CHALLENGER_MODEL = os.environ.get("GREC_SERVE_CHALLENGER", "").strip()
SPLIT = (Split(os.environ.get("GREC_SERVE_EXPERIMENT", "").strip() or CHALLENGER_MODEL,
               float(os.environ.get("GREC_SERVE_CHALLENGER_SHARE", "0.5"))) if CHALLENGER_MODEL else None)


def packaged_spec(tag: str = MODEL_TAG) -> FeatureSpec:
    """The packaged model's own feature spec (its features.json, inside the BentoML model): what
    the request bodies are typed from."""
    model = bentoml.models.get(tag)
    found = sorted(Path(model.path).rglob("features.json"))
    if not found:
        raise bentoml.exceptions.NotFound(f"BentoML model {tag}: no features.json inside {model.path}")
    return FeatureSpec.load(found[0])


SPEC = packaged_spec()
RankBody = rank_input_model(SPEC)
RankResponse = rank_output_model(SPEC)
# Validated per request, before adaptive batching merges requests: a bad row fails its own
# request with a 400, never its neighbours.
ScoreRow = score_row_model(SPEC)
ScoreRows = Annotated[list[ScoreRow], Field(min_length=1, max_length=limits.MAX_SCORE_ROWS)]
# /score's body: {"rows": [...]} and nothing else (an unknown field is refused, not ignored)
ScoreBody = create_model("ScoreBody", __config__=FORBID_EXTRA, rows=(ScoreRows, ...))
LIMITS = {"max_candidates": limits.MAX_CANDIDATES, "max_score_rows": limits.MAX_SCORE_ROWS,
          "max_text_chars": limits.MAX_TEXT_CHARS, "max_history": limits.MAX_HISTORY,
          "max_body_bytes": limits.MAX_BODY_BYTES, "max_id": limits.MAX_ID}


@bentoml.service(name="grec-ranker", workers=WORKERS, traffic={"timeout": 30})
class GRecRanker:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        import bentoml.mlflow
        import torch

        from grec.features.store import OnlineReader
        from grec.processes import die_with_parent
        from grec.serving.prediction_log import PredictionLog

        die_with_parent()  # a worker outlives no supervisor: `kill -9` of `bentoml serve` takes it too
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // WORKERS))
        self.reader = OnlineReader()
        info = self.bento_model.info
        # (Ranker, metadata): swapped as one by the registry follower; a request reads it once
        self.served = None
        self.follower = None
        if FOLLOW:
            from grec.serving.rollout import Follower, parse_follow

            name, alias = parse_follow(FOLLOW)
            self.follower = Follower(name, alias, str(info.labels.get("version")), self._swap, FOLLOW_SECONDS)
            # Started from an older Bento (a pod after promotions): the alias's version is the only one
            # prepared. The packaged one is prepared only when the registry does not answer or the swap
            # is refused (then `pending` says why).
            self.follower.check()
        if self.served is None:
            wrapper = bentoml.mlflow.load_model(self.bento_model).unwrap_python_model()
            self.served = self._prepare(wrapper.model, wrapper.spec, {"model": str(info.tag), **info.labels})
        self.log = PredictionLog(settings.predictions_dir(), flush_seconds=LOG_FLUSH_SECONDS)
        self.challenger = self._challenger() if SPLIT else None
        if self.follower:
            self.follower.start()

    def _prepare(self, model, spec, labels: dict) -> tuple:
        """A Ranker for `model` (catalogue read, networks compiled) and what /metadata says of it."""
        from grec.features.store import SERVING_SERVICE, online_store_description
        from grec.serving.ranker import Ranker

        ranker = Ranker(model, spec, self.reader)
        compilation = ranker.compile_or_explain() if COMPILE else {"compiled": False, "reason": "GREC_SERVE_COMPILE=0"}
        tasks = spec.tasks
        meta = {**labels, "served_since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "follows": FOLLOW or None, "feature_service": SERVING_SERVICE,
                "online_store": online_store_description(self.reader.store),
                "routing": getattr(model.config, "routing", None), "sub_networks": len(ranker.subnetworks), **LIMITS,
                "compilation": compilation, "tasks": [tasks.task_name(t) for t in range(tasks.n_tasks)],
                "flows": list(tasks.flows), "use_cases": list(tasks.use_cases),
                "task_tokens": dict(zip(tasks.tokens, map(list, tasks.token_values))),
                "request_context": spec.impression_context, "inputs": spec.inputs}
        return ranker, meta

    def _challenger(self) -> tuple:
        """(Ranker, metadata) of the experiment's challenger, loaded from the registry."""
        from grec.lifecycle.registry import load_ref
        from grec.serving.rollout import request_shape

        model, spec, name, version = load_ref(CHALLENGER_MODEL)
        if request_shape(spec) != request_shape(SPEC):
            raise ValueError(f"GREC_SERVE_CHALLENGER={CHALLENGER_MODEL}: its requests differ from the champion's "
                             "(flows, use cases, columns or value types); one service serves one request schema")
        return self._prepare(model, spec, {"model": f"{name}:v{version}", "registered_model": name, "version": version})

    def _swap(self, version: str) -> None:
        """Serve the registry's `version` of the followed model from now on (the follower's thread)."""
        from grec.lifecycle.registry import Registry
        from grec.serving.rollout import request_shape

        name, alias = self.follower.name, self.follower.alias
        model, spec = Registry(name).load(version)
        if request_shape(spec) != request_shape(SPEC):
            raise ValueError("its requests differ from the published document's (flows, use cases, columns or "
                             "value types): restart the server to serve it")
        self.served = self._prepare(model, spec, {"model": f"{name}:v{version}", "registered_model": name,
                                                  "version": version, "alias": alias})

    def __is_ready__(self) -> bool:
        """Loaded, and its online store answering (not ready while it does not: a 503 per request)."""
        return self.served[0].store.ready()

    @bentoml.api(route="/rank", input_spec=RankBody, output_spec=RankResponse)
    async def rank(self, ctx: bentoml.Context, **body: Any):
        """One customer, one of the model's tasks (flow + use case), candidate item ids: the
        candidates sorted by the task's score. The Server-Timing header gives each stage's time.
        Served on the worker's event loop (Ranker.rank_async): the store reads are awaited, the
        encoding and scoring (about 2 ms of CPU) run on the loop."""
        from grec.serving.ranker import RankRequest, RequestError
        from grec.serving.store_guard import StoreUnavailable

        customer_id, flow, use_case = body["customer_id"], SPEC.tasks.route_of(body), body["use_case"]
        request = RankRequest(customer_id, flow, use_case, list(body["item_ids"]), body.get("search_query", ""),
                              rank_context(SPEC, body))
        arm = SPLIT.arm(customer_id) if self.challenger else CHAMPION
        ranker, meta = self.challenger if arm == CHALLENGER else self.served
        try:
            result = await ranker.rank_async(request)
        except RequestError as e:
            raise bentoml.exceptions.InvalidArgument(str(e)) from None
        except StoreUnavailable as e:  # answered here: BentoML hides the message of a 5xx it raises
            from starlette.responses import JSONResponse

            ctx.response.status_code = 503  # what BentoML sets on the response it is given
            return JSONResponse({"error": str(e), "detail": "the request was not scored; /readyz says when the store "
                                 "answers again"}, status_code=503, headers={"Retry-After": "1"})
        request_id, model = body.get("request_id") or uuid.uuid4().hex, meta["model"]
        experiment = {"arm": arm, "experiment": SPLIT.experiment} if self.challenger else {}
        self.log.append(result.log_row(request_id, customer_id, use_case, model, body.get("event_timestamp"),
                                       **experiment))
        ctx.response.headers["Server-Timing"] = ", ".join(f"{k};dur={v:.3f}" for k, v in result.stages.items())
        return RankResponse(request_id=request_id, task=result.task, model=model,
                            items=[{"item_id": i, "score": s, "cold_start": i in result.cold_start_items}
                                   for i, s in zip(result.item_ids, result.scores)],
                            cold_start_customer=result.cold_start_customer)

    @bentoml.api(route="/score", input_spec=ScoreBody, batchable=True, max_batch_size=limits.MAX_SCORE_ROWS,
                 max_latency_ms=20)
    def score(self, rows: ScoreRows) -> list[float]:
        """Feature rows in the pyfunc's layout (input columns + use_case) -> one score each."""
        import pandas as pd

        from grec.serving.ranker import RequestError

        frame = pd.DataFrame([row.model_dump() for row in rows])
        ranker, meta = self.served
        try:
            scores = ranker.score_rows(frame)
        except RequestError as e:
            raise bentoml.exceptions.InvalidArgument(str(e)) from None
        self.log.append(frame.assign(score=scores, endpoint="score", logged_at=datetime.now(timezone.utc),
                                     model=meta["model"]))
        return scores.tolist()

    @bentoml.api(route="/metadata")
    def metadata(self) -> dict:
        """What is served and since when; a version the followed alias names that could not be
        swapped in, and why (`pending`)."""
        experiment = None
        if self.challenger:
            experiment = {"name": SPLIT.experiment, "challenger_share": SPLIT.challenger_share,
                          "challenger": self.challenger[1]["model"], "split": "a stable hash of the customer id"}
        return self.served[1] | {"pending": self.follower.pending if self.follower else None, "experiment": experiment}

    @bentoml.on_shutdown
    def close(self) -> None:
        self.log.close()


# Outside BentoML's app: bodies bounded before they are parsed, error bodies as the spec declares.
GRecRanker.add_asgi_middleware(RequestLimits)
