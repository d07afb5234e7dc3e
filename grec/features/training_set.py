"""Point-in-time training sets from the feature store.

Each impression asks the offline store for the feature values known at its own timestamp (never
later), through the versioned training feature service. The result has exactly one row per
impression, in the same flat shape `grec.data.tables.join_tables` produces, split by time into
train / valid / test parquet files with a manifest beside them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from grec import settings
from grec.data.contract import CONTRACT_FILE, SPLITS, TELECOM, Contract, read_contract
from grec.data.manifest import MANIFEST, TrainingSetManifest, file_sha256, read_manifest
from grec.data.dataset import Dataset, dataset_from_frame
from grec.data.spec import FeatureSpec
from grec.data.split import TimeSplit, split_masks
from grec.data.tables import join_tables, load_table, load_tables
from grec.data.order import BLOCK_ROWS
from grec.data.stream import StreamingDataset
from grec.data.text import EMBEDDING_DIM, TextEmbeddingStore
from grec.data.schema import SchemaError
from grec.features import sources
from grec.features.raw_set import joined_bytes, write_raw_training_set
from grec.features.store import TRAINING_SERVICE, feature_store, require_offline_engine
from grec.io import atomic_folder, write_json, write_parquet

# What goes to the offline store: the join keys and the time. The rest of the impression log
# (labels, page, search text, and the behaviour sequences as the service saw them when it ranked)
# is joined back by impression id: sending it through the store's join would only slow it down.
ENTITY_COLUMNS = ["impression_id", "event_timestamp", "customer_id", "item_id"]
# The policy for impressions the store has no value for within a view's TTL (a profile snapshot
# older than the TTL, a customer with none): up to this share of the impressions they are left out
# of the training set and named in its manifest; past it the build fails, naming the views. A few
# stale profiles in a million impressions should not stop a weekly run; a profile export that lost
# a fifth of the customers should.
MAX_LOST_SHARE = 0.001


class TrainingSetError(SchemaError):
    """The feature store could not give every impression its features."""


def _lost_by_view(entity_df: pd.DataFrame, lost: np.ndarray, store) -> dict[str, dict]:
    """Why the `lost` rows have no features: per view, the rows whose newest value at their time is
    missing or older than its TTL, {what: {rows, first, last, example}} (dropped by the file store,
    all-null from DuckDB or Spark)."""
    reasons = {}
    tables = sources.source_tables(sources.active_contract())
    for view in store.get_feature_service(TRAINING_SERVICE).feature_view_projections:
        fv = store.get_feature_view(view.name)
        key = fv.entity_columns[0].name
        stamp = sources.timestamp_column(tables[fv.name])
        source = pd.read_parquet(sources.source_path(fv.name), columns=[key, stamp]).sort_values(stamp)
        rows = entity_df.loc[lost, [key, "event_timestamp"]].sort_values("event_timestamp")
        found = pd.merge_asof(rows, source, left_on="event_timestamp", right_on=stamp, by=key)
        ttl = fv.ttl if fv.ttl and fv.ttl.total_seconds() > 0 else None
        stale = found[stamp].isna()
        if ttl is not None:
            stale |= found["event_timestamp"] - found[stamp] > ttl
        if stale.any():
            example = found[stale].iloc[0]
            times = found.loc[stale, "event_timestamp"]
            reasons[f"{fv.name}: no value" + (f" within its TTL of {ttl}" if ttl else "")] = {
                "rows": int(stale.sum()), "first": str(times.min()), "last": str(times.max()),
                "example": f"{key}={example[key]} at {example['event_timestamp']}"}
    return reasons


def left_out_lines(left_out: dict[str, dict]) -> list[str]:
    """One line per kind of row left out: what, how many, when, an example."""
    return [f"{what}: {r['rows']:,} rows ({r['first']} to {r['last']}; e.g. {r['example']})" for what, r in left_out.items()]


def historical_features(entity_df: pd.DataFrame, store=None,
                        max_lost_share: float = MAX_LOST_SHARE) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The training service's features for each row of `entity_df`, as of its event_timestamp, and
    the rows left out: {what: {rows, first, last, example}}.

    Each view is keyed by one entity, so the store is asked once per view with the distinct
    (key, time) pairs, and the answers are joined back onto every row: the offline store keeps one
    row per (key, time), and a customer shown several items at once (one carousel) would otherwise
    lose all but one of them. A row some view has no value for (within its TTL) is left out while
    such rows are at most `max_lost_share` of all; past it, TrainingSetError names the views, their
    counts and an example of each.
    """
    store = store or feature_store()
    require_offline_engine(store)
    out = entity_df
    lost = np.zeros(len(entity_df), dtype=bool)
    for projection in store.get_feature_service(TRAINING_SERVICE).feature_view_projections:
        key = store.get_feature_view(projection.name).entity_columns[0].name
        rows = entity_df[[key, "event_timestamp"]].drop_duplicates()
        found = store.get_historical_features(
            entity_df=rows, features=[f"{projection.name}:{f.name}" for f in projection.features]).to_df()
        stamps = found["event_timestamp"]
        if stamps.dt.tz is None:  # Spark hands back its session's wall time (UTC, as configured) without a zone
            stamps = stamps.dt.tz_localize("UTC")
        found["event_timestamp"] = stamps.astype(rows["event_timestamp"].dtype)
        out = out.merge(found, on=[key, "event_timestamp"], how="left", validate="many_to_one", indicator=True)
        # The file (dask) store drops a row with no value within the view's TTL; DuckDB and Spark
        # keep it with every feature null. No contract column is nullable, so either is a loss.
        columns = [f.name for f in projection.features]
        lost |= ((out["_merge"] != "both") | out[columns].isna().all(axis=1)).to_numpy()
        out = out.drop(columns="_merge")
    left_out = {}
    if lost.any():
        left_out = _lost_by_view(entity_df, lost, store)
        if not left_out:  # said all the same: rows are never left out without a word
            times, first = entity_df.loc[lost, "event_timestamp"], entity_df.loc[lost].iloc[0]
            left_out["no feature value (no view's TTL explains it)"] = {
                "rows": int(lost.sum()), "first": str(times.min()), "last": str(times.max()),
                "example": f"impression_id={first['impression_id']} at {first['event_timestamp']}"}
        if lost.sum() > max_lost_share * len(entity_df):
            missing = entity_df.loc[lost, "impression_id"].to_numpy()
            raise TrainingSetError(
                f"the feature store has no values for {len(missing):,} of {len(entity_df):,} impressions "
                f"({len(missing) / len(entity_df):.2%}; the policy, max_lost_share, leaves out at most "
                f"{max_lost_share:.2%}) (first ids: {missing[:5].tolist()}). Reason: {'; '.join(left_out_lines(left_out))}")
        out = out[~lost]
    return out.sort_values("impression_id").reset_index(drop=True), left_out


