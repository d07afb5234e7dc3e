"""Census-Income through the training pipeline: a source without items to rank, without times
(every row stamped alike) and split by a column. The pipeline still validates, builds its Feast
views, trains, gates on the split column's test rows, registers and packages; `/score` serves it
with the registry model's scores. Skipped where ../shared/data is absent."""

import httpx
import numpy as np
import pytest

from grec.features.training_set import open_source
from grec.lifecycle.pyfunc import request_frame, score_frame
from grec.lifecycle.registry import Registry
from grec.serving.bento import local_service
from tests.data.test_real import DATA
from tests.pipeline.whole_path import loaded_and_trained

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DATA / "census-income-kdd").exists(), reason=f"{DATA / 'census-income-kdd'} is absent")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with loaded_and_trained(tmp_path_factory, "census", DATA / "census-income-kdd", 15_000, 10_000) as state:
        yield state


def test_census_trains_gates_registers_and_packages(trained):
    out = trained["stdout"]
    assert "| CENSUS+INCOME |" in out and "| CENSUS+NEVER_MARRIED |" in out
    assert "Held out: the rows whose 'split' column says test" in out
    assert "Registered grec v1; aliases: challenger=v1, champion=v1" in out and "Bento: grec-ranker:" in out


def test_score_serves_census_rows_with_the_registry_models_scores(state):
    model, spec = Registry("grec").load("1")
    training_set = next((state["home"] / "pipelines").glob("grec-training-*/build-features/training_set"))
    held_out = open_source(training_set, splits=("test",)).frame.head(20)
    full = request_frame(held_out, np.resize(["INCOME", "NEVER_MARRIED"], len(held_out)), spec.input_columns())
    rows = full.drop(columns=["search_query", "description", "image_embedding", "viewed_item_ids", "visited_page_ids"])
    with local_service(state["home"]) as url, httpx.Client(base_url=url, timeout=60) as client:
        meta = client.post("/metadata").json()
        scored = client.post("/score", json={"rows": rows.to_dict(orient="records")})
        wrong_flow = client.post("/score", json={"rows": [rows.iloc[0].to_dict() | {"flow": "AAL"}]})
    assert meta["tasks"] == ["CENSUS+INCOME", "CENSUS+NEVER_MARRIED"]
    assert scored.status_code == 200, scored.text
    np.testing.assert_allclose(scored.json(), score_frame(model, spec, full), rtol=0, atol=1e-5)
    assert wrong_flow.status_code == 400 and "'AAL'" in wrong_flow.text
