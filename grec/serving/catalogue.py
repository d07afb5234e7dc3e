"""The catalogue a ranking worker holds in memory: every item's serving features, read from the
online store in one call and encoded once into the model's item tensors.

Item features and vectors change only when the store is written (a materialization, an `apply`),
so a request reads only its customer from the store and gathers its candidates' rows here. The
worker notices a write by the Feast registry file changing (every materialization records itself
there), or after `max_age_seconds` at the latest (a write that bypassed the registry); the new
snapshot is read and encoded on a background thread and swapped in whole, so no request waits for
it or sees half of one. Unknown ids get the cold-start row (the vocabulary's unknown bucket for
categorical codes, zeros for numbers and vectors).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from grec.data.batch import ITEM_FIELDS, Features
from grec.data.spec import FeatureSpec
from grec.data.vocabulary import Vocabulary

log = logging.getLogger(__name__)


def request_columns(spec: FeatureSpec, customer: dict, flow: str, search_query: str = "",
                    context: dict | None = None, default: int = 0) -> dict[str, object]:
    """The request side of one scoring row in the training-set layout: the customer's profile and
    histories as the store holds them (None: the unknown bucket; 0 for a missing number), the
    impression context the request gives (else `default`), the query and the route (`flow`: the
    flow, or the task tokens joined with '+')."""
    from grec.data.contract import HISTORY_VOCABULARY

    context = context or {}
    columns: dict[str, object] = {}
    for name in spec.context_categorical + spec.context_numerical:
        if name in spec.impression_context:
            columns[name] = context.get(name, default)
        elif name in spec.context_categorical:
            columns[name] = customer.get(name)
        else:
            value = customer.get(name)
            columns[name] = 0.0 if value is None else float(value)
    columns |= {"search_query": search_query, **dict(zip(spec.tasks.tokens, flow.split("+")))}  # the route's tokens
    for name in ("viewed_item_ids", "visited_page_ids"):
        strings = spec.value_types.get(HISTORY_VOCABULARY[name]) == "string"
        columns[name] = np.asarray(customer.get(name) or [], dtype=object if strings else np.int64)
    return columns


@dataclass(frozen=True)
class Snapshot:
    """One read of the catalogue: its raw rows (the known items, then one cold-start row) and the
    same rows encoded; never changed once built."""

    table: pd.DataFrame  # (K + 1) rows, item columns as the store holds them; the last is cold-start
    index: Vocabulary  # the K known item ids -> their row (K where unknown)
    features: Features  # (K + 1) rows: the item fields encoded (the request fields are placeholders)
    store_state: tuple  # what the store looked like when read (see Catalogue.store_state)
    loaded_at: float  # time.time()
    cold_item: dict  # the cold-start row's columns

    @property
    def size(self) -> int:
        """Known items."""
        return self.index.size


class Catalogue:
    """Every catalogue item's encoded features, refreshed when the store changes."""

    def __init__(self, reader, spec: FeatureSpec, texts, max_age_seconds: float = 300.0):
        self.reader, self.spec, self.texts, self.max_age_seconds = reader, spec, texts, max_age_seconds
        self._snapshot: Snapshot | None = None
        self._loading = threading.Lock()
        self._checked = -math.inf

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot (read now if none yet; a newer one swapped in when the store changed)."""
        if self._snapshot is None:
            with self._loading:
                if self._snapshot is None:
                    self._snapshot = self._load()
        elif time.monotonic() - self._checked > 1.0:  # a stat a second, not one per request
            self._checked = time.monotonic()
            stale = self.store_state() != self._snapshot.store_state
            if (stale or time.time() - self._snapshot.loaded_at > self.max_age_seconds) and self._loading.acquire(False):
                threading.Thread(target=self._refresh, name="catalogue-refresh", daemon=True).start()
        return self._snapshot

    def store_state(self) -> tuple:
        """(modification time, size) of the Feast registry file: every materialization rewrites it."""
        path = self.reader.store.config.registry.path
        try:
            stat = os.stat(path)
        except (OSError, TypeError):  # a registry that is not a local file: the age alone decides
            return ()
        return (stat.st_mtime_ns, stat.st_size)

    def _refresh(self) -> None:
        try:
            self._snapshot = self._load()
        except Exception:  # the store is down or half-written: keep serving the snapshot we have
            log.exception("catalogue refresh failed; serving the snapshot of %s",
                          time.ctime(self._snapshot.loaded_at if self._snapshot else 0))
        finally:
            self._loading.release()

    def _load(self) -> Snapshot:
        from grec.features import sources

        state = self.store_state()
        spec = self.spec
        ids = pd.read_parquet(sources.source_path("item_catalog"), columns=["item_id"])["item_id"].unique()
        items = self.reader.items(ids)
        items = items[items[spec.item_numerical[0]].notna()].reset_index(drop=True) if spec.item_numerical else items
        table = pd.DataFrame({"item_id": items["item_id"]})  # values as the logs have them: the spec maps them
        for name in spec.item_categorical:
            table[name] = items[name]
        for name in spec.item_numerical:
            table[name] = items[name].astype(np.float64)
        if spec.has("item_vectors"):
            self.texts.remember(items["description"], items["text_embedding"])
            table["image_embedding"] = [np.asarray(v, np.float32) for v in items["image_embedding"]]
            table["description"] = items["description"].astype(str)
        table = spec.fill_absent(table, "items")  # a source without item vectors: the constants trained with
        cold = {"item_id": None, **{c: None for c in spec.item_categorical}, **{c: 0.0 for c in spec.item_numerical},
                "image_embedding": np.zeros(spec.image_dim, dtype=np.float32), "description": ""}
        table = pd.concat([table, pd.DataFrame([cold])], ignore_index=True)
        placeholder = request_columns(spec, {}, spec.tasks.flows[0])
        frame = pd.concat([table, pd.DataFrame({k: [v] * len(table) for k, v in placeholder.items()})], axis=1)
        features = spec.encode(frame, self.texts)
        index = Vocabulary(table["item_id"].iloc[:-1].tolist())
        return Snapshot(table, index, features, state, time.time(), table.iloc[-1].to_dict())

    def lookup(self, item_ids: list) -> tuple[Snapshot, np.ndarray]:
        """(the snapshot used, (N,) each id's row in it: the cold-start row where unknown)."""
        snapshot = self.snapshot
        return snapshot, snapshot.index.index(item_ids)

    def items(self, snapshot: Snapshot, rows: np.ndarray, item_ids: list) -> dict[str, torch.Tensor]:
        """The item fields (ITEM_FIELDS) of `item_ids` (at `rows` of `snapshot`), their own id codes included:
        an id the store lacks but the model learned keeps its embedding, as in training."""
        index = torch.from_numpy(rows)
        fields = {name: getattr(snapshot.features, name).index_select(0, index) for name in ITEM_FIELDS}
        fields["item"] = torch.from_numpy(self.spec.item_codes(np.asarray(item_ids, dtype=object)))
        return fields
