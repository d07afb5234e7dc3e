"""The online store as the ranking service meets it: every read within a deadline, and whether the
store is answering.

A store that does not answer (Redis stopped, a network partition, a SQLite file gone) made `/rank`
a 500 after 6-7 s of the client's retries, while `/readyz` said ready. Here each read runs on a
small pool of threads and is waited for at most `timeout` seconds (GREC_SERVE_STORE_TIMEOUT_SECONDS;
`call` blocks its thread, `acall` awaits on the worker's event loop, which serves other requests meanwhile):
past it, or on the store's own connection error, `StoreUnavailable` names the store and the reason,
and the service answers 503. `ready()` is false from a failed read until a read succeeds again
(a probe when asked), so a load balancer takes the worker out while its store is down and puts it
back when the store returns. Errors that are not the store's (a bug, a bad key) go through as they
are: a 500 is a bug to fix, not a store to wait for.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


class StoreUnavailable(RuntimeError):
    """The online store did not answer; the message names it and why."""


def _is_store_failure(error: BaseException) -> bool:
    """Connection errors of the stores the platform configures: OS-level (refused, reset, timed
    out), SQLite's, and redis-py's (which are not OSErrors)."""
    if isinstance(error, (OSError, sqlite3.Error, TimeoutError)):
        return True
    return any(c.__module__.startswith("redis") and c.__name__ in ("ConnectionError", "TimeoutError", "BusyLoadingError")
               for c in type(error).__mro__)


class GuardedStore:
    """Reads of the store named `description`, each within `timeout` seconds."""

    def __init__(self, description: str, timeout: float, probe: Callable[[], object] | None = None, threads: int = 4):
        self.description, self.timeout, self.probe = description, timeout, probe
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="online-store")
        self._lock = threading.Lock()
        self.failure: str | None = None  # why the last read failed, until one succeeds

    def call(self, read: Callable[..., T], *args) -> T:
        future = self._pool.submit(read, *args)
        try:
            result = future.result(timeout=self.timeout)
        except FutureTimeout:
            future.cancel()
            raise self._timed_out() from None
        except Exception as e:
            raise self._failure_of(e) from None
        return self._answered(result)

    async def acall(self, read: Callable[..., T], *args) -> T:
        """`call` for a request served on the event loop: the loop serves other requests while the
        read waits (a store that does not answer holds each request up to `timeout`, not the worker)."""
        future = self._pool.submit(read, *args)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except (asyncio.TimeoutError, FutureTimeout):
            future.cancel()
            raise self._timed_out() from None
        except Exception as e:
            raise self._failure_of(e) from None
        return self._answered(result)

    def _timed_out(self) -> StoreUnavailable:
        return self._failed(f"no answer within {self.timeout:g} s (GREC_SERVE_STORE_TIMEOUT_SECONDS)")

    def _failure_of(self, error: Exception) -> Exception:
        """The store's own failure as StoreUnavailable; any other error as it is."""
        return self._failed(f"{type(error).__name__}: {error}") if _is_store_failure(error) else error

    def _answered(self, result: T) -> T:
        if self.failure is not None:
            with self._lock:
                self.failure = None
        return result

    def _failed(self, reason: str) -> StoreUnavailable:
        with self._lock:
            self.failure = reason
        return StoreUnavailable(f"online store {self.description} unavailable: {reason}")

    def ready(self) -> bool:
        """Whether the store answers: true until a read fails; then a probe read decides."""
        if self.failure is None:
            return True
        if self.probe is None:
            return False
        try:
            self.call(self.probe)
        except StoreUnavailable:
            return False
        return True
