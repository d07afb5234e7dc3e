"""A later batch added to a data folder: the folder then holds exactly its rows and the batch's
(as if it had always held them), in the contract's time type; a batch sent twice, or one whose
columns differ, is refused naming the file and what is wrong, and nothing changes."""

import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grec.data.append import append_batch
from grec.data.schema import SchemaError
from grec.data.tables import load_tables

CUT = pd.Timestamp("2026-08-24", tz="UTC")


@pytest.fixture
def split_folder(small_data, tmp_path):
    """small_data's impressions before CUT in `base`, the later ones in `batch` (written with
    pandas' nanosecond times, as a team's export would be), the snapshots in `base` only."""
    base, batch = tmp_path / "base", tmp_path / "batch"
    shutil.copytree(small_data, base)
    batch.mkdir()
    impressions = pd.read_parquet(small_data / "impressions.parquet")
    early = impressions["event_timestamp"] < CUT
    impressions[early].to_parquet(base / "impressions.parquet", index=False)
    later = pa.Table.from_pandas(impressions[~early], preserve_index=False)
    times = later.schema.get_field_index("event_timestamp")
    later = later.set_column(times, "event_timestamp", later.column(times).cast(pa.timestamp("ns", tz="UTC")))
    pq.write_table(later, batch / "impressions.parquet")
    return base, batch, impressions


def test_the_folder_then_holds_its_rows_and_the_batchs(small_data, split_folder):
    base, batch, impressions = split_folder
    (done,) = append_batch(base, batch)
    assert done.table == "impressions" and done.rows == int((impressions["event_timestamp"] >= CUT).sum())
    assert done.total == len(impressions) and done.first.startswith("2026-08-24")
    after, original = load_tables(base), load_tables(small_data)
    for name in ("customers", "items", "impressions"):
        pd.testing.assert_frame_equal(after[name].sort_values(after[name].columns[0]).reset_index(drop=True),
                                      original[name].sort_values(original[name].columns[0]).reset_index(drop=True))
    assert pq.read_schema(base / "impressions.parquet").field("event_timestamp").type == pa.timestamp("us", tz="UTC")


def test_a_batch_sent_twice_is_refused_and_changes_nothing(split_folder):
    base, batch, _ = split_folder
    append_batch(base, batch)
    before = (base / "impressions.parquet").read_bytes()
    with pytest.raises(SchemaError, match=r"impressions.parquet: impression_id already in .* \(row 0: \d+"):
        append_batch(base, batch)
    assert (base / "impressions.parquet").read_bytes() == before
    assert not list(base.glob(".*.tmp"))


def test_a_batch_with_other_columns_or_types_is_refused_naming_them(split_folder):
    base, batch, _ = split_folder
    table = pq.read_table(batch / "impressions.parquet")
    before = (base / "impressions.parquet").read_bytes()
    pq.write_table(table.drop_columns(["page_id"]), batch / "impressions.parquet")
    with pytest.raises(SchemaError, match="missing column 'page_id'"):
        append_batch(base, batch)
    pq.write_table(table.append_column("note", pa.array(["x"] * len(table))), batch / "impressions.parquet")
    with pytest.raises(SchemaError, match=r"not in the folder's file \['note'\]"):
        append_batch(base, batch)
    clicks = table.schema.get_field_index("click")
    pq.write_table(table.set_column(clicks, "click", table.column(clicks).cast(pa.string())), batch / "impressions.parquet")
    with pytest.raises(SchemaError, match="column 'click' has type string, expected int8"):
        append_batch(base, batch)
    assert (base / "impressions.parquet").read_bytes() == before
    # a label another writer stored as int64 (0/1) is a label still: appended in the folder's int8
    pq.write_table(table.set_column(clicks, "click", table.column(clicks).cast(pa.int64())), batch / "impressions.parquet")
    (done,) = append_batch(base, batch)
    assert done.rows == len(table) and pq.read_schema(base / "impressions.parquet").field("click").type == pa.int8()


def test_later_snapshots_are_appended_and_a_repeated_one_refused(split_folder):
    base, batch, _ = split_folder
    customers = pd.read_parquet(base / "customers.parquet")
    later = customers.head(10).assign(updated_at=customers["updated_at"].head(10) + pd.Timedelta(days=30))
    later.to_parquet(batch / "customers.parquet", index=False)
    done = {a.table: a for a in append_batch(base, batch)}
    assert done["customers"].rows == 10
    assert len(pd.read_parquet(base / "customers.parquet")) == len(customers) + 10
    (batch / "impressions.parquet").unlink()
    with pytest.raises(SchemaError, match=r"\(customer_id, updated_at\) already in"):
        append_batch(base, batch)
