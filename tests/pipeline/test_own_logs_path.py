"""A user's own logs through the whole platform: tables with other names everywhere (their own
files and key, time and flow columns, flows WEB/APP/EMAIL, use cases CLICK/BUY, their own customer
and item columns, no search text, no histories, no item vectors), never renamed on disk,
scaffolded with `grec data init`, validated, trained, gated,
registered and packaged by the training pipeline, served, and watched by the monitoring pipeline.
A storefront request on that model is refused naming what it does not have."""

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from grec.features.store import OnlineReader
from grec.features.training_set import open_source
from grec.lifecycle.pyfunc import request_frame, score_frame
from grec.lifecycle.registry import Registry
from grec.pipeline.run import run_local, task_outputs
from grec.serving.bento import local_service
from grec.serving.ranker import RankRequest, Ranker
from tests.data.own_logs import NAMED_FILES, START, USE_CASE_ARGS, write_named_logs
from tests.pipeline.whole_path import cli, in_process_scores, train_with_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("own-logs-state")
    data = write_named_logs(tmp_path_factory.mktemp("own-logs") / "shop", n_impressions=8000)
    files = [f"--file={t}={f}" for t, f in NAMED_FILES.items()]
    init = cli(home, "data", "init", data, *files, "--column", "flow=surface", *USE_CASE_ARGS)
    assert init.returncode == 0, init.stdout + init.stderr
    validate = cli(home, "validate", "--data", data)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    stdout = train_with_pipeline(home, data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield {"home": home, "data": data, "stdout": stdout, "init": init.stdout}


def test_the_pipeline_takes_a_scaffolded_contract_to_a_champion(state):
    out = state["stdout"]
    for task in ("WEB+CLICK", "APP+BUY", "EMAIL+CLICK"):
        assert f"| {task} |" in out
    assert "Held out: the week 2026-03-23" in out  # split by time: the last week
    assert "Registered grec v1; aliases: challenger=v1, champion=v1" in out and "Bento: grec-ranker:" in out
    training_set = next((state["home"] / "pipelines").glob("grec-training-*/build-features/training_set"))
    assert open_source(training_set).contract.name == json.loads((state["data"] / "contract.json").read_text())["name"]


def test_the_service_ranks_with_the_models_own_vocabulary_and_refuses_the_storefronts(state):
    impressions = pd.read_parquet(state["data"] / "plays.parquet")
    customer = int(impressions["listener_id"].value_counts().index[0])
    body = {"customer_id": customer, "flow": "APP", "use_case": "CLICK", "item_ids": list(range(12)), "slot": 0}
    with local_service(state["home"]) as url, httpx.Client(base_url=url, timeout=60) as client:
        meta = client.post("/metadata").json()
        answer = client.post("/rank", json=body)
        storefront = client.post("/rank", json=body | {"flow": "AAL"})
        use_case = client.post("/rank", json=body | {"use_case": "CTR"})
        search = client.post("/rank", json=body | {"search_query": "unlimited plan"})
        model, spec = Registry("grec").load("1")
        training_set = next((state["home"] / "pipelines").glob("grec-training-*/build-features/training_set"))
        held_out = open_source(training_set, splits=("test",)).frame.head(6)
        full = request_frame(held_out, np.resize(["CLICK", "BUY"], len(held_out)), spec.input_columns())
        # a /score row has the model's own columns only: no search, history or item-vector fields
        rows = full.drop(columns=["search_query", "description", "image_embedding", "viewed_item_ids", "visited_page_ids"])
        scored = client.post("/score", json={"rows": rows.to_dict(orient="records")})
        with_search = client.post("/score", json={"rows": full.head(1).to_dict(orient="records")})
    assert meta["tasks"] == ["APP+CLICK", "APP+BUY", "EMAIL+CLICK", "EMAIL+BUY", "WEB+CLICK", "WEB+BUY"]
    assert meta["inputs"] == [] and meta["request_context"] == ["slot"]
    assert answer.status_code == 200, answer.text
    ranked = answer.json()["items"]
    request = RankRequest(customer, "APP", "CLICK", list(range(12)), context={"slot": 0})
    expected = in_process_scores(Ranker(model, spec, OnlineReader()).request_frame(request)[0], model, spec, "CLICK")
    np.testing.assert_allclose([i["score"] for i in ranked], [expected[i["item_id"]] for i in ranked], rtol=0, atol=1e-5)
    assert storefront.status_code == 400 and "'AAL'" in storefront.text and "APP, EMAIL, WEB" in storefront.text
    assert use_case.status_code == 400 and "'CTR'" in use_case.text
    assert search.status_code == 400 and "search_query" in search.text  # the model's data has no search text
    assert scored.status_code == 200, scored.text
    np.testing.assert_allclose(scored.json(), score_frame(model, spec, full), rtol=0, atol=1e-5)
    assert with_search.status_code == 400 and "search_query" in with_search.text


def test_monitoring_watches_the_contracts_columns(state):
    last_week = (START + pd.Timedelta(days=21)).isoformat(), (START + pd.Timedelta(days=28)).isoformat()
    outputs = task_outputs(run_local("monitoring", {"data": str(state["data"]), "start": last_week[0], "end": last_week[1]}))
    result = json.loads(open(outputs["drift-report"]["artifacts"]["result"]["path"]).read())
    assert {f["column"] for f in result["features"]} == {"segment", "country", "spend", "genre", "price_eur", "slot", "surface"}
    assert {t["column"].removeprefix("score ") for t in result["tasks"]} | set(result["not_compared"]) == {
        "APP+CLICK", "APP+BUY", "EMAIL+CLICK", "EMAIL+BUY", "WEB+CLICK", "WEB+BUY"}
