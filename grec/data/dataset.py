"""From parquet tables to model-ready tensors and (example, task) rows.

Flow of data: `load_tables` (schema-checked) -> `join_tables` (one flat row per impression, the same
shape a feature store's training set has) -> `time_split` -> `FeatureSpec.fit` on the training
rows -> `FeatureSpec.encode` -> `build_task_rows` (the paper's rows: CTR, ATC and CTCVR over every
impression, CVR over clicked ones).

Dimension letters: N impressions, R task rows, B batch, L sequence length, F feature fields.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from grec.data import schema
from grec.data.item_attributes import ItemAttributesFit, lookup_tables
from grec.data.contract import ALL_INPUTS, OPTIONAL_INPUTS, TELECOM, Contract, fill_absent_inputs, read_contract
from grec.data.order import BLOCK_ROWS, BUFFER_BLOCKS, block_sizes, epoch_order, rank_batches, visit_rank
from grec.data.schema import TELECOM_TASKS, USE_CASES, SchemaError, Table, TaskVocabulary
from grec.data.text import ENCODER_NAME, EMBEDDING_DIM, TextEmbeddingStore


# ---------------------------------------------------------------------------------------------
# Loading with the contract enforced


def _arrow_type_matches(dtype: str, t: pa.DataType) -> bool:
    """The contract's type, or an equivalent wider form another writer may have used."""
    want = schema.ARROW_TYPES[dtype]
    if pa.types.is_list(want):
        is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        return is_list and t.value_type == want.value_type
    if pa.types.is_timestamp(want):
        return pa.types.is_timestamp(t)
    if pa.types.is_string(want):
        return pa.types.is_string(t) or pa.types.is_large_string(t)
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


def load_table(path: Path, table: Table) -> pd.DataFrame:
    path = require_file(path, table)
    check_arrow_schema(read_parquet(path, schema_only=True), table, str(path))
    arrow = read_parquet(path, columns=table.names())
    check_missing_values(arrow, table, str(path))
    return arrow.to_pandas()


def load_tables(data_dir: Path, contract: Contract | None = None) -> dict[str, pd.DataFrame]:
    """The three tables of `data_dir`, each checked against its contract (contract.json, or the
    storefront's where there is none)."""
    contract = contract or read_contract(data_dir)
    return {name: contract.fill_absent(name, load_table(Path(data_dir) / t.file, t)) for name, t in contract.tables.items()}


def join_tables(tables: dict[str, pd.DataFrame], first_row: int | None = None) -> pd.DataFrame:
    """One flat row per impression with its customer's and item's features joined on. Where the
    impressions are a part of their file, starting at row `first_row`, errors say so."""
    imp = tables["impressions"]
    frame = imp
    for name, key in (("customers", "customer_id"), ("items", "item_id")):
        other = tables[name].drop(columns=["updated_at"])
        if other[key].duplicated().any():
            dup = other.loc[other[key].duplicated(), key].iloc[0]
            raise SchemaError(f"{name}: duplicate {key} {dup} (several snapshots); the raw join takes one per {key}: "
                              "build a point-in-time training set with `grec features training-set` instead")
        missing = ~imp[key].isin(other[key])
        if missing.any():
            row = int(np.flatnonzero(missing.to_numpy())[0])
            among = "" if first_row is None else f" of rows {first_row:,}-{first_row + len(imp) - 1:,}"
            raise SchemaError(
                f"impressions: {int(missing.sum())} rows{among} reference a {key} absent from {name} "
                f"(first: row {row + (first_row or 0)}, {key}={int(imp[key].iloc[row])})"
            )
        frame = frame.merge(other, on=key, how="left", validate="many_to_one")
    return frame


# ---------------------------------------------------------------------------------------------
# Splits by time: the test window is the last `test_days`, validation the `valid_days` before it


@dataclass(frozen=True)
class TimeSplit:
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def from_timestamps(cls, ts: pd.Series, test_days: int = 7, valid_days: int = 7) -> TimeSplit:
        end = ts.max().floor("D") + pd.Timedelta(days=1)
        test_start = end - pd.Timedelta(days=test_days)
        return cls(test_start - pd.Timedelta(days=valid_days), test_start, end)

    def masks(self, ts: pd.Series) -> dict[str, np.ndarray]:
        return {
            "train": (ts < self.valid_start).to_numpy(),
            "valid": ((ts >= self.valid_start) & (ts < self.test_start)).to_numpy(),
            "test": (ts >= self.test_start).to_numpy(),
        }


