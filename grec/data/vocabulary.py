"""Vocabularies: a column's values as the model's embedding rows, fitted on the training rows.

A categorical column, the item ids and the history's pages hold values as the logs have them:
integers of any size, strings, booleans. The model embeds rows 0..K-1, so each column's fitted
vocabulary lists the values seen at least `min_count` times in the training rows (sorted: integer
codes 0..K-1 keep their own numbers), and every other value (rarer, unseen, added since) is the
unknown bucket, row K, which the rare values train. The vocabularies travel in the FeatureSpec:
training, the pyfunc and the ranking service map values the same way, and nothing outside the
model ever sees a row number.

Specs saved before vocabularies existed held integer codes; `Codes` reads them as they were
(a code is its own row, a code at or past the cardinality is unknown).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# A value seen once in training has its own row only to be fitted on one example; from two on it
# has one, and the values seen once train the unknown bucket that unseen values are served with.
MIN_COUNT = 2
# Up to this many values (a ranking request's), a dict lookup: two pandas Indexes cost ~0.1 ms.
SMALL = 64


class Vocabulary:
    """The values that have their own row (`values[i]` is row i); any other value is row `size`."""

    def __init__(self, values: Iterable):
        self.values = list(values)
        self._index: pd.Index | None = None
        self._arrow: pa.Array | None = None
        self._rows: dict | None = None  # value -> row, for a request's few values (built on first use)
        self._booleans = any(isinstance(v, bool | np.bool_) for v in self.values)

    @property
    def size(self) -> int:
        return len(self.values)

    def index(self, values) -> np.ndarray:
        """(N,) int64 row of each value (numpy, pandas or a list); `size` where it has none."""
        if len(values) <= SMALL:
            return self._index_few(values)
        if self._index is None:
            self._index = pd.Index(self.values)
        rows = self._index.get_indexer(pd.Index(np.asarray(values, dtype=object)
                                                if self._index.dtype == object else values))
        return np.where(rows < 0, self.size, rows).astype(np.int64)

    def _index_few(self, values) -> np.ndarray:
        """`index` by a dict: the same rows (a boolean is not the integer 1 unless the values are
        booleans, as for the pandas Index)."""
        if self._rows is None:
            self._rows = {v: i for i, v in enumerate(self.values)}
        rows, size, booleans = self._rows, self.size, self._booleans
        return np.fromiter((size if not booleans and isinstance(v, bool | np.bool_) else rows.get(v, size)
                            for v in values), dtype=np.int64, count=len(values))

    def index_arrow(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The same for an Arrow column (the streamed training path)."""
        if self._arrow is None:
            self._arrow = pa.array(self.values, type=values.type if self.size == 0 else None)
        if self._arrow.type != values.type:
            values = values.cast(self._arrow.type)
        rows = pc.index_in(values, value_set=self._arrow)
        return pc.fill_null(rows, self.size).to_numpy(zero_copy_only=False).astype(np.int64)

    def __contains__(self, value) -> bool:
        return self.index([value])[0] < self.size


class Codes:
    """A spec saved before vocabularies: integer codes 0..cardinality-1 are their own rows."""

    def __init__(self, cardinality: int):
        self.size = cardinality

    def index(self, values) -> np.ndarray:
        x = np.asarray(values)
        x = x.astype(np.int64) if x.dtype != object else np.array([v if isinstance(v, int | np.integer) else -1 for v in x],
                                                                   np.int64)
        return np.where((x < 0) | (x >= self.size), self.size, x)

    def index_arrow(self, values) -> np.ndarray:
        return self.index(values.to_numpy(zero_copy_only=False))


class VocabularyFit:
    """Counts a column's values over parts of the training rows (data larger than memory)."""

    def __init__(self):
        self.counts: pd.Series | None = None

    def add(self, values) -> None:
        values = pd.Series(np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values)
        counts = values.value_counts(dropna=True)
        self.counts = counts if self.counts is None else self.counts.add(counts, fill_value=0)

    def add_lists(self, lists) -> None:
        """The values of a column of lists (histories)."""
        cells = [np.asarray(v) for v in lists if len(v)]
        if cells:
            self.add(np.concatenate(cells))

    def result(self, min_count: int = MIN_COUNT) -> list:
        """The values seen at least `min_count` times, sorted, as JSON-ready Python values."""
        if self.counts is None:
            return []
        kept = self.counts[self.counts >= min_count].index
        return sorted(v.item() if hasattr(v, "item") else v for v in kept)
