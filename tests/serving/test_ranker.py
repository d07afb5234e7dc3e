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
    frame, cold_customer, cold_items = ranker.request_frame(RankRequest(customer, "AAL", "CTR", [3, 8]))
    profile = served["tables"]["customers"].set_index("customer_id").loc[customer]
    assert frame["monthly_bill"].iloc[0] == pytest.approx(profile["monthly_bill"])
    assert frame["region"].iloc[0] == profile["region"] and frame["position"].tolist() == [0, 0]
    items = served["tables"]["items"].set_index("item_id")
    assert frame["price"].tolist() == pytest.approx(items.loc[[3, 8], "price"].tolist())
    assert frame["description"].tolist() == items.loc[[3, 8], "description"].tolist()
    newest = served["tables"]["impressions"].query("customer_id == @customer").sort_values("event_timestamp").iloc[-1]
    assert list(frame["viewed_item_ids"].iloc[0]) == list(newest["viewed_item_ids"])
    assert not cold_customer and cold_items == []


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
