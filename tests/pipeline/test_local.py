"""The pipelines run locally end to end (kfp SubprocessRunner) on a small simulated storefront whose
last monitored week carries a flow shift: training leaves a registered champion and a Bento; a
planted bad table stops at validation with the registry untouched; monitoring flags the drifted
week and not the clean one."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from mlflow import MlflowClient

from grec.data.simulate import SimulationConfig, simulate_to
from grec.lifecycle.registry import Registry
from grec.pipeline.run import RUN_MARKER, PipelineError, run_local, task_outputs

pytestmark = pytest.mark.slow

# 4 training weeks + the test week (2026-06-01 .. 07-06), then a clean week and a drifted one.
WINDOW = {"start": "2026-06-01", "end": "2026-07-06"}
CLEAN, DRIFTED = ("2026-07-06", "2026-07-13"), ("2026-07-13", "2026-07-20")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training pipeline run through the CLI (as a user runs it), in its own state folder."""
    home = tmp_path_factory.mktemp("pipeline-state")
    data = home / "data" / "default"
    simulate_to(data, SimulationConfig(n_impressions=40_000, train_weeks=4, monitor_weeks=2, drift=("flow_shift",), seed=2))
    # floors off: one epoch on 28k impressions is a weak model, and this run is about the plumbing
    policy = home / "gate_policy.yaml"
    policy.write_text("version: 1\nfloors: {default: 0.0}\n")
    env = {**os.environ, "GREC_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    cli = [sys.executable, "-m", "grec.cli", "pipeline", "run", "training", "--local", "--param", f"end={WINDOW['end']}",
           "--param", "epochs=1", "--param", "min_task_positives=1", "--param", f"gate_policy={policy}"]
    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield {"home": home, "data": data, "stdout": done.stdout}


def test_training_pipeline_registers_promotes_and_packages(state):
    out = state["stdout"]
    # one line per step and the summary; every task's own streams in the log the run names
    steps = [line.split() for line in out.splitlines() if line.startswith("  ok ")]
    assert [s[1] for s in steps][:2] == ["validate-data", "build-features"] and "package-service" in {s[1] for s in steps}
    assert len(out.splitlines()) < 80, f"{len(out.splitlines())} lines printed"  # make run: two screens in all
    (log,) = (state["home"] / "logs").glob("training-*.log")
    assert str(log) in out and "Executing task" in log.read_text() and "Executing task" not in out
    assert "Decision: PROMOTE" in out and "Registered grec v1; aliases: challenger=v1, champion=v1" in out
    assert "Passed: " in out and "expectations on customers" in out and "GRec - mmoe" in out  # data checks, comparison
    assert "Reports (in the pipeline's outputs, below): validate-data/data_docs" in out
    assert "GRec - lightgbm" in out and "against lightgbm: ahead on" in out  # the incumbents beside it
    assert "| lightgbm | " in out and "node comparisons" in out  # and what serving each takes
    # where each training's time went: epochs run, the best one, and the phases of the step
    assert "Trained grec: 1 epochs (best 1): open and encode " in out and ", train " in out and "Trained lightgbm: " in out
    run_dir = next((state["home"] / "pipelines").glob("grec-training-*"))
    outputs = task_outputs(run_dir)
    bento = outputs["package-service"]
    assert bento["parameters"]["Output"].startswith("grec-ranker:") and bento["artifacts"]["bento"]["metadata"]["model"] == "grec v1"
    assert os.path.getsize(bento["artifacts"]["bento"]["path"]) > 10_000  # the exported Bento archive
    registry = Registry("grec")
    version = registry.version("1")
    assert version.tags["grec.gate.decision"] == "promote" and version.tags["grec.gate.by"] == "pipeline"
    run = MlflowClient(registry.tracking_uri).get_run(version.run_id)
    # the MLflow run leads back to the pipeline run and its Bento
    assert run.data.tags["kfp.pipeline_job"].startswith("grec-training-") and run.data.tags["kfp.run_id"]
    assert run.data.tags["kfp.training_set"] == outputs["build-features"]["artifacts"]["training_set"]["path"]
    assert run.data.tags["grec.bento"] == bento["parameters"]["Output"]
    models = {outputs[t]["artifacts"]["model"]["metadata"]["arch"] for t in ("train-model", "train-model-2")}
    assert models == {"grec", "mmoe"}


