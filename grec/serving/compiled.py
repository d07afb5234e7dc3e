"""Each task's scoring path compiled with torch.compile (Inductor) for the ranking service.

A request's 50 candidates through a task's sub-network are a few hundred small tensor operations;
on CPU their Python dispatch costs more than the arithmetic. Compiled once per task with dynamic
shapes (any number of candidates), the scoring stage of `/rank` took 1.43 ms against 3.83 ms
uncompiled (medians of the Server-Timing `score` stage, benchmarks/results/serving_http.md).
The price is start-up: every task's graph is compiled before the worker says it is ready, about
60 s for the storefront's 12 tasks on 2 cores with nothing cached, 17 s with Inductor's cache warm
(`/metadata` reports it as `compilation.seconds`); the cache lives in the state folder
(`$GREC_HOME/cache/inductor`), so a restart or a rollout of the same code finds it.

`compile_tasks` checks every compiled task against the eager path on an example request and
refuses (ValueError) a task whose scores differ by more than 1e-5.
"""

from __future__ import annotations

import dataclasses
import os
import time

import torch

from grec import settings
from grec.data.batch import Batch, Features

TOLERANCE = 1e-5


def inductor_cache() -> str:
    """Inductor's cache folder in the state folder (set before the first compile)."""
    path = settings.state_dir() / "cache" / "inductor"
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(path))
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


class CompiledTask(torch.nn.Module):
    """One task's network behind torch.compile: Batch -> logits (R,), as `score_request` gives."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net
        # C++ rather than Python calling the generated kernels: 0.85 against 0.98 ms per request of 50
        # candidates (the storefront's champion, one thread)
        self._compiled = torch.compile(self._logits, dynamic=True, options={"cpp_wrapper": True})

    def _logits(self, example: torch.Tensor, use_case: torch.Tensor, *fields: torch.Tensor) -> torch.Tensor:
        return self.net.score_request(Batch(Features(*fields), example, use_case)).logits

    def forward(self, batch: Batch) -> torch.Tensor:
        f = batch.features
        if len(batch.example) < 2:  # Dynamo specializes sizes 0 and 1: one candidate would compile anew
            return self.net.score_request(batch).logits
        return self._compiled(batch.example, batch.use_case,
                              *(getattr(f, field.name) for field in dataclasses.fields(Features)))


@torch.no_grad()
def compile_tasks(nets: dict[int, torch.nn.Module], examples: dict[int, Batch]) -> tuple[dict[int, CompiledTask], float]:
    """{task: its compiled scorer}, each compiled and checked on `examples[task]` now; and the
    seconds it took."""
    import torch._dynamo

    inductor_cache()
    # one graph per task, all from the same code: allow that many before Dynamo would give up
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 2 * len(nets) + 2)
    start, out = time.perf_counter(), {}
    for task, net in nets.items():
        compiled = CompiledTask(net)
        batch = examples[task]
        expected = net.score_request(batch).logits
        got = compiled(batch)
        gap = float((torch.sigmoid(got) - torch.sigmoid(expected)).abs().max())
        if not gap <= TOLERANCE:
            raise ValueError(f"task {task}: the compiled network's scores differ from the model's by {gap:.2e} "
                             f"(more than {TOLERANCE}); serve without GREC_SERVE_COMPILE")
        out[task] = compiled
    return out, time.perf_counter() - start
