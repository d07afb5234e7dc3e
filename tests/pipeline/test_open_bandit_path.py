"""Open Bandit through the whole platform, with no code that knows it: `grec data load` -> the
training pipeline (local runner: validation, Feast views from its contract, GRec and MMoE, gate,
registry, Bento) -> `grec serve` -> `/rank` for a campaign with its own items, scored as the
registry's pyfunc scores them -> the monitoring pipeline on its last day. Skipped where
../shared/data is absent."""

import json
import os

import httpx
import numpy as np
import pandas as pd
import pytest

from grec.features.store import OnlineReader
from grec.lifecycle.registry import Registry
from grec.pipeline.run import run_local, task_outputs
from grec.serving.bento import local_service
from grec.serving.ranker import RankRequest, Ranker
from tests.data.test_real import DATA
from tests.pipeline.whole_path import in_process_scores, loaded_and_trained

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DATA / "open-bandit").exists(), reason=f"{DATA / 'open-bandit'} is absent")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with loaded_and_trained(tmp_path_factory, "open-bandit", DATA / "open-bandit", 12_000) as state:
        yield state


def test_the_pipeline_trains_gates_registers_and_packages_open_bandit(state):
    out = state["stdout"]
    assert "| ALL+CTR |" in out and "| WOMEN+CTR |" in out and "GRec - mmoe" in out  # its own tasks
    assert "Held out: the rows whose 'split' column says test" in out
    assert "Registered grec v1; aliases: challenger=v1, champion=v1" in out and "Bento: grec-ranker:" in out
    assert "Passed: " in out and "impressions (" in out  # the data checks, on its own tables


def test_rank_sorts_a_campaigns_own_items_with_the_registry_models_scores(state):
    impressions = pd.read_parquet(state["data"] / "impressions.parquet")
    men = impressions[impressions["flow"] == "MEN"]
    items = sorted(men["item_id"].unique().tolist())
    customer = int(men["customer_id"].value_counts().index[0])
    body = {"customer_id": customer, "flow": "MEN", "use_case": "CTR", "item_ids": items, "position": 1, "affinity": 0.5}
    with local_service(state["home"]) as url, httpx.Client(base_url=url, timeout=60) as client:
        meta = client.post("/metadata").json()
        answer = client.post("/rank", json=body)
        refused = client.post("/rank", json=body | {"flow": "AAL"})
        storefront_field = client.post("/rank", json=body | {"page_id": 3})
        openapi = client.get("/docs.json").json()
    assert meta["tasks"] == ["ALL+CTR", "MEN+CTR", "WOMEN+CTR"] and meta["request_context"] == ["position", "affinity"]
    assert answer.status_code == 200, answer.text
    ranked = answer.json()["items"]
    scores = [i["score"] for i in ranked]
    assert scores == sorted(scores, reverse=True) and sorted(i["item_id"] for i in ranked) == items
    assert not any(i["cold_start"] for i in ranked)
    model, spec = Registry("grec").load("1")
    request = RankRequest(customer, "MEN", "CTR", items, context={"position": 1, "affinity": 0.5})
    frame = Ranker(model, spec, OnlineReader()).rank(request).features
    expected = in_process_scores(frame, model, spec, "CTR")
    np.testing.assert_allclose(scores, [expected[i["item_id"]] for i in ranked], rtol=0, atol=1e-5)
    assert refused.status_code == 400 and "'AAL'" in refused.text and "flow" in refused.text
    assert storefront_field.status_code == 400 and "page_id" in storefront_field.text
    schema = openapi["paths"]["/rank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
    assert schema["properties"]["flow"]["enum"] == ["ALL", "MEN", "WOMEN"] and "position" in schema["properties"]
    assert "search_query" not in schema["properties"]  # the source has no search text


def test_monitoring_watches_the_last_day_against_the_champion(state):
    stamps = pd.read_parquet(state["data"] / "impressions.parquet", columns=["event_timestamp"])["event_timestamp"]
    last = stamps.max().floor("D")
    outputs = task_outputs(run_local("monitoring", {"data": str(state["data"]), "start": last.isoformat(),
                                                    "end": (last + pd.Timedelta(days=1)).isoformat()}))
    report = outputs["drift-report"]["artifacts"]
    result = json.loads(open(report["result"]["path"]).read())
    assert os.path.getsize(report["report"]["path"]) > 100_000  # Evidently's HTML
    monitored = {f["column"] for f in result["features"]}
    assert {"user_feature_0", "item_feature_0", "position", "affinity", "flow"} <= monitored
    assert not monitored & {"history_length", "has_search"}  # the source has neither
    assert result["reference"]["version"] == "1" and result["window"]["start"].startswith(str(last.date()))
    compared = {t["column"] for t in result["tasks"]} | {f"score {t}" for t in result["not_compared"]}
    assert compared == {"score ALL+CTR", "score MEN+CTR", "score WOMEN+CTR"}
