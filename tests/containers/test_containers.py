"""The container tier: the platform as it is deployed. A Docker engine started by the project
(deploy/local/containers.py: Debian's dockerd, its own data root and socket, loopback only), the
project image built from the lock (its layer cache kept between runs on one machine), both
pipelines with every component in its own container (kfp's DockerRunner) deciding as the
subprocess runner does on the same data and seed, a contract dataset the same way, and the ranking
service's image serving the registry model's scores and stopping on SIGTERM. Skipped, with the
reason, only where the engine cannot start."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from deploy.local import containers
from grec.data.simulate import SimulationConfig, simulate_to
from grec.pipeline.run import task_outputs
from grec.serving.bento import wait_ready
from tests.data.own_logs import USE_CASE_ARGS, write_own_logs
from tests.pipeline.whole_path import OPEN_GATE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
END = "2026-07-06"  # 4 training weeks + the test week of the storefront below
DRIFTED = ("2026-07-13", "2026-07-20")


@pytest.fixture(scope="module")
def engine():
    try:
        engine, started = containers.start()
    except containers.ContainerError as e:
        pytest.skip(f"no container engine on this machine: {e}")
    yield engine
    if started:
        containers.stop(engine.root)


@pytest.fixture(scope="module")
def image(engine):
    """The components' image, built from the lock (cached layers: seconds when only code changed)."""
    from components import BASE_IMAGE

    return containers.build_image(engine, BASE_IMAGE, "project")


def grec(home: Path, engine, *args: str, env: dict | None = None, timeout: int = 1200) -> subprocess.CompletedProcess:
    full = {**os.environ, "GREC_HOME": str(home), "DOCKER_HOST": engine.host, **(env or {})}
    full.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "grec.cli", *map(str, args)], env=full, capture_output=True, text=True,
                          timeout=timeout)


def train(home: Path, engine, runner: str, *params: str) -> str:
    policy = home / "gate_policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(OPEN_GATE)
    done = grec(home, engine, "pipeline", "run", "training", "--local", "--runner", runner, "--param", "epochs=1",
                "--param", "min_task_positives=1", "--param", f"gate_policy={policy}", *params)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def gate_of(home: Path) -> dict:
    run = next((home / "pipelines").glob("grec-training-*"))
    return json.loads(Path(task_outputs(run)["evaluate-and-gate"]["artifacts"]["gate"]["path"]).read_text())


@pytest.fixture(scope="module")
def storefront(engine, image, tmp_path_factory):
    """One storefront (its last monitored week drifted), trained by the training pipeline twice
    from the same data and seed: every component in a container, and as subprocesses."""
    data = tmp_path_factory.mktemp("container-data") / "shop"
    simulate_to(data, SimulationConfig(n_impressions=40_000, train_weeks=4, monitor_weeks=2, drift=("flow_shift",), seed=2))
    runs = {}
    for runner in ("docker", "subprocess"):
        home = tmp_path_factory.mktemp(f"{runner}-state")
        runs[runner] = {"home": home, "stdout": train(home, engine, runner, "--param", f"data={data}", "--param", f"end={END}")}
    return {"data": data, **runs}


def normal(name: str) -> str:  # PEP 503
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(variant: str) -> set[tuple[str, str]]:
    """(name, version) of every pin of the variant's lock file."""
    from tests.test_lock import pins

    return {(normal(n), v) for n, v in pins(containers.LOCKS[variant])}