def split_masks(frame: pd.DataFrame, contract: Contract, split: TimeSplit | None) -> dict[str, np.ndarray]:
    """train / valid / test row masks: by the contract's split column where it has one (a source
    split by other rules than time), else by `split`'s times."""
    if contract.split:
        return {name: (frame[contract.split] == name).to_numpy() for name in ("train", "valid", "test")}
    return split.masks(frame["event_timestamp"])


# ---------------------------------------------------------------------------------------------
# Encoding: vocabularies fitted on training rows, unknown codes to a reserved bucket


@dataclass
class Features:
    """Model inputs, one row per impression (or per candidate at serving time)."""

    context_categorical: torch.Tensor  # (N, Fc) long, code in [0, cardinality]; cardinality = unknown
    context_numerical: torch.Tensor  # (N, Fn) float, signed log1p
    search: torch.Tensor  # (N, Ds) float, query vector (zeros: no search)
    item: torch.Tensor  # (N,) long, item_id + 2; 0 pad, 1 unknown
    item_categorical: torch.Tensor  # (N, Fi) long
    item_numerical: torch.Tensor  # (N, Fin) float, signed log1p
    item_image: torch.Tensor  # (N, Dimg) float
    item_text: torch.Tensor  # (N, Dtxt) float
    seq_items: torch.Tensor  # (N, L) long, right-aligned (most recent last), 0 = padding
    seq_pages: torch.Tensor  # (N, L) long, aligned with seq_items
    flow: torch.Tensor  # (N,) long, index into the task vocabulary's flows
    # the history's items with their attributes, from the spec's item_attributes (unknown: the unknown
    # code and zeros), encoded as the candidate's are
    seq_item_categorical: torch.Tensor  # (N, L, Fi) long
    seq_item_numerical: torch.Tensor  # (N, L, Fin) float

    def __len__(self) -> int:
        return len(self.item)

    def take(self, index: torch.Tensor) -> Features:
        return Features(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def to(self, device) -> Features:
        return Features(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


@dataclass
class Batch:
    """R rows to score, over the features of the N examples they come from.

    Rows of one impression (its CTR, ATC, CTCVR and CVR rows) share one feature row, so the input
    layer encodes each example once however many tasks it is scored for.
    """

    features: Features  # N examples
    example: torch.Tensor  # (R,) long, row -> index into features
    use_case: torch.Tensor  # (R,) long, index into the task vocabulary's use cases

    @classmethod
    def single(cls, features: Features, use_case: torch.Tensor) -> Batch:
        """One row per feature row."""
        return cls(features, torch.arange(len(features), device=use_case.device), use_case)

    @property
    def flow(self) -> torch.Tensor:  # (R,) long
        return self.features.flow[self.example]

    def task(self, n_use_cases: int) -> torch.Tensor:  # (R,) long, flow-major task id
        return self.flow * n_use_cases + self.use_case

    def select(self, rows: torch.Tensor) -> Batch:
        """A sub-batch of some rows, holding only the features those rows use."""
        unique, example = torch.unique(self.example[rows], return_inverse=True)
        return Batch(self.features.take(unique), example, self.use_case[rows])

    def __len__(self) -> int:
        return len(self.use_case)

    def to(self, device) -> Batch:
        return Batch(self.features.to(device), self.example.to(device), self.use_case.to(device))


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    # Prices, bills and counts are heavy-tailed; this keeps their order and tames the tail.
    return (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)


def _codes(frame: pd.DataFrame, column: str, cardinality: int) -> np.ndarray:
    x = frame[column].to_numpy()
    if (x < 0).any():
        row = int(np.flatnonzero(x < 0)[0])
        raise SchemaError(f"column '{column}': negative category code {x[row]} at row {row}")
    return np.where(x >= cardinality, cardinality, x)


def _vectors(frame: pd.DataFrame, column: str, dim: int) -> np.ndarray:
    values = frame[column].to_numpy()
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    if (lengths != dim).any():
        row = int(np.flatnonzero(lengths != dim)[0])
        raise SchemaError(f"column '{column}': row {row} has length {lengths[row]}, expected {dim}")
    return np.stack(values).astype(np.float32) if len(values) else np.zeros((0, dim), np.float32)


def _list_max(values: pd.Series) -> int:
    """The largest id in a column of id lists; -1 where every list is empty."""
    return max((int(v.max()) for v in values.to_numpy() if len(v)), default=-1)


def _pad_right_aligned(values: np.ndarray, length: int, shift: int, vocabulary: int) -> np.ndarray:
    """Ragged id lists -> (N, length): keep the last `length`, right-align, id+shift; an id outside
    [0, vocabulary) becomes 1 (unknown), 0 is padding."""
    lens = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    if lens.sum() == 0:
        return np.zeros((len(values), length), dtype=np.int64)
    return _pad_flat(np.concatenate([np.asarray(v, dtype=np.int64) for v in values]), lens, length, shift, vocabulary)


def _pad_flat(flat: np.ndarray, lens: np.ndarray, length: int, shift: int, vocabulary: int) -> np.ndarray:
    """The same from the lists' values end to end and each list's length."""
    out = np.zeros((len(lens), length), dtype=np.int64)
    if len(flat) == 0:
        return out
    ends = np.cumsum(lens)
    for lo in range(0, len(lens), 8192):  # in chunks: the (rows, length) temporaries stay in cache
        end, n = ends[lo:lo + 8192], lens[lo:lo + 8192]
        source = end[:, None] - length + np.arange(length)[None, :]  # the value each slot takes
        filled = source >= (end - n)[:, None]  # right-aligned: the slots before a short list stay 0
        ids = flat[np.where(filled, source, 0)]
        # compared before the shift (an id near int64's top would wrap round to negative); an id
        # the vocabulary does not hold is the unknown index, never aliased to a real item
        out[lo:lo + 8192] = np.where(filled, np.where((ids < 0) | (ids >= vocabulary), 1, ids + shift), 0)
    return out


@dataclass
class FeatureSpec:
    """Which columns feed which input, and the vocabularies fitted on training rows.

    Saved beside the model weights: serving encodes requests with the same spec.
    """

    context_categorical: list[str] = field(default_factory=lambda: list(schema.CONTEXT_CATEGORICAL))
    context_numerical: list[str] = field(default_factory=lambda: list(schema.CONTEXT_NUMERICAL))
    item_categorical: list[str] = field(default_factory=lambda: list(schema.ITEM_CATEGORICAL))
    item_numerical: list[str] = field(default_factory=lambda: list(schema.ITEM_NUMERICAL))
    context_cardinalities: list[int] = field(default_factory=list)
    item_cardinalities: list[int] = field(default_factory=list)
    n_items: int = 0  # item ids 0..n_items-1 were seen in training
    n_pages: int = 0
    seq_len: int = 20
    text_encoder: str = ENCODER_NAME  # encodes search queries and item descriptions
    search_dim: int = EMBEDDING_DIM
    text_dim: int = EMBEDDING_DIM
    image_dim: int = 0
    tasks: TaskVocabulary = TELECOM_TASKS
    # Context columns the impression itself carries (page, channel, position...): a ranking request
    # gives them; the other context columns are the customer's, read from the feature store.
    impression_context: list[str] = field(default_factory=lambda: schema.IMPRESSIONS.names(
        schema.Role.CONTEXT_CATEGORICAL, schema.Role.CONTEXT_NUMERICAL))
    inputs: list[str] = field(default_factory=lambda: list(ALL_INPUTS))  # optional inputs the data has (contract)
    # each item's attributes as the training rows last showed them (grec.data.item_attributes): how a
    # history's items are looked up; empty in specs saved before it existed (all unknown)
    item_attributes: dict = field(default_factory=dict)

    def has(self, optional_input: str) -> bool:
        return optional_input in self.inputs

    def history_attributes(self, seq_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Encoded history ids (N, L) -> their items' (N, L, Fi) codes and (N, L, Fin) numbers."""
        if getattr(self, "_tables", None) is None:  # built once per spec (not a field: never saved)
            self._tables = lookup_tables(self.item_attributes, self.item_categorical, self.item_numerical,
                                         self.item_cardinalities, self.n_items, _signed_log1p)
        codes, values = self._tables
        return codes[seq_items], values[seq_items]

    def __post_init__(self) -> None:
        if isinstance(self.tasks, dict):  # read back from features.json
            self.tasks = TaskVocabulary.from_dict(self.tasks)

    @classmethod
    def fit(cls, frame: pd.DataFrame, **overrides) -> FeatureSpec:
        return cls.fit_parts([frame], **overrides)

    @classmethod
    def fit_parts(cls, frames: Iterable[pd.DataFrame], **overrides) -> FeatureSpec:
        """One pass over the training rows in parts (parquet row groups, for data larger than
        memory): every fitted value is a maximum, so the parts give the spec the whole would."""
        spec = cls(**overrides)
        context, item = [-1] * len(spec.context_categorical), [-1] * len(spec.item_categorical)
        n_items = n_pages = rows = 0
        image_dim = None
        attributes = ItemAttributesFit(spec.item_categorical, spec.item_numerical)
        for frame in frames:
            if not len(frame):
                continue
            rows += len(frame)
            attributes.add(frame)
            context = [max(m, int(frame[c].max())) for m, c in zip(context, spec.context_categorical)]
            item = [max(m, int(frame[c].max())) for m, c in zip(item, spec.item_categorical)]
            n_items = max(n_items, int(frame["item_id"].max()) + 1, _list_max(frame["viewed_item_ids"]) + 1)
            n_pages = max(n_pages, _list_max(frame["visited_page_ids"]) + 1)
            if image_dim is None:
                image_dim = len(frame["image_embedding"].iloc[0])
        if not rows:
            raise SchemaError("no training rows to fit the feature vocabularies on")
        spec.context_cardinalities = [m + 1 for m in context]
        spec.item_cardinalities = [m + 1 for m in item]
        spec.n_items, spec.n_pages, spec.image_dim = n_items, n_pages, image_dim
        spec.item_attributes = attributes.result()
        return spec

    def fit_columns(self) -> list[str]:
        """The columns `fit_parts` reads."""
        return [*self.context_categorical, *self.item_categorical, *self.item_numerical, "item_id", "event_timestamp",
                "viewed_item_ids", "visited_page_ids", "image_embedding"]

    def encode(self, frame: pd.DataFrame, texts: TextEmbeddingStore | None = None) -> Features:
        """Frame rows -> model inputs. Search queries and descriptions get their vectors from
        `texts` (default: the state folder's text-embedding table), encoding unseen texts once."""
        texts = texts if texts is not None else TextEmbeddingStore()
        if texts.encoder.name != self.text_encoder:
            raise SchemaError(f"texts are encoded with {texts.encoder.name}; this spec needs {self.text_encoder}")
        item = frame["item_id"].to_numpy()
        seq_items = _pad_right_aligned(frame["viewed_item_ids"].to_numpy(), self.seq_len, 2, self.n_items)
        seq_categorical, seq_numerical = self.history_attributes(seq_items)
        tensors = dict(
            context_categorical=np.stack(
                [_codes(frame, c, k) for c, k in zip(self.context_categorical, self.context_cardinalities)], axis=1
            ),
            context_numerical=_signed_log1p(frame[self.context_numerical].to_numpy(np.float64)),
            search=texts.lookup(frame["search_query"].to_numpy()),
            item=np.where((item < 0) | (item >= self.n_items), 1, item + 2),
            item_categorical=np.stack(
                [_codes(frame, c, k) for c, k in zip(self.item_categorical, self.item_cardinalities)], axis=1
            ),
            item_numerical=_signed_log1p(frame[self.item_numerical].to_numpy(np.float64)),
            item_image=_vectors(frame, "image_embedding", self.image_dim),
            item_text=texts.lookup(frame["description"].to_numpy()),
            seq_items=seq_items,
            seq_pages=_pad_right_aligned(frame["visited_page_ids"].to_numpy(), self.seq_len, 2, self.n_pages),
            flow=self.flow_codes(frame),
            seq_item_categorical=seq_categorical,
            seq_item_numerical=seq_numerical,
        )
        return Features(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()})

    def flow_codes(self, frame: pd.DataFrame) -> np.ndarray:
        """(N,) int64 index of each row's flow in the task vocabulary; an unknown flow is an error."""
        flows = self.tasks.flows
        codes = pd.Categorical(frame["flow"], categories=flows).codes.astype(np.int64)
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            raise SchemaError(f"column 'flow': unknown flow {frame['flow'].iloc[row]!r} at row {row}; known: {flows}")
        return codes

    def fill_absent(self, frame: pd.DataFrame, table: str | None = None) -> pd.DataFrame:
        """`frame` with the constant columns of the optional inputs this model's data has not
        (what training saw for them), where a request leaves them out; `table`: only that table's."""
        columns = [c for name, by_table in OPTIONAL_INPUTS.items() if not self.has(name)
                   for t, cols in by_table.items() if table in (None, t) for c in cols]
        return fill_absent_inputs(frame, columns, self.image_dim)

    def input_columns(self) -> list[str]:
        """The frame columns `encode` reads: a scoring request's contract."""
        return [*self.context_categorical, *self.context_numerical, "search_query", "item_id",
                *self.item_categorical, *self.item_numerical, "image_embedding", "description",
                "viewed_item_ids", "visited_page_ids", "flow"]

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({**dataclasses.asdict(self), "tasks": self.tasks.to_dict()}, indent=2))

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls(**json.loads(Path(path).read_text()))


# ---------------------------------------------------------------------------------------------
# The paper's (example, task) rows


@dataclass
class TaskRows:
    impression: torch.Tensor  # (R,) long, index into Features
    use_case: torch.Tensor  # (R,) long
    label: torch.Tensor  # (R,) float
    oracle: torch.Tensor | None  # (R,) float, true P(label) where the data is simulated
    flow: torch.Tensor  # (R,) long, the impression's flow: a row's task without its features

    def __len__(self) -> int:
        return len(self.impression)

    def targets(self, target: str = "label") -> torch.Tensor:
        """(R,) what a model is fitted to: the labels, or ("oracle") the true probabilities as soft
        targets, which estimates the best score the observable features allow."""
        if target == "oracle":
            if self.oracle is None:
                raise SchemaError("target 'oracle' needs data with true probabilities (the simulator's)")
            return self.oracle
        return self.label

    def task(self, n_use_cases: int) -> torch.Tensor:  # (R,) long, flow-major task id
        return self.flow * n_use_cases + self.use_case

    def take(self, index: torch.Tensor) -> TaskRows:
        oracle = None if self.oracle is None else self.oracle[index]
        return TaskRows(self.impression[index], self.use_case[index], self.label[index], oracle, self.flow[index])


def oracle_by_use_case(frame: pd.DataFrame, tasks: TaskVocabulary = TELECOM_TASKS) -> np.ndarray | None:
    """(N, U) true probability of each use case's label on simulated data (the storefront's funnel,
    or the columns a contract's `oracles` names), None for data without ground truth."""
    columns = schema.oracle_columns(tasks)
    if not columns or not set(columns) <= set(frame.columns):
        return None
    if tasks == TELECOM_TASKS:
        scores = schema.oracle_scores(frame)
        return np.stack([scores[u] for u in USE_CASES], axis=1).astype(np.float32)
    return np.stack([frame[tasks.oracles[u]].to_numpy(np.float32) for u in tasks.use_cases], axis=1)


@dataclass
class Labels:
    """Per impression: the task vocabulary's label columns and, on simulated data, the true probabilities."""

    labels: np.ndarray  # (N, K) int8 in tasks.label_columns order
    oracle: np.ndarray | None  # (N, U) float32
    columns: tuple[str, ...] = TELECOM_TASKS.label_columns

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, tasks: TaskVocabulary = TELECOM_TASKS) -> Labels:
        columns = tasks.label_columns
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise SchemaError(f"label columns {missing} missing (the task vocabulary reads {list(columns)})")
        return cls(frame[list(columns)].to_numpy(np.int8), oracle_by_use_case(frame, tasks), columns)

    def column(self, name: str) -> np.ndarray:
        return self.labels[:, self.columns.index(name)]


