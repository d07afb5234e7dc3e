"""The ranking service under faults (`grec serve` on loopback): a store that stops answering, and
the service's processes stopped or killed outright."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from grec.serving.bento import local_service
from grec.serving.prediction_log import read_log

RANK = {"flow": "AAL", "use_case": "CTR", "item_ids": [1, 2, 3]}
TIMEOUT = 0.5  # GREC_SERVE_STORE_TIMEOUT_SECONDS for these tests


def busy_customer(served) -> int:
    return int(served["tables"]["impressions"]["customer_id"].value_counts().index[0])


def test_a_store_that_stops_answering_is_a_503_naming_it_and_readiness_follows(served, served_redis, redis_server):
    """Redis frozen (SIGSTOP: a hung server or a partition, the worst case: no refusal, no answer):
    each /rank is a 503 naming the store within the configured deadline, /readyz says not ready;
    Redis back (SIGCONT): ready again and /rank answers, with no restart."""
    body = RANK | {"customer_id": busy_customer(served)}
    env = served_redis | {"GREC_SERVE_STORE_TIMEOUT_SECONDS": str(TIMEOUT)}
    with local_service(served["home"], env=env) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/rank", json=body).status_code == 200
        os.kill(redis_server.pid, signal.SIGSTOP)
        try:
            for _ in range(3):
                start = time.monotonic()
                answer = client.post("/rank", json=body)
                took = time.monotonic() - start
                assert answer.status_code == 503, answer.text
                error = answer.json()
                assert "online store redis 127.0.0.1" in error["error"] and "unavailable" in error["error"], error
                assert TIMEOUT <= took < TIMEOUT + 2.0, took
            assert client.get("/readyz").status_code != 200
        finally:
            os.kill(redis_server.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/readyz").status_code == 200
        assert client.post("/rank", json=body).status_code == 200


@contextmanager
def grec_serve(served, tmp_path):
    """`grec serve` for the served state folder as a user starts it (a plain child, not a process
    group of its own: what happens to its server when it dies is the point); yields (CLI process,
    URL) once ready. Whatever is left when the test ends is killed."""
    from grec.serving.bento import _free_port, wait_ready

    port = _free_port()
    env = os.environ | {"GREC_HOME": str(served["home"])}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(tmp_path / "serve.log", "w") as log:
        cli = subprocess.Popen([str(Path(sys.executable).with_name("grec")), "serve", "--port", str(port)], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    everything = [psutil.Process(cli.pid)]
    try:
        try:
            wait_ready(url, cli)
        except RuntimeError:
            raise AssertionError((tmp_path / "serve.log").read_text()[-3000:]) from None
        everything += everything[0].children(recursive=True)
        yield cli, url
    finally:
        for p in everything:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        cli.wait(timeout=30)


def test_sigterm_to_grec_serve_stops_its_server_and_flushes_the_log(served, tmp_path):
    """The CLI's own PID stopped, as a supervisor does: the server it started stops too (nothing
    left answering), after writing what it had queued in its prediction log."""
    with grec_serve(served, tmp_path) as (cli, url):
        children = psutil.Process(cli.pid).children(recursive=True)
        assert children
        answer = httpx.post(f"{url}/rank", json=RANK | {"customer_id": busy_customer(served)}, timeout=30).json()
        cli.send_signal(signal.SIGTERM)  # within the log's 5 s flush interval: only a clean shutdown writes it
        code = cli.wait(timeout=90)  # raises if the CLI does not end
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/readyz", timeout=2)
        assert answer["request_id"] in set(read_log(served["home"] / "predictions")["request_id"])
        assert code == 0, code


@pytest.mark.parametrize("killed", ["grec serve", "bentoml serve"])
def test_a_supervisor_killed_outright_takes_its_workers_with_it(served, tmp_path, killed):
    """`kill -9` of the CLI or of BentoML's supervisor: nothing is left serving the port (the
    workers were orphaned and kept answering), and the workers had their shutdown (SIGTERM), so
    what they answered is in the prediction log."""
    with grec_serve(served, tmp_path) as (cli, url):
        supervisor = psutil.Process(cli.pid).children()[0]
        everything = [psutil.Process(cli.pid), *psutil.Process(cli.pid).children(recursive=True)]
        assert len(everything) >= 3  # the CLI, BentoML's supervisor, its workers
        answer = httpx.post(f"{url}/rank", json=RANK | {"customer_id": busy_customer(served)}, timeout=30).json()
        (cli if killed == "grec serve" else supervisor).send_signal(signal.SIGKILL)
        gone, alive = psutil.wait_procs(everything[1:] if killed == "grec serve" else everything[2:], timeout=60)
        assert not alive, [p.cmdline() for p in alive]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/readyz", timeout=2)
        assert answer["request_id"] in set(read_log(served["home"] / "predictions")["request_id"])
