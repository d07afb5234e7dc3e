"""The BentoML service started with `grec serve` on loopback, once over each online store (SQLite,
Redis): the same scores as the registry model in-process (read from SQLite), a 4xx naming the
problem for every bad request, a prediction log of what was served, and an A/B split by customer."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from grec.features.store import OnlineReader
from grec.features.training_set import open_source
from grec.lifecycle.pyfunc import request_frame, score_frame
from grec.lifecycle.registry import Registry
from grec.serving.bento import local_service
from grec.serving.experiment import Split
from grec.serving.prediction_log import read_log
from grec.serving.ranker import RankRequest, Ranker


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def service(served, request):
    env = request.getfixturevalue("served_redis") if request.param == "redis" else {}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():  # what `grec serve` inherits
            mp.setenv(name, value)
        # an A/A test: the champion's own version as the challenger, for half of the customers
        experiment = {"GREC_SERVE_CHALLENGER": f"grec:{served['version']}", "GREC_SERVE_EXPERIMENT": "aa"}
        with local_service(served["home"], env=experiment) as url, httpx.Client(base_url=url, timeout=30) as client:
            yield {"client": client, "backend": request.param}


def busy_customer(served) -> int:
    return int(served["tables"]["impressions"]["customer_id"].value_counts().index[0])


def test_health_and_metadata(service, served):
    client = service["client"]
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    meta = client.post("/metadata").json()
    assert meta["registered_model"] == "grec" and meta["version"] == served["version"] and meta["alias"] == "champion"
    assert meta["sub_networks"] == 12 and "NSE+CTCVR" in meta["tasks"] and meta["feature_service"] == "grec_serving_v1"
    assert meta["online_store"].split()[0] == service["backend"]  # the store `grec serve` was pointed at


def test_rank_answers_with_the_registry_models_scores(service, served, monkeypatch):
    body = {"customer_id": busy_customer(served), "flow": "EUP", "use_case": "CTCVR",
            "item_ids": list(range(50)), "search_query": "unlimited plan"}
    response = service["client"].post("/rank", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True) and sorted(i["item_id"] for i in answer["items"]) == list(range(50))
    # in-process: the registered pyfunc model (full MoE, one row at a time) on the same features
    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    model, spec = Registry("grec").load(served["version"])
    frame = Ranker(model, spec, OnlineReader()).rank(RankRequest(**body)).features
    expected = dict(zip(frame["item_id"], score_frame(model, spec, request_frame(frame, "CTCVR", spec.input_columns()))))
    np.testing.assert_allclose(scores, [expected[i["item_id"]] for i in answer["items"]], rtol=0, atol=1e-5)


def test_score_rows_match_the_pyfunc(service, served, monkeypatch):
    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    frame = open_source(served["home"] / "set", splits=("test",)).frame.head(8)
    rows = request_frame(frame, np.resize(["CTR", "ATC", "CVR", "CTCVR"], len(frame)), served["spec"].input_columns())
    response = service["client"].post("/score", json={"rows": rows.to_dict(orient="records")})
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json(), score_frame(served["model"], served["spec"], rows), rtol=0, atol=1e-5)


GOOD = {"customer_id": 1, "flow": "AAL", "use_case": "CTR", "item_ids": [1, 2]}


@pytest.mark.parametrize("body, names", [
    (GOOD | {"flow": "XYZ"}, "flow"),
    (GOOD | {"use_case": "LTV"}, "use_case"),
    (GOOD | {"customer_id": -1}, "customer_id"),
    (GOOD | {"item_ids": [3, -2]}, "item_ids"),
    (GOOD | {"item_ids": list(range(1001))}, "item_ids"),
    (GOOD | {"item_ids": []}, "item_ids"),
    ({"flow": "AAL", "use_case": "CTR", "item_ids": [1]}, "customer_id"),
])
def test_bad_rank_requests_get_a_4xx_naming_the_problem(service, body, names):
    response = service["client"].post("/rank", json=body)
    assert 400 <= response.status_code < 500 and names in response.text, (response.status_code, response.text)


def test_malformed_bodies_and_nan_get_a_4xx(service, served):
    client = service["client"]
    response = client.post("/rank", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    frame = open_source(served["home"] / "set", splits=("test",)).frame.head(2)
    rows = request_frame(frame, "CTR", served["spec"].input_columns()).to_dict(orient="records")
    rows[1]["price"] = float("nan")
    body = '{"rows": ' + __import__("json").dumps(rows) + "}"  # NaN is not JSON; Python writes it anyway
    response = client.post("/score", content=body.encode(), headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500 and "price" in response.text, response.text


def test_the_prediction_log_holds_what_was_served(service, served):
    body = {"customer_id": busy_customer(served), "flow": "NSE", "use_case": "CTR", "item_ids": [4, 5, 6]}
    answer = service["client"].post("/rank", json=body).json()
    deadline, rows = time.monotonic() + 30, None  # the writer flushes every 5 s, off the request path
    while time.monotonic() < deadline:
        log = read_log(served["home"] / "predictions")
        rows = log[log["request_id"] == answer["request_id"]] if "request_id" in log else log
        if len(rows):
            break
        time.sleep(0.5)
    rows = rows.sort_values("rank")
    assert rows["item_id"].tolist() == [i["item_id"] for i in answer["items"]]
    assert rows["score"].tolist() == pytest.approx([i["score"] for i in answer["items"]])
    assert set(rows["flow"]) == {"NSE"} and set(rows["use_case"]) == {"CTR"} and "monthly_bill" in rows


def test_package_builds_a_bento_with_the_champion(served):
    env = os.environ | {"GREC_HOME": str(served["home"])}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("BENTOML_HOME", None)
    out = subprocess.run([str(Path(sys.executable).with_name("grec")), "package"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    tag = out.stdout.strip().splitlines()[-1]
    name, version = tag.split(":")
    bento = served["home"] / "bentoml" / "bentos" / name / version
    manifest = (bento / "bento.yaml").read_text()
    assert f"tag: grec:v{served['version']}" in manifest and "service: grec.serving.service:GRecRanker" in manifest
    assert (bento / "src" / "grec" / "serving" / "service.py").exists() and not (bento / "src" / ".grec").exists()
    assert (bento / "env" / "docker" / "Dockerfile").exists() and (bento / "apis" / "openapi.yaml").exists()
    assert "libgomp1" in (bento / "env" / "docker" / "Dockerfile").read_text()  # LightGBM's OpenMP, for a tree champion
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()  # the service's own export of the lock
    assert "\ntorch==2.13.0" in requirements and "\npyspark==" not in requirements and "\npytest==" not in requirements


def logged(served, request_ids: set[str], timeout: float = 30.0):
    """The prediction log's rows of these requests, once all are written (every 5 s, off the request path)."""
    deadline = time.monotonic() + timeout
    while True:
        log = read_log(served["home"] / "predictions")
        rows = log[log["request_id"].isin(request_ids)] if "request_id" in log else pd.DataFrame(columns=["request_id"])
        if set(rows["request_id"]) == request_ids or time.monotonic() > deadline:  # nothing written yet: wait
            return rows
        time.sleep(0.5)


