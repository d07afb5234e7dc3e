# Two commands: `make run` (the main job) and `make test`. Each creates or refreshes .venv from
# requirements.lock (exported from uv.lock) first; a changed lock rebuilds the venv from scratch so removed pins go too.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Offline machines: no telemetry from any of the stack's libraries.
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false BENTOML_DO_NOT_TRACK=true GX_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Bytecode: pip compiles nothing at install (--no-compile: a fresh venv in about 45 s instead of
# 105 s, most of the 42k modules never imported); Python caches each module's bytecode when it is
# first imported instead, so a machine that sets PYTHONDONTWRITEBYTECODE has it dropped for the
# project's commands (otherwise every process would compile what it imports, again).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test venv lock bench

venv: $(STAMP)

$(VENV)/.lock-installed: requirements.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	@echo "Installing the locked environment into $(VENV) (about a minute)..."
	$(BIN)/pip install --quiet --no-deps --no-compile -r requirements.lock 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $@

# The project itself, editable; redone when pyproject.toml changes (entry points, metadata).
$(STAMP): $(VENV)/.lock-installed pyproject.toml
	$(BIN)/pip install --quiet --no-deps --no-compile --no-build-isolation -e . 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $@

# All run state lives here (data, feature store, training sets, MLflow, Bentos, pipeline outputs).
export GREC_HOME ?= $(CURDIR)/.grec

# The main job, on embedded defaults: simulate the storefront (13 training weeks and a test week
# from 2026-06-01, then two production weeks, the second with a new-customer promotion), run the
# training pipeline locally (validate -> Feast features -> GRec and MMoE -> gate -> register ->
# promote -> BentoML package), a production week served by the champion through the ranking path
# (its outcomes appended to the data), then the monitoring pipeline (drift and quality) on that week and on the drifted one.
run: $(STAMP)
	$(BIN)/grec simulate --monitor-weeks 2 --drift flow_shift
	$(BIN)/grec pipeline run training --local --param start=2026-06-01 --param end=2026-09-07
	$(BIN)/grec experiment serve --start 2026-09-07 --end 2026-09-14 --requests 2000
	$(BIN)/grec pipeline run monitoring --local --param start=2026-09-07 --param end=2026-09-14
	$(BIN)/grec pipeline run monitoring --local --param start=2026-09-14 --param end=2026-09-21
	@echo "MLflow UI (runs, plots, registry, drift reports), on the experiment's model-training view: $(BIN)/grec ui"

# The suite on one pytest-xdist worker per core, each test file whole on one worker (its module
# fixtures, such as a trained pipeline run, are built once); tests/conftest.py gives each worker
# its share of the threads.
test: $(STAMP)
	$(BIN)/python -m pytest -q --timeout=900 -n logical --dist loadfile

# Re-resolve the lock from pyproject.toml (needs uv and the package index): uv.lock is the lock
# (every platform, exact versions); requirements.lock is its export for this project's pip
# install (with the dev and spark extras); deploy/requirements-serving.lock the `ranker` dependency
# group alone (the ranking service's Bento and image: what `bentoml serve` imports),
# deploy/requirements-project.lock the project image's (no extras: no test tools, no pyspark),
# deploy/requirements-spark.lock its Spark variant's (the spark extra); tests/test_lock.py checks them.
lock:
	uv lock
	uv export --frozen --extra dev --extra spark --no-emit-project --no-hashes -o requirements.lock
	uv export --frozen --only-group ranker --no-emit-project --no-hashes -o deploy/requirements-serving.lock
	uv export --frozen --no-emit-project --no-hashes -o deploy/requirements-project.lock
	uv export --frozen --extra spark --no-emit-project --no-hashes -o deploy/requirements-spark.lock

bench: $(STAMP)
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/routing_table.py