def item_vectors_as_of(frame: pd.DataFrame, column: str) -> pd.Series:
    """Each row's item vector from the item_embeddings source: the latest stamped at or before
    the row's event_timestamp (the same rule as the store's point-in-time join)."""
    stamp = "updated_at"
    vectors = pd.read_parquet(sources.source_path("item_embeddings"), columns=["item_id", stamp, column])
    rows = frame[["item_id", "event_timestamp"]].reset_index().sort_values("event_timestamp")
    found = pd.merge_asof(rows, vectors.sort_values(stamp), left_on="event_timestamp", right_on=stamp,
                          by="item_id", direction="backward")
    missing = found[column].isna()
    if missing.any():
        first = found[missing].iloc[0]
        raise TrainingSetError(f"item_embeddings: {int(missing.sum())} rows have no {column} at their time "
                               f"(e.g. item_id={first['item_id']} at {first['event_timestamp']})")
    return found.set_index("index")[column].reindex(frame.index)


def load_impressions(data_dir: Path) -> tuple[pd.DataFrame, Contract]:
    """The impressions of `data_dir` checked against its contract, with the constant columns of the
    inputs its source has not; the contract must be the one the feature store was built from."""
    contract = read_contract(data_dir)
    built = sources.active_contract()
    if built.to_dict() != contract.to_dict():
        raise TrainingSetError(f"{data_dir}: the feature store holds '{built.name}' features, this folder is "
                               f"'{contract.name}' data; register its features first: grec features apply --data {data_dir}")
    table = contract.tables["impressions"]
    return contract.fill_absent("impressions", load_table(Path(data_dir) / table.file, table)), contract


