"""The feature spec: which columns feed which input, the vocabularies fitted on training rows
(grec.data.vocabulary: values as the logs have them, rare and unseen ones to a reserved bucket),
and the encoding of a frame into Features. Saved beside the model weights: serving encodes
requests with the same spec.

Dimension letters: N impressions, L sequence length, F feature fields.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from grec.data import schema
from grec.data.item_attributes import ItemAttributesFit, lookup_tables
from grec.data.contract import ALL_INPUTS, OPTIONAL_INPUTS, fill_absent_inputs
from grec.data.schema import TELECOM_TASKS, SchemaError, TaskVocabulary
from grec.data.text import ENCODER_NAME, EMBEDDING_DIM, TextEmbeddingStore
from grec.data.vocabulary import MIN_COUNT, SMALL, Codes, Vocabulary, VocabularyFit
from grec.data.batch import Features


def signed_log1p(x: np.ndarray) -> np.ndarray:
    # Prices, bills and counts are heavy-tailed; this keeps their order and tames the tail.
    return (np.sign(x) * np.log1p(np.abs(x))).astype(np.float32)


def _vectors(values: np.ndarray, column: str, dim: int) -> np.ndarray:
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    if (lengths != dim).any():
        row = int(np.flatnonzero(lengths != dim)[0])
        raise SchemaError(f"column '{column}': row {row} has length {lengths[row]}, expected {dim}")
    return np.stack(values).astype(np.float32) if len(values) else np.zeros((0, dim), np.float32)


def _numbers(column, names: list[str], n: int) -> np.ndarray:
    """(N, F) float64 of the numeric columns `names`."""
    if not names:
        return np.zeros((n, 0), np.float64)
    return np.stack([np.asarray(column(c), dtype=np.float64) for c in names], axis=1)


def pad_right_aligned(values: np.ndarray, length: int, shift: int, vocabulary: int) -> np.ndarray:
    """Ragged id lists -> (N, length): keep the last `length`, right-align, id+shift; an id outside
    [0, vocabulary) becomes 1 (unknown), 0 is padding."""
    lens = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    if lens.sum() == 0:
        return np.zeros((len(values), length), dtype=np.int64)
    return pad_flat(np.concatenate([np.asarray(v, dtype=np.int64) for v in values]), lens, length, shift, vocabulary)


def pad_flat(flat: np.ndarray, lens: np.ndarray, length: int, shift: int, vocabulary: int) -> np.ndarray:
    """The same from the lists' values end to end and each list's length."""
    out = np.zeros((len(lens), length), dtype=np.int64)
    if len(flat) == 0:
        return out
    ends = np.cumsum(lens)
    for lo in range(0, len(lens), 8192):  # in chunks: the (rows, length) temporaries stay in cache
        end, n = ends[lo:lo + 8192], lens[lo:lo + 8192]
        source = end[:, None] - length + np.arange(length)[None, :]  # the value each slot takes
        filled = source >= (end - n)[:, None]  # right-aligned: the slots before a short list stay 0
        ids = flat[np.where(filled, source, 0)]
        # compared before the shift (an id near int64's top would wrap round to negative); an id
        # the vocabulary does not hold is the unknown index, never aliased to a real item
        out[lo:lo + 8192] = np.where(filled, np.where((ids < 0) | (ids >= vocabulary), 1, ids + shift), 0)
    return out


@dataclass
class FeatureSpec:
    """Which columns feed which input, and the vocabularies fitted on training rows.

    Saved beside the model weights: serving encodes requests with the same spec.
    """

    context_categorical: list[str] = field(default_factory=lambda: list(schema.CONTEXT_CATEGORICAL))
    context_numerical: list[str] = field(default_factory=lambda: list(schema.CONTEXT_NUMERICAL))
    item_categorical: list[str] = field(default_factory=lambda: list(schema.ITEM_CATEGORICAL))
    item_numerical: list[str] = field(default_factory=lambda: list(schema.ITEM_NUMERICAL))
    context_cardinalities: list[int] = field(default_factory=list)
    item_cardinalities: list[int] = field(default_factory=list)
    n_items: int = 0  # the item ids with their own embedding row (the "item_id" vocabulary)
    n_pages: int = 0  # the pages with their own row (the "page" vocabulary)
    seq_len: int = 20
    text_encoder: str = ENCODER_NAME  # encodes search queries and item descriptions
    search_dim: int = EMBEDDING_DIM
    text_dim: int = EMBEDDING_DIM
    image_dim: int = 0
    tasks: TaskVocabulary = TELECOM_TASKS
    # Context columns the impression itself carries (page, channel, position...): a ranking request
    # gives them; the other context columns are the customer's, read from the feature store.
    impression_context: list[str] = field(default_factory=lambda: schema.IMPRESSIONS.names(
        schema.Role.CONTEXT_CATEGORICAL, schema.Role.CONTEXT_NUMERICAL))
    inputs: list[str] = field(default_factory=lambda: list(ALL_INPUTS))  # optional inputs the data has (contract)
    # each item's attributes as the training rows last showed them (grec.data.item_attributes): how a
    # history's items are looked up; empty in specs saved before it existed (all unknown)
    item_attributes: dict = field(default_factory=dict)
    # the user's names of the core columns they name otherwise ({"flow": "surface"}): what reports
    # and drift call them (the contract's user_names)
    user_names: dict = field(default_factory=dict)
    # {column: its values with their own row}: every categorical column, "item_id" (the candidates'
    # and the histories' items) and "page" (the histories' pages); empty in specs saved before
    # vocabularies (integer codes, grec.data.vocabulary.Codes)
    vocabularies: dict = field(default_factory=dict)
    min_count: int = MIN_COUNT  # the frequency floor of a value's own row
    # {column: "string"} for the key, categorical and history columns whose values are not integers
    value_types: dict = field(default_factory=dict)
    # {numerical column: [min, max] over the training rows}: what the ranking service's bounds are
    # drawn from (grec.serving.requests); empty in specs saved before it
    ranges: dict = field(default_factory=dict)

    def vocabulary(self, column: str) -> Vocabulary | Codes:
        """How `column`'s values map to rows ("item_id", "page" or a categorical column)."""
        cache = self.__dict__.setdefault("_vocabularies", {})  # built once per spec; not a field: never saved
        if column not in cache:
            if column in self.vocabularies:
                cache[column] = Vocabulary(self.vocabularies[column])
            else:
                sizes = {"item_id": self.n_items, "page": self.n_pages,
                         **dict(zip(self.context_categorical + self.item_categorical,
                                    self.context_cardinalities + self.item_cardinalities))}
                cache[column] = Codes(sizes[column])
        return cache[column]

    def rows(self, column: str, values) -> np.ndarray:
        """(N,) each value's embedding row (its vocabulary's size where it has none)."""
        return self.vocabulary(column).index(values)

    def user_name(self, column: str) -> str:
        return self.user_names.get(column, column)

    def has(self, optional_input: str) -> bool:
        return optional_input in self.inputs

    def history_attributes(self, seq_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Encoded history ids (N, L) -> their items' (N, L, Fi) codes and (N, L, Fin) numbers."""
        if getattr(self, "_tables", None) is None:  # built once per spec (not a field: never saved)
            self._tables = lookup_tables(self.item_attributes, self.item_categorical, self.item_numerical,
                                         self.item_cardinalities, self.n_items, signed_log1p, self.rows)
        codes, values = self._tables
        return codes[seq_items], values[seq_items]

    def __post_init__(self) -> None:
        if isinstance(self.tasks, dict):  # read back from features.json
            self.tasks = TaskVocabulary.from_dict(self.tasks)

    @classmethod
    def fit(cls, frame: pd.DataFrame, **overrides) -> FeatureSpec:
        return cls.fit_parts([frame], **overrides)

    @classmethod
    def fit_parts(cls, frames: Iterable[pd.DataFrame], **overrides) -> FeatureSpec:
        """One pass over the training rows in parts (parquet row groups, for data larger than
        memory): every fitted value is a maximum, so the parts give the spec the whole would."""
        spec = cls(**overrides)
        categorical = [*spec.context_categorical, *spec.item_categorical]
        fits = {c: VocabularyFit() for c in [*categorical, "item_id", "page"]}
        rows = 0
        image_dim = None
        attributes = ItemAttributesFit(spec.item_categorical, spec.item_numerical)
        ranges: dict[str, list[float]] = {}
        for frame in frames:
            if not len(frame):
                continue
            rows += len(frame)
            attributes.add(frame)
            for c in [*spec.context_numerical, *spec.item_numerical]:
                values = frame[c].to_numpy(np.float64)
                values = values[np.isfinite(values)]
                if not values.size:
                    continue
                lo, hi = float(values.min()), float(values.max())
                seen = ranges.setdefault(c, [lo, hi])
                seen[:] = [min(seen[0], lo), max(seen[1], hi)]
            for c in categorical:
                fits[c].add(frame[c].to_numpy())
            fits["item_id"].add(frame["item_id"].to_numpy())
            fits["item_id"].add_lists(frame["viewed_item_ids"].to_numpy())
            fits["page"].add_lists(frame["visited_page_ids"].to_numpy())
            if image_dim is None:
                image_dim = len(frame["image_embedding"].iloc[0])
        if not rows:
            raise SchemaError("no training rows to fit the feature vocabularies on")
        spec.vocabularies = {c: fit.result(spec.min_count) for c, fit in fits.items()}
        spec.context_cardinalities = [len(spec.vocabularies[c]) for c in spec.context_categorical]
        spec.item_cardinalities = [len(spec.vocabularies[c]) for c in spec.item_categorical]
        spec.n_items, spec.n_pages = len(spec.vocabularies["item_id"]), len(spec.vocabularies["page"])
        spec.image_dim = image_dim
        spec.item_attributes = attributes.result()
        spec.ranges = ranges
        return spec

    def fit_columns(self) -> list[str]:
        """The columns `fit_parts` reads."""
        return [*self.context_categorical, *self.context_numerical, *self.item_categorical, *self.item_numerical,
                "item_id", "event_timestamp",
                "viewed_item_ids", "visited_page_ids", "image_embedding"]

    def encode(self, frame: pd.DataFrame | dict[str, np.ndarray], texts: TextEmbeddingStore | None = None) -> Features:
        """Frame rows -> model inputs; `frame` a DataFrame, or a dict of equal-length arrays (a
        ranking request's one row, without building a DataFrame). Search queries and descriptions
        get their vectors from `texts` (default: the state folder's text-embedding table), encoding
        unseen texts once."""
        texts = texts if texts is not None else TextEmbeddingStore()
        if texts.encoder.name != self.text_encoder:
            raise SchemaError(f"texts are encoded with {texts.encoder.name}; this spec needs {self.text_encoder}")
        column = frame.__getitem__ if isinstance(frame, dict) else (lambda name: frame[name].to_numpy())
        n = len(column("item_id"))
        seq_items = self.history_rows(column("viewed_item_ids"), "item_id")
        seq_categorical, seq_numerical = self.history_attributes(seq_items)
        tensors = dict(
            context_categorical=self._categorical(column, self.context_categorical, n),
            context_numerical=signed_log1p(_numbers(column, self.context_numerical, n)),
            search=texts.lookup(column("search_query")),
            item=self.item_codes(column("item_id")),
            item_categorical=self._categorical(column, self.item_categorical, n),
            item_numerical=signed_log1p(_numbers(column, self.item_numerical, n)),
            item_image=_vectors(column("image_embedding"), "image_embedding", self.image_dim),
            item_text=texts.lookup(column("description")),
            seq_items=seq_items,
            seq_pages=self.history_rows(column("visited_page_ids"), "page"),
            flow=self.flow_codes(self.tasks.routes_of(column)),
            seq_item_categorical=seq_categorical,
            seq_item_numerical=seq_numerical,
        )
        return Features(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()})

    def item_codes(self, item_ids) -> np.ndarray:
        """(N,) candidate item ids -> the model's item codes (row + 2; 1 for an id it never saw)."""
        rows = self.rows("item_id", item_ids)
        return np.where(rows >= self.n_items, 1, rows + 2)

    def _categorical(self, column, names: list[str], n: int) -> np.ndarray:
        """(N, F) the embedding row of each of `names`' values."""
        rows = [self.rows(c, column(c)) for c in names]
        return np.stack(rows, axis=1) if rows else np.zeros((n, 0), np.int64)

    def history_rows(self, lists: np.ndarray, vocabulary: str) -> np.ndarray:
        """Ragged lists of values -> (N, seq_len) rows right-aligned (0 padding, 1 unknown, row + 2)."""
        lens = np.fromiter((len(v) for v in lists), dtype=np.int64, count=len(lists))
        if lens.sum() == 0:
            return np.zeros((len(lists), self.seq_len), dtype=np.int64)
        vocab = self.vocabulary(vocabulary)
        flat = vocab.index(np.concatenate([np.asarray(v) for v in lists if len(v)]))
        return pad_flat(flat, lens, self.seq_len, 2, vocab.size)

    def flow_codes(self, flows) -> np.ndarray:
        """(N,) int64 index of each row's route (a frame's task token columns, or the routes' names)
        in the task vocabulary; an unknown route is an error naming the row."""
        values = (self.tasks.routes_of(flows) if isinstance(flows, pd.DataFrame)
                  else np.asarray(flows, dtype=object))
        known = self.tasks.flows
        if len(values) <= SMALL:  # a request's row: a Categorical costs 0.3 ms, a dict a microsecond
            position = {flow: i for i, flow in enumerate(known)}
            codes = np.fromiter((position.get(v, -1) for v in values), dtype=np.int64, count=len(values))
        else:
            codes = pd.Categorical(values, categories=known).codes.astype(np.int64)
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            raise SchemaError(f"{self.route_columns()}: unknown {self.route_word()} {values[row]!r} at row {row}; "
                              f"known: {known}")
        return codes

    def route_columns(self) -> str:
        """The task token columns under the user's names, for messages: "column 'surface'"."""
        names = [self.user_name(t) for t in self.tasks.tokens]
        return f"column '{names[0]}'" if len(names) == 1 else "columns " + "+".join(f"'{n}'" for n in names)

    def route_word(self) -> str:
        return "flow" if len(self.tasks.tokens) == 1 else "combination"

    def fill_absent(self, frame: pd.DataFrame, table: str | None = None) -> pd.DataFrame:
        """`frame` with the constant columns of the optional inputs this model's data has not
        (what training saw for them), where a request leaves them out; `table`: only that table's."""
        columns = [c for name, by_table in OPTIONAL_INPUTS.items() if not self.has(name)
                   for t, cols in by_table.items() if table in (None, t) for c in cols]
        return fill_absent_inputs(frame, columns, self.image_dim)

    def input_columns(self) -> list[str]:
        """The frame columns `encode` reads: a scoring request's contract."""
        return [*self.context_categorical, *self.context_numerical, "search_query", "item_id",
                *self.item_categorical, *self.item_numerical, "image_embedding", "description",
                "viewed_item_ids", "visited_page_ids", *self.tasks.tokens]

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({**dataclasses.asdict(self), "tasks": self.tasks.to_dict()}, indent=2))

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls(**json.loads(Path(path).read_text()))

