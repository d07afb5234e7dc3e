"""A lock over one registered model's aliases that holds across machines, kept in the MLflow
registry itself.

MLflow moves an alias with a read-then-write, so two promotions at once can both replace the
same champion (or fail on a unique violation). A file lock only serializes one machine; pipelines,
people and schedulers on other machines share the tracking server. What every backend (SQLite,
PostgreSQL, the REST server in front of either) does atomically is create a registered model:
a name that exists already is refused. So the lock is a registered model, `<name>.promotion-lock`:
acquired by creating it (tagged with who holds it, a token, and when its lease ends), released by
deleting it. The registry shows who holds it while it is held.

A holder that died leaves its lock behind; once its lease is over a waiter breaks it. Breaking is
itself exclusive (the breaker first creates `<lock>.break-<token>`, which only one can), so two
waiters never delete each other's fresh lock.
"""

from __future__ import annotations

import random
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from grec.errors import UserError

SUFFIX = ".promotion-lock"
TOKEN, HOLDER, SINCE, UNTIL = "grec.lock.token", "grec.lock.holder", "grec.lock.since", "grec.lock.until"


class LockTimeout(UserError, TimeoutError):
    """The lock stayed held by someone else for longer than we were willing to wait."""


@dataclass
class Holder:
    token: str
    holder: str
    since: str
    until: datetime

    def expired(self) -> bool:
        return datetime.now(timezone.utc) > self.until


# What a create that lost the race answers: the name exists; or it existed at the insert and was
# deleted before MLflow re-read it for the message; or the store was busy (SQLite's lock)
LOST = {"RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "TEMPORARILY_UNAVAILABLE"}


def _created(client: MlflowClient, name: str, tags: dict[str, str], description: str) -> bool:
    """Create registered model `name`: True if we did, False if another did first."""
    try:
        client.create_registered_model(name, tags=tags, description=description)
        return True
    except MlflowException as e:
        if e.error_code in LOST:
            return False
        raise


class RegistryLock:
    """`with RegistryLock(client, "grec", "me@host"):` ... the aliases of "grec" are ours."""

    def __init__(self, client: MlflowClient, name: str, actor: str, lease_s: float = 1800.0, timeout_s: float = 900.0,
                 poll_s: float = 0.2):
        self.client, self.name, self.actor = client, f"{name}{SUFFIX}", actor
        self.lease_s, self.timeout_s, self.poll_s = lease_s, timeout_s, poll_s
        self.token: str | None = None

    def holder(self) -> Holder | None:
        """Who holds the lock now (None: nobody)."""
        try:
            tags = self.client.get_registered_model(self.name).tags
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        until = tags.get(UNTIL)
        return Holder(tags.get(TOKEN, ""), tags.get(HOLDER, "?"), tags.get(SINCE, "?"),
                      datetime.fromisoformat(until) if until else datetime.min.replace(tzinfo=timezone.utc))

    def acquire(self) -> None:
        token, deadline = uuid.uuid4().hex, time.monotonic() + self.timeout_s
        while True:
            now = datetime.now(timezone.utc)
            tags = {TOKEN: token, HOLDER: self.actor, SINCE: now.isoformat(timespec="seconds"),
                    UNTIL: (now + timedelta(seconds=self.lease_s)).isoformat(timespec="seconds")}
            if _created(self.client, self.name, tags, f"Held by {self.actor} while it moves aliases (grec registry lock)"):
                self.token = token
                return
            held = self.holder()
            if held is not None and held.expired():
                self._break(held)
                continue
            if time.monotonic() > deadline:
                who = f"{held.holder} since {held.since}" if held else "someone"
                raise LockTimeout(f"registered model '{self.name}' (the promotion lock) is held by {who}; waited "
                                  f"{self.timeout_s:.0f} s. If that holder is gone, the lock breaks itself at the end "
                                  "of its lease, or delete that registered model")
            time.sleep(self.poll_s * (0.5 + random.random()))  # jittered: waiters do not retry in step

    def _break(self, stale: Holder) -> None:
        """Delete a lock whose lease is over, if we are the one waiter allowed to."""
        marker = f"{self.name}.break-{stale.token[:16]}"
        if not _created(self.client, marker, {HOLDER: self.actor}, f"{self.actor} is breaking a stale lock"):
            return  # another waiter breaks it
        try:
            current = self.holder()
            if current is not None and current.token == stale.token:
                warnings.warn(f"breaking the promotion lock of {stale.holder} (since {stale.since}; lease ended "
                              f"{stale.until.isoformat()})", stacklevel=3)
                self.client.delete_registered_model(self.name)
        finally:
            self.client.delete_registered_model(marker)

    def release(self) -> None:
        token, self.token = self.token, None
        held = self.holder()
        if held is None or held.token != token:
            warnings.warn(f"the promotion lock of {self.actor} was broken by another process (its lease of "
                          f"{self.lease_s:.0f} s ran out); nothing to release", stacklevel=3)
            return
        self.client.delete_registered_model(self.name)

    def __enter__(self) -> RegistryLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
