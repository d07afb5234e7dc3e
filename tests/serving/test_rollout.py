"""A new champion rolled out while the service answers (`grec serve` following the registry's
alias): no refused request, /metadata saying what is served and since when; a rollback the same."""

import threading
import time

import httpx

from grec.lifecycle.registry import CHAMPION, Registry
from grec.serving.bento import local_service


def test_a_promotion_and_a_rollback_under_load_refuse_no_request(served, monkeypatch):
    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry = Registry("grec")
    first = served["version"]
    source = registry.version(first)
    second = str(registry.client.create_model_version("grec", source.source, run_id=source.run_id).version)
    customer = int(served["tables"]["impressions"]["customer_id"].value_counts().index[0])
    body = {"customer_id": customer, "flow": "EUP", "use_case": "CVR", "item_ids": list(range(40))}
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def load(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                r = client.post("/rank", json=body)
                answers.append((r.status_code, r.json().get("model") if r.status_code == 200 else r.text))

    def served_version(client: httpx.Client, version: str, within: float = 30.0) -> dict:
        deadline = time.monotonic() + within
        while (meta := client.post("/metadata").json())["version"] != version and time.monotonic() < deadline:
            time.sleep(0.2)
        return meta

    try:
        with local_service(served["home"], env={"GREC_SERVE_FOLLOW_SECONDS": "1"}) as url, \
                httpx.Client(base_url=url, timeout=30) as client:
            before = client.post("/metadata").json()
            assert before["version"] == first and before["follows"] == "grec@champion" and before["served_since"]
            clients = [threading.Thread(target=load, args=(url,)) for _ in range(2)]
            for c in clients:
                c.start()
            time.sleep(1.0)
            promoted_at = time.monotonic()
            registry.client.set_registered_model_alias("grec", CHAMPION, second)  # what a promotion does
            # each worker swaps on its own: both have it once every answer names it
            meta = served_version(client, second)
            assert meta["version"] == second and meta["model"] == f"grec:v{second}", meta
            assert meta["served_since"] > before["served_since"] and meta["pending"] is None
            deadline = time.monotonic() + 30
            while any(m != f"grec:v{second}" for _, m in answers[-10:]) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert time.monotonic() - promoted_at < 30
            registry.client.set_registered_model_alias("grec", CHAMPION, first)  # a rollback
            assert served_version(client, first)["model"] == f"grec:v{first}"
            time.sleep(1.0)
            stop.set()
            for c in clients:
                c.join(timeout=60)
    finally:
        stop.set()
        registry.client.set_registered_model_alias("grec", CHAMPION, first)
    statuses = [s for s, _ in answers]
    assert len(answers) > 50 and set(statuses) == {200}, [a for a in answers if a[0] != 200][:3]
    models = [m for _, m in answers]
    assert {f"grec:v{first}", f"grec:v{second}"} <= set(models)
