"""The ranking service's request bodies, typed from the served model's own feature spec.

`/rank` and `/score` accept exactly the flows, use cases and feature columns of the model they
serve (its features.json: task vocabulary, columns, which optional inputs its data has), so the
OpenAPI document the Bento publishes shows them, and pydantic refuses anything else with a 400
naming the field, before adaptive batching merges requests. The bounds (ids, list lengths, text
lengths, vector shapes) are those of grec.serving.limits and of the model, in the schema too.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from grec.data.spec import FeatureSpec
from grec.serving.limits import MAX_CANDIDATES, MAX_HISTORY, MAX_ID, MAX_TEXT_CHARS, MAX_VECTOR_VALUE

# Strict: a JSON number only, as the published schema says ("type": "integer" / "number"); pydantic's
# lax mode would take true, false and "12" as numbers and score them.
Id = Annotated[int, Field(ge=0, le=MAX_ID, strict=True)]  # int64, what the stores and the model hold
Finite = Annotated[float, Field(allow_inf_nan=False, strict=True)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS, strict=True)]  # a string id or category
Flag = Annotated[bool, Field(strict=True)]
RequestId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$", strict=True)]


def _utc(value: datetime) -> datetime:
    """A page's time in UTC, as the log keeps it. An instant past what UTC datetimes hold (year 1 at
    +23:59) is the earliest or latest one: any date-time the schema allows is taken, none is a 500."""
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        edge = datetime.min if value.year == 1 else datetime.max
        return edge.replace(tzinfo=timezone.utc)


def _date_time_text(value):
    """Only what the schema says a page's time is: an RFC 3339 string (pydantic's lax mode would take
    a number as seconds since 1970)."""
    if not isinstance(value, (str, datetime)):
        raise ValueError(f"must be a date-time string with its UTC offset, got {type(value).__name__} {value!r}")
    return value


EventTime = Annotated[AwareDatetime, BeforeValidator(_date_time_text), AfterValidator(_utc)]
VALUE_TYPES = {"int64": Id, "string": Key, "bool": Flag}
# How far past the training rows' range a number may be: this many times the range's magnitude.
# Prices and bills grow and a new catalogue brings new extremes, so the training range itself is too
# tight a bound; but 1e308 is no price (it was scored 0.85), and past float32 it is inf in the model.
RANGE_SLACK = 10.0


def number(spec: FeatureSpec, column: str):
    """The request type of a numerical column: a finite JSON number, within RANGE_SLACK times the
    training rows' range (the spec's `ranges`; specs saved before them: finite only), published as
    the schema's minimum and maximum."""
    if column not in spec.ranges:
        return Finite
    lo, hi = spec.ranges[column]
    slack = RANGE_SLACK * max(abs(lo), abs(hi), 1.0)
    return Annotated[float, Field(allow_inf_nan=False, strict=True, ge=lo - slack, le=hi + slack)]


def value_type(spec: FeatureSpec, column: str):
    """The request type of a key, categorical or history ("item_id", "page") column: the type its
    values have in the logs (integer ids, strings, booleans), so a request names them as the logs do."""
    return VALUE_TYPES[spec.value_types.get(column, "int64")]


def _history(spec: FeatureSpec, vocabulary: str):
    return Annotated[list[value_type(spec, vocabulary)], Field(max_length=MAX_HISTORY)]
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
    """The task's tokens: the flow, any other task token column (a page...) and the use case, each
    one of its values (which combinations are tasks is checked per request: `TaskVocabulary.route_of`)."""
    tasks = spec.tasks
    tokens = {name: _one_of(name.replace("_", " ") if name != "flow" else "flow", values)
              for name, values in zip(tasks.tokens, tasks.token_values)}
    return {**tokens, "use_case": _one_of("use case", tasks.use_cases)}