def point_in_time_rows(impressions: pd.DataFrame,
                       max_lost_share: float = MAX_LOST_SHARE) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Impressions with the training service's features joined as of each impression's time: the
    rows of a training set (and of a monitored window), in the training-set layout, and what was
    left out for want of a feature value (see historical_features)."""
    contract = sources.active_contract()
    features, left_out = historical_features(impressions[ENTITY_COLUMNS], max_lost_share=max_lost_share)
    frame = impressions.merge(features.drop(columns=ENTITY_COLUMNS[1:]), on="impression_id", how="inner",
                              validate="one_to_one")
    if contract.has("item_vectors"):
        frame["image_embedding"] = item_vectors_as_of(frame, "image_embedding")
    return contract.fill_absent("items", frame), left_out


def build_training_set(
    data_dir: Path,
    out_dir: Path | None = None,
    test_days: int = 7,
    valid_days: int = 7,
    max_lost_share: float = MAX_LOST_SHARE,
) -> TrainingSetManifest:
    """Impressions in `data_dir` -> point-in-time train/valid/test parquet files in `out_dir`, split
    by time (the last `test_days` held out, `valid_days` before) or by the contract's split column;
    the contract travels with the set. Impressions with no feature value within a view's TTL are
    left out up to `max_lost_share` of them (counted in the manifest's `left_out`), refused past it.

    The folder is written whole or not at all (built beside it, then renamed into place).
    """
    impressions, contract = load_impressions(data_dir)
    path = Path(data_dir) / contract.tables["impressions"].file
    frame, left_out = point_in_time_rows(impressions, max_lost_share)
    split = TimeSplit.from_timestamps(frame["event_timestamp"], test_days, valid_days)
    masks = split_masks(frame, contract, split)

    out_dir = Path(out_dir) if out_dir else settings.training_sets_dir() / Path(data_dir).name
    return write_training_set(out_dir, frame, masks, split, contract, TRAINING_SERVICE, path, left_out)


def write_training_set(out_dir: Path, frame: pd.DataFrame, masks: dict[str, np.ndarray], split: TimeSplit,
                       contract: Contract, feature_service: str, source: Path,
                       left_out: dict[str, dict] | None = None) -> TrainingSetManifest:
    """Flat rows -> a training-set folder: a parquet file per split in row groups of BLOCK_ROWS (the
    blocks a StreamingDataset reads and shuffles), the manifest, and the contract unless it is the
    storefront's. The folder is written whole or not at all."""
    with atomic_folder(out_dir) as tmp:
        for name in SPLITS:
            table = pa.Table.from_pandas(frame[masks[name]], preserve_index=False)
            write_parquet(tmp / f"{name}.parquet", table, row_group_size=BLOCK_ROWS)
        manifest = TrainingSetManifest(
            feature_service=feature_service,
            source=str(source),
            source_sha256=file_sha256(source),
            rows={name: int(masks[name].sum()) for name in SPLITS},
            split={k: v.isoformat() for k, v in asdict(split).items()},
            columns=list(frame.columns),
            contract=contract.name,
            split_column=contract.split,
            left_out=left_out or {},
        )
        write_json(tmp / MANIFEST, asdict(manifest))
        if contract is not TELECOM:
            write_json(tmp / CONTRACT_FILE, contract.to_dict())
    return manifest


def load_training_set(set_dir: Path, upsample: dict[str, int] | None = None, spec: FeatureSpec | None = None,
                      texts: TextEmbeddingStore | None = None) -> Dataset:
    """A built training set -> Dataset, with the split it was built with."""
    return open_source(set_dir).dataset(upsample, spec, texts)


def load_dataset(
    data_dir: Path,
    upsample: dict[str, int] | None = None,
    test_days: int = 7,
    valid_days: int = 7,
    spec: FeatureSpec | None = None,
    texts: TextEmbeddingStore | None = None,
) -> Dataset:
    """Raw tables in `data_dir` -> Dataset, the last `test_days` held out and `valid_days` before."""
    return open_source(data_dir, test_days=test_days, valid_days=valid_days).dataset(upsample, spec, texts)


RAW_JOIN = "raw-join"  # the feature_service recorded for data read from raw tables


@dataclass
class DataSource:
    """The rows a model is trained or judged on: a feature-store training set, or raw tables
    joined directly. Tracking records `feature_service` and `fingerprint`; the gate reopens
    `path` to judge on the same held-out week.

    A training set is read only when asked: whole (`frame`, `dataset(stream=False)`) or block by
    block (`dataset(stream=True)`, grec.data.stream), which `dataset()` picks when the encoded rows
    would not fit the memory budget (grec.settings.memory_budget)."""

    path: Path
    split: TimeSplit
    feature_service: str  # the Feast feature service that built it, or RAW_JOIN
    fingerprint: str  # SHA-256 over the files it comes from
    contract: Contract = TELECOM
    splits: tuple[str, ...] = SPLITS  # the splits asked for
    joined: pd.DataFrame | None = field(default=None, repr=False)  # raw tables, joined when opened

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The splits asked for, in time order, in memory."""
        if self.joined is not None:
            return self.joined
        return pd.concat([pd.read_parquet(self.path / f"{name}.parquet") for name in self.splits], ignore_index=True)

    def test_rows(self) -> str:
        """Which rows are the test rows, in words (for reports)."""
        if self.contract.split:
            return f"the rows whose '{self.contract.split}' column says test"
        return f"the week {self.split.test_start.isoformat()} to {self.split.end.isoformat()}"

    def in_memory_bytes(self) -> int:
        """An estimate of what `dataset(stream=False)` holds: the frame (about twice its parquet
        columns uncompressed) and the encoded tensors (the two text vectors of each row dominate)."""
        if self.joined is not None:
            rows, raw = len(self.joined), int(self.joined.memory_usage(deep=False).sum())
        else:
            fragments = [f for name in self.splits
                         for f in pads.dataset(str(self.path / f"{name}.parquet"), format="parquet").get_fragments()]
            rows = sum(f.metadata.num_rows for f in fragments)
            raw = sum(f.metadata.row_group(i).total_byte_size for f in fragments for i in range(f.metadata.num_row_groups))
        return encoded_bytes(rows, raw)

    def dataset(self, upsample=None, spec: FeatureSpec | None = None, texts: TextEmbeddingStore | None = None,
                stream: bool | None = None) -> Dataset | StreamingDataset:
        """The rows encoded for a model: in memory, or streamed from the training set's parquet
        (`stream`; by default when `in_memory_bytes` exceeds the memory budget)."""
        if stream is None:
            stream = self.joined is None and self.in_memory_bytes() > settings.memory_budget()
        if stream:
            if self.joined is not None:
                raise SchemaError(f"{self.path}: raw tables are joined in memory; to stream rows larger than memory, "
                                  "build a training set first: grec features training-set")
            return StreamingDataset(self.path, upsample, spec, texts, self.splits)
        return dataset_from_frame(self.frame, self.split, upsample, spec, texts, source=str(self.path), contract=self.contract)

    def training_sample(self, n: int, seed: int) -> pd.DataFrame:
        """Up to `n` rows of the training split drawn at random (the drift reference): the rows
        `frame[train].sample(n, random_state=seed)` gives, read without loading the split."""
        if self.joined is not None or "frame" in self.__dict__:
            train = self.frame[split_masks(self.frame, self.contract, self.split)["train"]]
            return train.sample(n, random_state=seed).sort_index() if len(train) > n else train
        dataset = pads.dataset(str(self.path / "train.parquet"), format="parquet")
        count = dataset.count_rows()
        if count <= n:
            return dataset.to_table().to_pandas()
        index = np.sort(np.random.RandomState(seed).choice(count, size=n, replace=False))
        return dataset.take(pa.array(index)).to_pandas().set_index(pd.Index(index))

    def newest_rows(self, n: int) -> pd.DataFrame:
        """The last `n` rows of the splits asked for (the held-out week's newest)."""
        if self.joined is not None or "frame" in self.__dict__:
            return self.frame.tail(n).reset_index(drop=True)
        parts, left = [], n
        for name in reversed(self.splits):
            dataset = pads.dataset(str(self.path / f"{name}.parquet"), format="parquet")
            count = dataset.count_rows()
            take = min(left, count)
            parts.insert(0, dataset.take(pa.array(np.arange(count - take, count))).to_pandas())
            left -= take
            if not left:
                break
        return pd.concat(parts, ignore_index=True)


def encoded_bytes(rows: int, raw: int) -> int:
    """What a Dataset in memory holds for `rows` impressions whose joined columns take `raw` bytes:
    the frame (about twice its parquet columns uncompressed) and the encoded tensors (the two text
    vectors of each row dominate)."""
    return 2 * raw + rows * 2 * EMBEDDING_DIM * 4


def _fingerprint(paths: list[Path]) -> str:
    """SHA-256 over the files (a folder of parquet shards: each of its files, by name)."""
    digest = hashlib.sha256()
    for path in paths:
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                digest.update(f"{file.relative_to(path.parent)}:{file_sha256(file)};".encode())
    return digest.hexdigest()


def open_source(path: Path, splits: tuple[str, ...] = SPLITS, test_days: int = 7, valid_days: int = 7) -> DataSource:
    """A training set (a folder with manifest.json) or a folder of raw tables, reduced to `splits`.
    Raw tables are split by `test_days`/`valid_days`; a training set keeps the split it was built with.
    Raw tables whose join would not fit the memory budget are joined batch by batch into a training
    set first (grec.features.raw_set), which then streams."""
    path = Path(path)
    if (path / MANIFEST).exists():
        manifest = read_manifest(path)
        files = [path / MANIFEST, *(path / f"{name}.parquet" for name in SPLITS)]
        return DataSource(path, manifest.time_split(), manifest.feature_service, _fingerprint(files),
                          read_contract(path), splits)
    contract = read_contract(path)
    files = [path / t.file for t in contract.tables.values()]
    if contract is not TELECOM:
        files.append(path / CONTRACT_FILE)
    if encoded_bytes(*joined_bytes(path, contract)) > settings.memory_budget():
        return _raw_as_training_set(path, contract, _fingerprint(files), splits, test_days, valid_days)
    frame = join_tables(load_tables(path, contract), contract=contract)
    split = TimeSplit.from_timestamps(frame["event_timestamp"], test_days, valid_days)
    masks = split_masks(frame, contract, split)
    keep = np.logical_or.reduce([masks[name] for name in splits])
    return DataSource(path, split, RAW_JOIN, _fingerprint(files), contract, splits, frame[keep].reset_index(drop=True))


def _raw_as_training_set(path: Path, contract: Contract, fingerprint: str, splits: tuple[str, ...], test_days: int,
                         valid_days: int) -> DataSource:
    """Raw tables over the memory budget: joined batch by batch into a training set under the
    state folder (grec.features.raw_set), kept while the files and split settings are the same."""
    out = settings.training_sets_dir() / f"{path.name}-raw"
    key = f"{fingerprint}:test_days={test_days}:valid_days={valid_days}"
    if not (out / MANIFEST).exists() or read_manifest(out).raw_fingerprint != key:
        write_raw_training_set(path, out, contract, test_days, valid_days, key, RAW_JOIN)
    return DataSource(out, read_manifest(out).time_split(), RAW_JOIN, fingerprint, read_contract(out), splits)
