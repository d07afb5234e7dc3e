"""The item attributes a model learns (grec.data.item_attributes): each item's attributes as the training rows
last showed them, so the items of a history enter the model with their attributes, the same in
memory, streamed, saved with the spec and at serving time."""

import numpy as np
import pandas as pd
import torch

from grec.data.spec import FeatureSpec, signed_log1p


def rows(item_ids, genre, price, days, histories):
    return pd.DataFrame({
        "segment": 0, "spend": 1.0, "item_id": item_ids, "genre": genre, "price_eur": np.asarray(price, np.float32),
        "event_timestamp": pd.Timestamp("2026-03-02", tz="UTC") + pd.to_timedelta(days, unit="D"),
        "viewed_item_ids": [np.asarray(h, np.int64) for h in histories],
        "visited_page_ids": [np.zeros(len(h), np.int64) for h in histories],
        "image_embedding": [np.zeros(2, np.float32)] * len(item_ids), "search_query": "", "description": "",
        "flow": "AAL"})


# min_count=1: every value of these few rows has its own row (the floor is tests/data/test_vocabulary.py's)
SPEC = dict(context_categorical=["segment"], context_numerical=["spend"], item_categorical=["genre"],
            item_numerical=["price_eur"], seq_len=4, min_count=1)


def test_each_item_keeps_its_latest_attributes_from_the_training_rows_in_parts():
    first = rows([0, 1, 2], [3, 1, 2], [10, 20, 30], [0, 1, 2], [[], [0], [0, 1]])
    later = rows([1, 0], [1, 4], [25, 12], [5, 3], [[2], []])  # item 1's price changed, item 0's genre
    spec = FeatureSpec.fit_parts([later, first], **SPEC)  # parts in any order: the latest time wins
    assert spec.item_attributes == {"item_ids": [0, 1, 2], "categorical": {"genre": [4, 1, 2]},
                              "numerical": {"price_eur": [12.0, 25.0, 30.0]}}
    assert spec.ranges == {"spend": [1.0, 1.0], "price_eur": [10.0, 30.0]}  # over every part (the serving bounds)
    assert spec == FeatureSpec(**{**SPEC, **{k: getattr(spec, k) for k in ("context_cardinalities", "item_cardinalities",
                                                                           "n_items", "n_pages", "image_dim", "item_attributes",
                                                                           "vocabularies", "ranges")}})


def test_a_historys_items_carry_their_attributes_and_unknown_ones_the_unknown_code(tmp_path):
    spec = FeatureSpec.fit(rows([0, 1, 2], [3, 1, 2], [10, 20, 30], [0, 1, 2], [[], [], [3]]), **SPEC)
    # item 3 is in the vocabulary (a history held it) but was never shown: no attributes
    assert spec.vocabularies["item_id"] == [0, 1, 2, 3] and spec.vocabularies["genre"] == [1, 2, 3]
    frame = rows([0, 0], [3, 3], [10, 10], [9, 9], [[2, 0, 3], [1, 7]])  # 7: outside the vocabulary
    for s in (spec, _reloaded(spec, tmp_path)):
        f = s.encode(frame)
        unknown = spec.item_cardinalities[0]  # 3: genres 1, 2 and 3 were seen (rows 0, 1, 2)
        np.testing.assert_array_equal(f.seq_items.numpy(), [[0, 4, 2, 5], [0, 0, 3, 1]])
        np.testing.assert_array_equal(f.seq_item_categorical[..., 0].numpy(), [[unknown, 1, 2, unknown],
                                                                               [unknown, unknown, 0, unknown]])
        np.testing.assert_allclose(f.seq_item_numerical[..., 0].numpy(),
                                   [[0, signed_log1p(np.array([30.0]))[0], signed_log1p(np.array([10.0]))[0], 0],
                                    [0, 0, signed_log1p(np.array([20.0]))[0], 0]], rtol=1e-6)


def _reloaded(spec: FeatureSpec, tmp_path) -> FeatureSpec:
    spec.save(tmp_path / "features.json")
    return FeatureSpec.load(tmp_path / "features.json")


def test_specs_saved_before_the_table_read_every_history_item_as_unknown(tmp_path):
    spec = FeatureSpec.fit(rows([0, 1], [3, 1], [10, 20], [0, 1], [[], []]), **SPEC)
    spec.item_attributes = {}
    f = spec.encode(rows([0], [3], [10], [9], [[0, 1]]))
    assert (f.seq_item_categorical == spec.item_cardinalities[0]).all() and (f.seq_item_numerical == 0).all()
    assert f.seq_item_categorical.shape == (1, 4, 1) and f.seq_item_categorical.dtype == torch.long