def test_a_bad_table_stops_the_pipeline_at_validation(state, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in state["data"].glob("*.parquet"):
        (bad / f.name).write_bytes(f.read_bytes())
    imp = pd.read_parquet(bad / "impressions.parquet")
    imp.loc[imp.index[:25], "purchase"] = 1  # purchases without a click: the funnel breaks
    imp.to_parquet(bad / "impressions.parquet", index=False)
    runs_before = set((state["home"] / "pipelines").iterdir())
    with pytest.raises(PipelineError, match="validate-data"):
        run_local("training", {"data": str(bad), **WINDOW, "epochs": 1, "min_task_positives": 1})
    (run_dir,) = set((state["home"] / "pipelines").iterdir()) - runs_before
    assert sorted(p.name for p in run_dir.iterdir()) == [RUN_MARKER, "validate-data"]  # nothing after it ran
    assert json.loads((run_dir / RUN_MARKER).read_text())["status"] == "failed"  # ended, not killed: kept
    registry = Registry("grec")
    assert registry.aliases() == {"challenger": "1", "champion": "1"} and len(registry.versions()) == 1


def test_monitoring_flags_the_drifted_week_and_not_the_clean_one(state):
    decisions = {}
    for name, (start, end) in {"clean": CLEAN, "drifted": DRIFTED}.items():
        outputs = task_outputs(run_local("monitoring", {"start": start, "end": end}))
        result = json.loads(open(outputs["drift-report"]["artifacts"]["result"]["path"]).read())
        decisions[name] = (outputs["drift-report"]["parameters"]["Output"], result)
        assert os.path.getsize(outputs["drift-report"]["artifacts"]["report"]["path"]) > 100_000  # Evidently's HTML
    assert decisions["clean"][0] is False and decisions["clean"][1]["reasons"] == []
    drifted, result = decisions["drifted"]
    assert drifted is True
    flagged = {f["column"] for f in result["features"] if f["drifted"]}
    assert {"flow", "tenure_months"} <= flagged  # the promotion brings prospects: NSE traffic, no tenure
    tags = Registry("grec").version("1").tags
    assert tags["grec.drift.decision"] == "drift" and tags["grec.retrain_requested"] == "true"


def test_monitoring_reads_a_week_appended_as_a_later_batch(state, tmp_path):
    """The drifted week added to a folder that did not have it (`grec data append`), then monitored
    from that folder: the same decision and the same drifted features as from the original data."""
    import shutil

    from grec.data.append import append_batch

    folder, batch = tmp_path / "data", tmp_path / "batch"
    shutil.copytree(state["data"], folder)
    batch.mkdir()
    impressions = pd.read_parquet(state["data"] / "impressions.parquet")
    later = impressions["event_timestamp"] >= pd.Timestamp(DRIFTED[0], tz="UTC")
    impressions[~later].to_parquet(folder / "impressions.parquet", index=False)
    impressions[later].to_parquet(batch / "impressions.parquet", index=False)
    (done,) = append_batch(folder, batch)
    assert done.rows == int(later.sum())
    decisions = {}
    for name, data in {"original": state["data"], "appended": folder}.items():
        outputs = task_outputs(run_local("monitoring", {"data": str(data), "start": DRIFTED[0], "end": DRIFTED[1]}))
        result = json.loads(open(outputs["drift-report"]["artifacts"]["result"]["path"]).read())
        decisions[name] = (outputs["drift-report"]["parameters"]["Output"], result["window"]["rows"],
                           sorted(f["column"] for f in result["features"] if f["drifted"]))
    assert decisions["appended"] == decisions["original"] and decisions["appended"][0] is True
