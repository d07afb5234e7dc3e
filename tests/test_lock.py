"""The environment is pinned once: uv.lock, and requirements.lock (what `make` installs with pip)
is its export. Both must name the same packages at the same versions, torch 2.13.0 among them; the
ranking service's deploy/requirements-serving.lock is the export of the `ranker` dependency group
alone, the project image's deploy/requirements-project.lock the export without the extras,
deploy/requirements-spark.lock with the spark extra alone."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def uv_locked() -> set[tuple[str, str]]:
    """(name, version) of every package uv.lock pins, the project itself aside."""
    return {(p["name"], p["version"]) for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"] if p["name"] != "grec"}


def pins(path: Path) -> set[tuple[str, str]]:
    """(name, version) of every `name==version` line of an exported requirements file."""
    return set(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+?)(?:\s|$)", path.read_text(), re.M))


def test_requirements_lock_is_the_export_of_uv_lock():
    locked, pinned = uv_locked(), pins(ROOT / "requirements.lock")
    assert pinned == locked, f"run `make lock`: only in uv.lock {sorted(locked - pinned)[:5]}, only in requirements.lock {sorted(pinned - locked)[:5]}"
    assert len(locked) > 200 and ("torch", "2.13.0+cpu") in pinned


def test_the_project_images_lock_is_the_export_without_extras():
    """deploy/requirements-project.lock (the components' image) pins what uv.lock pins, minus the
    dev and spark extras' packages."""
    project, locked = pins(ROOT / "deploy" / "requirements-project.lock"), uv_locked()
    assert project <= locked, f"run `make lock`: not in uv.lock {sorted(project - locked)[:5]}"
    names = {name for name, _ in project}
    assert {"torch", "bentoml", "feast", "mlflow", "lightgbm", "redis", "kfp", "great-expectations", "evidently"} <= names
    assert not names & {"pyspark", "pytest", "moto", "schemathesis"}, "the project image carries no test tools or pyspark"
    # bentoml build (the package-service step) runs uv and pip-installs the newest one where none is: the lock pins it
    assert ("uv", "0.13.9") in project


def test_the_services_lock_is_the_ranker_group_alone():
    """deploy/requirements-serving.lock (the Bento's and the ranker image's) is a part of the
    project image's lock, at the same versions: what `bentoml serve` imports, none of the pipeline's tools."""
    serving, project = pins(ROOT / "deploy" / "requirements-serving.lock"), pins(ROOT / "deploy" / "requirements-project.lock")
    assert serving < project, f"run `make lock`: not in the project image's lock {sorted(serving - project)[:5]}"
    names = {name for name, _ in serving}
    assert {"torch", "bentoml", "feast", "mlflow-skinny", "lightgbm", "redis", "duckdb", "sentence-transformers"} <= names
    pipeline_tools = {"kfp", "great-expectations", "evidently", "mlflow", "uv", "pyspark", "pytest", "psycopg2-binary",
                      "kubeflow", "matplotlib"}
    assert not names & pipeline_tools, f"the ranking service's image carries {sorted(names & pipeline_tools)}"


def test_the_spark_variants_lock_adds_the_spark_extra_alone():
    """deploy/requirements-spark.lock (the project image's Spark variant) is the project image's
    lock plus pyspark and what it needs, no test tools."""
    spark, project = pins(ROOT / "deploy" / "requirements-spark.lock"), pins(ROOT / "deploy" / "requirements-project.lock")
    assert project < spark <= uv_locked(), "run `make lock`"
    added = {name for name, _ in spark - project}
    assert "pyspark" in added and not added & {"pytest", "moto", "schemathesis"}


def test_great_expectations_imports_in_a_process_started_with_python_c():
    """With pyspark in the environment (the Spark offline store), Great Expectations imports
    pyspark.sql.connect, which without its grpc dependencies calls sys.exit(0) in a process whose
    main module is `-c` (pytest-xdist's workers): validation would end "successfully" having done
    nothing. The lock carries pyspark[connect] for that."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import great_expectations; print('imported')"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr[-2000:]
