"""The prediction log: every served request's features and scores, written off the request path.

`append` only puts a frame on a queue. A writer thread gathers frames and writes one parquet part
file per `flush_rows` rows or `flush_seconds`, whichever comes first, under
`<folder>/date=YYYY-MM-DD/part-<time>-<uuid>.parquet` (temporary name, then rename: a reader never
sees half a file). `close` writes what is left. The monitoring pipeline reads it with `read_log`.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa

from grec.io import write_parquet

_STOP = object()


class PredictionLog:
    def __init__(self, folder: Path, flush_rows: int = 5000, flush_seconds: float = 5.0):
        self.folder = Path(folder)
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, frame: pd.DataFrame) -> None:
        """Queue rows for writing; returns at once."""
        self._queue.put(frame)

    def close(self) -> None:
        """Write everything queued, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        pending: list[pd.DataFrame] = []
        rows, deadline = 0, time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                item = None
            if item is not None and item is not _STOP:
                pending.append(item)
                rows += len(item)
            if pending and (item is _STOP or rows >= self.flush_rows or time.monotonic() >= deadline):
                self._write(pd.concat(pending, ignore_index=True))
                pending, rows = [], 0
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + self.flush_seconds
            if item is _STOP:
                return

    def _write(self, frame: pd.DataFrame) -> Path:
        now = datetime.now(timezone.utc)
        path = self.folder / f"date={now:%Y-%m-%d}" / f"part-{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, pa.Table.from_pandas(frame, preserve_index=False))
        return path


def read_log(folder: Path) -> pd.DataFrame:
    """Every logged row under `folder` (empty frame if nothing was logged yet), oldest part first."""
    parts = sorted(Path(folder).glob("date=*/part-*.parquet"))
    if not parts:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
