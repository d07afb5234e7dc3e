import time

import numpy as np
import pandas as pd

from grec.serving.prediction_log import PredictionLog, read_log


def frame(start, n):
    return pd.DataFrame({"request_id": [f"r{start}"] * n, "item_id": np.arange(start, start + n),
                         "score": np.linspace(0, 1, n), "viewed_item_ids": [np.arange(3)] * n})


def test_close_writes_everything_queued_in_whole_files(tmp_path):
    log = PredictionLog(tmp_path, flush_rows=25, flush_seconds=60)
    for start in range(0, 100, 10):
        log.append(frame(start, 10))
    log.close()
    parts = sorted(tmp_path.glob("date=*/part-*.parquet"))
    assert len(parts) >= 4 and not list(tmp_path.rglob(".*"))  # size-triggered parts, no temporary files left
    rows = read_log(tmp_path)
    assert sorted(rows["item_id"]) == list(range(100)) and list(rows["viewed_item_ids"].iloc[0]) == [0, 1, 2]


def test_a_quiet_log_is_flushed_on_time(tmp_path):
    log = PredictionLog(tmp_path, flush_rows=10_000, flush_seconds=0.2)
    log.append(frame(0, 3))
    deadline = time.monotonic() + 10
    while read_log(tmp_path).empty and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(read_log(tmp_path)) == 3
    log.close()


def test_an_empty_log_reads_as_an_empty_frame(tmp_path):
    assert read_log(tmp_path / "nothing").empty


def test_ranking_requests_are_one_row_each_and_read_as_one_row_per_candidate(tmp_path):
    """A /rank request's row holds its request side once and its candidates as lists; read_log
    gives one row per candidate beside /score's rows, typed as they were served."""
    log = PredictionLog(tmp_path, flush_seconds=60)
    for k, ids in enumerate([["trk_1", "trk_7"], ["trk_2", "trk_3", "trk_9"]]):
        log.append({"request_id": f"q{k}", "plan": "free", "viewed_item_ids": np.array(["trk_1"], dtype=object),
                    "item_id": ids, "score": np.linspace(0.9, 0.1, len(ids)), "rank": np.arange(len(ids)),
                    "cold_start_item": np.array([False] * (len(ids) - 1) + [True]), "candidates": len(ids)})
    log.append(frame(0, 2))
    log.close()
    assert len(list(tmp_path.glob("date=*/part-*.parquet"))) == 2  # one part per layout
    rows = read_log(tmp_path)
    ranked = rows[rows["request_id"].isin(["q0", "q1"])].reset_index(drop=True)
    assert ranked["item_id"].tolist() == ["trk_1", "trk_7", "trk_2", "trk_3", "trk_9"]
    assert ranked["rank"].tolist() == [0, 1, 0, 1, 2] and ranked["score"].dtype == np.float64
    assert ranked["cold_start_item"].tolist() == [False, True, False, False, True]
    assert set(ranked["plan"]) == {"free"} and all(list(v) == ["trk_1"] for v in ranked["viewed_item_ids"])
    assert len(rows) == 7


def test_parts_of_both_layouts_and_a_page_time_past_2262_read_together(tmp_path):
    """A /rank row's page time may be any date-time the schema allows (year 8304 included); a /score
    part holds nanosecond times. Read together, every time is kept (in microseconds)."""
    from datetime import datetime, timezone

    from grec.serving.requests import _utc

    far = _utc(datetime.fromisoformat("8304-05-26T13:24:17.4+00:00"))
    log = PredictionLog(tmp_path, flush_seconds=0.05)
    log.append({"request_id": "far", "logged_at": datetime.now(timezone.utc), "event_timestamp": far, "endpoint": "rank",
                "item_id": [1, 2], "score": np.array([0.1, 0.2]), "rank": np.array([1, 0]),
                "cold_start_item": np.array([False, False]), "candidates": 2})
    time.sleep(0.3)
    log.append(pd.DataFrame({"item_id": [3], "score": [0.3], "endpoint": ["score"],
                             "logged_at": [pd.Timestamp.now(tz="UTC")]}))
    log.close()
    rows = read_log(tmp_path)
    assert len(rows) == 3 and rows["event_timestamp"].iloc[0] == pd.Timestamp(far)
    assert str(rows["logged_at"].dtype) == "datetime64[us, UTC]"
