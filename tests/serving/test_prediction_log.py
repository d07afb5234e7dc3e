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
