"""Which of a user's files is each table, and which of its columns plays each core part (the
customer key, the item key, the times, the flow, the histories...): what `grec data init` proposes
before it classifies the other columns.

A team's logs keep their own names (`listener_id`, `track_id`, `shown_at`, `surface`); nothing is
renamed on disk. The contract records the user's names (grec.data.contract, field "names") and the
readers rename on the way in. A part is taken, in this order, from:

1. what the user said: `--file TABLE=FILE`, `--column [TABLE.]PART=COLUMN`;
2. the platform's own name, where the file has a column of that name;
3. what the columns themselves show: a customers (items) key is the one column of that file that
   the impressions file has too (the join's key, named alike in both files), of an id type (integer
   or string); the impressions' keys are named as those; a table's time is its only timestamp
   column; the impression key is the impressions' only other id column whose name ends in "id".

Anything still open is a refusal naming the file, the part and the option that names it; every
recognised part is reported, so the user checks the guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from grec.data.contract import CORE_COLUMNS, CORE_TEXT, OPTIONAL_INPUTS

TABLES = tuple(CORE_COLUMNS)  # customers, items, impressions
OPTIONAL = {c for by_table in OPTIONAL_INPUTS.values() for cols in by_table.values() for c in cols}
KEYS = {"customers": "customer_id", "items": "item_id"}  # each table's key, as the impressions join it


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def is_id_type(t: pa.DataType) -> bool:
    """Integers or strings: the types a key may have."""
    t = _value_type(t)
    return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)


def parse_files(items) -> dict[str, str]:
    """'TABLE=FILE' strings (or a {table: file} dict) -> {table: file}."""
    pairs = items.items() if isinstance(items, dict) else (str(i).partition("=")[::2] for i in items or ())
    files = {}
    for table, file in pairs:
        table, file = table.strip(), file.strip()
        if table not in TABLES or not file:
            raise ValueError(f"--file {table}={file}: expected TABLE=FILE with TABLE one of {', '.join(TABLES)}")
        files[table] = file
    return files


def parse_columns(items) -> list[tuple[str | None, str, str]]:
    """'[TABLE.]PART=COLUMN' strings -> (table or None: every table with that part, part, column)."""
    parsed = []
    for item in items or ():
        left, mark, column = str(item).partition("=")
        table, dot, part = left.strip().rpartition(".")
        table = table if dot else None
        known = {c for cols in CORE_COLUMNS.values() for c in cols}
        if not mark or not column.strip() or part not in known or (table and (table not in TABLES
                                                                                  or part not in CORE_COLUMNS[table])):
            raise ValueError(f"--column {item}: expected [TABLE.]PART=COLUMN, PART one of the core columns "
                             f"({', '.join(sorted(known))}), TABLE one of {', '.join(TABLES)}")
        parsed.append((table, part, column.strip()))
    return parsed


@dataclass
class Names:
    """The user's file for each table and column for each core part, with how each was found."""

    files: dict[str, str]  # table -> file name in the data folder
    columns: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> {part: the user's column}
    notes: list[str] = field(default_factory=list)  # what was recognised, for the user to check
    problems: list[str] = field(default_factory=list)  # parts nothing names

    def of(self, table: str, part: str) -> str | None:
        return self.columns.get(table, {}).get(part)

    def core(self, table: str) -> set[str]:
        """The user's columns of `table` that play a core part."""
        return set(self.columns.get(table, {}).values())

    def to_contract(self) -> dict:
        """The contract's "names" field: only what differs from the platform's names."""
        return {"files": {t: f for t, f in self.files.items() if f != f"{t}.parquet"},
                "columns": {t: {p: c for p, c in m.items() if p != c} for t, m in self.columns.items()
                            if any(p != c for p, c in m.items())}}


def find_files(data_dir: Path, given: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Each table's file: the one given, else <table>.parquet; and a line per table with none."""
    files, problems = {}, []
    present = sorted(p.name for p in Path(data_dir).glob("*.parquet"))
    for table in TABLES:
        file = given.get(table, f"{table}.parquet")
        if (Path(data_dir) / file).is_file():
            files[table] = file
        else:
            why = "given with --file" if table in given else "the default name"
            problems.append(f"{Path(data_dir) / file}: not found ({why}) for the {table} table; name its file with "
                            f"--file {table}=FILE" + (f" (parquet files here: {', '.join(present)})" if present else ""))
    return files, problems


def propose(files: dict[str, str], schemas: dict[str, pa.Schema], given: list[tuple[str | None, str, str]]) -> Names:
    """The user's column for each core part of each table (see the module's docstring)."""
    names = Names(dict(files), {t: {} for t in TABLES})
    for table, part, column in given:
        for t in ([table] if table else [t for t in TABLES if part in CORE_COLUMNS[t]]):
            if column in schemas[t].names:
                names.columns[t][part] = column
            elif table or not any(column in schemas[o].names for o in TABLES if part in CORE_COLUMNS[o]):
                names.problems.append(f"{files[t]}: --column {t}.{part}={column}: no column '{column}' "
                                      f"(columns: {', '.join(schemas[t].names)})")
    for table in TABLES:
        for part in CORE_COLUMNS[table]:
            if part not in names.columns[table] and part in schemas[table].names:
                names.columns[table][part] = part
    for table, key in KEYS.items():
        _recognise(names, schemas, table, key, _shared_key(names, schemas, table),
                   f"the one id column {files[table]} shares with {files['impressions']}")
        stored = names.of(table, key)
        if stored and stored in schemas["impressions"].names:
            _recognise(names, schemas, "impressions", key, [stored], f"the key of {files[table]}")
    for table, part in (("customers", "updated_at"), ("items", "updated_at"), ("impressions", "event_timestamp")):
        times = [f.name for f in schemas[table] if pa.types.is_timestamp(_value_type(f.type))
                 and f.name not in names.core(table)]
        _recognise(names, schemas, table, part, times, f"the only timestamp column of {files[table]}")
    ids = [f.name for f in schemas["impressions"] if is_id_type(f.type) and f.name.lower().endswith("id")
           and f.name not in names.core("impressions")]
    _recognise(names, schemas, "impressions", "impression_id", ids,
               f"the only other id column of {files['impressions']} named ...id")
    for table in TABLES:
        for part in CORE_COLUMNS[table]:
            if part not in names.columns[table] and part not in OPTIONAL:
                names.problems.append(f"{files[table]}: no column for {part} ({CORE_TEXT[(table, part)]}); name yours "
                                      f"with --column {table}.{part}=COLUMN (columns: {', '.join(schemas[table].names)})")
    return names


def _shared_key(names: Names, schemas: dict[str, pa.Schema], table: str) -> list[str]:
    """The columns of `table` the impressions have too, of an id type, playing no other part."""
    imp = schemas["impressions"]
    return [f.name for f in schemas[table] if f.name in imp.names and is_id_type(f.type) and is_id_type(imp.field(f.name).type)
            and f.name not in names.core(table) and f.name not in names.core("impressions")]


def _recognise(names: Names, schemas: dict[str, pa.Schema], table: str, part: str, candidates: list[str], why: str) -> None:
    """`part` of `table` is the one candidate, where nothing named it and there is exactly one."""
    if part in names.columns[table] or len(candidates) != 1:
        return
    names.columns[table][part] = candidates[0]
    names.notes.append(f"{names.files[table]}: '{candidates[0]}' is {part} ({CORE_TEXT[(table, part)]}): {why}; "
                       f"if not, name it with --column {table}.{part}=COLUMN")
