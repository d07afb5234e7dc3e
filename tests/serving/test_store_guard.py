"""The online store's deadline and readiness (grec.serving.store_guard), called from a thread
(`call`) and from a worker's event loop (`acall`, what /rank uses)."""

import asyncio
import threading
import time

import pytest

from grec.serving.store_guard import GuardedStore, StoreUnavailable


def guard(probe_answers: threading.Event) -> GuardedStore:
    def probe():
        if not probe_answers.is_set():
            raise ConnectionRefusedError("connection refused")

    return GuardedStore("redis 127.0.0.1:1", timeout=0.2, probe=probe)


def hang(release: threading.Event) -> str:
    release.wait(5)
    return "late"


@pytest.mark.parametrize("mode", ["call", "acall"])
def test_a_read_past_its_deadline_is_unavailable_until_the_store_answers(mode):
    answers, release = threading.Event(), threading.Event()
    store = guard(answers)
    read = store.call if mode == "call" else (lambda *a: asyncio.run(store.acall(*a)))
    assert read(lambda x: x + 1, 1) == 2 and store.ready()
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"redis 127\.0\.0\.1:1 unavailable: no answer within 0\.2 s"):
        read(hang, release)
    assert time.monotonic() - start < 2  # the deadline, not the read's own 5 s
    release.set()
    assert not store.ready()  # the probe is refused
    answers.set()
    assert store.ready() and read(lambda: "ok") == "ok"


@pytest.mark.parametrize("mode", ["call", "acall"])
def test_the_stores_own_errors_are_unavailable_and_others_go_through(mode):
    store = guard(threading.Event())
    read = store.call if mode == "call" else (lambda *a: asyncio.run(store.acall(*a)))

    def refused():
        raise ConnectionResetError("reset by peer")

    with pytest.raises(StoreUnavailable, match="ConnectionResetError: reset by peer"):
        read(refused)
    assert store.failure and not store.ready()

    def bug():
        raise KeyError("customer_id")

    with pytest.raises(KeyError):  # not the store's: a 500 to fix, not a 503 to wait out
        read(bug)


def test_an_awaited_read_leaves_the_event_loop_serving_others():
    store, release = guard(threading.Event()), threading.Event()
    ticks = []

    async def ticker():
        for _ in range(5):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)
        release.set()

    async def both():
        return await asyncio.gather(store.acall(hang, release), ticker())

    start = time.monotonic()
    late, _ = asyncio.run(both())
    # the loop ran the ticker while the read waited, and the ticker's release answered the read
    # (a read that held the loop would wait out its own 5 s before the ticker ran)
    assert late == "late" and len(ticks) == 5 and time.monotonic() - start < 2
