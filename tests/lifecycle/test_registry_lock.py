"""The registry's alias lock (kept in MLflow's registry, so it holds across machines): exclusive,
named by who holds it, broken once a dead holder's lease is over, never by two waiters at once."""

import threading
import time

import pytest
from mlflow import MlflowClient

from grec.lifecycle.registry_lock import HOLDER, SUFFIX, LockTimeout, RegistryLock
from grec.lifecycle.store import configure


@pytest.fixture
def client():
    return MlflowClient(configure(), configure())


def test_the_lock_is_exclusive_and_says_who_holds_it(client):
    first = RegistryLock(client, "m", "alice@a")
    with first:
        assert client.get_registered_model(f"m{SUFFIX}").tags[HOLDER] == "alice@a"
        with pytest.raises(LockTimeout, match=r"held by alice@a since .*waited 0 s"):
            RegistryLock(client, "m", "bob@b", timeout_s=0.0).acquire()
    assert first.holder() is None  # released: the registered model is gone
    with RegistryLock(client, "m", "bob@b", timeout_s=0.0):  # and free again
        pass


def test_a_waiter_gets_the_lock_when_the_holder_releases_it(client):
    order = []
    holder = RegistryLock(client, "m", "alice@a")
    holder.acquire()

    def wait_for_it():
        with RegistryLock(client, "m", "bob@b", timeout_s=30):
            order.append("bob")

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    time.sleep(1.0)
    order.append("alice releases")
    holder.release()
    waiter.join(timeout=30)
    assert order == ["alice releases", "bob"]


def test_a_dead_holders_lock_is_broken_after_its_lease_once(client):
    RegistryLock(client, "m", "crashed@a", lease_s=0.5).acquire()  # never released: its process died
    time.sleep(1.0)
    with pytest.warns(UserWarning, match="breaking the promotion lock of crashed@a"):
        with RegistryLock(client, "m", "bob@b", timeout_s=10) as lock:
            assert lock.holder().holder == "bob@b"
    names = {m.name for m in client.search_registered_models()}
    assert not any(n.startswith(f"m{SUFFIX}") for n in names)  # the lock and its break marker are gone


def test_a_holder_whose_lease_ran_out_does_not_release_the_next_holders_lock(client):
    slow = RegistryLock(client, "m", "slow@a", lease_s=0.5)
    slow.acquire()
    time.sleep(1.0)
    with pytest.warns(UserWarning, match="breaking"):
        fresh = RegistryLock(client, "m", "bob@b", timeout_s=10)
        fresh.acquire()
    with pytest.warns(UserWarning, match="was broken by another process"):
        slow.release()
    assert fresh.holder().holder == "bob@b"  # still bob's
    fresh.release()
