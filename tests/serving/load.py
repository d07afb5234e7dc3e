"""Clients that post /rank while a test moves the registry's alias, and a wait for a version to be
served: what the rollout tests of `grec serve` and of the ranker's image share."""

from __future__ import annotations

import threading
import time

import httpx


class RankLoad:
    """`clients` threads posting `body` to `url`/rank until stopped; each answer kept as
    (status, the model it names or the error text); status 0: no answer (the error)."""

    def __init__(self, url: str, body: dict, clients: int = 2):
        self.url, self.body = url, body
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._post, daemon=True) for _ in range(clients)]

    def _post(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post("/rank", json=self.body)
                except httpx.HTTPError as e:  # a refused or dropped connection is a failed request too
                    self.answers.append((0, repr(e)))
                    continue
                self.answers.append((r.status_code, r.json().get("model") if r.status_code == 200 else r.text))

    def __enter__(self) -> RankLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def wait_for(self, model: str, within: float = 30.0) -> bool:
        """True once the last 10 answers all name `model` (every worker serves it)."""
        deadline = time.monotonic() + within
        while any(m != model for _, m in self.answers[-10:]) and time.monotonic() < deadline:
            time.sleep(0.2)
        return all(m == model for _, m in self.answers[-10:])

    def failed(self) -> list[tuple[int, str]]:
        return [a for a in self.answers if a[0] != 200]


def served_version(client: httpx.Client, version: str, within: float = 30.0) -> dict:
    """/metadata once it names `version` (or when `within` seconds have passed)."""
    deadline = time.monotonic() + within
    while (meta := client.post("/metadata").json())["version"] != version and time.monotonic() < deadline:
        time.sleep(0.2)
    return meta