def installed(engine, tag: str, want: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(name, version) of every distribution in the image but the project and the base image's own
    pip and wheel (unless the lock pins them)."""
    frozen = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "pip", tag,
                           "freeze", "--all", "--exclude", "grec").stdout
    base_tools = {"pip", "wheel"} - {name for name, _ in want}
    return {(normal(n), v) for n, v in (line.split("==") for line in frozen.split() if "==" in line)
            if normal(n) not in base_tools}


def test_the_project_image_holds_the_lock_exactly_and_no_spark(engine, image):
    want = locked("project")
    have = installed(engine, image["tag"], want)
    assert have == want, f"only installed {sorted(have - want)[:5]}, only locked {sorted(want - have)[:5]}"
    java = engine.docker("run", "--rm", "--network", "none", image["tag"], "sh", "-c", "command -v java", check=False)
    assert java.returncode != 0, "the default image carries no JRE (the spark variant does)"


def test_a_missing_image_is_one_line_naming_it_and_its_build(engine, tmp_path):
    done = grec(tmp_path / "state", engine, "pipeline", "run", "training", "--local", "--runner", "docker",
                env={"GREC_IMAGE": "grec-absent/grec:0.0.0"})
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    (line,) = [l for l in done.stdout.splitlines() if l.startswith("error:")]
    assert "grec-absent/grec:0.0.0" in line and "python deploy/local/containers.py build" in done.stdout


def test_training_in_containers_registers_gates_and_packages_as_the_subprocess_runner(storefront):
    docker, subprocess_run = storefront["docker"], storefront["subprocess"]
    assert "Registered grec v1; aliases: challenger=v1, champion=v1" in docker["stdout"] and "Bento: grec-ranker:" in docker["stdout"]
    ours, theirs = gate_of(docker["home"]), gate_of(subprocess_run["home"])
    assert ours["decision"] == theirs["decision"]
    assert [t["task"] for t in ours["tasks"]] == [t["task"] for t in theirs["tasks"]]
    # the same data, seed and threads: the same models, to float noise
    auc = lambda gate: [np.nan if t["challenger_auc"] is None else t["challenger_auc"] for t in gate["tasks"]]  # noqa: E731
    np.testing.assert_allclose(auc(ours), auc(theirs), atol=1e-4, equal_nan=True)
    run = next((docker["home"] / "pipelines").glob("grec-training-*"))
    written = {p.stat().st_uid for p in run.rglob("*")}
    assert written == {os.getuid()}, "what the steps wrote belongs to the user who ran them"


def test_monitoring_in_containers_flags_the_drifted_week(engine, storefront):
    home = storefront["docker"]["home"]
    done = grec(home, engine, "pipeline", "run", "monitoring", "--local", "--runner", "docker", "--param",
                f"data={storefront['data']}", "--param", f"start={DRIFTED[0]}", "--param", f"end={DRIFTED[1]}")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "against grec v1: DRIFT" in done.stdout


def test_a_contract_dataset_trains_in_containers(engine, image, tmp_path):
    home = tmp_path / "state"
    data = write_own_logs(tmp_path / "logs" / "shop", n_impressions=8000)
    init = grec(home, engine, "data", "init", data, *USE_CASE_ARGS)
    assert init.returncode == 0, init.stdout + init.stderr
    out = train(home, engine, "docker", "--param", f"data={data}")
    assert "| APP+BUY |" in out and "Registered grec v1; aliases: challenger=v1, champion=v1" in out


class Container:
    """A running container as grec.serving.bento.wait_ready watches a process: poll() is None while it runs."""

    def __init__(self, engine, name: str):
        self.engine, self.name = engine, name

    def poll(self) -> int | None:
        state = json.loads(self.engine.docker("inspect", self.name, "--format", "{{json .State}}").stdout)
        return None if state["Running"] else state["ExitCode"]


@contextmanager
def ranker_container(engine, tag: str, home: Path, env: dict[str, str], name: str):
    """The ranker's image `tag` serving on a free loopback port with `env`, the state folder mounted
    at its own path, as this user; yields its URL once /readyz answers (its log in the failure),
    removes it after."""
    port = _free_port()
    _run_ranker(engine, tag, home, env, name, "--host", "127.0.0.1", "--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, Container(engine, name), timeout=900)
        except RuntimeError as e:
            raise AssertionError(f"{e}: {engine.docker('logs', name, check=False).stderr[-3000:]}") from None
        yield url
    finally:
        engine.docker("rm", "-f", name, check=False)


def _run_ranker(engine, tag: str, home: Path, env: dict[str, str], name: str, *args: str) -> None:
    """Start the ranker's image `tag` detached as `name`, as this user on the host's network, with
    `env` and the state folder mounted at its own path; `args` go to its entrypoint."""
    options = [a for k, v in {"GREC_HOME": str(home), **env}.items() for a in ("-e", f"{k}={v}")]
    engine.docker("run", "-d", "--name", name, "--network", "host", "--user", f"{os.getuid()}:{os.getgid()}",
                  *options, "-v", f"{home}:{home}", tag, *args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranker(engine, storefront):
    """The ranking service's image, built from the containerized training run's exported Bento."""
    bento = next(storefront["docker"]["home"].glob("pipelines/grec-training-*/package-service/bento"))
    return containers.build_ranker(engine, bento)


def test_the_rankers_image_holds_the_services_lock_alone(engine, image, ranker):
    """The ranking service's image: the `ranker` group's lock exactly, none of the pipeline's tools,
    and, but for the C++ compiler its workers compile with, the smaller of the two images (their
    first layer is one)."""
    want = locked("ranker")
    have = installed(engine, ranker["tag"], want)
    assert have == want, f"only installed {sorted(have - want)[:5]}, only locked {sorted(want - have)[:5]}"
    history = engine.docker("history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}",
                            ranker["tag"]).stdout.splitlines()
    compiler = sum(int(size) for size, _, made_by in (line.partition("\t") for line in history) if "g++" in made_by)
    assert compiler > 0, "the ranker's image installs a C++ compiler"
    assert ranker["size"] - compiler < image["size"], \
        f"the ranker's image ({ranker['size']} B, {compiler} B of it the compiler) is the smaller one ({image['size']} B)"


def redis_env(storefront, redis_server) -> dict[str, str]:
    """The served state's features applied and materialized into Redis as well (what a team does
    after switching the online store); the environment that selects it, for this process."""
    from grec.features.store import feature_store, materialize, repo_objects
    from tests.conftest import redis_settings

    env = redis_settings(redis_server, db=9)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(storefront["docker"]["home"]))
        for name, value in env.items():
            mp.setenv(name, value)
        feature_store().apply(repo_objects())
        materialize(__import__("pandas").Timestamp(END, tz="UTC"))
    return env


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_the_rankers_image_serves_the_registry_models_scores_and_stops_on_sigterm(engine, storefront, ranker, store,
                                                                                  request, monkeypatch):
    from grec.features.store import OnlineReader
    from grec.features.training_set import open_source
    from grec.lifecycle.pyfunc import request_frame, score_frame
    from grec.lifecycle.registry import Registry
    from grec.serving.ranker import RankRequest, Ranker

    home = storefront["docker"]["home"]
    # SQLite: one worker that compiles its tasks (the image carries the compiler; a cold Inductor
    # cache takes a minute or more on a busy machine); Redis: uncompiled, the store is what it checks
    settings = {"GREC_SERVE_WORKERS": "1"} if store == "sqlite" else {"GREC_SERVE_COMPILE": "0"}
    if store == "redis":  # the image's own copy of the repository's Redis configuration
        env = redis_env(storefront, request.getfixturevalue("redis_server"))
        settings |= {"FEAST_FS_YAML_FILE_PATH": "/home/bentoml/bento/src/feature_repo/feature_store.redis.yaml",
                     "GREC_REDIS": env["GREC_REDIS"]}
        for name, value in env.items():  # and this process's in-process reference reads the same store
            monkeypatch.setenv(name, value)
    name = f"grec-ranker-test-{os.getpid()}-{store}"
    with ranker_container(engine, ranker["tag"], home, settings, name) as url:
        meta = httpx.post(f"{url}/metadata", timeout=30).json()
        assert meta["online_store"].split()[0] == store
        if store == "sqlite":  # the image's workers compile their tasks
            assert meta["compilation"]["compiled"] is True, meta["compilation"]
        customers = __import__("pandas").read_parquet(storefront["data"] / "impressions.parquet")["customer_id"]
        body = {"customer_id": int(customers.value_counts().index[0]), "flow": "EUP", "use_case": "CTCVR",
                "item_ids": list(range(50)), "search_query": "unlimited plan"}
        answer = httpx.post(f"{url}/rank", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        monkeypatch.setenv("GREC_HOME", str(home))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        model, spec = Registry("grec").load("1")
        frame = Ranker(model, spec, OnlineReader()).rank(RankRequest(**body)).features
        expected = dict(zip(frame["item_id"], score_frame(model, spec, request_frame(frame, "CTCVR", spec.input_columns()))))
        np.testing.assert_allclose([i["score"] for i in items], [expected[i["item_id"]] for i in items], rtol=0, atol=1e-5)
        rows = request_frame(open_source(next(home.glob("pipelines/grec-training-*/build-features/training_set")),
                                         splits=("test",)).frame.head(8), np.resize(["CTR", "ATC", "CVR", "CTCVR"], 8),
                             spec.input_columns())
        scored = httpx.post(f"{url}/score", json={"rows": rows.to_dict(orient="records")}, timeout=30)
        assert scored.status_code == 200, scored.text
        np.testing.assert_allclose(scored.json(), score_frame(model, spec, rows), rtol=0, atol=1e-5)
        engine.docker("stop", "--time", "30", name)  # SIGTERM; SIGKILL only after 30 s (exit code 137)
        state = json.loads(engine.docker("inspect", name, "--format", "{{json .State}}").stdout)
        assert state["Running"] is False and state["ExitCode"] == 0, state


@contextmanager
def registry_server(home: Path):
    """`grec ui` over the state folder's registry: an MLflow tracking server on loopback, what the
    ranker's pods reach through MLFLOW_TRACKING_URI (the image's mlflow-skinny has no SQL store)."""
    port = _free_port()
    env = {**os.environ, "GREC_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "grec.cli", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, timeout=120, path="/health")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_the_rankers_image_follows_the_registry_as_its_deployment_sets_it(engine, storefront, ranker):
    """deploy/k8s/ranker.yaml's pods: GREC_SERVE_FOLLOW=grec@champion, the registry reached through
    a tracking server (without one, the image cannot open the SQLite store and refuses to start,
    saying so). Started after a promotion its Bento predates, the container serves the champion
    from its first answer; a rollback while clients post /rank is served within 30 s with every
    answer a 200."""
    from grec.lifecycle.registry import CHAMPION, Registry
    from tests.serving.load import RankLoad, served_version

    home = storefront["docker"]["home"]
    with pytest.MonkeyPatch.context() as mp, registry_server(home) as tracking:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        registry = Registry("grec")
        packaged = registry.aliases()[CHAMPION]  # the version the image's Bento holds
        source = registry.version(packaged)
        promoted = str(registry.client.create_model_version("grec", source.source, run_id=source.run_id).version)
        registry.client.set_registered_model_alias("grec", CHAMPION, promoted)
        env = {"GREC_SERVE_WORKERS": "2", "GREC_SERVE_COMPILE": "0", "GREC_SERVE_FOLLOW": "grec@champion",
               "GREC_SERVE_FOLLOW_SECONDS": "1", "MLFLOW_TRACKING_URI": tracking}
        customers = __import__("pandas").read_parquet(storefront["data"] / "impressions.parquet")["customer_id"]
        body = {"customer_id": int(customers.value_counts().index[0]), "flow": "EUP", "use_case": "CVR",
                "item_ids": list(range(40))}
        refused = f"grec-ranker-no-server-{os.getpid()}"  # the state folder's SQLite registry: not readable here
        _run_ranker(engine, ranker["tag"], home, {**env, "MLFLOW_TRACKING_URI": ""}, refused)
        try:
            deadline = time.monotonic() + 300
            while (code := Container(engine, refused).poll()) is None and time.monotonic() < deadline:
                time.sleep(1)
            logs = engine.docker("logs", refused, check=False)
            log = logs.stdout + logs.stderr  # the workers' output and the server's
            assert code not in (None, 0) and "set MLFLOW_TRACKING_URI to its http(s) URL" in log, (code, log[-2000:])
        finally:
            engine.docker("rm", "-f", refused, check=False)
        try:
            with ranker_container(engine, ranker["tag"], home, env, f"grec-ranker-follow-{os.getpid()}") as url, \
                    httpx.Client(base_url=url, timeout=30) as client, RankLoad(url, body) as load:
                first = [client.post("/rank", json=body).json()["model"] for _ in range(8)]  # both workers
                assert set(first) == {f"grec:v{promoted}"}, first
                meta = client.post("/metadata").json()
                assert meta["version"] == promoted and meta["follows"] == "grec@champion", meta
                registry.client.set_registered_model_alias("grec", CHAMPION, packaged)  # a rollback
                rolled_back = time.monotonic()
                assert served_version(client, packaged)["model"] == f"grec:v{packaged}"
                assert load.wait_for(f"grec:v{packaged}") and time.monotonic() - rolled_back < 30
            assert len(load.answers) > 20 and not load.failed(), load.failed()[:3]
        finally:
            registry.client.set_registered_model_alias("grec", CHAMPION, packaged)
