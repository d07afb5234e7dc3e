"""Reading the contract's tables and checking them against it: arrow types, missing values,
keys; and joining them into one flat row per impression (the shape a feature store's
training set has)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from grec.data import schema
from grec.data.contract import Contract, read_contract
from grec.data.schema import SchemaError, Table


def _arrow_type_matches(dtype: str, t: pa.DataType) -> bool:
    """The contract's type, or an equivalent wider form another writer may have used."""
    want = schema.ARROW_TYPES[dtype]
    if pa.types.is_list(want):
        is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        element = {"list<int64>": "int64", "list<string>": "string", "vector<float32>": "float32"}[dtype]
        return is_list and _arrow_type_matches(element, t.value_type)
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(t)
    if pa.types.is_string(want):
        if pa.types.is_dictionary(t):  # pandas' category dtype: strings stored once
            t = t.value_type
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    if dtype == "int8":  # a label: booleans or integers (0/1, which validation checks), read as int8
        return pa.types.is_boolean(t) or pa.types.is_integer(t)
    if dtype == "float32":  # numbers: any float (pandas writes float64), read as float32
        return pa.types.is_floating(t)
    return t == want


def check_arrow_schema(arrow_schema: pa.Schema, table: Table, source: str) -> None:
    """Raise one SchemaError listing every missing or mistyped column of `table` in `source`."""
    problems = []
    for col in table.columns:
        if col.name not in arrow_schema.names:
            problems.append(f"missing column '{col.name}' (expected {col.dtype}: {col.description})")
        elif not _arrow_type_matches(col.dtype, arrow_schema.field(col.name).type):
            got = arrow_schema.field(col.name).type
            problems.append(f"column '{col.name}' has type {got}, expected {col.dtype}")
    if problems:
        raise SchemaError(f"{source}: does not match the '{table.name}' schema: " + "; ".join(problems))


def read_parquet(path: Path, columns: list[str] | None = None, schema_only: bool = False, metadata_only: bool = False):
    """A user's parquet file (its arrow table, its schema, or its footer's metadata), or one
    SchemaError naming the file and what is wrong with it (truncated, not parquet, unreadable)
    instead of Arrow's traceback."""
    try:
        if metadata_only:
            return pq.read_metadata(path)
        return pq.read_schema(path) if schema_only else pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SchemaError(f"{path}: not a readable parquet file ({reason})") from None


def check_missing_values(arrow: pa.Table, table: Table, source: str, first_row: int = 0) -> None:
    """Refuse missing values (null, or NaN in a float column) in any column of the contract,
    naming the column, the count and example rows (numbered from `first_row`: where `arrow` is a
    part of the file): no column of the contract is nullable, and a NaN that reached the model
    would surface after training, as a NaN score."""
    import pyarrow.compute as pc

    problems = []
    for col in table.columns:
        if col.name not in arrow.column_names:
            continue
        values = arrow.column(col.name)
        missing = values.is_null()
        if pa.types.is_floating(values.type):
            missing = pc.or_(missing, pc.fill_null(pc.is_nan(values), False))  # is_nan(null) is null
        count = pc.sum(missing).as_py() or 0
        if count:
            rows = (np.flatnonzero(missing.to_numpy(zero_copy_only=False))[:5] + first_row).tolist()
            problems.append(f"column '{col.name}' has {count:,} missing values (NaN or null; rows {rows})")
    if problems:
        raise SchemaError(f"{source}: " + "; ".join(problems) + ". No column of the contract may be missing: "
                          "fill or drop those rows before loading")


def require_file(path: Path, table: Table) -> Path:
    """`path`, or a SchemaError saying which table is missing."""
    path = Path(path)
    if not path.exists():
        raise SchemaError(f"{path}: file not found (expected the '{table.name}' table)")
    return path


TIME = schema.ARROW_TYPES["timestamp"]  # what every reader, join and store downstream compares


def canonical_time(values):
    """One time column (an arrow array or chunked array) as microseconds in UTC: another zone is
    the same instant, no zone is read as UTC."""
    import pyarrow.compute as pc

    if values.type.tz is None:
        values = pc.assume_timezone(values, "UTC")
    return values.cast(TIME, safe=False)


