"""A folder in the AliExpress layout (generated files; the release is not shipped) through both
pipelines: countries as flows, no customers or items to speak of (one placeholder each, the
customers without features: no profile view), no time (one stamp), split by a column."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from grec.cli import app
from grec.data.real import aliexpress
from grec.features.store import feature_store
from grec.pipeline.run import run_local, task_outputs
from tests.pipeline.whole_path import train_with_pipeline

pytestmark = pytest.mark.slow


def test_aliexpress_layout_through_training_and_monitoring(tmp_path, monkeypatch):
    home = tmp_path / "state"
    source = aliexpress.write_sample(tmp_path / "source", {"NL": 3000, "US": 2000}, seed=2)
    result = CliRunner().invoke(app, ["data", "load", "aliexpress", "--source", str(source), "--out", str(tmp_path / "ali")])
    assert result.exit_code == 0, result.output
    out = train_with_pipeline(home, tmp_path / "ali")
    for task in ("NL+CTR", "NL+CTCVR", "US+CTR", "US+CTCVR"):
        assert f"| {task} |" in out
    assert "Held out: the rows whose 'split' column says test" in out and "Registered grec v1" in out

    monkeypatch.setenv("GREC_HOME", str(home))
    store = feature_store()
    assert {v.name for v in store.list_feature_views()} == {"item_catalog"}  # its customers have no features
    day = aliexpress.STAMP
    outputs = task_outputs(run_local("monitoring", {"data": str(tmp_path / "ali"), "start": day.isoformat(),
                                                    "end": (day + pd.Timedelta(days=1)).isoformat()}))
    result = json.loads(open(outputs["drift-report"]["artifacts"]["result"]["path"]).read())
    assert {"categorical_1", "numerical_1", "flow"} <= {f["column"] for f in result["features"]}
    assert {t["column"].removeprefix("score ") for t in result["tasks"]} | set(result["not_compared"]) == {
        "NL+CTR", "NL+CTCVR", "US+CTR", "US+CTCVR"}
