"""The ranking service's request bodies, typed from the served model's own feature spec.

`/rank` and `/score` accept exactly the flows, use cases and feature columns of the model they
serve (its features.json: task vocabulary, columns, which optional inputs its data has), so the
OpenAPI document the Bento publishes shows them, and pydantic refuses anything else with a 400
naming the field, before adaptive batching merges requests.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from grec.data.dataset import FeatureSpec
from grec.serving.ranker import MAX_CANDIDATES

NonNegative = Annotated[int, Field(ge=0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
FORBID_EXTRA = ConfigDict(extra="forbid")


def _one_of(kind: str, values: tuple[str, ...]):
    """A text field that must be one of `values`: an enum in the OpenAPI document, and a refusal
    naming the value and the choices (pydantic's Literal error names neither the value nor why)."""
    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"unknown {kind} {value!r}; this model's {kind}s: {', '.join(values)}")
        return value
    return (Annotated[str, AfterValidator(check)],
            Field(description=f"One of this model's {kind}s", json_schema_extra={"enum": list(values)}))


def _task_fields(spec: FeatureSpec) -> dict[str, Any]:
    return {"flow": _one_of("flow", spec.tasks.flows), "use_case": _one_of("use case", spec.tasks.use_cases)}


def rank_input_model(spec: FeatureSpec) -> type[BaseModel]:
    """/rank's body: a customer, the task, candidates, and the impression's own context columns
    (each optional, 0 when left out; the customer's come from the feature store)."""
    fields: dict[str, Any] = {
        "customer_id": (NonNegative, Field(description="Customer id (unknown ids are cold-start)")),
        **_task_fields(spec),
        "item_ids": (Annotated[list[NonNegative], Field(min_length=1, max_length=MAX_CANDIDATES)],
                     Field(description=f"Candidate item ids, 1 to {MAX_CANDIDATES}")),
    }
    if spec.has("search"):
        fields["search_query"] = (str, Field("", description="What the customer searched for ('' if nothing)"))
    for name in spec.impression_context:
        kind = NonNegative if name in spec.context_categorical else Finite
        fields[name] = (kind, Field(0, description="Impression context; every candidate is scored with this value"))
    return create_model("RankRequest", __config__=FORBID_EXTRA, **fields)


def score_row_model(spec: FeatureSpec) -> type[BaseModel]:
    """One /score row: the model's input columns in the pyfunc's layout, plus the task."""
    fields: dict[str, Any] = {name: (NonNegative, ...) for name in spec.context_categorical + spec.item_categorical}
    fields |= {name: (Finite, ...) for name in spec.context_numerical + spec.item_numerical}
    fields["item_id"] = (NonNegative, ...)
    if spec.has("search"):
        fields["search_query"] = (str, "")
    if spec.has("item_vectors"):
        fields |= {"description": (str, ""), "image_embedding": (list[Finite], ...)}
    if spec.has("histories"):
        fields |= {"viewed_item_ids": (list[NonNegative], []), "visited_page_ids": (list[NonNegative], [])}
    return create_model("ScoreRow", __config__=FORBID_EXTRA, **fields, **_task_fields(spec))


def rank_context(spec: FeatureSpec, body: dict) -> dict:
    """The impression context columns of a /rank body."""
    return {name: body[name] for name in spec.impression_context if name in body}
