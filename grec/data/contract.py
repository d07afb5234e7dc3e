"""A dataset's contract: the columns of its three tables and which model input each feeds, its
label columns, its task vocabulary, the label funnel, and whether it brings its own split.

The storefront the simulator writes has the fixed contract of grec.data.schema (TELECOM). Any other
source (Census-Income, Open Bandit, AliExpress, a user's own logs) ships `contract.json` beside its
parquet tables: every reader (load_tables, the dataset, validation) takes the columns from there, so
no model or pipeline code knows which dataset it is reading.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from grec.data import schema
from grec.data.schema import Column, Role, SchemaError, Table, TaskVocabulary
from grec.io import atomic_folder, write_json, write_parquet

CONTRACT_FILE = "contract.json"
VERSION = 1

# Columns every dataset has whatever its features: the keys and times the joins need, the flow,
# and the inputs the model always reads (a source without search, descriptions, image vectors or
# histories says so in its contract's "inputs", and readers fill them constant: '' queries,
# one-zero vectors, empty lists).
CORE_COLUMNS = {
    "customers": ("customer_id", "updated_at"),
    "items": ("item_id", "updated_at", "description", "image_embedding"),
    "impressions": ("impression_id", "event_timestamp", "customer_id", "item_id", "flow", "search_query",
                    "viewed_item_ids", "visited_page_ids"),
}
# What each core column is, in any dataset's words (schema.TABLES describes the storefront's: "Customer
# flow: AAL, EUP or NSE" would be wrong about anyone else's data).
CORE_TEXT = {
    ("customers", "customer_id"): "the customer key",
    ("customers", "updated_at"): "when this customer snapshot was taken",
    ("items", "item_id"): "the item key",
    ("items", "updated_at"): "when this item snapshot was taken",
    ("items", "description"): "the item's text",
    ("items", "image_embedding"): "the item's image vector",
    ("impressions", "impression_id"): "the impression key",
    ("impressions", "event_timestamp"): "when the item was shown",
    ("impressions", "customer_id"): "who was shown it (a customer key)",
    ("impressions", "item_id"): "what was shown (an item key)",
    ("impressions", "flow"): "the flow, the first token of each task: one of the contract's flows",
    ("impressions", "search_query"): "what the customer searched for ('' if nothing)",
    ("impressions", "viewed_item_ids"): "the items viewed before this impression, oldest first",
    ("impressions", "visited_page_ids"): "the page of each viewed item, aligned with viewed_item_ids",
}
# The vocabulary each history column's values belong to (the feature spec's "item_id" and "page").
HISTORY_VOCABULARY = {"viewed_item_ids": "item_id", "visited_page_ids": "page"}
# Which input a table's categorical and numerical features feed.
FEATURE_ROLES = {
    "customers": (Role.CONTEXT_CATEGORICAL, Role.CONTEXT_NUMERICAL),
    "impressions": (Role.CONTEXT_CATEGORICAL, Role.CONTEXT_NUMERICAL),
    "items": (Role.ITEM_CATEGORICAL, Role.ITEM_NUMERICAL),
}
SPLITS = ("train", "valid", "test")
# Inputs a source may not have, and the core columns each brings. A contract lists the ones its
# source has ("inputs"); the columns of the others need not exist in its tables: readers fill them
# with the constants below (so the model's input layout is the same for every dataset), and the
# feature store has no view for them (no query vectors, no activity, no item vectors).
OPTIONAL_INPUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "search": {"impressions": ("search_query",)},
    "histories": {"impressions": ("viewed_item_ids", "visited_page_ids")},
    "item_vectors": {"items": ("description", "image_embedding")},
}
ALL_INPUTS = tuple(OPTIONAL_INPUTS)
NO_IMAGE = np.zeros(1, np.float32)  # the image vector of a source without item vectors


def fill_absent_inputs(frame: pd.DataFrame, columns, image_dim: int = len(NO_IMAGE)) -> pd.DataFrame:
    """`frame` with those of `columns` (core columns of absent inputs) it lacks added as the
    constants every reader and the model agree on: '' texts, empty histories, a zero image vector."""
    n = len(frame)
    constants = {"search_query": lambda: "", "description": lambda: "",
                 "viewed_item_ids": lambda: [np.zeros(0, np.int64)] * n,
                 "visited_page_ids": lambda: [np.zeros(0, np.int64)] * n,
                 "image_embedding": lambda: [np.zeros(image_dim, np.float32)] * n}
    absent = [c for c in columns if c not in frame.columns]
    return frame.assign(**{c: constants[c]() for c in absent}) if absent else frame


@dataclass(frozen=True)
class Contract:
    """The tables (schema.Table, with roles), the tasks, the funnel and the split of one dataset."""

    name: str
    tables: dict[str, Table]  # customers, items, impressions
    tasks: TaskVocabulary
    funnel: tuple[tuple[str, str], ...] = ()  # (a, b): label b is 1 only where label a is 1
    split: str | None = None  # an impressions column of train / valid / test; None: split by time
    source: str = ""  # where the data comes from (citation, URL)
    inputs: tuple[str, ...] = ALL_INPUTS  # the optional inputs (OPTIONAL_INPUTS) the source has

    @property
    def names(self) -> dict:
        """The user's names for the tables' files and core columns, where they are not the
        platform's: {"files": {table: file}, "columns": {table: {core column: user's column}}}."""
        files = {n: t.source_file for n, t in self.tables.items() if t.source_file}
        columns = {n: {c.name: c.source for c in t.columns if c.source} for n, t in self.tables.items()}
        return {"files": files, "columns": {n: m for n, m in columns.items() if m}}

    @property
    def types(self) -> dict:
        """The columns whose values are not the platform's default type (string or boolean
        categoricals, string ids, histories of string ids): {table: {column: dtype}}."""
        out = {}
        for name, table in self.tables.items():
            changed = {c.name: c.dtype for c in table.columns if c.role in _TYPED_ROLES
                       and c.dtype != _DEFAULT_TYPE[c.role]}
            if changed:
                out[name] = changed
        return out

    def value_types(self) -> dict[str, str]:
        """{column: dtype} of the model's inputs whose values are not integers: the categorical
        columns, "customer_id", "item_id" and "page" (a history's pages)."""
        out = {}
        for table in self.tables.values():
            for c in table.columns:
                if c.role in _TYPED_ROLES and c.dtype not in ("int64", "list<int64>"):
                    key = HISTORY_VOCABULARY.get(c.name, c.name)
                    out[key] = c.dtype.removeprefix("list<").removesuffix(">")
        return out

    def user_name(self, table: str, column: str) -> str:
        """What the user calls the platform's `column` of `table` (for messages and reports)."""
        t = self.tables[table]
        return next((c.stored for c in t.columns if c.name == column), column)

    def has(self, optional_input: str) -> bool:
        return optional_input in self.inputs

    def absent_columns(self, table: str) -> tuple[str, ...]:
        """Core columns of `table` that belong to inputs this source does not have."""
        return tuple(c for name, by_table in OPTIONAL_INPUTS.items() if name not in self.inputs
                     for c in by_table.get(table, ()))

    def fill_absent(self, table: str, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with the constant columns of the inputs the source does not have added."""
        return fill_absent_inputs(frame, self.absent_columns(table))

    def features(self, table: str, kind: str) -> list[str]:
        """A table's 'categorical' or 'numerical' feature columns."""
        role = FEATURE_ROLES[table][0 if kind == "categorical" else 1]
        return self.tables[table].names(role)

    def feature_spec_columns(self) -> dict:
        """FeatureSpec settings: which joined column feeds which input, and the tasks."""
        return {
            "context_categorical": self.features("customers", "categorical") + self.features("impressions", "categorical"),
            "context_numerical": self.features("customers", "numerical") + self.features("impressions", "numerical"),
            "item_categorical": self.features("items", "categorical"),
            "item_numerical": self.features("items", "numerical"),
            "impression_context": self.features("impressions", "categorical") + self.features("impressions", "numerical"),
            "inputs": list(self.inputs),
            "tasks": self.tasks,
            "user_names": self.user_names(),
            "value_types": self.value_types(),
        }

    def user_names(self) -> dict[str, str]:
        """{platform's name: the user's} of the core columns the user names otherwise (a key named
        in several tables: as the impressions name it), for what the platform shows the user."""
        names: dict[str, str] = {}
        for table in ("impressions", "customers", "items"):
            for c in self.tables[table].columns:
                if c.source:
                    names.setdefault(c.name, c.source)
        return names

    @classmethod
    def define(cls, name: str, features: dict[str, dict[str, list[str]]], tasks: TaskVocabulary,
               funnel=(), split: str | None = None, source: str = "", inputs=ALL_INPUTS,
               names: dict | None = None, types: dict | None = None) -> Contract:
        """A contract from feature column names per table ({'customers': {'categorical': [...],
        'numerical': [...]}, ...}): categoricals int64 codes, numericals float32, labels int8.
        `inputs`: the optional inputs the source has (the core columns of the others are left out).
        `names`: the user's names for files and core columns ({"files": {table: file}, "columns":
        {table: {core column: user's column}}}); the files are read under those names, nothing renamed.
        `types`: {table: {column: dtype}} for values that are not integer codes: "string" or "bool"
        categoricals, "string" keys, "list<string>" histories (the model's vocabularies map them)."""
        unknown = sorted(set(inputs) - set(OPTIONAL_INPUTS))
        if unknown:
            raise SchemaError(f"contract {name!r}: unknown inputs {unknown}; known: {list(OPTIONAL_INPUTS)}")
        inputs = tuple(i for i in OPTIONAL_INPUTS if i in inputs)
        absent = {c for i, by_table in OPTIONAL_INPUTS.items() if i not in inputs for cols in by_table.values() for c in cols}
        files, renamed = _check_names(name, names or {}, absent)
        tables = {}
        for table, core in CORE_COLUMNS.items():
            base = schema.TABLES[table]
            columns = [dataclasses.replace(base.column(c), description=CORE_TEXT[(table, c)],
                                           source=renamed.get(table, {}).get(c, "")) for c in core if c not in absent]
            given = features.get(table, {})
            for kind, dtype, role in (("categorical", "int64", FEATURE_ROLES[table][0]),
                                      ("numerical", "float32", FEATURE_ROLES[table][1])):
                columns += [Column(c, dtype, role, f"{table} {kind} feature") for c in given.get(kind, [])]
            if table == "impressions":
                columns += [Column(c, "string", Role.FLOW, "a task token beside the flow (its values: the tasks' routes)")
                            for c in tasks.tokens[1:]]
                columns += [Column(c, "int8", Role.LABEL, "label, 0 or 1") for c in tasks.label_columns]
                columns += [Column(c, "float32", Role.ORACLE, "true probability of a use case's label (simulated)")
                            for c in dict.fromkeys(tasks.oracles.values())]
                if split:
                    columns.append(Column(split, "string", Role.SPLIT, "split of this row: train, valid or test"))
            tables[table] = Table(table, base.key, _typed(name, table, columns, (types or {}).get(table, {})),
                                  files.get(table, ""))
        contract = cls(name, tables, tasks, tuple(tuple(p) for p in funnel), split, source, inputs)
        unknown_tables = sorted(set(types or {}) - set(CORE_COLUMNS))
        if unknown_tables:
            raise SchemaError(f"contract {name!r}: field 'types': no table {unknown_tables[0]!r}")
        contract.check()
        return contract

    def check(self) -> None:
        """Refuse a contract the platform could not train on, naming what is wrong."""
        where = f"contract {self.name!r}"
        names = [c.name for t in self.tables.values() for c in t.columns if c.name not in _SHARED_NAMES]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise SchemaError(f"{where}: columns {clashes} appear twice (a column name is one column "
                              "across the tables, and a feature or label may not take a core column's name)")
        for side, tables in (("context", ("customers", "impressions")), ("item", ("items",))):
            for kind in ("categorical", "numerical"):
                if not any(self.features(t, kind) for t in tables):
                    raise SchemaError(f"{where}: no {side} {kind} feature (the input layer needs at least one; "
                                      "a constant column will do)")
        for table in self.tables.values():
            stored = [c.stored for c in table.columns]
            twice = sorted({n for n in stored if stored.count(n) > 1})
            if twice:
                roles = {n: [c.name for c in table.columns if c.stored == n] for n in twice}
                raise SchemaError(f"{where}: {table.file}: " + "; ".join(
                    f"column '{n}' is named for {' and '.join(r)}" for n, r in roles.items())
                    + " (one column of the file plays one part)")
        for key, table in (("customer_id", "customers"), ("item_id", "items")):
            theirs, ours = self.tables[table].column(key).dtype, self.tables["impressions"].column(key).dtype
            if theirs != ours:
                raise SchemaError(f"{where}: {key} is {theirs} in {table} but {ours} in impressions (the join's key has one type)")
        if self.has("histories"):
            item = self.tables["items"].column("item_id").dtype
            viewed = self.tables["impressions"].column("viewed_item_ids").dtype
            if viewed != f"list<{item}>":
                raise SchemaError(f"{where}: viewed_item_ids is {viewed}, the item ids are {item}: a history lists item ids")
        files = [t.file for t in self.tables.values()]
        if len(set(files)) < len(files):
            raise SchemaError(f"{where}: two tables are read from one file ({files})")
        labels = self.tasks.label_columns
        for a, b in self.funnel:
            if a not in labels or b not in labels:
                raise SchemaError(f"{where}: funnel pair [{a}, {b}] names a column that is not a label {list(labels)}")

    def to_dict(self) -> dict:
        return {"version": VERSION, "name": self.name, "source": self.source,
                "features": {t: {k: self.features(t, k) for k in ("categorical", "numerical")} for t in CORE_COLUMNS},
                "tasks": self.tasks.to_dict(), "funnel": [list(p) for p in self.funnel], "split": self.split,
                "inputs": list(self.inputs), **({"names": self.names} if any(self.names.values()) else {}),
                **({"types": self.types} if self.types else {})}


# The roles whose values a contract may declare of another type than integer codes, and what each may be.
_DEFAULT_TYPE = {Role.KEY: "int64", Role.CONTEXT_CATEGORICAL: "int64", Role.ITEM_CATEGORICAL: "int64",
                 Role.SEQUENCE_ITEMS: "list<int64>", Role.SEQUENCE_PAGES: "list<int64>"}
_TYPED_ROLES = set(_DEFAULT_TYPE)
_ALLOWED_TYPES = {Role.KEY: ("int64", "string"), Role.CONTEXT_CATEGORICAL: ("int64", "string", "bool"),
                  Role.ITEM_CATEGORICAL: ("int64", "string", "bool"), Role.SEQUENCE_ITEMS: ("list<int64>", "list<string>"),
                  Role.SEQUENCE_PAGES: ("list<int64>", "list<string>")}


def _typed(contract: str, table: str, columns: list[Column], types: dict) -> tuple[Column, ...]:
    """`columns` with the dtypes `types` declares, each checked against what its role may hold."""
    by_name = {c.name: c for c in columns}
    for column, dtype in types.items():
        c = by_name.get(column)
        allowed = _ALLOWED_TYPES.get(c.role) if c else None
        if not allowed or dtype not in allowed:
            raise SchemaError(f"contract {contract!r}: field 'types.{table}.{column}': "
                              + (f"no column {column!r} in {table}" if c is None else
                                 f"{c.role.value} columns take {' or '.join(allowed)}" if allowed else
                                 f"a {c.role.value} column's type is fixed ({c.dtype})"))
    return tuple(dataclasses.replace(c, dtype=types[c.name]) if c.name in types else c for c in columns)


def _check_names(contract: str, names: dict, absent: set[str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """A contract's "names" field checked: (file per table, {table: {core column: user's column}})."""
    where = f"contract {contract!r}: field 'names'"
    if not isinstance(names, dict) or set(names) - {"files", "columns"}:
        raise SchemaError(f"{where} holds 'files' ({{table: file}}) and 'columns' ({{table: {{core column: your column}}}})")
    files, columns = names.get("files", {}) or {}, names.get("columns", {}) or {}
    if not isinstance(files, dict) or not isinstance(columns, dict):
        raise SchemaError(f"{where}: 'files' and 'columns' are objects keyed by table ({list(CORE_COLUMNS)})")
    for table in (*files, *columns):
        if table not in CORE_COLUMNS:
            raise SchemaError(f"{where}: no table {table!r}; tables are {list(CORE_COLUMNS)}")
    for table, file in files.items():
        if not isinstance(file, str) or not file or "/" in file or file.startswith("."):
            raise SchemaError(f"{where}.files.{table}: {file!r} is not a file name in the data folder")
    for table, mapping in columns.items():
        if not isinstance(mapping, dict):
            raise SchemaError(f"{where}.columns.{table}: an object {{core column: your column}}")
        for core, user in mapping.items():
            if core not in CORE_COLUMNS[table] or core in absent:
                known = [c for c in CORE_COLUMNS[table] if c not in absent]
                raise SchemaError(f"{where}.columns.{table}: {core!r} is not a core column of {table} (those are "
                                  f"{known}; a feature keeps its own name)")
            if not isinstance(user, str) or not user:
                raise SchemaError(f"{where}.columns.{table}.{core}: {user!r} is not a column name")
    return ({t: f for t, f in files.items() if f != f"{t}.parquet"},
            {t: {c: u for c, u in m.items() if u != c} for t, m in columns.items()})


# Key columns that are meant to appear in more than one table (the joins).
_SHARED_NAMES = {"customer_id", "item_id", "updated_at"}

# The simulated storefront's contract: grec.data.schema's tables (with the simulator's true
# probabilities), the funnel click -> add to cart -> purchase, split by time.
TELECOM = Contract("telecom", dict(schema.TABLES), schema.TELECOM_TASKS,
                   (("click", "add_to_cart"), ("add_to_cart", "purchase"), ("click", "purchase")),
                   source="grec simulate")

_FIELDS = {"version", "name", "source", "features", "tasks", "funnel", "split", "inputs", "names", "types"}


def read_contract(data_dir: Path) -> Contract:
    """`data_dir`'s contract.json, or the storefront's contract where there is none."""
    path = Path(data_dir) / CONTRACT_FILE
    if not path.exists():
        return TELECOM
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SchemaError(f"{path}: not valid JSON ({e})") from None
    unknown, missing = set(d) - _FIELDS, _FIELDS - set(d) - {"source", "split", "funnel", "inputs", "names", "types"}
    if unknown or missing:
        raise SchemaError(f"{path}: " + "; ".join(
            ([f"unknown fields {sorted(unknown)}"] if unknown else []) + ([f"missing fields {sorted(missing)}"] if missing else [])))
    if d["version"] != VERSION:
        raise SchemaError(f"{path}: field 'version' is {d['version']!r}; this platform reads version {VERSION}")
    for table, kinds in d["features"].items():
        if table not in CORE_COLUMNS or set(kinds) - {"categorical", "numerical"}:
            raise SchemaError(f"{path}: field 'features.{table}': tables are {list(CORE_COLUMNS)}, "
                              "each with 'categorical' and 'numerical' column lists")
    try:
        tasks = TaskVocabulary.from_dict(d["tasks"])
    except (KeyError, TypeError) as e:
        raise SchemaError(f"{path}: field 'tasks' needs flows, use_cases and labels (missing {e})") from None
    except SchemaError as e:
        raise SchemaError(f"{path}: field 'tasks': {e}") from None
    try:
        inputs = d.get("inputs", ALL_INPUTS)
        if not isinstance(inputs, list | tuple):
            raise SchemaError(f"{path}: field 'inputs' must be a list of {list(OPTIONAL_INPUTS)}")
        return Contract.define(d["name"], d["features"], tasks, d.get("funnel", ()), d.get("split"), d.get("source", ""),
                               inputs, d.get("names"), d.get("types"))
    except SchemaError as e:
        raise SchemaError(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------------
# Writing tables with the contract's arrow types


def list_array(offsets: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """An arrow list column from flat values and row offsets (arrow lists use 32-bit offsets)."""
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("too many sequence elements for one arrow list column; write in smaller parts")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                    pa.array(np.asarray(values, dtype=value_type.to_pandas_dtype()), type=value_type))


def _column_to_arrow(series: pd.Series, arrow_type: pa.DataType, where: str) -> pa.Array:
    if pa.types.is_list(arrow_type):
        values_type = arrow_type.value_type
        cells = series.to_numpy()
        lengths = np.fromiter((len(x) for x in cells), dtype=np.int64, count=len(cells))
        offsets = np.zeros(len(cells) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate(cells) if len(cells) and offsets[-1] else np.empty(0)
        return list_array(offsets, values, values_type)
    if pa.types.is_timestamp(arrow_type):
        if not isinstance(series.dtype, pd.DatetimeTZDtype):
            raise SchemaError(f"{where}: timestamps must be timezone-aware (UTC)")
        # safe=False only truncates sub-microsecond digits (timestamps are never out of range here).
        return pa.array(series.dt.tz_convert("UTC")).cast(arrow_type, safe=False)
    return pa.array(series, type=arrow_type, from_pandas=True)


def to_arrow(frame: pd.DataFrame, table: Table) -> pa.Table:
    """A DataFrame as a pyarrow Table with exactly the contract's columns, order and types."""
    missing = [name for name in table.names() if name not in frame.columns]
    if missing:
        raise SchemaError(f"{table.file}: missing columns {missing}")
    arrow = schema.arrow_schema(table)
    arrays = []
    for field in arrow:
        where = f"{table.file}: column {field.name!r}"
        try:
            arrays.append(_column_to_arrow(frame[field.name], field.type, where))
        except (pa.ArrowException, TypeError, ValueError) as error:
            raise SchemaError(f"{where} cannot be stored as {field.type}: {error}") from error
    return pa.Table.from_arrays(arrays, schema=arrow)


def as_stored(frame: pd.DataFrame, table: Table) -> pa.Table:
    """A frame under the platform's names as the user's file has it (their names, the contract's types)."""
    renames = {c.name: c.source for c in table.columns if c.source}
    return to_arrow(frame.rename(columns=renames) if renames else frame, table.stored_view())


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path, contract: Contract = TELECOM) -> dict[str, Path]:
    """Write each table (frames under the platform's names) to its file in ``out_dir`` in the user's
    layout (the contract's file and column names, its arrow schema), each file atomically; a contract
    other than the storefront's is written beside them as contract.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unknown = set(tables) - set(contract.tables)
    if unknown:
        raise SchemaError(f"unknown tables {sorted(unknown)}; the contract has {sorted(contract.tables)}")
    paths = {name: write_parquet(out_dir / contract.tables[name].file, as_stored(frame, contract.tables[name]))
             for name, frame in tables.items()}
    if contract is not TELECOM:
        paths["contract"] = write_json(out_dir / CONTRACT_FILE, contract.to_dict())
    return paths


def write_dataset(tables: dict[str, pd.DataFrame], out_dir: Path, contract: Contract) -> dict[str, Path]:
    """The three tables and the contract as one folder, written whole or not at all: built beside
    `out_dir`, then renamed into place (an existing folder is replaced)."""
    with atomic_folder(out_dir) as tmp:
        paths = write_tables(tables, tmp, contract)
    return {name: Path(out_dir) / path.name for name, path in paths.items()}
