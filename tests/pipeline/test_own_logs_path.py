"""A user's own logs through the whole platform, as pandas writes them and as the team names them:
their own files and key, time, flow and history columns, string categoricals, string ids of any
size, int ids past any embedding table, nanosecond times, bool labels, float64 numbers, list<string>
histories (flows WEB/APP/EMAIL, use cases CLICK/BUY, no search text, no item vectors), never
rewritten: scaffolded with `grec data init`, validated, trained, gated, registered and packaged by
the training pipeline, served with the listeners' and tracks' own ids, a later week appended with
`grec data append` and watched by the monitoring pipeline. A storefront request on that model is
refused naming what it does not have."""

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from grec import settings
from grec.features.store import OnlineReader
from grec.features.training_set import open_source
from grec.lifecycle.pyfunc import request_frame, score_frame
from grec.lifecycle.registry import Registry
from grec.pipeline.run import run_local, task_outputs
from grec.serving.bento import local_service
from grec.serving.prediction_log import read_log
from grec.serving.ranker import RankRequest, Ranker
from tests.data.own_logs import PANDAS_COLUMNS, PANDAS_FILES, START, USE_CASE_ARGS, write_pandas_logs
from tests.pipeline.whole_path import cli, in_process_scores, train_with_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("own-logs-state")
    folder = tmp_path_factory.mktemp("own-logs")
    data = write_pandas_logs(folder / "shop", n_impressions=8000, later=folder / "next-week", later_days=7)
    files = [f"--file={t}={f}" for t, f in PANDAS_FILES.items()]
    before = {f: (data / f).read_bytes() for f in PANDAS_FILES.values()}
    init = cli(home, "data", "init", data, *files, *PANDAS_COLUMNS, *USE_CASE_ARGS)
    assert init.returncode == 0, init.stdout + init.stderr
    validate = cli(home, "validate", "--data", data)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert {f: (data / f).read_bytes() for f in PANDAS_FILES.values()} == before  # nothing rewritten
    stdout = train_with_pipeline(home, data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield {"home": home, "data": data, "stdout": stdout, "init": init.stdout, "later": folder / "next-week"}


def test_the_pipeline_takes_a_scaffolded_contract_to_a_champion(state):
    out = state["stdout"]
    for task in ("WEB+CLICK", "APP+BUY", "EMAIL+CLICK"):
        assert f"| {task} |" in out
    assert "Held out: the week 2026-03-16" in out  # split by time: the last week (the next one comes later)
    assert "Registered grec v1; aliases: challenger=v1, champion=v1" in out and "Bento: grec-ranker:" in out
    training_set = next((state["home"] / "pipelines").glob("grec-training-*/build-features/training_set"))
    assert open_source(training_set).contract.name == json.loads((state["data"] / "contract.json").read_text())["name"]


def test_the_service_ranks_the_users_own_ids_and_refuses_the_storefronts(state):
    plays = pd.read_parquet(state["data"] / "plays.parquet")
    listener = plays["listener_id"].value_counts().index[0]  # "listener-000123456789": the team's own id
    tracks = pd.read_parquet(state["data"] / "tracks.parquet")["track_id"].tolist()[:11] + ["trk_new-release"]
    body = {"customer_id": listener, "flow": "APP", "use_case": "CLICK", "item_ids": tracks, "slot": 0}
    with local_service(state["home"]) as url, httpx.Client(base_url=url, timeout=60) as client:
        meta = client.post("/metadata").json()
        answer = client.post("/rank", json=body)
        stranger = client.post("/rank", json=body | {"customer_id": "listener-never-seen"})
        as_code = client.post("/rank", json=body | {"customer_id": 17})  # a code where the logs have strings
        item_code = client.post("/rank", json=body | {"item_ids": [3, tracks[0]]})
        storefront = client.post("/rank", json=body | {"flow": "AAL"})
        use_case = client.post("/rank", json=body | {"use_case": "CTR"})
        search = client.post("/rank", json=body | {"search_query": "unlimited plan"})
        model, spec = Registry("grec").load("1")
        training_set = next((state["home"] / "pipelines").glob("grec-training-*/build-features/training_set"))
        held_out = open_source(training_set, splits=("test",)).frame.head(6)
        full = request_frame(held_out, np.resize(["CLICK", "BUY"], len(held_out)), spec.input_columns())
        # a /score row has the model's own columns only: no search or item-vector fields
        rows = full.drop(columns=["search_query", "description", "image_embedding"])
        scored = client.post("/score", json={"rows": rows.to_dict(orient="records")})
        with_search = client.post("/score", json={"rows": full.head(1).to_dict(orient="records")})
    assert meta["tasks"] == ["APP+CLICK", "APP+BUY", "EMAIL+CLICK", "EMAIL+BUY", "WEB+CLICK", "WEB+BUY"]
    assert meta["inputs"] == ["histories"] and meta["request_context"] == ["slot"]
    assert answer.status_code == 200, answer.text
    ranked = answer.json()["items"]
    assert sorted(i["item_id"] for i in ranked) == sorted(tracks)  # the team's ids back, never a code
    assert [i["item_id"] for i in ranked if i["cold_start"]] == ["trk_new-release"]
    assert answer.json()["cold_start_customer"] is False
    assert stranger.status_code == 200 and stranger.json()["cold_start_customer"] is True
    request = RankRequest(listener, "APP", "CLICK", tracks, context={"slot": 0})
    expected = in_process_scores(Ranker(model, spec, OnlineReader()).rank(request).features, model, spec, "CLICK")
    np.testing.assert_allclose([i["score"] for i in ranked], [expected[i["item_id"]] for i in ranked], rtol=0, atol=1e-5)
    assert as_code.status_code == 400 and "customer_id" in as_code.text
    assert item_code.status_code == 400 and "item_ids" in item_code.text
    assert storefront.status_code == 400 and "'AAL'" in storefront.text and "APP, EMAIL, WEB" in storefront.text
    assert use_case.status_code == 400 and "'CTR'" in use_case.text
    assert search.status_code == 400 and "search_query" in search.text  # the model's data has no search text
    assert scored.status_code == 200, scored.text
    assert isinstance(rows["plan"].iloc[0], str) and isinstance(rows["item_id"].iloc[0], str)
    assert rows["explicit"].dtype == bool  # sent as JSON true/false
    np.testing.assert_allclose(scored.json(), score_frame(model, spec, full), rtol=0, atol=1e-5)
    assert with_search.status_code == 400 and "search_query" in with_search.text
    log = read_log(settings.predictions_dir())
    assert listener in set(log["customer_id"]) and "trk_new-release" in set(log["item_id"])  # the log speaks the users' ids
    assert set(log["plan"].dropna()) <= {"free", "student", "family", "premium"}


def test_monitoring_watches_an_appended_week_in_the_users_names(state):
    appended = cli(state["home"], "data", "append", state["data"], state["later"])
    assert appended.returncode == 0, appended.stdout + appended.stderr
    next_week = (START + pd.Timedelta(days=21)).isoformat(), (START + pd.Timedelta(days=28)).isoformat()
    outputs = task_outputs(run_local("monitoring", {"data": str(state["data"]), "start": next_week[0], "end": next_week[1]}))
    result = json.loads(open(outputs["drift-report"]["artifacts"]["result"]["path"]).read())
    assert {f["column"] for f in result["features"]} == {"plan", "country", "spend", "genre", "explicit", "price_eur", "slot",
                                                        "surface", "history_length"}
    assert {t["column"].removeprefix("score ") for t in result["tasks"]} | set(result["not_compared"]) == {
        "APP+CLICK", "APP+BUY", "EMAIL+CLICK", "EMAIL+BUY", "WEB+CLICK", "WEB+BUY"}
