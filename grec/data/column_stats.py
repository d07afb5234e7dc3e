"""What a parquet table's columns hold, from one streaming pass (pyarrow batches, never a whole
table in memory), and what arrow type each contract dtype takes: what `grec data init`
(grec.data.scaffold) classifies columns by."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MAX_VALUES = 1_000  # distinct strings kept per column (a flow column has a handful)
BATCH_ROWS = 65_536


def type_name(t: pa.DataType) -> str:
    """An arrow type as users write it (float64, not double)."""
    return {"double": "float64", "float": "float32", "halffloat": "float16"}.get(str(t), str(t))


@dataclass
class Stats:
    """What one pass over a column tells: enough to classify it, never the values themselves."""

    type: pa.DataType
    nulls: int = 0
    nans: int = 0
    min: object = None
    max: object = None
    non_binary: int = 0  # values other than 0 and 1 (numeric and bool columns)
    non_empty: int = 0  # non-empty strings or lists
    values: set = field(default_factory=set)  # distinct strings, up to MAX_VALUES
    more_values: bool = False

    @property
    def binary(self) -> bool:
        return self.non_binary == 0 and self.nulls == 0 and self.nans == 0

    def add(self, array: pa.Array) -> None:
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        self.nulls += array.null_count
        t = array.type
        if pa.types.is_boolean(t):
            array, t = pc.cast(array, pa.int8()), pa.int8()
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            if pa.types.is_floating(t):
                nan = pc.is_nan(array)
                self.nans += pc.sum(nan).as_py() or 0
                array = pc.filter(array, pc.invert(nan))
            self._min_max(array)
            binary = pc.is_in(array, value_set=pa.array([0, 1]).cast(t))
            self.non_binary += len(array) - array.null_count - (pc.sum(binary).as_py() or 0)
        elif pa.types.is_timestamp(t):
            self._min_max(array)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            self.non_empty += pc.sum(pc.greater(pc.utf8_length(array), 0)).as_py() or 0
            if len(self.values) <= MAX_VALUES:
                self.values.update(v for v in pc.unique(array).to_pylist() if v is not None)
                self.more_values = len(self.values) > MAX_VALUES
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            self.non_empty += pc.sum(pc.greater(pc.list_value_length(array), 0)).as_py() or 0

    def _min_max(self, array: pa.Array) -> None:
        mm = pc.min_max(array).as_py()
        if mm["min"] is not None:
            self.min = mm["min"] if self.min is None else min(self.min, mm["min"])
            self.max = mm["max"] if self.max is None else max(self.max, mm["max"])


def scan(path: Path, arrow: pa.Schema) -> tuple[dict[str, Stats], int]:
    """Per column statistics (lists of scalars: their lengths; deeper nesting: none) and the row count."""
    def wanted(f: pa.Field) -> bool:
        t = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        nested = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        return not pa.types.is_nested(t.value_type) if nested else not pa.types.is_nested(t)

    names = [f.name for f in arrow if wanted(f)]
    stats = {f.name: Stats(f.type) for f in arrow}
    parquet = pq.ParquetFile(path)
    if names:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=names):
            for name, array in zip(batch.schema.names, batch.columns):
                stats[name].add(array)
    return stats, parquet.metadata.num_rows


def funnel_violations(path: Path, a: str, b: str) -> int:
    """Rows where label b is 1 and label a is not (a funnel pair [a, b] says that never happens)."""
    count = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=[a, b]):
        la, lb = (pc.cast(batch.column(i), pa.int8()) for i in range(2))
        count += pc.sum(pc.and_(pc.equal(lb, 1), pc.not_equal(la, 1))).as_py() or 0
    return count


# ---------------------------------------------------------------------------------------------
# Classifying columns


def column_kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return "string" if pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type) else "other"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return "list"
    return "other"


def needs_cast(dtype: str, t: pa.DataType) -> bool | None:
    """False: `t` is what the readers take for the contract dtype; True: a cast fixes it; None: no cast does."""
    kind = column_kind(t)
    if dtype == "timestamp":  # any unit and zone: the readers take microseconds in UTC (no zone: UTC)
        return None if kind != "timestamp" else False
    if dtype == "string":  # dictionary-encoded (pandas' category dtype) or large: read as plain strings
        return None if kind != "string" else False
    if dtype == "bool":
        return None if kind != "bool" else False
    if dtype == "int64":
        return False if t == pa.int64() else (True if kind in ("int", "bool") else None)
    if dtype == "float32":  # any float is read as float32; integers need a cast to be numbers
        return False if kind == "float" else (True if kind == "int" else None)
    if dtype == "int8":  # labels: integers and booleans of 0/1 are read as int8; floats need a cast
        return False if kind in ("int", "bool") else (True if kind == "float" else None)
    return None


def cast_advice(dtype: str) -> str:
    if dtype == "timestamp":
        return "timestamps need a time zone: store them as UTC (e.g. pandas .dt.tz_localize('UTC')), or rerun with --cast"
    return f"the readers need {dtype}: cast it (pyarrow .cast(pa.{dtype}())), or rerun with --cast"
