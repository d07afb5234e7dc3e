"""Reading a table as its writer left it: times in any unit and zone come out as one type
(microseconds, UTC), the same instants, so every join and store downstream compares like with like."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grec.data.schema import Column, Role, Table
from grec.data.tables import TIME, canonical_times, load_table

EVENTS = Table("events", "event_id", (Column("event_id", "int64", Role.KEY, "id"),
                                      Column("event_timestamp", "timestamp", Role.TIMESTAMP, "when")))
INSTANTS = pd.to_datetime(["2026-03-02 00:07:10.946123456", "2026-04-12 23:59:05.1"], utc=True)


@pytest.mark.parametrize("written", [
    pa.array(INSTANTS, pa.timestamp("ns", tz="UTC")),  # pandas' default
    pa.array(INSTANTS.tz_convert("Europe/Paris").floor("ms"), pa.timestamp("ms", tz="Europe/Paris")),
    pa.array(INSTANTS.tz_localize(None).floor("s"), pa.timestamp("s")),  # no zone: read as UTC
])
def test_times_of_any_unit_and_zone_read_as_microseconds_in_utc(tmp_path, written):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"event_id": [1, 2], "event_timestamp": written}), path)
    frame = load_table(path, EVENTS)
    assert str(frame["event_timestamp"].dtype) == "datetime64[us, UTC]"
    expected = pd.Series(written.to_pandas()).dt.floor("us")
    expected = expected.dt.tz_localize("UTC") if expected.dt.tz is None else expected.dt.tz_convert("UTC")
    assert (frame["event_timestamp"] == expected.astype("datetime64[us, UTC]")).all()


def test_canonical_times_leaves_other_columns_and_canonical_tables_alone():
    table = pa.table({"event_id": [1], "event_timestamp": pa.array([INSTANTS[0]], TIME), "note": ["x"]})
    assert canonical_times(table, EVENTS).equals(table)
