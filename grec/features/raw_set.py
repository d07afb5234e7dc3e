"""Raw tables larger than memory, written as a training set one batch of impressions at a time.

`grec train --data DIR` (and every command that opens raw tables) joins the customer and item
tables onto the impressions in memory while the result fits the memory budget
(grec.settings.memory_budget). Past it, `open_source` calls `write_raw_training_set`: the same
checks, the same joined rows in the same order, the same split, written as a training-set folder
(parquet in row groups of BLOCK_ROWS) while holding only the customer and item tables and one
batch of impressions; the set then streams (grec.data.stream). So the CLI picks the path, and
both give the model the same rows.

The folder is `$GREC_HOME/training_sets/<data folder>-raw`, kept while the raw files and the split
settings are the same (their fingerprint is in the manifest) and rebuilt when they change.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from grec.data.contract import CONTRACT_FILE, SPLITS, TELECOM, Contract
from grec.data.manifest import MANIFEST, TrainingSetManifest, file_sha256
from grec.data.split import TimeSplit, split_masks
from grec.data.tables import (as_roles, canonical_time, check_arrow_schema, check_missing_values, join_tables, load_table,
                               read_parquet, require_file)
from grec.data.order import BLOCK_ROWS
from grec.data.schema import SchemaError
from grec.io import atomic_folder, write_json

READ_ROWS = 8 * BLOCK_ROWS  # impressions joined at a time


def joined_bytes(data_dir: Path, contract: Contract) -> tuple[int, int]:
    """(impressions, bytes of their joined columns uncompressed), from the parquet footers: each
    impression carries its customer's and item's columns, at those tables' mean row size."""
    sizes = {}
    for name, table in contract.tables.items():
        meta = read_parquet(require_file(Path(data_dir) / table.file, table), metadata_only=True)
        raw = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        sizes[name] = (meta.num_rows, raw)
    rows, raw = sizes["impressions"]
    per_row = sum(size / max(n, 1) for name, (n, size) in sizes.items() if name != "impressions")
    return rows, int(raw + rows * per_row)


def latest_timestamp(path: Path, column: str = "event_timestamp") -> pd.Series:
    """The impressions' latest event time (`column` in the file; all TimeSplit.from_timestamps
    needs), read one batch at a time, as a one-row series in the contract's time type (us, UTC)."""
    latest = None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=[column]):
        top = pc.max(batch.column(0))  # nulls skipped (refused later, by row)
        if top.is_valid and (latest is None or top.as_py() > latest.as_py()):
            latest = top
    if latest is None:
        raise SchemaError(f"{path}: no impressions with an event_timestamp (the table is empty)")
    return canonical_time(pa.array([latest.as_py()], latest.type)).to_pandas()  # as the rows are read


class _BlockWriter:
    """One split's parquet file written in row groups of exactly BLOCK_ROWS rows (the last may be
    short), whatever the sizes of the pieces handed to it: the blocks a StreamingDataset reads."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.writer, self.schema = pq.ParquetWriter(path, schema), schema
        self.pending: list[pa.Table] = []
        self.rows = self.pending_rows = 0

    def write(self, table: pa.Table) -> None:
        self.pending.append(table.cast(self.schema))
        self.pending_rows += len(table)
        self.rows += len(table)
        if self.pending_rows >= BLOCK_ROWS:
            whole = pa.concat_tables(self.pending)
            full = len(whole) // BLOCK_ROWS * BLOCK_ROWS
            self.writer.write_table(whole.slice(0, full), row_group_size=BLOCK_ROWS)
            self.pending, self.pending_rows = [whole.slice(full)], len(whole) - full

    def close(self) -> None:
        if self.pending_rows:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=BLOCK_ROWS)
        self.writer.close()


def write_raw_training_set(data_dir: Path, out_dir: Path, contract: Contract, test_days: int, valid_days: int,
                           fingerprint: str, feature_service: str) -> dict[str, int]:
    """Join `data_dir`'s tables batch by batch into a training-set folder `out_dir` (written whole
    or not at all), split as the in-memory join splits them (the last `test_days`, `valid_days`
    before, or the contract's split column); returns the rows per split. Errors name the file,
    column and row as loading the tables whole does."""
    data_dir = Path(data_dir)
    impressions = contract.tables["impressions"]
    stored = impressions.stored_view()  # the file's own names, in its checks' messages
    path = data_dir / impressions.file
    check_arrow_schema(read_parquet(path, schema_only=True), stored, str(path))
    split = TimeSplit.from_timestamps(latest_timestamp(path, impressions.column("event_timestamp").stored),
                                      test_days, valid_days)
    dims = {name: contract.fill_absent(name, load_table(data_dir / contract.tables[name].file, contract.tables[name]))
            for name in ("customers", "items")}
    writers: dict[str, _BlockWriter] = {}
    columns: list[str] = []
    with atomic_folder(out_dir) as tmp:
        first = 0  # the batch's first row in the impressions file
        for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=stored.names()):
            arrow = pa.Table.from_batches([batch])
            check_missing_values(arrow, stored, str(path), first_row=first)
            arrow = as_roles(arrow, impressions)
            frame = join_tables({"impressions": contract.fill_absent("impressions", arrow.to_pandas()), **dims},
                                first_row=first, contract=contract)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if not writers:
                columns = list(frame.columns)
                writers = {name: _BlockWriter(tmp / f"{name}.parquet", table.schema) for name in SPLITS}
            for name, mask in split_masks(frame, contract, split).items():
                writers[name].write(table.filter(pa.array(mask)))
            first += len(arrow)
        if not writers:
            raise SchemaError(f"{path}: no impressions (the table is empty)")
        for writer in writers.values():
            writer.close()
        rows = {name: writer.rows for name, writer in writers.items()}
        manifest = TrainingSetManifest(feature_service=feature_service, source=str(path), source_sha256=file_sha256(path),
                                       rows=rows, split={k: v.isoformat() for k, v in asdict(split).items()},
                                       columns=columns, contract=contract.name, split_column=contract.split,
                                       raw_fingerprint=fingerprint)
        write_json(tmp / MANIFEST, asdict(manifest))
        if contract is not TELECOM:
            write_json(tmp / CONTRACT_FILE, contract.to_dict())
    return rows
