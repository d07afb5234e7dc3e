"""The prediction log: every served request's inputs and scores, written off the request path.

`append` puts rows on a queue and returns: a frame (the /score endpoint's rows, as sent), or one
dict per /rank request: its request side as scored (the customer's features as read, the
impression context, query, flow and histories), its labels (request id, time, model) and, as lists
in request order, each candidate's `item_id`, `score`, `rank` (0 = shown first) and
`cold_start_item` (and how many: `candidates`). A ranking request's candidates' item features are the catalogue's: the row says
which snapshot (`catalogue_at`) rather than copying 50 items' vectors per request, which cost
more than scoring them.

A writer thread writes what is queued every `flush_seconds` (or `flush_rows` rows), one parquet
part per layout, under `<folder>/date=YYYY-MM-DD/part-<time>-<uuid>.parquet` (temporary name, then
rename: a reader never sees half a file); `close` writes what is left. The loss window: a worker
killed without its shutdown loses what it answered since its last write, at most `flush_seconds`
(the service's GREC_SERVE_LOG_FLUSH_SECONDS) plus the write itself. `read_log` gives one row per
candidate for both layouts.
"""

from __future__ import annotations

import collections
import logging
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa

from grec.io import write_parquet

log = logging.getLogger(__name__)
# A /rank row's per-candidate columns (lists, request order); read_log gives one row per element.
CANDIDATE_COLUMNS = ("item_id", "score", "rank", "cold_start_item")


class PredictionLog:
    def __init__(self, folder: Path, flush_rows: int = 5000, flush_seconds: float = 5.0):
        self.folder = Path(folder)
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        # Appends go on a deque and wake nobody: a queue's get() woke the writer thread on every
        # request (a context switch and the GIL taken away from the next request, 35-85 us each);
        # the writer sleeps until its deadline, or until `flush_rows` are waiting, or `close`.
        self._pending: collections.deque = collections.deque()
        self._rows = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, rows: pd.DataFrame | dict) -> None:
        """Queue a frame of rows, or one /rank request's row (a dict); returns at once."""
        self._pending.append(rows)
        self._rows += len(rows) if isinstance(rows, pd.DataFrame) else 1  # approximate under threads: a wake-up hint
        if self._rows >= self.flush_rows:
            self._wake.set()

    def close(self) -> None:
        """Write everything queued, then stop the writer."""
        self._stopping = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stopping  # read before draining: what was appended before close() is written
            self._rows = 0
            pending, rows = [], 0
            while self._pending:  # parts of about `flush_rows` rows each
                item = self._pending.popleft()
                pending.append(item)
                rows += len(item) if isinstance(item, pd.DataFrame) else 1
                if rows >= self.flush_rows or not self._pending:
                    self._flush(pending)
                    pending, rows = [], 0
            if stopping:
                return

    def _flush(self, pending: list) -> None:
        frames = [p for p in pending if isinstance(p, pd.DataFrame)]
        requests = [p for p in pending if not isinstance(p, pd.DataFrame)]
        for frame in ([pd.concat(frames, ignore_index=True)] if frames else []) + ([pd.DataFrame(requests)] if requests else []):
            try:
                self._write(frame)
            except Exception:  # never the writer's end: the next flush is written; the loss said here
                log.exception("prediction log: %d rows could not be written under %s", len(frame), self.folder)

    def _write(self, frame: pd.DataFrame) -> Path:
        now = datetime.now(timezone.utc)
        path = self.folder / f"date={now:%Y-%m-%d}" / f"part-{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, pa.Table.from_pandas(frame, preserve_index=False))
        return path


def read_log(folder: Path) -> pd.DataFrame:
    """Every logged row under `folder`, one per scored candidate (empty frame if nothing was logged
    yet), oldest part first."""
    parts = sorted(Path(folder).glob("date=*/part-*.parquet"))
    if not parts:
        return pd.DataFrame()
    return pd.concat([_candidate_rows(_microseconds(pd.read_parquet(p))) for p in parts], ignore_index=True)


def _microseconds(part: pd.DataFrame) -> pd.DataFrame:
    """A part's times in microseconds: parts written from frames hold nanoseconds, those from /rank
    rows microseconds, and a page's time may lie past what nanoseconds hold (year 2262), which
    concatenating them as nanoseconds would refuse."""
    times = {c: "datetime64[us, UTC]" for c, kind in part.dtypes.items() if isinstance(kind, pd.DatetimeTZDtype)}
    return part.astype(times) if times else part


def _candidate_rows(part: pd.DataFrame) -> pd.DataFrame:
    """A part of /rank rows (lists per candidate; they say how many in `candidates`) as one row per
    candidate; other parts as they are."""
    if "candidates" not in part:
        return part
    rows = part.explode(list(CANDIDATE_COLUMNS), ignore_index=True)
    return rows.astype({"score": "float64", "rank": "int64", "cold_start_item": "bool"}).assign(
        item_id=rows["item_id"].infer_objects())