def rank_input_model(spec: FeatureSpec) -> type[BaseModel]:
    """/rank's body: a customer, the task, candidates, and the impression's own context columns
    (each optional, 0 when left out; the customer's come from the feature store)."""
    fields: dict[str, Any] = {
        "customer_id": (value_type(spec, "customer_id"), Field(description="Customer id (unknown ids are cold-start)")),
        **_task_fields(spec),
        "item_ids": (Annotated[list[value_type(spec, "item_id")], Field(min_length=1, max_length=MAX_CANDIDATES)],
                     Field(description=f"Candidate item ids, 1 to {MAX_CANDIDATES}")),
    }
    if spec.has("search"):
        fields["search_query"] = (Text, Field("", description="What the customer searched for ('' if nothing)"))
    fields["request_id"] = (RequestId | None, Field(None, description=(
        "The caller's id of this page view, kept in the prediction log and answered back (default: a new id)")))
    fields["event_timestamp"] = (EventTime | None, Field(None, description=(
        "When the page asked, with its UTC offset (default: now): the time its impressions will be logged with, "
        "so their outcomes join back to this ranking on customer, item and time")))
    for name in spec.impression_context:
        kind = value_type(spec, name) if name in spec.context_categorical else number(spec, name)
        fields[name] = (kind, Field(0, description="Impression context; every candidate is scored with this value"))
    return create_model("RankRequest", __config__=FORBID_EXTRA, **fields)


def rank_output_model(spec: FeatureSpec) -> type[BaseModel]:
    """/rank's answer, typed: the OpenAPI document shows it (and the fuzzing tests check answers
    against it), and BentoML serializes a typed model without deriving a JSON schema per request."""
    item_id = {"int64": int, "string": str, "bool": bool}[spec.value_types.get("item_id", "int64")]
    ranked = create_model(
        "RankedItem",
        item_id=(item_id, Field(description="A candidate of the request")),
        score=(float, Field(description="The task's probability for this customer and item")),
        cold_start=(bool, Field(description="No features for this item in the store: scored as an unseen item")))
    return create_model(
        "RankResponse",
        request_id=(str, Field(description="This answer's id in the prediction log")),
        task=(str, Field(description="flow+use_case of the task scored")),
        model=(str, Field(description="The model that scored it (name:version)")),
        items=(list[ranked], Field(description="The candidates, highest score first")),
        cold_start_customer=(bool, Field(description="No features for this customer in the store")))


HISTORY_RULE = ("viewed_item_ids and visited_page_ids are one sequence of visits, one page per viewed item: "
                "the two lists are as long as each other (a row where they differ is refused with a 400)")


class _AlignedHistories(BaseModel):
    """A row's viewed items and visited pages are one sequence of visits: as long as each other.
    JSON Schema has no keyword for two arrays of one length: the rule is the schema's description."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"description": HISTORY_RULE})

    @model_validator(mode="after")
    def _aligned(self):
        viewed, visited = getattr(self, "viewed_item_ids", None), getattr(self, "visited_page_ids", None)
        if viewed is not None and visited is not None and len(viewed) != len(visited):
            raise ValueError(f"viewed_item_ids ({len(viewed)}) and visited_page_ids ({len(visited)}) "
                             "must be as long as each other: one page per viewed item")
        return self


def score_row_model(spec: FeatureSpec) -> type[BaseModel]:
    """One /score row: the model's input columns in the pyfunc's layout, plus the task."""
    fields: dict[str, Any] = {name: (value_type(spec, name), ...) for name in spec.context_categorical + spec.item_categorical}
    fields |= {name: (number(spec, name), ...) for name in spec.context_numerical + spec.item_numerical}
    fields["item_id"] = (value_type(spec, "item_id"), ...)
    if spec.has("search"):
        fields["search_query"] = (Text, "")
    if spec.has("item_vectors"):
        value = Annotated[float, Field(ge=-MAX_VECTOR_VALUE, le=MAX_VECTOR_VALUE, strict=True)]
        vector = Annotated[list[value], Field(min_length=spec.image_dim, max_length=spec.image_dim,
                                              description=f"The item's image vector, {spec.image_dim} numbers")]
        fields |= {"description": (Text, ""), "image_embedding": (vector, ...)}
    if spec.has("histories"):
        fields |= {"viewed_item_ids": (_history(spec, "item_id"), Field([], description=HISTORY_RULE)),
                   "visited_page_ids": (_history(spec, "page"), Field([], description=HISTORY_RULE))}
    return create_model("ScoreRow", __base__=_AlignedHistories, **fields, **_task_fields(spec))


def rank_context(spec: FeatureSpec, body: dict) -> dict:
    """The impression context columns of a /rank body."""
    return {name: body[name] for name in spec.impression_context if name in body}
