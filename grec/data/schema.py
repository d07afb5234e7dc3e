"""The storefront's data contract: every table, feature, label and task of the simulated telecom
storefront, defined once, and the building blocks (roles, columns, tables, task vocabularies) every
other dataset's contract is made of (grec.data.contract: a contract.json beside its tables).

Everything else (simulator, dataset, model inputs, Feast and Great Expectations) reads names,
types and roles from here rather than typing them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np
import pyarrow as pa

from grec.errors import UserError

class SchemaError(UserError, ValueError):
    """A table does not match the contract. The message names the file and the column."""


FLOWS: tuple[str, ...] = ("AAL", "EUP", "NSE")  # add a line, upgrade, new customer
USE_CASES: tuple[str, ...] = ("CTR", "ATC", "CVR", "CTCVR")
LABELS: tuple[str, ...] = ("click", "add_to_cart", "purchase")

# Which label each use case predicts, and over which impressions (None: all of them).
USE_CASE_LABEL: dict[str, str] = {"CTR": "click", "ATC": "add_to_cart", "CVR": "purchase", "CTCVR": "purchase"}
USE_CASE_POPULATION: dict[str, str | None] = {"CTR": None, "ATC": None, "CVR": "click", "CTCVR": None}

# A task is a (flow, use case) pair; its id is flow-major so ids are stable across datasets.
TASKS: tuple[tuple[str, str], ...] = tuple((f, u) for f in FLOWS for u in USE_CASES)


def task_id(flow: str, use_case: str) -> int:
    return FLOWS.index(flow) * len(USE_CASES) + USE_CASES.index(use_case)


def task_name(task: int) -> str:
    flow, use_case = TASKS[task]
    return f"{flow}+{use_case}"


@dataclass(frozen=True)
class TaskVocabulary:
    """The tasks of a dataset: routes x use cases, and for each use case the label column it
    predicts and the rows it is defined on (None: every row; a label column: the rows where that
    label is 1, as CVR is defined on clicks). Task ids are route-major.

    A task is a sentence of tokens (the paper's eq. 8): the values of the impressions' task token
    columns (`tokens`: the flow, and any others such as a page) and a use case, e.g. [AAL, home,
    CTCVR]. A route is one combination of the token columns' values, named by them joined with '+'
    ("AAL+home"); with the flow alone (every two-token contract) a route is a flow. Routes are the
    combinations the contract lists, not every product of the columns' values."""

    flows: tuple[str, ...]  # the routes
    use_cases: tuple[str, ...]
    labels: dict[str, str]
    populations: dict[str, str | None]
    # Simulated sources only: the impressions column holding each use case's true probability (of
    # its label, on the use case's own rows), read as the oracle and as the reachable ceiling's
    # target; never a feature. Every use case or none.
    oracles: dict[str, str] = field(default_factory=dict)
    # The impressions columns whose values make a route, in the sentence's order; the first is the flow.
    tokens: tuple[str, ...] = ("flow",)

    def __post_init__(self) -> None:
        if not self.tokens or self.tokens[0] != "flow" or len(set(self.tokens)) != len(self.tokens):
            raise SchemaError(f"task vocabulary: tokens {list(self.tokens)} must start with 'flow' and name each column once")
        for route in self.flows:
            parts = route.split("+")
            if len(parts) != len(self.tokens) or not all(parts):
                raise SchemaError(f"task vocabulary: route {route!r} is not one value per token column "
                                  f"{list(self.tokens)} joined with '+'")
        for use_case in self.use_cases:
            if use_case not in self.labels:
                raise SchemaError(f"task vocabulary: use case {use_case!r} names no label column")
        if len(set(self.flows)) != len(self.flows) or len(set(self.use_cases)) != len(self.use_cases):
            raise SchemaError("task vocabulary: flows and use cases must be unique")
        if self.oracles and set(self.oracles) != set(self.use_cases):
            raise SchemaError(f"task vocabulary: oracles name {sorted(self.oracles)}; a true-probability column is "
                              f"needed for every use case {list(self.use_cases)} or for none")

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Every label column a use case reads or is defined over, in first-use order."""
        names = [self.labels[u] for u in self.use_cases] + [p for p in self.populations.values() if p]
        return tuple(dict.fromkeys(names))

    @property
    def route_tokens(self) -> tuple[tuple[str, ...], ...]:
        """Each route's token values, in the order of `tokens`."""
        return tuple(tuple(route.split("+")) for route in self.flows)

    @property
    def token_values(self) -> tuple[tuple[str, ...], ...]:
        """Per token column, its values in first-use order over the routes."""
        return tuple(tuple(dict.fromkeys(r[i] for r in self.route_tokens)) for i in range(len(self.tokens)))

    @property
    def route_codes(self) -> list[list[int]]:
        """(routes, token columns): each route's token as an index into its column's `token_values`."""
        values = self.token_values
        return [[values[i].index(t) for i, t in enumerate(r)] for r in self.route_tokens]

    def route_of(self, row) -> str:
        """One row's route (a request's body, a record): its task token columns' values joined with '+'."""
        return "+".join(str(row[t]) for t in self.tokens)

    def routes_of(self, rows) -> np.ndarray:
        """(N,) each row's route: its flow, or its task token columns' values joined with '+'; `rows`
        a DataFrame, a dict of columns, or `column(name)` giving a column's values."""
        column = rows if callable(rows) else (lambda name: np.asarray(rows[name]))
        if len(self.tokens) == 1:
            return np.asarray(column("flow"), dtype=object)
        parts = [np.asarray(column(t), dtype=object).astype(str) for t in self.tokens]
        return np.array(["+".join(values) for values in zip(*parts)], dtype=object)

    @property
    def n_tasks(self) -> int:
        return len(self.flows) * len(self.use_cases)

    def task_name(self, task: int) -> str:
        flow, use_case = divmod(task, len(self.use_cases))
        return f"{self.flows[flow]}+{self.use_cases[use_case]}"

    def to_dict(self) -> dict:
        return {"flows": list(self.flows), "use_cases": list(self.use_cases), "labels": dict(self.labels),
                "populations": dict(self.populations), **({"oracles": dict(self.oracles)} if self.oracles else {}),
                **({"tokens": list(self.tokens)} if len(self.tokens) > 1 else {})}

    @classmethod
    def from_dict(cls, d: dict) -> TaskVocabulary:
        return cls(tuple(d["flows"]), tuple(d["use_cases"]), dict(d["labels"]),
                   {u: d.get("populations", {}).get(u) for u in d["use_cases"]}, dict(d.get("oracles", {})),
                   tuple(d.get("tokens", ("flow",))))


# The storefront's tasks: three flows, the funnel's four use cases.
TELECOM_TASKS = TaskVocabulary(FLOWS, USE_CASES, USE_CASE_LABEL, USE_CASE_POPULATION)


class Role(str, Enum):
    KEY = "key"
    TIMESTAMP = "timestamp"
    CONTEXT_CATEGORICAL = "context_categorical"
    CONTEXT_NUMERICAL = "context_numerical"
    SEARCH_TEXT = "search_text"
    SEQUENCE_ITEMS = "sequence_items"
    SEQUENCE_PAGES = "sequence_pages"
    ITEM_CATEGORICAL = "item_categorical"
    ITEM_NUMERICAL = "item_numerical"
    ITEM_IMAGE = "item_image_embedding"
    ITEM_TEXT = "item_text_embedding"  # computed by the feature pipeline from the description
    ITEM_DESCRIPTION = "item_description"
    FLOW = "flow"
    LABEL = "label"
    SPLIT = "split"  # train / valid / test, where a dataset brings its own split
    ORACLE = "oracle_probability"


@dataclass(frozen=True)
class Column:
    """One column of a table. `dtype` is the pandas dtype as stored in parquet and read back.

    Categorical features are non-negative integer codes; vocabulary sizes are fitted from data
    (see grec.data.spec.FeatureSpec) so real datasets with other cardinalities fit the same contract.
    """

    name: str  # the platform's name for it: a core column's role (customer_id...), else the user's
    dtype: str  # int64 | int8 | float32 | string | bool | timestamp | list<int64> | list<string> | vector<float32>
    role: Role
    description: str
    source: str = ""  # the column's name in the user's file, where it is not `name`

    @property
    def stored(self) -> str:
        """The column's name in its file."""
        return self.source or self.name


@dataclass(frozen=True)
class Table:
    name: str
    key: str
    columns: tuple[Column, ...]
    source_file: str = ""  # the user's file name, where it is not <name>.parquet

    @property
    def file(self) -> str:
        return self.source_file or f"{self.name}.parquet"

    def stored_view(self) -> Table:
        """The table as its file has it: every column under its name in the file. Code that
        reads or rewrites the user's file (checks, validation, appends) works on this view, so
        every message names the user's own columns."""
        if not any(c.source for c in self.columns):
            return self
        columns = tuple(replace(c, name=c.stored, source="") for c in self.columns)
        return Table(self.name, self.column(self.key).stored, columns, self.source_file)

    def renames(self) -> dict[str, str]:
        """{name in the file: the platform's name} for the columns whose names differ."""
        return {c.source: c.name for c in self.columns if c.source and c.source != c.name}

    def platform_view(self) -> Table:
        """The table under the platform's names in a file of its own (the tables the platform
        derives and writes itself: feature sources, training sets)."""
        if not self.source_file and not any(c.source for c in self.columns):
            return self
        return Table(self.name, self.key, tuple(replace(c, source="") for c in self.columns))

    def names(self, *roles: Role) -> list[str]:
        return [c.name for c in self.columns if not roles or c.role in roles]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


C = Column
CUSTOMERS = Table(
    "customers",
    key="customer_id",
    columns=(
        C("customer_id", "int64", Role.KEY, "Customer (or prospect) id"),
        C("updated_at", "timestamp", Role.TIMESTAMP, "When this profile snapshot was taken"),
        C("region", "int64", Role.CONTEXT_CATEGORICAL, "Sales region code"),
        C("plan_type", "int64", Role.CONTEXT_CATEGORICAL, "Current plan family code (0: none, prospect)"),
        C("device_os", "int64", Role.CONTEXT_CATEGORICAL, "OS of the customer's current device"),
        C("age_band", "int64", Role.CONTEXT_CATEGORICAL, "Age band code"),
        C("tenure_months", "float32", Role.CONTEXT_NUMERICAL, "Months as a customer (0 for prospects)"),
        C("monthly_bill", "float32", Role.CONTEXT_NUMERICAL, "Average monthly bill, USD"),
        C("lines_on_account", "float32", Role.CONTEXT_NUMERICAL, "Lines on the account"),
        C("device_age_months", "float32", Role.CONTEXT_NUMERICAL, "Age of the current device in months"),
    ),
)

ITEMS = Table(
    "items",
    key="item_id",
    columns=(
        C("item_id", "int64", Role.KEY, "Catalogue item id"),
        C("updated_at", "timestamp", Role.TIMESTAMP, "When this catalogue entry was last changed"),
        C("category", "int64", Role.ITEM_CATEGORICAL, "Product category code"),
        C("brand", "int64", Role.ITEM_CATEGORICAL, "Brand code"),
        C("os", "int64", Role.ITEM_CATEGORICAL, "Operating system code (0: none)"),
        C("price", "float32", Role.ITEM_NUMERICAL, "List price, USD"),
        C("storage_gb", "float32", Role.ITEM_NUMERICAL, "Storage in GB (0 when not applicable)"),
        C("rating", "float32", Role.ITEM_NUMERICAL, "Average review rating, 1 to 5"),
        C("discount_pct", "float32", Role.ITEM_NUMERICAL, "Current promotion, percent off"),
        C("description", "string", Role.ITEM_DESCRIPTION, "Catalogue description text"),
        C("image_embedding", "vector<float32>", Role.ITEM_IMAGE, "Pre-computed image embedding"),
    ),
)

IMPRESSIONS = Table(
    "impressions",
    key="impression_id",
    columns=(
        C("impression_id", "int64", Role.KEY, "Impression id"),
        C("event_timestamp", "timestamp", Role.TIMESTAMP, "When the item was shown"),
        C("customer_id", "int64", Role.KEY, "Who saw it"),
        C("item_id", "int64", Role.KEY, "What was shown"),
        C("flow", "string", Role.FLOW, "Customer flow: AAL, EUP or NSE"),
        C("page_id", "int64", Role.CONTEXT_CATEGORICAL, "Page the impression was shown on"),
        C("channel", "int64", Role.CONTEXT_CATEGORICAL, "0 web, 1 app, 2 retail-store tablet"),
        C("position", "int64", Role.CONTEXT_CATEGORICAL, "Slot in the carousel, 0-based"),
        C("search_query", "string", Role.SEARCH_TEXT, "What the customer searched for ('' if nothing)"),
        C("viewed_item_ids", "list<int64>", Role.SEQUENCE_ITEMS, "Recently viewed item ids, oldest first"),
        C("visited_page_ids", "list<int64>", Role.SEQUENCE_PAGES, "Page of each recent view, aligned"),
        C("click", "int8", Role.LABEL, "Clicked"),
        C("add_to_cart", "int8", Role.LABEL, "Added to cart (only after a click)"),
        C("purchase", "int8", Role.LABEL, "Purchased (only after add-to-cart)"),
        C("p_click", "float32", Role.ORACLE, "True P(click)"),
        C("p_add_to_cart_given_click", "float32", Role.ORACLE, "True P(add_to_cart | click)"),
        C("p_purchase_given_add_to_cart", "float32", Role.ORACLE, "True P(purchase | add_to_cart)"),
    ),
)
del C

TABLES: dict[str, Table] = {t.name: t for t in (CUSTOMERS, ITEMS, IMPRESSIONS)}
ORACLE_COLUMNS = tuple(IMPRESSIONS.names(Role.ORACLE))

# Model inputs by role, in a fixed order (the model's embedding tables follow this order).
CONTEXT_CATEGORICAL = CUSTOMERS.names(Role.CONTEXT_CATEGORICAL) + IMPRESSIONS.names(Role.CONTEXT_CATEGORICAL)
CONTEXT_NUMERICAL = CUSTOMERS.names(Role.CONTEXT_NUMERICAL)
ITEM_CATEGORICAL = ITEMS.names(Role.ITEM_CATEGORICAL)
ITEM_NUMERICAL = ITEMS.names(Role.ITEM_NUMERICAL)


# How each contract dtype is stored in parquet. Readers also accept the equivalent wider forms
# (large strings and lists, fixed-size lists, any timestamp unit): see grec.data.tables.
ARROW_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int8": pa.int8(),
    "float32": pa.float32(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "bool": pa.bool_(),
    "list<int64>": pa.list_(pa.int64()),
    "list<string>": pa.list_(pa.string()),
    "vector<float32>": pa.list_(pa.float32()),
}


def arrow_schema(table: Table) -> pa.Schema:
    """The pyarrow schema a table is written with."""
    return pa.schema([pa.field(col.name, ARROW_TYPES[col.dtype]) for col in table.columns])


def oracle_columns(tasks: TaskVocabulary) -> tuple[str, ...]:
    """The impressions columns holding true probabilities for `tasks`: the storefront's funnel
    columns, a simulated source's `oracles`, or none (real logs)."""
    return ORACLE_COLUMNS if tasks == TELECOM_TASKS else tuple(dict.fromkeys(tasks.oracles.values()))


def oracle_scores(impressions) -> dict[str, np.ndarray]:
    """Per use case, the true probability of its label on every row, from the funnel's stored
    conditional probabilities (CVR is meaningful on clicked rows)."""
    p_click, p_atc, p_purchase = (impressions[c].to_numpy(np.float64) for c in ORACLE_COLUMNS)
    return {"CTR": p_click, "ATC": p_click * p_atc, "CVR": p_atc * p_purchase, "CTCVR": p_click * p_atc * p_purchase}
