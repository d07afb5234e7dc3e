"""Tracking, the registry and promotion with real trained models in a real MLflow store (SQLite).

One module-wide store holds three registered versions of GRec trained on the small simulated
storefront: v1 barely trained (a learning rate of 1e-6: chance), v2 trained properly, v3 barely
trained with another seed. Each test sets the aliases it starts from, so the tests do not depend
on their order.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from grec.features.training_set import open_source
from grec.lifecycle.gate import GatePolicy
from grec.lifecycle.registry import CHALLENGER, CHAMPION, PREVIOUS, Registry, RegistryError
from grec.lifecycle.tracking import train_and_log
from grec.model.grec import GRecConfig
from grec.model.inputs import InputConfig
from grec.train import TrainConfig
from tests.lifecycle.conftest import scores_in_new_process, tracking_store

NAME = "grec-test"
# Floors off: the barely trained v1 must be able to become the first champion.
POLICY = "version: 1\nfloors: {default: 0.0}\nbootstrap: {samples: 200}\n"


def grec_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "grec.cli", *map(str, args)], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=600)


@pytest.fixture(scope="module")
def store(small_data, texts, tmp_path_factory):
    """{version: TrainedRun} of the three versions, in a module-wide tracking store."""
    root = tmp_path_factory.mktemp("lifecycle")
    with tracking_store(root, texts):
        source = open_source(small_data)
        data = source.dataset(texts=texts)
        config = GRecConfig(**InputConfig.sizes_from(data.spec), d_model=16, expert_hidden=32, tower_hidden=32)
        runs = {}
        for seed, (epochs, lr) in enumerate([(1, 1e-6), (2, 3e-3), (1, 1e-6)]):
            run = train_and_log(config, source, data, TrainConfig(epochs=epochs, lr=lr, seed=seed, progress=False),
                                root / "models" / f"m{seed}", f"grec-{seed}", register_as=NAME)
            runs[run.version] = run
        (root / "policy.yaml").write_text(POLICY)
        yield {"runs": runs, "policy": GatePolicy.load(root / "policy.yaml"), "source": source, "root": root,
               "data": data, "config": config}


@pytest.fixture
def registry(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store['root'] / 'mlflow.db'}")
    reg = Registry(NAME)
    for alias in (CHAMPION, PREVIOUS):
        if alias in reg.aliases():
            reg.client.delete_registered_model_alias(NAME, alias)
    return reg


def set_aliases(reg, **aliases):
    for alias, version in aliases.items():
        reg.client.set_registered_model_alias(NAME, alias.replace("_", "-"), version)


def test_a_training_run_logs_what_a_reviewer_needs(store):
    run = store["runs"]["2"]
    client = MlflowClient()
    logged = client.get_run(run.run_id)
    params, metrics = logged.data.params, logged.data.metrics
    assert params["model.routing"] == "task_sentence" and params["model.class"] == "GRecConfig"
    assert params["data.fingerprint"] == store["source"].fingerprint and params["data.feature_service"] == "raw-join"
    assert len(client.get_metric_history(run.run_id, "valid_loss")) == len(run.summary["history"]) == 2
    for key in ("test/AAL_CTR/auc", "test/EUP_CVR/ap", "test/NSE_CTR/logloss", "test/AAL_CTR/oracle_auc",
                "test/ALL_CVR/auc", "test/mean/auc", "flops_per_example", "flops_per_example/mixing"):
        assert np.isfinite(metrics[key]), key
    assert metrics["test/AAL_CTR/auc"] == pytest.approx(run.report["by_task"]["AAL+CTR"]["auc"])
    artifacts = {a.path for a in client.list_artifacts(run.run_id, "plots")}
    assert artifacts == {f"plots/{p}.png" for p in ("roc_by_task", "pr_by_task", "training_curves", "expert_routing")}
    shares = np.array(json.loads(Path(client.download_artifacts(run.run_id, "routing/shares.json")).read_text())["tasks_by_experts"])
    assert shares.shape == (12, 8) and np.allclose(shares.sum(1), 1, atol=1e-4)
    assert ((shares > 0).sum(1) == 4).all()  # task-sentence routing: each task keeps its fixed top-4


def test_the_same_seed_and_data_give_the_same_weights(store, tmp_path):
    """What lets a rerun of the pipeline on unchanged data reproduce the champion (and pass its gate)."""
    import torch

    again = train_and_log(store["config"], store["source"], store["data"], TrainConfig(epochs=1, lr=1e-6, seed=0, progress=False),
                          tmp_path / "again", "grec-again", register_as=None)
    first = torch.load(store["runs"]["1"].model_dir / "weights.pt")
    second = torch.load(again.model_dir / "weights.pt")
    assert again.version is None and all(torch.equal(first[k], second[k]) for k in first)


def test_registration_makes_the_newest_version_the_challenger_with_a_signature(registry, store):
    import mlflow

    assert registry.aliases()[CHALLENGER] == "3"
    signature = mlflow.models.get_model_info(f"models:/{NAME}/2").signature
    inputs = {c["name"]: c for c in signature.inputs.to_dict()}
    assert inputs["use_case"]["type"] == "string" and inputs["item_id"]["type"] == "long"
    assert inputs["image_embedding"]["type"] == "array" and inputs["image_embedding"]["items"]["type"] == "double"
    assert [c["name"] for c in signature.outputs.to_dict()] == ["score"]


def test_a_registered_model_scores_the_same_in_a_new_process(registry, store, tmp_path):
    expected, got = scores_in_new_process(f"models:/{NAME}/2", store["runs"]["2"].model_dir,
                                          store["source"].frame.tail(64), tmp_path)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_first_promotion_needs_only_the_floors_then_a_worse_challenger_is_refused(registry, store):
    first = registry.promote("2", policy=store["policy"], decided_by="test")
    assert first.changed and first.report.champion is None and registry.aliases()[CHAMPION] == "2"
    worse = registry.promote("3", policy=store["policy"], decided_by="test")
    assert not worse.changed and registry.aliases()[CHAMPION] == "2" and PREVIOUS not in registry.aliases()
    assert worse.report.failed_tasks() and all(t.diff < 0 for t in worse.report.tasks if t.task in worse.report.failed_tasks())
    markdown = worse.report_paths[1].read_text()
    assert "**REFUSE**" in markdown and f"| {worse.report.failed_tasks()[0]} |" in markdown
    tags = registry.version("3").tags
    assert tags["grec.gate.decision"] == "refuse" and tags["grec.gate.against"] == "2" and tags["grec.gate.by"] == "test"
    assert tags["grec.gate.failed_tasks"] == ",".join(worse.report.failed_tasks())


def test_a_better_challenger_is_promoted_and_rollback_restores_the_champion(registry, store):
    set_aliases(registry, champion="1")
    better = registry.promote("2", policy=store["policy"], decided_by="test")
    assert better.changed, better.report.reasons
    assert registry.aliases()[CHAMPION] == "2" and registry.aliases()[PREVIOUS] == "1"
    assert registry.version("2").tags["grec.replaced_version"] == "1"
    again = registry.promote("2", policy=store["policy"], decided_by="test")  # idempotent
    assert not again.changed and again.report is None and registry.aliases()[CHAMPION] == "2"

    registry.rollback(decided_by="test", reason="bad week")
    assert registry.aliases()[CHAMPION] == "1" and PREVIOUS not in registry.aliases()
    assert registry.version("2").tags["grec.rolled_back_reason"] == "bad week"
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback()


def test_a_new_process_reads_the_same_aliases(registry, store):
    set_aliases(registry, champion="2", previous_champion="1")
    out = grec_cli("registry", "status", "--name", NAME, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    status = json.loads(out.stdout)
    assert status["aliases"] == {CHALLENGER: "3", CHAMPION: "2", PREVIOUS: "1"} == registry.aliases()
    assert [v["aliases"] for v in status["versions"]] == [[PREVIOUS], [CHAMPION], [CHALLENGER]]


def test_two_processes_promoting_at_once_leave_one_consistent_champion(registry, store):
    """v4 is v2's model registered again. From champion v1, both v2 and v4 beat it; serialized,
    the second is judged against the first (identical scores: passes), so the chain is
    v1 <- first <- second. Unserialized, both would have replaced v1."""
    import mlflow

    v4 = mlflow.register_model(store["runs"]["2"].model_uri, NAME).version
    set_aliases(registry, champion="1")
    policy = store["root"] / "policy.yaml"
    procs = [subprocess.Popen([sys.executable, "-m", "grec.cli", "registry", "promote", "--name", NAME, "--version", v,
                               "--policy", policy, "--decided-by", f"proc-{v}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy()) for v in ("2", str(v4))]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    aliases = registry.aliases()
    champion, previous = aliases[CHAMPION], aliases[PREVIOUS]
    assert {champion, previous} == {"2", str(v4)}
    assert registry.version(champion).tags["grec.replaced_version"] == previous
    assert registry.version(previous).tags["grec.replaced_version"] == "1"
    assert sum(v["aliases"].count(CHAMPION) for v in registry.status()["versions"]) == 1
