"""Vocabularies (grec.data.vocabulary): values as the logs have them (strings, booleans, integers of
any size) to embedding rows, with a frequency floor and an unknown bucket, the same in memory,
from Arrow and after a save."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from grec.data import vocabulary
from grec.data.spec import FeatureSpec
from grec.data.vocabulary import MIN_COUNT, Codes, Vocabulary, VocabularyFit


def test_values_seen_often_enough_have_rows_and_the_rest_share_the_unknown_bucket():
    fit = VocabularyFit()
    fit.add(np.array(["premium", "free", "free", "student"], dtype=object))
    fit.add(np.array(["premium", "family", "free"], dtype=object))  # parts add up
    assert MIN_COUNT == 2 and fit.result() == ["free", "premium"]  # student and family: once each
    assert fit.result(min_count=1) == ["family", "free", "premium", "student"]
    vocab = Vocabulary(fit.result())
    assert vocab.index(np.array(["premium", "student", "free", None], dtype=object)).tolist() == [1, 2, 0, 2]
    assert vocab.index_arrow(pa.chunked_array([["premium", None, "trial"]])).tolist() == [1, 2, 2]


def test_ids_of_any_size_and_type_map_to_dense_rows():
    big = np.array([9_993_765, 12, 9_993_765, 12, 2**62], np.int64)
    fit = VocabularyFit()
    fit.add(big)
    vocab = Vocabulary(fit.result())
    assert vocab.values == [12, 9_993_765] and vocab.size == 2
    assert vocab.index(np.array([9_993_765, 2**62, -1])).tolist() == [1, 2, 2]
    assert vocab.index_arrow(pa.array([12, 7], pa.int64())).tolist() == [0, 2]
    assert vocab.index(np.array(["12"], dtype=object)).tolist() == [2]  # "12" is not 12: no silent coercion
    flags = VocabularyFit()
    flags.add(np.array([True, False, True, False]))
    assert Vocabulary(flags.result()).index(np.array([False, True])).tolist() == [0, 1]


@pytest.mark.parametrize("values", [[3, 12, 9_993_765], ["free", "premium"], [False, True]])
def test_a_requests_few_values_map_as_a_training_columns_many(values):
    """The dict lookup (a request's few values) and the pandas Index (a column) give the same rows,
    for ids, strings and flags, and for what is not a value: None, NaN, a bool among integers, a
    string among integers."""
    vocab = Vocabulary(values)
    probe = [*values, np.int64(12), 12.0, "12", None, float("nan"), True, False, 2**62, "premium", np.str_("free")]
    few = np.array(probe, dtype=object)
    many = np.array(probe * (vocabulary.SMALL // len(probe) + 1), dtype=object)
    assert len(few) <= vocabulary.SMALL < len(many)
    assert vocab.index(few).tolist() * (len(many) // len(few)) == vocab.index(many).tolist()


def test_histories_count_their_values_and_old_specs_read_codes():
    fit = VocabularyFit()
    fit.add_lists([np.array(["a", "b"], dtype=object), np.array([], dtype=object), np.array(["b", "a", "c"], dtype=object)])
    assert fit.result() == ["a", "b"]
    legacy = Codes(5)
    assert legacy.index(np.array([0, 4, 5, -3])).tolist() == [0, 4, 5, 5]


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    plans = np.array(["free", "student", "family", "premium", "trial"], dtype=object)
    tracks = np.array([f"track-{i:07d}" for i in rng.integers(0, 30, n)], dtype=object)
    return pd.DataFrame({
        "plan": plans[rng.integers(0, 4, n)], "spend": rng.random(n).astype(np.float32),
        "item_id": tracks, "genre": rng.choice(["rock", "jazz", "pop"], n), "price": rng.random(n).astype(np.float32),
        "event_timestamp": pd.Timestamp("2026-03-02", tz="UTC") + pd.to_timedelta(np.arange(n), unit="min"),
        "viewed_item_ids": [tracks[max(0, i - 3):i] for i in range(n)],
        "visited_page_ids": [np.array(["home"] * min(i, 3), dtype=object) for i in range(n)],
        "image_embedding": [np.zeros(1, np.float32)] * n, "search_query": "", "description": "", "flow": "AAL"})


def test_a_spec_fits_and_encodes_string_values_and_reads_them_back_the_same(tmp_path):
    frame = _frame(400)
    spec = FeatureSpec.fit(frame, context_categorical=["plan"], context_numerical=["spend"], item_categorical=["genre"],
                           item_numerical=["price"], seq_len=4, impression_context=[], value_types={"item_id": "string"})
    assert spec.vocabularies["plan"] == ["family", "free", "premium", "student"] and spec.context_cardinalities == [4]
    assert spec.vocabularies["page"] == ["home"] and spec.n_pages == 1 and spec.n_items == len(spec.vocabularies["item_id"])
    spec.save(tmp_path / "features.json")
    assert json.loads((tmp_path / "features.json").read_text())["vocabularies"]["genre"] == ["jazz", "pop", "rock"]
    again = FeatureSpec.load(tmp_path / "features.json")
    later = frame.head(5).copy()
    later.loc[later.index[0], "plan"] = "trial"  # never in training: the unknown bucket
    later.loc[later.index[1], "item_id"] = "track-9999999"
    for s in (spec, again):
        f = s.encode(later)
        assert f.context_categorical[0, 0] == 4 and f.item[1] == 1
        assert f.context_categorical[2, 0] == spec.vocabularies["plan"].index(later["plan"].iloc[2])
        assert f.item[2] == spec.vocabularies["item_id"].index(later["item_id"].iloc[2]) + 2
        assert f.seq_pages[4].tolist() == [0, 2, 2, 2] and f.seq_items[4, -1] == spec.vocabularies["item_id"].index(
            later["viewed_item_ids"].iloc[4][-1]) + 2
