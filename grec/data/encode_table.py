"""Encoding a buffer of parquet rows straight from Arrow, for the streamed path.

`FeatureSpec.encode` works on a pandas frame, which turns every list cell (behaviour sequences,
image vectors) and every text into a Python object: fine for a request, the main cost when
training re-encodes each epoch's rows. Here the same encoding runs on Arrow's flat buffers, and
text vectors are kept by reference (each distinct text once per buffer), so a buffer of a few
hundred thousand impressions costs a few hundred bytes each and a batch is a gather.

The tensors are the ones `FeatureSpec.encode` makes from the same rows (tests/data/test_stream.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from grec.data.batch import Features
from grec.data.spec import FeatureSpec, pad_flat, signed_log1p
from grec.data.schema import SchemaError
from grec.data.text import TextEmbeddingStore


@dataclass
class EncodedRows:
    """N rows encoded, as arrays (Arrow's read-only buffers where no copy was needed); search
    and description vectors by reference into `vectors`. `take` gathers a batch's Features."""

    arrays: dict[str, np.ndarray]  # Features fields but search and item_text
    search_row: np.ndarray  # (N,) int64 row of each search query's vector in `vectors`
    text_row: np.ndarray  # (N,) int64 row of each description's vector
    vectors: np.ndarray  # (U, D) float32: the distinct texts of these rows

    def __len__(self) -> int:
        return len(self.search_row)

    def take(self, index: torch.Tensor) -> Features:
        """The Features of rows `index` (fresh, writable tensors)."""
        i = index.numpy()
        gathered = {k: torch.from_numpy(v[i]) for k, v in self.arrays.items()}
        return Features(**gathered, search=torch.from_numpy(self.vectors[self.search_row[i]]),
                        item_text=torch.from_numpy(self.vectors[self.text_row[i]]))


def _numpy(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _numbers(table: pa.Table, names: list[str]) -> np.ndarray:
    columns = [_numpy(table, c).astype(np.float64, copy=False) for c in names]
    return np.stack(columns, axis=1) if columns else np.zeros((len(table), 0), np.float64)


def _codes(spec: FeatureSpec, table: pa.Table, names: list[str]) -> np.ndarray:
    """(N, F) each column's vocabulary rows."""
    out = [spec.vocabulary(name).index_arrow(table.column(name)) for name in names]
    return np.stack(out, axis=1) if out else np.zeros((len(table), 0), np.int64)


def _lists(table: pa.Table, name: str, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (flat values, lengths), chunk by chunk: no concatenation of the lists;
    `rows(values)`: the flat values as their vocabulary's rows."""
    column = table.column(name)
    if column.null_count:
        raise SchemaError(f"column '{name}': {column.null_count} rows hold no list (null)")
    chunks = column.chunks or [pa.array([], column.type)]
    flat = [c.flatten() for c in chunks]
    return (np.concatenate([rows(f) if rows else f.to_numpy(zero_copy_only=False) for f in flat]),
            np.concatenate([c.value_lengths().to_numpy(zero_copy_only=False) for c in chunks]))


def _texts(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A text column as (its distinct texts, each row's index among them)."""
    column = table.column(name)
    distinct = pc.unique(column)
    return distinct.to_numpy(zero_copy_only=False), pc.index_in(column, value_set=distinct).to_numpy().astype(np.int64)


def encode_table(spec: FeatureSpec, table: pa.Table, texts: TextEmbeddingStore) -> EncodedRows:
    """Rows of a training set (Arrow) -> EncodedRows, as `spec.encode` would encode them."""
    n = len(table)
    tokens = [table.column(t).cast(pa.string()) for t in spec.tasks.tokens]
    routes = tokens[0] if len(tokens) == 1 else pc.binary_join_element_wise(*tokens, "+")
    flows = pc.index_in(routes, value_set=pa.array(spec.tasks.flows))
    if flows.null_count:
        row = int(np.flatnonzero(flows.is_null().to_numpy(zero_copy_only=False))[0])
        raise SchemaError(f"{spec.route_columns()}: unknown {spec.route_word()} {routes[row].as_py()!r} at row {row}; "
                          f"known: {spec.tasks.flows}")
    image, lengths = _lists(table, "image_embedding")
    if (lengths != spec.image_dim).any():
        row = int(np.flatnonzero(lengths != spec.image_dim)[0])
        raise SchemaError(f"column 'image_embedding': row {row} has length {lengths[row]}, expected {spec.image_dim}")
    queries, search_index = _texts(table, "search_query")
    descriptions, text_index = _texts(table, "description")
    vectors = texts.lookup(np.concatenate([queries, descriptions]))
    items, pages = spec.vocabulary("item_id"), spec.vocabulary("page")
    item = items.index_arrow(table.column("item_id"))
    seq_items, seq_items_len = _lists(table, "viewed_item_ids", items.index_arrow)
    seq_pages, seq_pages_len = _lists(table, "visited_page_ids", pages.index_arrow)
    history = pad_flat(seq_items, seq_items_len, spec.seq_len, 2, items.size)
    seq_categorical, seq_numerical = spec.history_attributes(history)
    arrays = dict(
        context_categorical=_codes(spec, table, spec.context_categorical),
        context_numerical=signed_log1p(_numbers(table, spec.context_numerical)),
        item=np.where(item >= spec.n_items, 1, item + 2),
        item_categorical=_codes(spec, table, spec.item_categorical),
        item_numerical=signed_log1p(_numbers(table, spec.item_numerical)),
        item_image=image.astype(np.float32, copy=False).reshape(n, spec.image_dim),
        seq_items=history,
        seq_pages=pad_flat(seq_pages, seq_pages_len, spec.seq_len, 2, pages.size),
        flow=flows.to_numpy().astype(np.int64),
        seq_item_categorical=seq_categorical,
        seq_item_numerical=seq_numerical,
    )
    return EncodedRows(arrays, search_index, text_index + len(queries), vectors)