def test_an_ab_split_ranks_each_customer_by_one_arm_and_logs_it(service, served):
    client = service["client"]
    meta = client.post("/metadata").json()
    assert meta["experiment"]["name"] == "aa" and meta["experiment"]["challenger"] == f"grec:v{served['version']}"
    customers = served["tables"]["customers"]["customer_id"].head(12).tolist()
    sent = {}
    for i, customer in enumerate(customers * 2):  # each customer twice
        request_id = f"{service['backend']}-page-{i}"
        when = f"2026-09-0{1 + i % 6}T10:00:00+02:00"
        body = {"customer_id": int(customer), "flow": "AAL", "use_case": "CTR", "item_ids": [1, 2, 3],
                "request_id": request_id, "event_timestamp": when}
        answer = client.post("/rank", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["request_id"] == request_id  # the caller's id answered back
        sent[request_id] = (customer, when)
    rows = logged(served, set(sent)).drop_duplicates("request_id")
    assert len(rows) == len(sent)
    split = Split("aa", 0.5)
    for row in rows.itertuples():
        customer, when = sent[row.request_id]
        assert row.arm == split.arm(customer) and row.experiment == "aa"
        assert pd.Timestamp(row.event_timestamp) == pd.Timestamp(when)  # the page's time, for the outcomes' join
    assert rows.groupby("customer_id")["arm"].nunique().max() == 1  # one arm per customer
    assert set(rows["arm"]) == {"champion", "challenger"}
    for bad in ({"event_timestamp": "yesterday"}, {"event_timestamp": "2026-09-01T10:00:00"},  # no UTC offset
                {"event_timestamp": 1788000000}, {"request_id": "has space"}):  # a number is not a date-time string
        body = {"customer_id": 1, "flow": "AAL", "use_case": "CTR", "item_ids": [1]} | bad
        answer = client.post("/rank", json=body)
        assert answer.status_code == 400 and next(iter(bad)) in answer.text, answer.text
