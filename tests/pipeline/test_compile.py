"""Both pipelines compile to the YAML a KFP API server runs, with the expected tasks, dependencies,
the conditional promotion and the cluster settings (secrets, config maps, the state volume)."""

import socket

import pytest
import yaml

from grec.pipeline.run import PipelineError, compile_pipeline, parse_params, schedule, submit


def compiled(name, tmp_path):
    docs = list(yaml.safe_load_all(compile_pipeline(name, tmp_path / f"{name}.yaml").read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def all_tasks(dag: dict, components: dict) -> dict:
    """{task name: (task spec, its enclosing conditions)} through nested condition branches; a
    task inside a branch also depends on what the branch waits for."""
    out = {}

    def walk(tasks, conditions, outer_deps):
        for name, task in tasks.items():
            condition = task.get("triggerPolicy", {}).get("condition")
            deps = outer_deps | set(task.get("dependentTasks", []))
            inner = components.get(task["componentRef"]["name"], {}).get("dag")
            if inner:
                walk(inner["tasks"], conditions + ([condition] if condition else []), deps)
            else:
                out[name] = ({**task, "dependentTasks": sorted(deps)}, conditions)

    walk(dag["tasks"], [], set())
    return out


def test_training_pipeline_compiles_with_its_steps_order_condition_and_cluster_settings(tmp_path):
    spec, platform = compiled("training", tmp_path)
    tasks = all_tasks(spec["root"]["dag"], spec["components"])
    assert set(tasks) == {"validate-data", "build-features", "train-model", "train-model-2", "train-model-3",
                          "evaluate-and-gate", "register-model", "promote-model", "package-service"}
    deps = {name: set(task.get("dependentTasks", [])) for name, (task, _) in tasks.items()}
    assert deps["build-features"] == {"validate-data"}
    # GRec, the baseline network and the per-task incumbents side by side
    assert deps["train-model"] == deps["train-model-2"] == deps["train-model-3"] == {"build-features"}
    assert {"train-model", "train-model-2", "train-model-3", "build-features"} <= deps["evaluate-and-gate"]
    assert {"train-model", "evaluate-and-gate"} <= deps["register-model"]
    assert "register-model" in deps["promote-model"] and "promote-model" in deps["package-service"]
    # promotion and packaging only when the gate says so; registration always
    for name in ("promote-model", "package-service"):
        assert any("evaluate-and-gate" in c and "'promote'" in c for c in tasks[name][1]), tasks[name][1]
    assert tasks["register-model"][1] == []
    assert all(task["cachingOptions"] == {} for task, _ in tasks.values())  # side effects: never served from a cache
    executors = spec["deploymentSpec"]["executors"]
    assert all(e["container"]["image"].startswith("ghcr.io/grec-platform/grec:") for e in executors.values())
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(kube) == set(executors)
    for config in kube.values():
        assert config["secretAsEnv"][0]["secretName"] == "grec-mlflow"
        assert {"secretKey": "tracking_uri", "envVar": "MLFLOW_TRACKING_URI"} in config["secretAsEnv"][0]["keyToEnv"]
        assert config["configMapAsEnv"][0]["configMapName"] == "grec-config"  # GREC_HOME
        assert config["pvcMount"][0]["mountPath"] == "/var/lib/grec"
    # compiled for a cluster, the networks train as Kubeflow Trainer TrainJobs of the project image
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["train_on"]["defaultValue"] == "trainjob" and params["train_nodes"]["defaultValue"] == 1
    assert params["train_image"]["defaultValue"].startswith("ghcr.io/grec-platform/grec:")
    assert {"train_procs_per_node", "train_cpu", "train_memory", "train_gpus"} <= set(params)
    for name in ("train-model", "train-model-2", "train-model-3"):
        inputs = tasks[name][0]["inputs"]["parameters"]
        assert inputs["train_on"]["componentInputParameter"] == "train_on"
        assert inputs["nodes"]["componentInputParameter"] == "train_nodes"


def test_monitoring_pipeline_compiles_with_retraining_behind_two_conditions(tmp_path):
    spec, platform = compiled("monitoring", tmp_path)
    tasks = all_tasks(spec["root"]["dag"], spec["components"])
    assert set(tasks) == {"drift-report", "quality-report", "start-training"}
    conditions = tasks["start-training"][1]  # retrain (drift or quality fell), and a KFP host to run it on
    assert len(conditions) == 2 and "quality-report" in conditions[0] and "kfp_host" in conditions[1]
    drifted = tasks["quality-report"][0]["inputs"]["parameters"]["drifted"]
    assert drifted["taskOutputParameter"]["producerTask"] == "drift-report"
    assert set(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]) == set(spec["deploymentSpec"]["executors"])


def test_parameters_are_typed_and_checked():
    assert parse_params("training", ["epochs=2", "end=2026-07-06"]) == {"epochs": 2, "end": "2026-07-06"}
    with pytest.raises(PipelineError, match="epochs takes a integer"):
        parse_params("training", ["epochs=two"])
    with pytest.raises(PipelineError, match="NAME=VALUE with NAME one of"):
        parse_params("monitoring", ["epochs=2"])
    with pytest.raises(PipelineError, match="unknown pipeline"):
        parse_params("serving", [])


def test_the_left_out_policy_defaults_to_the_builders_everywhere(tmp_path):
    """The pipeline's max_lost_share and `grec features training-set --max-lost-share` default to
    grec.features.training_set.MAX_LOST_SHARE (literals, as kfp and Typer need them)."""
    import inspect

    from grec.cli.features import features_training_set
    from grec.features.training_set import MAX_LOST_SHARE

    spec, _ = compiled("training", tmp_path)
    assert spec["root"]["inputDefinitions"]["parameters"]["max_lost_share"]["defaultValue"] == MAX_LOST_SHARE
    assert inspect.signature(features_training_set).parameters["max_lost_share"].default == MAX_LOST_SHARE
    assert parse_params("training", ["max_lost_share=0.01"]) == {"max_lost_share": 0.01}


def test_submit_and_schedule_name_the_problem_without_a_server():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(PipelineError, match=f"cannot reach a KFP API server at {url}"):
        submit("training", url)
    with pytest.raises(PipelineError, match="six fields, seconds first"):
        schedule("monitoring", url, "0 3 * * 1")
