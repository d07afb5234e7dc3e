"""A ranking worker that follows the registry: when `name@alias` moves (a promotion, a rollback),
the worker loads the new version beside the one it serves and swaps it in whole, so no request is
refused or sees half of either.

The worker polls the registry's alias every `interval` seconds (one small query). The new version
is loaded, its catalogue read and its networks compiled on this thread, while requests keep the
version they have; then one assignment swaps them. A version whose requests would not fit the
published document (other flows, use cases, columns or value types: the OpenAPI schema is fixed
when the server starts) is not swapped in: the worker keeps serving and says so in `pending`
(`/metadata`), and a restart of the server serves it. Bounds drawn from the training range stay
those of the version the server started with.

A worker asks once before it is ready (`check`), so one started from an older Bento serves the
alias's version from its first request: a pod that a cluster starts or restarts after promotions
is never behind them. That version is the only one it prepares then; the packaged model is the
fallback when the registry does not answer or the swap is refused.

`grec serve` sets `GREC_SERVE_FOLLOW=name@alias`; so does the ranker's Deployment
(deploy/k8s/ranker.yaml), whose pods read the shared MLflow registry: the training pipeline's
promotion (or a `grec registry rollback`) is the rollout, with no new image. A new image (new
service code, or a version whose requests differ) rolls out through the Deployment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# The parts of a feature spec the request schema is typed from: equal, the new version takes the
# requests the published document describes.
REQUEST_FIELDS = ("context_categorical", "context_numerical", "item_categorical", "item_numerical",
                  "impression_context", "inputs", "value_types", "image_dim")


def request_shape(spec) -> dict:
    """What of `spec` the request bodies' schema depends on (see REQUEST_FIELDS)."""
    return {name: getattr(spec, name) for name in REQUEST_FIELDS} | {"tasks": spec.tasks.to_dict()}


def parse_follow(value: str) -> tuple[str, str]:
    """'grec@champion' -> ('grec', 'champion')."""
    name, sep, alias = value.partition("@")
    if not sep or not name or not alias:
        raise ValueError(f"GREC_SERVE_FOLLOW={value!r}: expected MODEL@ALIAS, e.g. grec@champion")
    return name, alias


class Follower:
    """Watches `name@alias`; `swap(version)` is called on this thread for each new version (it loads
    and swaps, or raises to leave the served version in place)."""

    def __init__(self, name: str, alias: str, served: str, swap: Callable[[str], None], interval: float = 5.0,
                 tracking_uri: str | None = None):
        self.name, self.alias, self.served, self.swap, self.interval = name, alias, served, swap, interval
        self.tracking_uri = tracking_uri
        self.pending: dict | None = None  # a version the alias names that is not served, and why
        self._registry = None
        self._thread = threading.Thread(target=self._run, name="registry-follower", daemon=True)

    def start(self) -> Follower:
        self._thread.start()
        return self

    def check(self) -> str | None:
        """Ask the registry once; swap in a version the alias names that is not served. Returns the
        version swapped in, or None (nothing new, the registry down, or the swap refused: `pending`)."""
        from grec.lifecycle.registry import Registry

        try:
            self._registry = self._registry or Registry(self.name, self.tracking_uri)
            version = self._registry.aliases().get(self.alias)
        except ImportError as e:  # no driver for the store (mlflow-skinny has no SQL store): it never heals
            raise RuntimeError(f"following {self.name}@{self.alias}: the registry cannot be read here ({e}); the "
                               "ranker's image reads it through an MLflow tracking server: set MLFLOW_TRACKING_URI "
                               "to its http(s) URL") from e
        except Exception:  # the registry is down: keep serving, ask again next time
            log.exception("reading %s@%s failed", self.name, self.alias)
            return None
        if version is None or version == self.served or (self.pending or {}).get("version") == version:
            return None
        log.info("%s@%s moved to v%s (serving v%s): loading it", self.name, self.alias, version, self.served)
        try:
            self.swap(version)
        except Exception as e:
            log.exception("v%s not swapped in; still serving v%s", version, self.served)
            self.pending = {"version": version, "reason": f"{type(e).__name__}: {e}"[:500]}
            return None
        self.served, self.pending = version, None
        return version

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.check()
