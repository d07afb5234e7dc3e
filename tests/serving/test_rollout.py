"""A new champion rolled out while the service answers (`grec serve` following the registry's
alias): no refused request, /metadata saying what is served and since when; a rollback the same."""

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from grec.lifecycle.registry import CHAMPION, Registry
from grec.serving.bento import local_service
from grec.serving.rollout import Follower
from tests.serving.load import RankLoad, served_version


@pytest.fixture
def two_versions(served, monkeypatch):
    """The served model registered again as a second version; the champion alias back where it was after."""
    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry = Registry("grec")
    first = served["version"]
    source = registry.version(first)
    second = str(registry.client.create_model_version("grec", source.source, run_id=source.run_id).version)
    yield registry, first, second
    registry.client.set_registered_model_alias("grec", CHAMPION, first)


def test_a_promotion_and_a_rollback_under_load_refuse_no_request(served, two_versions):
    registry, first, second = two_versions
    customer = int(served["tables"]["impressions"]["customer_id"].value_counts().index[0])
    body = {"customer_id": customer, "flow": "EUP", "use_case": "CVR", "item_ids": list(range(40))}
    with local_service(served["home"], env={"GREC_SERVE_FOLLOW_SECONDS": "1"}) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        before = client.post("/metadata").json()
        assert before["version"] == first and before["follows"] == "grec@champion" and before["served_since"]
        with RankLoad(url, body) as load:
            time.sleep(1.0)
            promoted_at = time.monotonic()
            registry.client.set_registered_model_alias("grec", CHAMPION, second)  # what a promotion does
            # each worker swaps on its own: both have it once every answer names it
            meta = served_version(client, second)
            assert meta["version"] == second and meta["model"] == f"grec:v{second}", meta
            assert meta["served_since"] > before["served_since"] and meta["pending"] is None
            assert load.wait_for(f"grec:v{second}") and time.monotonic() - promoted_at < 30
            registry.client.set_registered_model_alias("grec", CHAMPION, first)  # a rollback
            assert served_version(client, first)["model"] == f"grec:v{first}"
            time.sleep(1.0)
    assert len(load.answers) > 50 and not load.failed(), load.failed()[:3]
    assert {f"grec:v{first}", f"grec:v{second}"} <= {m for _, m in load.answers}


def test_the_follower_asks_once_on_check_and_keeps_a_refused_version_pending(two_versions, monkeypatch):
    """`check` is what a worker runs before it is ready (a pod started after promotions serves the
    alias's version first) and what the follower's thread repeats."""
    registry, first, second = two_versions
    swapped: list[str] = []
    follower = Follower("grec", CHAMPION, first, swapped.append)
    assert follower.check() is None and swapped == []  # the alias names what is served
    registry.client.set_registered_model_alias("grec", CHAMPION, second)
    assert follower.check() == second and swapped == [second] and follower.served == second
    assert follower.check() is None and swapped == [second]

    def refuse(version):
        raise ValueError("its requests differ")

    registry.client.set_registered_model_alias("grec", CHAMPION, first)
    refusing = Follower("grec", CHAMPION, second, refuse)
    assert refusing.check() is None and refusing.served == second
    assert refusing.pending == {"version": first, "reason": "ValueError: its requests differ"}
    assert refusing.check() is None  # not retried: pending until a restart or another version
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's default retries take minutes
    down = Follower("grec", CHAMPION, second, swapped.append, tracking_uri="http://127.0.0.1:9")
    assert down.check() is None and swapped == [second]  # the registry unreachable: keep serving


# One ranking worker built in its own process (bentoml reads its home once per process), as `bentoml
# serve` builds it, with each model it prepares (catalogue read, networks compiled) written down.
START_A_WORKER = """
import json
from grec.serving import service
prepared, inner = [], service.GRecRanker.inner
prepare = inner._prepare
inner._prepare = lambda self, model, spec, labels: prepared.append(labels["model"]) or prepare(self, model, spec, labels)
worker = inner()
print(json.dumps({"prepared": prepared, "serves": worker.served[1]["model"], "pending": worker.follower.pending}))
"""


def last_line_of(script: str, env: dict[str, str]) -> str:
    """Run `script` in a fresh interpreter with `env` (BentoML reads its home once per process);
    the last line it prints."""
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def start_a_worker(home, **env) -> dict:
    env = os.environ | {"GREC_HOME": str(home), "GREC_SERVE_FOLLOW": "grec@champion", "GREC_SERVE_COMPILE": "0",
                        "GREC_SERVE_WORKERS": "1"} | env
    env.pop("BENTOML_HOME", None)
    return json.loads(last_line_of(START_A_WORKER, env))


def test_a_worker_started_behind_the_alias_prepares_only_the_alias_version(two_versions):
    """A pod started from an older Bento after promotions: the champion is the one model it reads
    and compiles before it is ready; the packaged one only when the registry does not answer."""
    registry, first, second = two_versions
    home = os.environ["GREC_HOME"]  # the served state folder (two_versions selects it)
    tag = last_line_of("from grec.serving.bento import import_champion; print(import_champion().tag)",
                       dict(os.environ))
    assert tag == f"grec:v{first}"
    registry.client.set_registered_model_alias("grec", CHAMPION, second)  # promoted after the Bento was built
    behind = start_a_worker(home, GREC_BENTO_MODEL=tag)
    assert behind == {"prepared": [f"grec:v{second}"], "serves": f"grec:v{second}", "pending": None}
    unreachable = start_a_worker(home, GREC_BENTO_MODEL=tag, MLFLOW_TRACKING_URI="http://127.0.0.1:9",
                                 MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    assert unreachable == {"prepared": [tag], "serves": tag, "pending": None}
