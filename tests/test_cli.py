"""The commands a user runs, into a fresh state folder: simulate -> validate -> features ->
train (tracked, registered) -> evaluate -> registry promote / status."""

import json

import pytest
from typer.testing import CliRunner

from grec.cli import app

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_simulate_validate_features_train_evaluate(fresh_state, monkeypatch):
    invoke("simulate", "--impressions", 30_000, "--seed", 3)
    data = fresh_state / "data" / "default"
    assert {p.name for p in data.iterdir()} >= {"customers.parquet", "items.parquet", "impressions.parquet", "simulation.json"}
    result = invoke("validate", "--start", "2026-06-01", "--end", "2026-09-07", "--min-task-positives", 1)
    assert "impressions" in result.output and (fresh_state / "validation" / "default" / "report.json").exists()
    invoke("features", "apply")
    invoke("features", "materialize", "--end", "2026-09-07")
    invoke("features", "training-set")
    training_set = fresh_state / "training_sets" / "default"
    # a memory budget under the set's size: training, evaluation and the gate stream it from parquet
    monkeypatch.setenv("GREC_MEMORY_BUDGET", "1M")
    result = invoke("train", "--training-set", training_set, "--epochs", 1, "--d-model", 32, "--routing", "task")
    assert "Streaming the rows from" in result.output and "over the budget of 0.0 GiB" in result.output
    assert "Registered grec version 1 (alias challenger)" in result.output
    assert "browse it with: grec ui" in result.output
    model = fresh_state / "models" / "grec-task"
    assert {p.name for p in model.iterdir()} >= {"config.json", "features.json", "weights.pt", "train.json"}
    # where the command's time went, said and kept (the training steps are one phase of several)
    phases = json.loads((model / "train.json").read_text())["phases"]
    assert list(phases) == ["open and encode", "train", "score the test split", "figures", "drift reference",
                            "log the model", "alias challenger"]
    assert all(seconds > 0 for seconds in phases.values())
    assert "Wall time by phase: open and encode" in result.output
    result = invoke("evaluate", "--model", model, "--training-set", training_set)
    assert "AAL+CTR" in result.output and "FLOPs per example" in result.output
    report = json.loads((model / "eval-test.json").read_text())
    assert set(report["by_use_case"]) == {"CTR", "ATC", "CVR", "CTCVR"}
    assert report["flops_per_example"]["mixing"] > 0
    strict = fresh_state / "strict-gate.yaml"  # floors no model reaches: the gate refuses, and says so by its exit status
    strict.write_text("version: 1\nfloors: {default: 0.999}\n")
    refused = runner.invoke(app, ["registry", "promote", "--decided-by", "cli-test", "--policy", str(strict)])
    assert refused.exit_code == 3 and "REFUSED grec v1" in refused.output, refused.output
    result = runner.invoke(app, ["registry", "promote", "--decided-by", "cli-test"])
    assert "Promotion gate: grec v1 against no champion" in result.output and "Gate report:" in result.output
    status = json.loads(invoke("registry", "status", "--json").output)
    tags = status["versions"][0]["tags"]
    assert tags["grec.gate.by"] == "cli-test" and tags["grec.gate.against"] == "none"
    assert status["aliases"].get("champion") == ("1" if tags["grec.gate.decision"] == "promote" else None)
    assert result.exit_code == (0 if tags["grec.gate.decision"] == "promote" else 3), result.output
    assert "challenger" in invoke("registry", "status").output
    # `grec evaluate` without --model judges a registered version, the champion by default
    result = invoke("evaluate", "--version", "grec/1", "--training-set", training_set)
    assert "grec v1 on the test window" in result.output
    by_registry = json.loads((fresh_state / "reports" / "evaluate" / "grec-v1-test.json").read_text())
    def figures(r):
        return {f"{task}/{k}": v for task, m in r["by_task"].items() for k, v in m.items() if isinstance(v, (int, float))}
    assert figures(by_registry) == pytest.approx(figures(report), abs=1e-6, nan_ok=True), \
        "the registered pyfunc's model scores as the folder's"
    result = runner.invoke(app, ["evaluate", "--training-set", str(training_set)])
    if status["aliases"].get("champion"):
        assert result.exit_code == 0 and "grec v1 (champion) on the test window" in result.output, result.output
    else:
        assert result.exit_code != 0 and "no version with the alias 'champion'" in result.output, result.output


def test_a_baseline_trains_through_the_same_command(fresh_state):
    invoke("simulate", "--impressions", 10_000)
    invoke("train", "--model", "mmoe", "--epochs", 1, "--d-model", 32)
    assert (fresh_state / "models" / "mmoe" / "weights.pt").exists()


def test_bad_options_get_clear_errors(fresh_state):
    result = runner.invoke(app, ["train", "--model", "xgboost"])
    assert result.exit_code != 0 and "xgboost" in result.output
    result = runner.invoke(app, ["train", "--upsample", "CVR=zero"])
    assert result.exit_code != 0 and "CVR=zero" in result.output
    result = runner.invoke(app, ["evaluate", "--model", fresh_state / "nothing"])
    assert result.exit_code != 0 and "no trained model" in result.output
    result = runner.invoke(app, ["evaluate"])  # nothing registered in a fresh state folder
    assert result.exit_code != 0 and "no version with the alias 'champion'" in result.output, result.output
    result = runner.invoke(app, ["evaluate", "--version", "grec:latest"])
    assert result.exit_code != 0 and "NAME@ALIAS or NAME/VERSION" in result.output, result.output


def test_validate_exits_non_zero_and_names_the_failure(fresh_state):
    invoke("simulate", "--impressions", 10_000)
    result = runner.invoke(app, ["validate", "--end", "2026-08-01"])  # a window the data runs past
    assert result.exit_code == 1
    assert "impressions.event_timestamp: expect_column_values_to_be_between failed" in result.output


def test_simulate_a_job_board_as_a_teams_logs_then_draft_its_contract(fresh_state):
    out = fresh_state / "jobs"
    result = invoke("simulate", "--world", "jobs", "--impressions", 5_000, "--items", 200, "--out", out)
    assert {p.name for p in out.iterdir()} == {"customers.parquet", "items.parquet", "impressions.parquet",
                                               "simulation.json"}  # no contract: `grec data init` drafts it
    command = " ".join(result.output.split()).split("Next: ", 1)[1]
    assert command.startswith(f"grec data init {out} --use-case VIEW=viewed") and "--oracle APPLY=p_apply_given_view" in command
    invoke(*command.split()[1:])  # the command it printed, as a user would paste it
    contract = json.loads((out / "contract.json").read_text())
    assert contract["tasks"]["oracles"]["VIEW"] == "p_view" and "occupation" in contract["features"]["items"]["categorical"]
    refused = runner.invoke(app, ["simulate", "--world", "jobs", "--drift", "flow_shift", "--out", str(out)])
    assert refused.exit_code != 0 and "the job board has none" in " ".join(refused.output.split())