def canonical_times(arrow: pa.Table, table: Table) -> pa.Table:
    """`arrow` with the contract's time columns in one unit and zone, microseconds in UTC, whatever
    the writer used (pandas writes nanoseconds; a zone other than UTC is the same instant; times
    without a zone are read as UTC). Downstream, joins and the stores compare times of one type."""
    for col in table.columns:
        if col.dtype == "timestamp" and col.name in arrow.column_names and arrow.schema.field(col.name).type != TIME:
            arrow = arrow.set_column(arrow.column_names.index(col.name), col.name, canonical_time(arrow.column(col.name)))
    return arrow


def as_roles(arrow: pa.Table, table: Table) -> pa.Table:
    """A part of the user's file (read under its own names, `table.stored_view()`'s columns) under
    the platform's names, its times canonical and its texts plain strings (not dictionary-encoded
    nor large), its numbers float32 and its labels int8: what every reader downstream of the file sees."""
    renames = table.renames()
    if renames:
        arrow = arrow.rename_columns([renames.get(n, n) for n in arrow.column_names])
    for col in table.columns:
        if col.dtype != "timestamp" and col.name in arrow.column_names:
            want = schema.ARROW_TYPES[col.dtype]
            if arrow.schema.field(col.name).type != want:
                i = arrow.column_names.index(col.name)
                arrow = arrow.set_column(i, col.name, _cast(arrow.column(i), want, col.name))
    return canonical_times(arrow, table)


def _cast(values, want: pa.DataType, name: str):
    """A column in the contract's type: texts decoded, numbers to float32, labels to int8 (a value
    that does not fit is refused, naming the column, never wrapped)."""
    try:
        return values.cast(want, safe=not pa.types.is_floating(want))
    except (pa.ArrowException, ValueError) as e:
        raise SchemaError(f"column '{name}': its values do not fit {want} ({e})") from None


def load_table(path: Path, table: Table) -> pd.DataFrame:
    """The contract's columns of one table, checked (errors name the user's own columns), under
    the platform's names."""
    path, stored = require_file(path, table), table.stored_view()
    check_arrow_schema(read_parquet(path, schema_only=True), stored, str(path))
    arrow = read_parquet(path, columns=stored.names())
    check_missing_values(arrow, stored, str(path))
    return as_roles(arrow, table).to_pandas()


def load_tables(data_dir: Path, contract: Contract | None = None) -> dict[str, pd.DataFrame]:
    """The three tables of `data_dir`, each checked against its contract (contract.json, or the
    storefront's where there is none)."""
    contract = contract or read_contract(data_dir)
    return {name: contract.fill_absent(name, load_table(Path(data_dir) / t.file, t)) for name, t in contract.tables.items()}


def join_tables(tables: dict[str, pd.DataFrame], first_row: int | None = None, contract: Contract | None = None) -> pd.DataFrame:
    """One flat row per impression with its customer's and item's features joined on. Where the
    impressions are a part of their file, starting at row `first_row`, errors say so; with the
    `contract`, they name the user's files and columns."""
    imp = tables["impressions"]
    frame = imp
    for name, key in (("customers", "customer_id"), ("items", "item_id")):
        other = tables[name].drop(columns=["updated_at"])
        theirs, ours = (contract.user_name(name, key), contract.tables[name].file) if contract else (key, name)
        logged = contract.user_name("impressions", key) if contract else key
        impressions = contract.tables["impressions"].file if contract else "impressions"
        if other[key].duplicated().any():
            dup = other.loc[other[key].duplicated(), key].iloc[0]
            raise SchemaError(f"{ours}: duplicate {theirs} {dup} (several snapshots); the raw join takes one per key: "
                              "build a point-in-time training set with `grec features training-set` instead")
        missing = ~imp[key].isin(other[key])
        if missing.any():
            row = int(np.flatnonzero(missing.to_numpy())[0])
            value = imp[key].iloc[row]
            value = value.item() if isinstance(value, np.generic) else value  # 12, 'listener-7': as the logs write it
            among = "" if first_row is None else f" of rows {first_row:,}-{first_row + len(imp) - 1:,}"
            raise SchemaError(
                f"{impressions}: {int(missing.sum())} rows{among} reference a {logged} absent from {ours} "
                f"(first: row {row + (first_row or 0)}, {logged}={value!r})"
            )
        frame = frame.merge(other, on=key, how="left", validate="many_to_one")
    return frame

