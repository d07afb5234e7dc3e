"""Raw tables over the memory budget (grec.features.raw_set): joined batch by batch into a
training set that streams, with the rows, order, split and errors of the in-memory join."""

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from grec.data.order import BLOCK_ROWS
from grec.data.schema import SchemaError
from grec.data.stream import StreamingDataset
from grec.features import raw_set
from grec.data.contract import SPLITS
from grec.features.training_set import open_source
from tests.data.test_stream import assert_same_batches


@pytest.fixture
def small_batches(monkeypatch):
    """Join 5,000 impressions at a time: pieces smaller than a block, so blocks span batches."""
    monkeypatch.setattr(raw_set, "READ_ROWS", 5_000)


def test_raw_tables_over_the_budget_stream_the_rows_the_in_memory_join_holds(small_data, fresh_state, texts,
                                                                              small_batches, monkeypatch):
    memory = open_source(small_data)
    monkeypatch.setenv("GREC_MEMORY_BUDGET", "1M")
    streamed = open_source(small_data)
    assert streamed.path == fresh_state / "training_sets" / "small-raw" and streamed.joined is None
    assert streamed.split == memory.split and streamed.fingerprint == memory.fingerprint
    masks = {name: memory.frame[memory.split.masks(memory.frame["event_timestamp"])[name]] for name in SPLITS}
    for name in SPLITS:  # the same rows in the same order, in blocks of BLOCK_ROWS
        written = pq.ParquetFile(streamed.path / f"{name}.parquet")
        sizes = [written.metadata.row_group(i).num_rows for i in range(written.metadata.num_row_groups)]
        assert set(sizes[:-1]) <= {BLOCK_ROWS} and sum(sizes) == len(masks[name])
        pd.testing.assert_frame_equal(written.read().to_pandas(), masks[name].reset_index(drop=True), check_dtype=False)
    a, b = memory.dataset(texts=texts), streamed.dataset(texts=texts)
    assert isinstance(b, StreamingDataset) and b.spec == a.spec
    pairs = zip(a.batches(a.rows["train"], 1000, torch.Generator().manual_seed(2), buffer_blocks=2),
                b.batches(b.rows["train"], 1000, torch.Generator().manual_seed(2), buffer_blocks=2), strict=True)
    for x, y in pairs:
        assert_same_batches(x, y)


def test_the_set_is_kept_while_the_tables_are_the_same_and_rebuilt_when_they_change(small_data, fresh_state, tmp_path,
                                                                                    monkeypatch):
    import shutil

    data = tmp_path / "small"
    shutil.copytree(small_data, data)
    monkeypatch.setenv("GREC_MEMORY_BUDGET", "1M")
    first = open_source(data)
    written = (first.path / "train.parquet").stat().st_mtime_ns
    assert open_source(data).path == first.path and (first.path / "train.parquet").stat().st_mtime_ns == written
    other_split = open_source(data, test_days=14)  # other split settings: rebuilt
    assert other_split.split.test_start < first.split.test_start
    prices = pd.read_parquet(other_split.path / "train.parquet")["price"].sum()
    items = pd.read_parquet(data / "items.parquet")
    items["price"] = items["price"] * 2
    items.to_parquet(data / "items.parquet")
    again = open_source(data, test_days=14)  # other tables: rebuilt
    assert again.fingerprint != other_split.fingerprint
    assert pd.read_parquet(again.path / "train.parquet")["price"].sum() == pytest.approx(2 * prices, rel=1e-5)


def test_a_bad_row_in_a_later_batch_is_named_by_its_row_in_the_file(small_data, fresh_state, tmp_path, small_batches,
                                                                   monkeypatch):
    import shutil

    data = tmp_path / "small"
    shutil.copytree(small_data, data)
    monkeypatch.setenv("GREC_MEMORY_BUDGET", "1M")
    impressions = pd.read_parquet(data / "impressions.parquet")
    unknown = impressions.copy()
    unknown.loc[12_345, "customer_id"] = 10**12
    unknown.to_parquet(data / "impressions.parquet")
    with pytest.raises(SchemaError, match=r"impressions.parquet: 1 rows of rows 10,000-14,999 reference a customer_id absent "
                                          r"from customers.parquet \(first: row 12345, customer_id=1000000000000\)"):
        open_source(data)
    missing = impressions.copy()
    missing.loc[23_456, "search_query"] = None
    missing.to_parquet(data / "impressions.parquet")
    with pytest.raises(SchemaError, match=r"impressions.parquet: column 'search_query' has 1 missing values "
                                          r"\(NaN or null; rows \[23456\]\)"):
        open_source(data)
    impressions.drop(columns=["event_timestamp"]).to_parquet(data / "impressions.parquet")
    with pytest.raises(SchemaError, match=r"impressions.parquet: does not match the 'impressions' schema: missing "
                                          r"column 'event_timestamp'"):
        open_source(data)
    assert not (fresh_state / "training_sets" / "small-raw").exists()  # nothing half-written