def build_task_rows(
    labels: Labels,
    index: np.ndarray,
    flows: np.ndarray,
    upsample: dict[str, int] | None = None,
    tasks: TaskVocabulary = TELECOM_TASKS,
) -> TaskRows:
    """(example, task) rows for the impressions in `index`.

    `upsample` repeats the rows of a use case ("CVR") or a task ("AAL+CVR") an integer number of
    times, as the paper balances sparse tasks; use it on training rows only.
    """
    parts = []
    for u, use_case in enumerate(tasks.use_cases):
        population = tasks.populations.get(use_case)
        idx = index
        if population is not None:
            idx = index[labels.column(population)[index] == 1]
        if upsample:
            factors = np.full(len(idx), upsample.get(use_case, 1), dtype=np.int64)
            for f, flow in enumerate(tasks.flows):
                factor = upsample.get(f"{flow}+{use_case}")
                if factor is not None:
                    factors[flows[idx] == f] = factor
            idx = np.repeat(idx, factors)
        label = labels.column(tasks.labels[use_case])[idx].astype(np.float32)
        oracle = None if labels.oracle is None else labels.oracle[idx, u]
        parts.append((idx, np.full(len(idx), u), label, oracle))
    impression, use_case, label, oracle = (
        np.concatenate([p[i] for p in parts]) if parts[0][i] is not None else None for i in range(4)
    )
    return TaskRows(
        torch.from_numpy(impression.astype(np.int64)),
        torch.from_numpy(use_case.astype(np.int64)),
        torch.from_numpy(label),
        None if oracle is None else torch.from_numpy(oracle),
        torch.from_numpy(np.asarray(flows, dtype=np.int64)[impression]),
    )


