"""The item attributes a model learned: each item's attributes (the contract's item categorical
and numerical columns) as the training rows last showed them, so that the items of a behaviour
history can enter the model with their attributes, as the candidate does.

A history is a list of item ids; its items' attributes are not in the impression's row. The
table is fitted with the vocabularies (one pass over the training rows: the latest values of
every item shown there) and travels in the FeatureSpec, so training, the pyfunc and the ranking
service look the history up in the same table. An item the training rows never showed (or one
added since) has unknown attributes in a history: the unknown code of each column and zeros.

Dimension letters: N rows, L history length, Fi item categorical columns, Fn item numerical columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


class ItemAttributesFit:
    """Accumulates the latest attributes of every item over parts of the training rows."""

    def __init__(self, categorical: Sequence[str], numerical: Sequence[str]):
        self.columns = ["item_id", *categorical, *numerical]
        self.categorical, self.numerical = list(categorical), list(numerical)
        self.latest: pd.DataFrame | None = None

    def add(self, frame: pd.DataFrame) -> None:
        """Rows with item_id, the item columns and (where the rows have one) event_timestamp."""
        keep = self.columns + (["event_timestamp"] if "event_timestamp" in frame.columns else [])
        part = frame[keep]
        both = part if self.latest is None else pd.concat([self.latest, part], ignore_index=True)
        if "event_timestamp" in both.columns:
            both = both.sort_values("event_timestamp", kind="stable")
        self.latest = both.drop_duplicates("item_id", keep="last")

    def result(self) -> dict:
        """The table as features.json keeps it: the items' ids and each column's values, as the
        logs have them."""
        latest = self.latest if self.latest is not None else pd.DataFrame(columns=self.columns)
        latest = latest.sort_values("item_id")
        return {"item_ids": latest["item_id"].tolist(),
                "categorical": {c: latest[c].tolist() for c in self.categorical},
                "numerical": {c: latest[c].astype(np.float64).tolist() for c in self.numerical}}


def lookup_tables(attributes: dict, categorical: Sequence[str], numerical: Sequence[str], cardinalities: Sequence[int],
                  n_items: int, encode_numbers, rows_of) -> tuple[np.ndarray, np.ndarray]:
    """Tables indexed by the encoded item index (0 padding, 1 unknown, item row + 2): (n_items + 2, Fi)
    codes, the unknown code (the column's cardinality) where the item's attributes are not known,
    and (n_items + 2, Fn) numbers encoded by `encode_numbers` (zeros where unknown). `rows_of(column,
    values)`: the vocabularies' rows of values ("item_id" or a categorical column)."""
    codes = np.tile(np.asarray(cardinalities, np.int64), (n_items + 2, 1)).reshape(n_items + 2, len(categorical))
    values = np.zeros((n_items + 2, len(numerical)), np.float32)
    ids = attributes.get("item_ids", [])
    item_rows = rows_of("item_id", np.asarray(ids)) if len(ids) else np.zeros(0, np.int64)
    inside = item_rows < n_items  # items without a row of their own are the unknown item
    rows = item_rows[inside] + 2
    for j, column in enumerate(categorical):
        if column in attributes.get("categorical", {}):
            codes[rows, j] = rows_of(column, np.asarray(attributes["categorical"][column]))[inside]
    for j, column in enumerate(numerical):
        if column in attributes.get("numerical", {}):
            values[rows, j] = encode_numbers(np.asarray(attributes["numerical"][column], np.float64)[inside])
    return codes, values
