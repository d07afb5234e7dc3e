import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from grec.data import schema
from grec.data.spec import FeatureSpec, pad_right_aligned
from grec.data.tables import join_tables, load_table, load_tables
from grec.data.task_rows import build_task_rows
from grec.features.training_set import load_dataset
from grec.data.schema import SchemaError


def test_rows_follow_the_paper(small_dataset):
    data = small_dataset
    labels = data.labels.labels
    for split, rows in data.rows.items():
        n_imps = len(torch.unique(rows.impression))
        per_use_case = torch.bincount(rows.use_case, minlength=4).tolist()
        ctr, atc, cvr, ctcvr = per_use_case
        assert ctr == atc == ctcvr == n_imps, split  # over every impression
        cvr_imps = rows.impression[rows.use_case == schema.USE_CASES.index("CVR")].numpy()
        assert cvr == int(labels[rows.impression[rows.use_case == 0].numpy(), 0].sum())  # over clicked ones
        assert (labels[cvr_imps, 0] == 1).all()


def test_labels_match_their_use_case(small_dataset):
    rows, labels = small_dataset.rows["train"], small_dataset.labels.labels
    for u, use_case in enumerate(schema.USE_CASES):
        sel = rows.use_case == u
        col = schema.LABELS.index(schema.USE_CASE_LABEL[use_case])
        assert np.array_equal(rows.label[sel].numpy(), labels[rows.impression[sel].numpy(), col].astype(np.float32))


def test_upsampling_repeats_rows_of_a_use_case_or_task(small_dataset):
    data = small_dataset
    flows = data.features.flow.numpy()
    base = data.rows["train"]
    train_imps = torch.unique(base.impression).numpy()
    up = build_task_rows(data.labels, train_imps, flows, {"CVR": 3, "AAL+CTR": 2})
    count = lambda r, u: int((r.use_case == u).sum())
    assert count(up, 2) == 3 * count(base, 2)
    aal_ctr = lambda r: int(((r.use_case == 0) & (data.features.flow[r.impression] == 0)).sum())
    assert aal_ctr(up) == 2 * aal_ctr(base)
    assert count(up, 1) == count(base, 1)


def test_time_split_keeps_the_test_week_last(small_dataset):
    split = small_dataset.split
    assert split.end - split.test_start == pd.Timedelta(days=7)
    assert split.test_start - split.valid_start == pd.Timedelta(days=7)
    tr, va, te = (set(small_dataset.rows[s].impression.tolist()) for s in ("train", "valid", "test"))
    assert not (tr & va) and not (va & te) and not (tr & te)


def test_sequences_are_right_aligned_and_truncated():
    seqs = np.array([np.array([5, 6, 7]), np.array([], dtype=np.int64), np.arange(30)], dtype=object)
    out = pad_right_aligned(seqs, 4, shift=2, vocabulary=100)
    assert out.tolist() == [[0, 7, 8, 9], [0, 0, 0, 0], [28, 29, 30, 31]]


def test_history_ids_the_vocabulary_does_not_hold_are_unknown_not_another_item():
    # 48 items -> indices 2..49; 1 is unknown. An id past the vocabulary (or near int64's top, which
    # would wrap round if shifted first) is 1, not the last item's index.
    seqs = np.array([np.array([47, 48, 99, 2**63 - 1, -3])], dtype=object)
    assert pad_right_aligned(seqs, 5, 2, vocabulary=48).tolist() == [[49, 1, 1, 1, 1]]


def test_unseen_categories_go_to_the_unknown_bucket(small_data, texts):
    frame = join_tables(load_tables(small_data))
    spec = FeatureSpec.fit(frame)
    frame.loc[0, "region"] = 10_000
    frame.loc[1, "item_id"] = 10_000
    f = spec.encode(frame.iloc[:2], texts)
    assert f.context_categorical[0, 0] == spec.context_cardinalities[0]
    assert f.item[1] == 1


def test_values_never_seen_are_unknown_and_unknown_flows_are_named(small_data, texts):
    frame = join_tables(load_tables(small_data))
    spec = FeatureSpec.fit(frame)
    bad = frame.iloc[:5].copy()
    bad.loc[bad.index[3], "brand"] = -2  # a value like any other: the training rows never had it
    brand = spec.item_categorical.index("brand")
    assert spec.encode(bad, texts).item_categorical[3, brand] == spec.item_cardinalities[brand]
    bad = frame.iloc[:5].copy()
    bad["flow"] = bad["flow"].astype(object)
    bad.loc[bad.index[2], "flow"] = "XYZ"
    with pytest.raises(SchemaError, match="unknown flow 'XYZ' at row 2"):
        spec.encode(bad, texts)


def _rewrite(src, dst, table, change):
    df = pq.read_table(src / table.file).to_pandas()
    dst.mkdir(exist_ok=True)
    change(df).to_parquet(dst / table.file)
    return dst / table.file


def test_missing_column_is_named(small_data, tmp_path):
    path = _rewrite(small_data, tmp_path, schema.IMPRESSIONS, lambda df: df.drop(columns=["click"]))
    with pytest.raises(SchemaError, match=r"impressions\.parquet.*missing column 'click'"):
        load_table(path, schema.IMPRESSIONS)


def test_wrong_dtype_is_named_and_a_wider_float_read_as_it_is(small_data, tmp_path):
    path = _rewrite(small_data, tmp_path, schema.ITEMS, lambda df: df.assign(price=df["price"].astype("float64")))
    assert load_table(path, schema.ITEMS)["price"].dtype == np.float32  # pandas' float64: read as float32
    path = _rewrite(small_data, tmp_path, schema.ITEMS, lambda df: df.assign(price=df["price"].astype(str)))
    with pytest.raises(SchemaError, match=r"items\.parquet.*column 'price' has type string, expected float32"):
        load_table(path, schema.ITEMS)


def test_impressions_of_unknown_customers_are_refused(small_data):
    tables = load_tables(small_data)
    tables["customers"] = tables["customers"].iloc[1:]
    with pytest.raises(SchemaError, match="customer_id absent from customers"):
        join_tables(tables)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SchemaError, match="file not found"):
        load_dataset(tmp_path)