@dataclass
class Dataset:
    """Everything training and evaluation need: encoded features, labels and the three row sets."""

    spec: FeatureSpec
    features: Features
    labels: Labels
    split: TimeSplit
    rows: dict[str, TaskRows]  # train / valid / test
    source: str = ""

    def batch(self, rows: TaskRows) -> Batch:
        """Rows -> a Batch holding each distinct impression's features once."""
        unique, example = torch.unique(rows.impression, return_inverse=True)
        return Batch(self.features.take(unique), example, rows.use_case)

    def batches(self, rows: TaskRows, batch_size: int, generator: torch.Generator | None = None,
                target: str = "label", buffer_blocks: int = BUFFER_BLOCKS,
                shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor]]:
        """Yield (Batch, targets, positions in `rows`), a batch holding each impression once.

        Without a generator the rows come grouped by impression in impression order (evaluation);
        with one, in the epoch order of grec.data.order over the rows' impressions in blocks of
        BLOCK_ROWS (training): the order a StreamingDataset reads the same rows from parquet in.
        An impression's rows stay in their order in `rows` (use case by use case). With shard =
        (rank, ranks), only every ranks-th training batch from the rank-th is made (data parallel)."""
        if generator is None:
            for chunk in torch.argsort(rows.impression, stable=True).split(batch_size):
                part = rows.take(chunk)
                yield self.batch(part), part.targets(target), chunk
            return
        impressions = torch.unique(rows.impression)  # sorted: blocks are consecutive runs of it
        local = torch.searchsorted(impressions, rows.impression)  # (R,) row -> index into impressions
        block = local // BLOCK_ROWS
        sizes = block_sizes(len(impressions))
        by_block = torch.argsort(block, stable=True)
        ends = torch.cumsum(torch.bincount(block, minlength=len(sizes)), 0).tolist()
        first = 0  # the epoch's batches before this buffer
        for ids, perm in epoch_order(sizes, buffer_blocks, generator):
            picked, position, offset = [], [], 0  # the buffer's rows, and their impression's place in it
            for b in ids:
                sel = by_block[(ends[b - 1] if b else 0):ends[b]]
                picked.append(sel)
                position.append(local[sel] - b * BLOCK_ROWS + offset)
                offset += sizes[b]
            picked, position = torch.cat(picked), torch.cat(position)
            order = picked[torch.argsort(visit_rank(perm)[position], stable=True)]
            for _, chunk in rank_batches(order, batch_size, first, shard):
                part = rows.take(chunk)
                yield self.batch(part), part.targets(target), chunk
            first += -(-len(order) // batch_size)


def dataset_from_frame(
    frame: pd.DataFrame,
    split: TimeSplit | None,
    upsample: dict[str, int] | None = None,
    spec: FeatureSpec | None = None,
    texts: TextEmbeddingStore | None = None,
    source: str = "",
    contract: Contract = TELECOM,
) -> Dataset:
    """A flat frame (raw tables joined, or a feature-store training set) -> Dataset: fit the spec
    on training rows with the contract's columns and tasks (unless a spec is given: then its
    columns and tasks win), encode, and build each split's task rows. Rows are split by the
    contract's split column where it has one (a source split by other rules than time, such as
    Census), else by `split`'s times."""
    masks = split_masks(frame, contract, split)
    if spec is None:
        spec = FeatureSpec.fit(frame[masks["train"]], **contract.feature_spec_columns())
    features = spec.encode(frame, texts)
    labels = Labels.from_frame(frame, spec.tasks)
    flows = features.flow.numpy()
    rows = {
        name: build_task_rows(labels, np.flatnonzero(mask), flows, upsample if name == "train" else None, spec.tasks)
        for name, mask in masks.items()
    }
    return Dataset(spec, features, labels, split, rows, source=source)


def load_dataset(
    data_dir: Path,
    upsample: dict[str, int] | None = None,
    test_days: int = 7,
    valid_days: int = 7,
    spec: FeatureSpec | None = None,
    texts: TextEmbeddingStore | None = None,
) -> Dataset:
    """Raw tables in `data_dir` -> Dataset, the last `test_days` held out and `valid_days` before."""
    from grec.features.training_set import open_source  # it builds on this module

    return open_source(data_dir, test_days=test_days, valid_days=valid_days).dataset(upsample, spec, texts)
