"""A local pipeline run told in one line per step. kfp's local runners print every task's executor
input, streamed output (library warnings, progress bars) and outputs: thousands of lines before the
summary. Here all of it goes to a log file, and the terminal gets, per finished task, its status,
its time and its key figures (its output parameter, its metrics); a failed task shows the last
lines it printed and the log's path."""

from __future__ import annotations

import ast
import io
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
RULE = re.compile(r"^-{20,}$")  # kfp's line after each task
PARAMETER = re.compile(r"^ {4}(\w+): (?!\w+\( name=)(.+)$")  # "    Output: 'promote'"
ARTIFACT = re.compile(r"^ {4}(\w+): (\w+)\( name=")  # "    metrics: Metrics( name='metrics',"
METADATA = re.compile(r"^\s+metadata=(\{.*\}) \)$")
FIGURES = 3  # metrics shown per step
SHORT = 16  # a model's metadata strings shown (its arch), not its URIs and run ids


def duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 60 else f"{int(seconds // 60)}m{seconds % 60:02.0f}s"


def key_figures(lines: list[str]) -> str:
    """'arch=grec; Output=promote; test_mean_auc=0.7612; ...' from the outputs kfp printed for one
    task: its output parameters, a model's short labels, its metrics (means first)."""
    labels, parameters, metrics, kind = [], [], [], None
    for line in lines:
        if found := ARTIFACT.match(line):
            kind = found[2]
        elif found := PARAMETER.match(line):
            parameters.append(f"{found[1]}={found[2].strip(chr(39))}")
        elif (found := METADATA.match(line)) and kind in ("Metrics", "Model"):
            try:
                metadata = ast.literal_eval(found[1])
            except (ValueError, SyntaxError):
                continue
            if kind == "Model":
                labels += [f"{k}={v}" for k, v in metadata.items() if isinstance(v, str) and len(v) <= SHORT]
            else:
                metrics += [(k, v) for k, v in metadata.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    metrics.sort(key=lambda kv: "mean" not in kv[0])  # stable: the step's own order otherwise
    return "; ".join(labels + parameters + [f"{k}={v:.4g}" for k, v in metrics[:FIGURES]])


class StepLog(io.TextIOBase):
    """A stream that writes everything to `log` and calls `say` with one line per finished task."""

    def __init__(self, log, say: Callable[[str], None]):
        self.log, self.say = log, say
        self.partial = ""
        self.began: dict[str, float] = {}
        self.tail: deque[str] = deque(maxlen=8)  # the running task's last lines, shown if it fails
        self.finished: tuple[str, float] | None = None  # a task whose outputs kfp is printing
        self.outputs: list[str] = []
        self.steps: list[dict] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self._line(ANSI.sub("", line).rstrip())
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def _line(self, line: str) -> None:
        if found := STARTED.search(line):
            self.began[found[1]] = time.monotonic()
            self.tail.clear()
        elif found := FINISHED.search(line):
            task, status = found[1], found[2]
            seconds = time.monotonic() - self.began.get(task, time.monotonic())
            if status == "SUCCESS":
                self.finished, self.outputs = (task, seconds), []
            else:
                self._step(task, status, seconds, "")
                for shown in self.tail:
                    self.say(f"    {shown}")
        elif self.finished:
            if RULE.match(line.strip()):
                task, seconds = self.finished
                self._step(task, "SUCCESS", seconds, key_figures(self.outputs))
                self.finished = None
            else:
                self.outputs.append(line)
        elif line.strip() and not line.startswith(("Streamed logs", "Task ")):
            self.tail.append(line.strip()[:200])

    def _step(self, task: str, status: str, seconds: float, figures: str) -> None:
        self.steps.append({"task": task, "status": status, "seconds": round(seconds, 1), "figures": figures})
        mark = "ok" if status == "SUCCESS" else status
        self.say(f"  {mark:<7} {task:<24} {duration(seconds):>7}  {figures}".rstrip())


@contextmanager
def quiet_run(log_path: Path, say: Callable[[str], None] | None = None) -> Iterator[StepLog]:
    """While the block runs, this process's stdout and stderr (where kfp's runners print the tasks'
    streams) go to `log_path`; `say` (default: the terminal) gets one line per finished task."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stdout
    if say is None:
        def say(line: str) -> None:
            terminal.write(line + "\n")
            terminal.flush()
    with open(log_path, "w", encoding="utf-8") as log:
        stream = StepLog(log, say)
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = stream
        try:
            yield stream
        finally:
            sys.stdout, sys.stderr = saved
            if stream.partial:
                log.write("\n")
