"""A later batch of logs added to a data folder: `grec data append DIR BATCH`.

A batch is a folder with any of the contract's tables (new impressions, new customer and item
snapshots) in the same layout as the folder's own files. Each table of the batch is checked as the
readers check a table (the contract's columns and types, no missing values) and against the folder
(the same columns as its file; no impression id the folder already has, so a batch sent twice is
refused; no snapshot repeated), then the folder's file is rewritten as its rows followed by the
batch's, streamed a row group at a time (memory stays bounded by a row group, not the table).
Every new file is written beside its old one before any replaces it: a refused or failed append
changes nothing. Afterwards validation, the feature store and both pipelines' windows read the
folder as if it had always held those rows; snapshots of a customer or item taken later are what
the feature store's point-in-time joins are for (a raw, in-memory join takes one per key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from grec.data.contract import Contract, read_contract
from grec.data.schema import SchemaError, Table
from grec.data.tables import canonical_times, check_arrow_schema, check_missing_values, read_parquet, require_file

READ_ROWS = 65_536  # rows streamed at a time


@dataclass
class Appended:
    table: str
    rows: int  # the batch's rows
    total: int  # the table's rows after the append
    first: str = ""  # the batch's earliest and latest time
    last: str = ""


def _batches(path: Path, table: Table):
    """The file's rows, a piece at a time, with the contract's times canonical."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS):
        yield canonical_times(pa.Table.from_batches([batch]), table)


def _time_column(table: Table) -> str | None:
    return next((c.name for c in table.columns if c.dtype == "timestamp"), None)


def _check_batch(path: Path, existing: Path, table: Table) -> pa.Schema:
    """Check the batch's file against the contract and against the folder's file; returns the
    schema both are written in (the folder's, with the contract's time type)."""
    theirs, ours = read_parquet(path, schema_only=True), read_parquet(existing, schema_only=True)
    check_arrow_schema(theirs, table, str(path))
    missing, extra = set(ours.names) - set(theirs.names), set(theirs.names) - set(ours.names)
    if missing or extra:
        raise SchemaError(f"{path}: its columns differ from {existing}'s: "
                          + "; ".join(([f"missing {sorted(missing)}"] if missing else [])
                                      + ([f"not in the folder's file {sorted(extra)}"] if extra else [])))
    first = 0
    for part in _batches(path, table):
        check_missing_values(part, table, str(path), first_row=first)
        first += len(part)
    empty = canonical_times(ours.empty_table(), table)
    return empty.schema


def _column(path: Path, table: Table, columns: list[str]) -> list:
    """The values of `columns` over the whole file: a numpy array for one integer key (ten
    million impression ids are 80 MB, not a Python set's gigabyte), else (key, time) tuples."""
    parts = [canonical_times(pa.Table.from_batches([b]), table)
             for b in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=columns)]
    if len(columns) == 1:
        arrays = [p.column(columns[0]).to_numpy(zero_copy_only=False) for p in parts]
        return np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    return [v for p in parts for v in zip(*(p.column(c).to_pylist() for c in columns))]


def _check_new_rows(path: Path, existing: Path, table: Table, name: str) -> None:
    """An impression id the folder has, or a snapshot (key and time) it has, is refused: a batch
    sent twice would count its impressions twice."""
    stamp = _time_column(table)
    columns = [table.key] if name == "impressions" or stamp is None else [table.key, stamp]
    known, new = _column(existing, table, columns), _column(path, table, columns)
    if len(columns) == 1:
        repeated_mask = np.isin(new, known)
        _, first_index = np.unique(new, return_index=True)
        dup_in_batch = np.ones(len(new), bool)
        dup_in_batch[first_index] = False
        rows = np.flatnonzero(repeated_mask | dup_in_batch)[:5]
        repeated = [(int(r), new[r].item() if hasattr(new[r], "item") else new[r]) for r in rows]
    else:
        known_set, seen, repeated = set(known), set(), []
        for r, value in enumerate(new):
            if value in known_set or value in seen:
                repeated.append((r, value))
                if len(repeated) == 5:
                    break
            seen.add(value)
    if repeated:
        what = f"{table.key}" if len(columns) == 1 else f"({table.key}, {stamp})"
        examples = ", ".join(f"row {r}: {v}" for r, v in repeated)
        raise SchemaError(f"{path}: {what} already in {existing} or repeated in the batch ({examples}); "
                          "a batch is added once (was it appended already?)")


def _temporary(existing: Path) -> Path:
    """Where the folder's file is rewritten before it replaces the file."""
    return existing.with_name(f".{existing.name}.append.tmp")


def _write_combined(existing: Path, batch: Path, table: Table, schema: pa.Schema) -> tuple[Path, int, tuple]:
    """The folder's rows then the batch's, into a temporary file beside the folder's; returns it,
    its rows, and the batch's time range."""
    tmp = _temporary(existing)
    rows, low, high = 0, None, None
    stamp = _time_column(table)
    with pq.ParquetWriter(tmp, schema) as writer:
        for source in (existing, batch):
            for part in _batches(source, table):
                writer.write_table(part.select(schema.names).cast(schema))
                rows += len(part)
                if source == batch and stamp is not None and len(part):
                    lo, hi = pc.min_max(part.column(stamp)).values()
                    low = lo if low is None or lo.as_py() < low.as_py() else low
                    high = hi if high is None or hi.as_py() > high.as_py() else high
    span = tuple(str(v.as_py()) for v in (low, high)) if low is not None else ("", "")
    return tmp, rows, span


def append_batch(data_dir: Path, batch_dir: Path) -> list[Appended]:
    """Add the tables of `batch_dir` to `data_dir` (see the module's docstring); returns what was
    added per table. Raises SchemaError naming the file, column or row, having changed nothing."""
    data_dir, batch_dir = Path(data_dir), Path(batch_dir)
    contract: Contract = read_contract(data_dir)
    present = {name: t for name, t in contract.tables.items() if (batch_dir / t.file).exists()}
    if not present:
        raise SchemaError(f"{batch_dir}: no table of the contract's ({', '.join(t.file for t in contract.tables.values())})")
    plans = []
    for name, table in present.items():
        table = table.stored_view()  # the files' own names: an append rewrites them as they are
        existing = require_file(data_dir / table.file, table)
        batch = batch_dir / table.file
        schema = _check_batch(batch, existing, table)
        _check_new_rows(batch, existing, table, name)
        plans.append((name, table, existing, batch, schema))
    written: list[tuple[Path, Path]] = []
    done = []
    try:
        for name, table, existing, batch, schema in plans:
            tmp, total, (first, last) = _write_combined(existing, batch, table, schema)
            written.append((tmp, existing))
            done.append(Appended(name, total - pq.ParquetFile(existing).metadata.num_rows, total, first, last))
    except BaseException:  # the one being written too: every temporary file goes
        for _, _, existing, *_ in plans:
            _temporary(existing).unlink(missing_ok=True)
        raise
    for tmp, existing in written:  # every new file is whole before the first replaces its table
        os.chmod(tmp, 0o644)
        os.replace(tmp, existing)
    return done


def describe(appended: list[Appended]) -> list[str]:
    """One line per table appended."""
    return [f"{a.table}: +{a.rows:,} rows ({a.total:,} now)" + (f", the batch's times {a.first} to {a.last}" if a.first else "")
            for a in appended]

