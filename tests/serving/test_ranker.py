"""Ranking requests in-process against a real Feast online store (SQLite, and Redis) and the
registered GRec (the `served` fixture in conftest.py)."""

import numpy as np
import pytest

from grec.features.store import OnlineReader, online_store_description
from grec.features.training_set import open_source
from grec.lifecycle.pyfunc import request_frame, score_frame
from grec.serving.ranker import RankRequest, Ranker, RequestError


@pytest.fixture
def ranker(served, online_backend):
    return Ranker(served["model"], served["spec"], OnlineReader())


def busy_customer(served) -> int:
    return int(served["tables"]["impressions"]["customer_id"].value_counts().index[0])


def test_rank_sorts_the_candidates_and_scores_them_like_the_registry_model(ranker, served):
    request = RankRequest(busy_customer(served), "EUP", "CVR", list(range(0, 100, 2)), search_query="5g phone deal")
    result = ranker.rank(request)
    assert sorted(result.item_ids) == sorted(request.item_ids) and result.task == "EUP+CVR"
    assert result.scores == sorted(result.scores, reverse=True) and not result.cold_start_customer
    # the same rows through the pyfunc path (one row at a time, full MoE): the registry model in-process
    rows = request_frame(result.features, "CVR", served["spec"].input_columns())
    expected = dict(zip(result.features["item_id"], score_frame(served["model"], served["spec"], rows)))
    np.testing.assert_allclose(result.scores, [expected[i] for i in result.item_ids], rtol=0, atol=1e-5)


def test_features_come_from_the_online_store(ranker, served, online_backend):
    assert online_store_description(ranker.reader.store).split()[0] == online_backend
    customer = busy_customer(served)
    result = ranker.rank(RankRequest(customer, "AAL", "CTR", [3, 8]))
    frame = result.features.set_index("item_id").loc[[3, 8]].reset_index()
    profile = served["tables"]["customers"].set_index("customer_id").loc[customer]
    assert frame["monthly_bill"].iloc[0] == pytest.approx(profile["monthly_bill"])
    assert frame["region"].iloc[0] == profile["region"] and frame["position"].tolist() == [0, 0]
    items = served["tables"]["items"].set_index("item_id")
    assert frame["price"].tolist() == pytest.approx(items.loc[[3, 8], "price"].tolist())
    assert frame["description"].tolist() == items.loc[[3, 8], "description"].tolist()
    newest = served["tables"]["impressions"].query("customer_id == @customer").sort_values("event_timestamp").iloc[-1]
    assert list(frame["viewed_item_ids"].iloc[0]) == list(newest["viewed_item_ids"])
    assert not result.cold_start_customer and result.cold_start_items == []


def test_unknown_customers_and_items_get_cold_start_defaults_and_flags(ranker):
    result = ranker.rank(RankRequest(10_000_000, "NSE", "CTR", [1, 99_999, 2]))
    assert result.cold_start_customer and result.cold_start_items == [99_999]
    assert len(result.scores) == 3 and all(0 < s < 1 for s in result.scores)


@pytest.mark.parametrize("change, field", [
    ({"flow": "XYZ"}, "flow: unknown flow 'XYZ'"),
    ({"use_case": "LTV"}, "use_case: unknown use case 'LTV'"),
    ({"customer_id": -4}, "customer_id: must be a non-negative integer"),
    ({"item_ids": [1, -2]}, r"item_ids\[1\]: must be a non-negative integer"),
    ({"item_ids": []}, "item_ids: at least one candidate"),
    ({"item_ids": list(range(1001))}, "item_ids: 1001 candidates, at most 1000"),
])
def test_bad_requests_are_refused_naming_the_field(ranker, change, field):
    request = RankRequest(**{"customer_id": 1, "flow": "AAL", "use_case": "CTR", "item_ids": [1, 2]} | change)
    with pytest.raises(RequestError, match=field):
        ranker.rank(request)


def test_score_rows_routes_each_row_through_its_task(ranker, served):
    frame = open_source(served["home"] / "set", splits=("test",)).frame.head(40)
    rows = request_frame(frame, np.resize(["CTR", "ATC", "CVR", "CTCVR"], len(frame)), served["spec"].input_columns())
    np.testing.assert_allclose(ranker.score_rows(rows), score_frame(served["model"], served["spec"], rows), rtol=0, atol=1e-5)
    rows.loc[3, "price"] = float("nan")
    with pytest.raises(RequestError, match=r"rows\[3\].price: NaN"):
        ranker.score_rows(rows)


def test_compiled_task_networks_score_as_the_model(served, monkeypatch):
    """torch.compile'd task networks (one per flow here: the same code for every task) give the
    eager path's scores on requests they were not compiled on (other candidate counts, a query, an
    unknown item), and the other tasks stay on the eager path."""
    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    eager, compiled = (Ranker(served["model"], served["spec"], OnlineReader()) for _ in range(2))
    tasks = served["spec"].tasks
    chosen = [f * len(tasks.use_cases) + f % len(tasks.use_cases) for f in range(len(tasks.flows))]
    compiled.compile(only=chosen)
    assert sorted(compiled.compiled) == chosen
    customer = busy_customer(served)
    for k, task in enumerate(chosen + [1]):
        flow, use_case = tasks.flows[task // len(tasks.use_cases)], tasks.use_cases[task % len(tasks.use_cases)]
        request = RankRequest(customer, flow, use_case, list(range(k, 7 + 13 * k)) + [99_999],
                              search_query="5g phone deal" if k % 2 else "")
        a, b = eager.rank(request), compiled.rank(request)
        got = dict(zip(b.item_ids, b.scores))
        np.testing.assert_allclose([got[i] for i in a.item_ids], a.scores, rtol=0, atol=1e-5)


def test_the_catalogue_follows_the_store_without_holding_a_request(ranker, served, online_backend):
    """Items are read once into memory; a change of the store (a write, then the registry's own
    change: an apply or a materialization) is picked up in the background, while requests keep the
    snapshot they had; the next read serves the new values."""
    import time

    import pandas as pd

    from grec.features.store import feature_store, repo_objects

    request = RankRequest(busy_customer(served), "AAL", "CTR", [3, 8])
    before = ranker.catalogue.snapshot
    price = before.table.set_index("item_id").loc[3, "price"]
    store = feature_store()
    view = store.get_feature_view("item_catalog")
    row = ranker.reader.items([3])
    changed = pd.DataFrame({"item_id": [3], **{f.name: row[f.name] for f in view.features},
                            view.batch_source.timestamp_field: [pd.Timestamp.now(tz="UTC")]}).assign(price=price + 1000)
    try:
        store.write_to_online_store("item_catalog", changed)
        assert ranker.rank(request).features.set_index("item_id").loc[3, "price"] == price  # the snapshot held
        store.apply(repo_objects())  # the registry changes, as on every apply and materialization
        time.sleep(1.1)  # the catalogue looks at the store at most once a second
        ranker.rank(request)  # this request starts the refresh and is served from the old snapshot
        deadline = time.monotonic() + 60
        while ranker.catalogue.snapshot is before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ranker.catalogue.snapshot is not before
        assert ranker.rank(request).features.set_index("item_id").loc[3, "price"] == pytest.approx(price + 1000)
    finally:  # the item as it was, for the other tests (stamped later: Redis keeps the newest write)
        store.write_to_online_store("item_catalog", changed.assign(
            price=price, **{view.batch_source.timestamp_field: [pd.Timestamp.now(tz="UTC")]}))
