"""Runs a killed process left RUNNING: found and ended as KILLED when the next training starts,
so the UI never shows a run in progress forever and nothing reads a half-logged run as live.

Every training run is tagged with the machine and the process that logs it (`run_tags`). A
RUNNING run of this machine whose process is gone (or whose pid now belongs to a process started
after the run) is ended with status KILLED and tagged `grec.ended_by`. A RUNNING run of another
machine is left alone: its process cannot be seen from here (a shared tracking server's runs of
other machines are ended by their own machine's next training).
"""

from __future__ import annotations

import os
import socket
import time

import mlflow
import psutil

HOST_TAG, PID_TAG = "grec.host", "grec.pid"


def run_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive_since(pid: int, started_ms: int) -> bool:
    """Whether `pid` is a live process that was already running at `started_ms` (the run's start)."""
    try:
        process = psutil.Process(pid)
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE \
            and process.create_time() * 1000 <= started_ms + 1000
    except psutil.Error:
        return False


def end_abandoned_runs(experiment: str) -> list[str]:
    """End this machine's RUNNING runs of `experiment` whose process is gone; their run ids."""
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    runs = client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    ended = []
    for run in runs:
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
            continue
        if _alive_since(int(tags[PID_TAG]), run.info.start_time):
            continue
        client.set_tag(run.info.run_id, "grec.ended_by", f"pid {os.getpid()} on {host} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}: "
                       f"its process {tags[PID_TAG]} had ended without ending the run")
        client.set_terminated(run.info.run_id, status="KILLED")
        ended.append(run.info.run_id)
    return ended
