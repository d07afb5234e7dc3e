"""A server run as this command's child (`grec serve`'s BentoML, `grec ui`'s MLflow): the signals
that stop this command stop it too, and nothing is left serving behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Have the kernel send this process `sig` when its parent ends, however it ends (a `kill -9`
    of a supervisor left BentoML's workers serving the port, orphaned). Linux only; elsewhere
    nothing changes. If the parent is already gone, the signal is sent now."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # it ended before the request took effect
        os.kill(os.getpid(), sig)


def run_server(args: list[str], env: dict, grace_seconds: float = 60.0) -> int:
    """Run `args` (`bentoml serve ...`, `mlflow ui ...`) as this process's child and return its exit
    code. A SIGTERM, SIGINT or SIGHUP to this process is passed on to the server, then its end
    awaited (BentoML stops its workers, the service's shutdown hook flushes the prediction log);
    past `grace_seconds` its whole process group is killed. What the server started and left
    running when it ended (MLflow's UI leaves its uvicorn worker on SIGTERM) is stopped with it.
    The server runs in a session of its own, so a terminal's Ctrl-C reaches it once, through here,
    not twice. If this process is killed outright (SIGKILL: nothing to forward), the server is sent
    SIGTERM by the kernel (`die_with_parent`), and its workers the same when it goes."""
    proc = subprocess.Popen(args, env=env, start_new_session=True, preexec_fn=die_with_parent)
    deadline: list[float] = []  # set by the first signal

    def forward(signum, _frame):
        if not deadline:
            deadline.append(time.monotonic() + grace_seconds)
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        while True:
            try:
                code = proc.wait(timeout=1.0)
                stop_group(proc.pid)
                return code
            except subprocess.TimeoutExpired:
                if deadline and time.monotonic() > deadline[0]:
                    os.killpg(proc.pid, signal.SIGKILL)
                    return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # this process itself is failing: leave nothing serving behind
            os.killpg(proc.pid, signal.SIGKILL)


def stop_group(group: int, grace_seconds: float = 10.0) -> None:
    """SIGTERM to what is left of process group `group`, SIGKILL past `grace_seconds`."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
