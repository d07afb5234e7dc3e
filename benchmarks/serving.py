"""Serving costs, side by side in one run on this machine.

(a) In-process latency and throughput at batch 1, 64 and 1024 rows of one task: the task's dense
    sub-network, GRec with its router (task-sentence routing through the full MoE), token-level
    GRec, MMoE with 4 and with 8 experts. Same inputs, same widths as `make run`'s model
    (d_model 32, expert hidden 64, 384-d MiniLM vectors), untrained weights (timing only).
(b) Experts scaled 8, 16, 32, 64 at top-4: the sub-network's latency against its 8-expert figure
    (target: within 1.2x), and its throughput at batch 1024 against token-level GRec's (target:
    at least 1.8x, the Task-MoE paper's 1.9x).
(c) Over HTTP: `/rank` with 50 candidates at concurrency 1 and 8 against `grec serve` (the
    registry champion) in the state folder given by --state, once per Feast online store: the
    state's SQLite store, and Redis (started on loopback by deploy/local/services.py, the state's
    repository applied and materialized into it): throughput, p50/p99 latency and failures, quiet,
    beside a spinning process per core at the server's priority, and beside the same at nice 19;
    where a request's time goes, from the stages the server reports in its Server-Timing header;
    and the in-process read of one request's features. The services compared (this checkout
    compiled and uncompiled; with --before, a checkout of earlier code) serve at once and take
    turns level by level for --rounds rounds (medians reported): this machine's speed drifts by
    20-40% over minutes. The load generator (aiohttp coroutines, one process) runs on the same
    machine as the servers.

    make run && python benchmarks/serving.py --state .grec     # all of it (about 25 minutes)
    git worktree add /tmp/before <commit> && python benchmarks/serving.py --state .grec --skip-in-process \\
        --before /tmp/before                                    # (c) before and after, side by side
    python benchmarks/serving.py --skip-http                    # (a) and (b) only

Dimension letters: B rows per call.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

from grec.data.batch import Batch, Features  # noqa: E402
from grec.model.baselines import BaselineConfig  # noqa: E402
from grec.model.checkpoint import build_model  # noqa: E402
from grec.model.grec import GRecConfig  # noqa: E402
from grec.serving.bento import local_service  # noqa: E402
from grec.serving.subnet import TaskSubNetwork  # noqa: E402

# The default simulated storefront's input sizes (`grec simulate` + the fitted FeatureSpec).
SIZES = dict(context_cardinalities=[12, 6, 3, 6, 24, 3, 6], item_cardinalities=[8, 8, 4], n_items=300, n_pages=24,
             n_context_numerical=4, n_item_numerical=4, search_dim=384, image_dim=32, text_dim=384)
BATCHES = (1, 64, 1024)
TASK = 6  # EUP+CVR: any task of a task-routed model has the same cost


def features(n: int, seed: int = 0) -> Features:
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(2, SIZES["n_items"] + 2, (n, 20), generator=g)
    seq[:, : 20 // 3] = 0  # right-aligned histories with some padding
    return Features(
        context_categorical=torch.stack([torch.randint(0, k, (n,), generator=g) for k in SIZES["context_cardinalities"]], 1),
        context_numerical=torch.randn(n, 4, generator=g),
        search=torch.randn(n, 384, generator=g),
        item=torch.randint(2, SIZES["n_items"] + 2, (n,), generator=g),
        item_categorical=torch.stack([torch.randint(0, k, (n,), generator=g) for k in SIZES["item_cardinalities"]], 1),
        item_numerical=torch.randn(n, 4, generator=g),
        item_image=torch.randn(n, 32, generator=g),
        item_text=torch.randn(n, 384, generator=g),
        seq_items=seq,
        seq_pages=torch.where(seq > 0, torch.randint(2, 26, (n, 20), generator=g), 0),
        flow=torch.full((n,), TASK // 4),
        seq_item_categorical=torch.stack([torch.randint(0, k, (n, 20), generator=g) for k in SIZES["item_cardinalities"]], 2),
        seq_item_numerical=torch.randn(n, 20, 4, generator=g),
    )


def task_batch(n: int) -> Batch:
    return Batch.single(features(n), torch.full((n,), TASK % 4))


def models(n_experts: int = 8) -> dict:
    torch.manual_seed(0)
    grec = build_model(GRecConfig(**SIZES, n_experts=n_experts, routing="task_sentence")).eval()
    token = build_model(GRecConfig(**SIZES, n_experts=n_experts, routing="token")).eval()
    out = {"task sub-network": TaskSubNetwork(grec, TASK).eval(), "GRec + router (task-sentence)": grec,
           "GRec token-level": token}
    return out


@torch.inference_mode()
def timed(model, batch: Batch, min_seconds: float = 1.0, min_reps: int = 5) -> float:
    """Median seconds per call of `model` (a module or a bound scoring method)."""
    for _ in range(3):
        model(batch)
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        model(batch)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


MODES = {
    "request": "B candidates of one customer, the /rank path (score_request: customer side encoded once)",
    "rows": "B independent rows, the /score path (every row encodes its own customer)",
}


def in_process(nets: dict, batches=BATCHES, rounds: int = 7) -> dict:
    """{mode: {model: {B: {latency_ms, rows_per_s, rounds_ms}}}} for both serving paths. The models
    take turns (`rounds` rounds of about 0.25 s each) and each keeps its median round: a slow spell
    of the machine lands on all of them, not on whichever ran then. `rounds_ms` keeps every round,
    so ratios can be taken within a round."""
    out = {mode: {name: {} for name in nets} for mode in MODES}
    for mode in MODES:
        for b in batches:
            batch = task_batch(b)
            samples = {name: [] for name in nets}
            for _ in range(rounds):
                for name, net in nets.items():
                    samples[name].append(timed(net.score_request if mode == "request" else net, batch, min_seconds=0.25))
            for name in nets:
                seconds = statistics.median(samples[name])
                out[mode][name][b] = {"latency_ms": seconds * 1e3, "rows_per_s": b / seconds,
                                      "rounds_ms": [s * 1e3 for s in samples[name]]}
        for name in nets:
            typer.echo(f"  {name} ({mode}): " + ", ".join(f"B={b} {v['latency_ms']:.2f} ms" for b, v in out[mode][name].items()))
    return out


EXPERTS = (8, 16, 32, 64)


def expert_scaling() -> dict:
    """(b): the sub-network and token-level GRec at every expert count, all taking turns in the same
    rounds, so the ratios compare timings taken seconds apart, not minutes."""
    nets = {}
    for e in EXPERTS:
        built = models(e)
        nets[f"{e}/sub"], nets[f"{e}/token"] = built["task sub-network"], built["GRec token-level"]
    timings = in_process(nets)
    out = {}
    for mode in MODES:
        r = timings[mode]
        base = r["8/sub"]
        out[mode] = {str(e): {
            "sub_latency_ms": {b: r[f"{e}/sub"][b]["latency_ms"] for b in (1, 64)},
            # per round (the same seconds of the machine), then the median over rounds
            "latency_vs_8": {b: statistics.median(s / s8 for s, s8 in zip(r[f"{e}/sub"][b]["rounds_ms"], base[b]["rounds_ms"]))
                             for b in (1, 64)},
            "sub_rows_per_s": r[f"{e}/sub"][1024]["rows_per_s"], "token_rows_per_s": r[f"{e}/token"][1024]["rows_per_s"],
            "sub_over_token": statistics.median(t / s for s, t in zip(r[f"{e}/sub"][1024]["rounds_ms"], r[f"{e}/token"][1024]["rounds_ms"])),
        } for e in EXPERTS}
    return out


# ---------------------------------------------------------------------------------------------
# (c) HTTP


def _bodies(state: Path, url: str, n: int, candidates: int, seed: int) -> list[dict]:
    """`n` /rank bodies: the state's customers, its catalogue's items, the served model's own flows
    and use cases (its /metadata), a search query of make run's logs in half of them."""
    import httpx
    import pandas as pd

    from grec.features import sources

    os.environ["GREC_HOME"] = str(state)
    meta = httpx.post(f"{url}/metadata", timeout=30).json()
    customers = pd.read_parquet(sources.source_path("customer_profile"), columns=["customer_id"])["customer_id"].unique()
    items = pd.read_parquet(sources.source_path("item_catalog"), columns=["item_id"])["item_id"].unique()
    queries = [""]
    impressions = state / "data" / "default" / "impressions.parquet"  # make run's logs
    if "search" in meta["inputs"] and impressions.exists():
        logged = pd.read_parquet(impressions, columns=["search_query"])["search_query"]
        queries = logged[logged != ""].drop_duplicates().sample(200, random_state=0).tolist()
    rng = np.random.default_rng(seed)

    def body() -> dict:
        out = {"customer_id": rng.choice(customers).item(), "flow": str(rng.choice(meta["flows"])),
               "use_case": str(rng.choice(meta["use_cases"])),
               "item_ids": [i.item() for i in rng.choice(items, min(candidates, len(items)), replace=False)]}
        if "search" in meta["inputs"] and rng.random() < 0.5:
            out["search_query"] = str(rng.choice(queries))
        return out

    return [body() for _ in range(n)]


def _processes() -> dict[int, tuple[int, float, str]]:
    """{pid: (parent, CPU seconds so far, command line)} of this machine's processes (Linux /proc)."""
    out, tick = {}, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # ended meanwhile
                continue
            out[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, command)
    return out


def _cpu_seconds(url: str, store_pid: int | None) -> tuple[float, float]:
    """CPU seconds used so far by the service at `url` (`grec serve`, its BentoML supervisor and
    workers: the processes under the one serving that port) and by the store's server process (0
    without one)."""
    procs = _processes()
    port = url.rsplit(":", 1)[1]
    tree = {pid for pid, (_, _, command) in procs.items() if " serve " in command and f"--port {port}" in command}
    while grown := {pid for pid, (parent, _, _) in procs.items() if parent in tree} - tree:
        tree |= grown
    server = sum(procs[pid][1] for pid in tree)
    return server, (procs[store_pid][1] if store_pid in procs else 0.0)


def load(url: str, bodies: list[dict], concurrency: int, seconds: float, store_pid: int | None = None) -> dict:
    """`concurrency` clients posting `bodies` in turn for `seconds`: requests/s, latency percentiles,
    failures, the median of each stage the server reports (its Server-Timing header), and the load
    generator's own CPU per request. The clients are coroutines on one event loop (aiohttp, one
    keep-alive connection each): the generator shares the server's cores, and httpx clients in
    threads spent 0.64-0.73 ms of CPU per request against aiohttp's 0.27 (measured on this machine),
    a fifth of a 2-core server's capacity taken by the client."""
    import asyncio

    import aiohttp  # BentoML's own HTTP client, in the lock with it

    payloads = [_encoded(b) for b in bodies]
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    reasons: dict[str, int] = {}  # what the failures said (status and the start of the body)

    async def client(session, k: int, stop: float) -> None:
        # Connections opened one by one, as a pool fills: opened in one burst, one worker's event
        # loop accepts them all and the other idles (limits.MAX_REQUESTS_PER_CONNECTION)
        await asyncio.sleep(k * 0.02)
        i = k
        while time.monotonic() < stop:
            t = time.perf_counter()
            async with session.post(f"{url}/rank", data=payloads[i % len(payloads)],
                                    headers={"content-type": "application/json"}) as response:
                text = await response.text()
            latencies.append(time.perf_counter() - t)
            if response.status != 200:
                reason = f"{response.status} {text[:160]}"
                reasons[reason] = reasons.get(reason, 0) + 1
            for part in filter(None, response.headers.get("server-timing", "").split(",")):
                name, _, value = part.strip().partition(";dur=")
                stages.setdefault(name, []).append(float(value))
            i += concurrency

    async def run() -> float:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:
            start = time.monotonic()
            await asyncio.gather(*(client(session, k, start + seconds) for k in range(concurrency)))
            return time.monotonic() - start

    cpu, (server_cpu, store_cpu) = time.process_time(), _cpu_seconds(url, store_pid)
    wall = asyncio.run(run())
    cpu = time.process_time() - cpu
    server_after, store_after = _cpu_seconds(url, store_pid)
    lat = np.array(latencies) * 1e3
    per_request = 1e3 / max(len(lat), 1)
    return {"requests": len(lat), "failed": sum(reasons.values()),
            "failures": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:3]),
            "requests_per_s": len(lat) / wall, "client_cpu_ms": cpu * per_request,
            "server_cpu_ms": (server_after - server_cpu) * per_request, "store_cpu_ms": (store_after - store_cpu) * per_request,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean()),
            "stages_ms": {k: statistics.median(v) for k, v in stages.items()}}


def _encoded(body: dict) -> bytes:
    """A body as the bytes sent (encoded once, not per request: the client's CPU is the server's too)."""
    import json

    return json.dumps(body).encode()


def _group_nice(niceness: int) -> None:
    """In a new session's first process: `niceness` for the process and, where the kernel groups
    sessions (autogroup), for its group, which is what weighs it against the others."""
    os.nice(niceness)
    group = Path("/proc/self/autogroup")
    if niceness and group.exists():
        group.write_text(str(niceness))


@contextmanager
def busy_neighbour(processes: int, niceness: int = 0):
    """`processes` processes spinning on the CPU beside the server (another pod on the node), at
    `niceness` (0: the server's own priority; 19: the weight Kubernetes gives a pod using cores
    beyond its requests next to the ranker's requested cores). Each in a session of its own: with the
    kernel's autogroup scheduling (on here, /proc/sys/kernel/sched_autogroup_enabled) a session is a
    scheduling group, so the neighbour is its own group as a pod is its own cgroup, beside the
    server's (`grec serve` starts one) and the load generator's; in the load generator's session the
    spinners took its CPU share, and the client's own delays were read as the server's latency."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: _group_nice(niceness),
                                 start_new_session=True)
                for _ in range(processes)]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def settle(idle: float = 0.15, window: float = 3.0, limit: float = 900.0) -> None:
    """Wait until the machine is quiet: less than `idle` of its cores busy over `window` seconds
    (/proc/stat), at most `limit` seconds. Nothing else runs during the benchmark."""
    def busy_and_total() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # all but idle and iowait
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        b0, t0 = busy_and_total()
        time.sleep(window)
        b1, t1 = busy_and_total()
        if (b1 - b0) / max(t1 - t0, 1) < idle:
            return
    typer.echo(f"  the machine did not settle within {limit:.0f} s: figures may be low")


# The neighbours beside the server: none, spinning processes at its priority (the worst case: a
# neighbour that requested cores too), and at nice 19 (a BestEffort pod beside the ranker's requests)
NEIGHBOURS = {"quiet": None, "busy": 0, "busy, nice 19": 19}
LEVELS = [(c, neighbour) for neighbour in NEIGHBOURS for c in (1, 8)]  # (concurrency, neighbour)


def http_rank(state: Path, variants: dict[str, tuple[Path | None, dict]], seconds: float, rounds: int,
              candidates: int = 50, store_pid: int | None = None) -> dict:
    """{variant: {neighbour: {concurrency: figures}}} of `grec serve` (each variant: the code at
    a checkout, None for this one, and its settings) over the online store the environment selects.
    Every variant serves at once on its own port and the variants take turns, level by level, for
    `rounds` rounds: this machine's speed drifts by 20-40% over minutes, and turns put each variant
    in the same drift. A level's figures are the median over the rounds (with their range)."""
    with ExitStack() as stack:
        urls = {}
        for name, (source, env) in variants.items():
            env = env | ({"PYTHONPATH": str(source)} if source else {})
            urls[name] = stack.enter_context(local_service(state, env=env, timeout=900))
        settle()  # /readyz answers once one worker is ready: the others may still be compiling
        bodies = _bodies(state, next(iter(urls.values())), 5000, candidates, seed=0)
        for url in urls.values():
            load(url, bodies, 2, 5.0)  # warm: the first requests read queries from the store, fill caches
        runs: dict[str, dict[tuple, list[dict]]] = {name: {level: [] for level in LEVELS} for name in variants}
        for c, neighbour in LEVELS:
            niceness = NEIGHBOURS[neighbour]
            with busy_neighbour(os.cpu_count() or 1, niceness) if niceness is not None else nullcontext():
                for round_ in range(rounds):
                    for name, url in urls.items():
                        runs[name][c, neighbour].append(r := load(url, bodies, c, seconds, store_pid))
                        typer.echo(f"  {name}, concurrency {c}, {neighbour}, round {round_ + 1}: "
                                   f"{r['requests_per_s']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                                   f"failed {r['failed']} {r['failures'] or ''}")
    return {name: {neighbour: {c: _median_of(levels[c, n]) for c, n in LEVELS if n == neighbour} for neighbour in NEIGHBOURS}
            for name, levels in runs.items()}


def _median_of(rounds: list[dict]) -> dict:
    """A level's rounds as one: each figure's median and range; failures summed."""
    out = {"rounds": len(rounds), "requests": sum(r["requests"] for r in rounds), "failed": sum(r["failed"] for r in rounds),
           "failures": {k: v for r in rounds for k, v in r["failures"].items()}}
    for key in ("requests_per_s", "p50_ms", "p99_ms", "mean_ms", "client_cpu_ms", "server_cpu_ms", "store_cpu_ms"):
        values = [r[key] for r in rounds]
        out[key], out[f"{key}_range"] = statistics.median(values), [min(values), max(values)]
    names = {k for r in rounds for k in r["stages_ms"]}
    out["stages_ms"] = {k: statistics.median(r["stages_ms"][k] for r in rounds if k in r["stages_ms"]) for k in names}
    return out


def feature_reads(state: Path, n: int = 300, candidates: int = 50) -> dict:
    """In-process OnlineReader.read of one request (a customer and `candidates` items): p50/p99 ms
    (what a request read before the catalogue was held in memory; now only the customer is read)."""
    import pandas as pd

    from grec.features.store import OnlineReader

    from grec.features import sources

    customers = pd.read_parquet(sources.source_path("customer_profile"), columns=["customer_id"])["customer_id"].unique()
    items = pd.read_parquet(sources.source_path("item_catalog"), columns=["item_id"])["item_id"].unique()
    reader, rng, times = OnlineReader(), np.random.default_rng(1), []
    for i in range(n + 20):
        ids = [i.item() for i in rng.choice(items, min(candidates, len(items)), replace=False)]
        t = time.perf_counter()
        reader.read(rng.choice(customers).item(), ids)
        if i >= 20:  # the first reads open connections and warm caches
            times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"reads": n, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def online_stores(state: Path, stores: list[str], seconds: float, rounds: int,
                  variants: dict[str, tuple[Path | None, dict]]) -> dict:
    """(c) once per online store, the service variants side by side (`variants`: name -> (a
    checkout, None for this one; its environment)); Redis gets the state's repository applied and
    materialized first."""
    import pandas as pd

    from grec.features.store import feature_store, materialize, online_store_description, repo_objects

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from deploy.local import services

    out, root, saved = {}, state / "services", dict(os.environ)
    try:
        for store in stores:
            os.environ.clear()
            os.environ.update(saved)
            store_pid = None  # SQLite is read inside the server's own processes
            if store == "redis":
                redis = services.start(["redis"], root)["redis"]
                os.environ.update(services.redis_settings(redis))
                store_pid = redis.pid
                start = time.perf_counter()
                feature_store().apply(repo_objects())
                materialize(pd.Timestamp.now(tz="UTC"))  # every view's latest values
                typer.echo(f"  redis: applied and materialized in {time.perf_counter() - start:.0f} s")
            elif store != "sqlite":
                raise typer.BadParameter(f"--online-stores: {store!r}; known: sqlite, redis")
            where = online_store_description(feature_store())
            typer.echo(f"  {where}")
            out[store] = {"online_store": where, "reads": feature_reads(state),
                          "code": http_rank(state, variants, seconds=seconds, rounds=rounds, store_pid=store_pid)}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if "redis" in stores:
            services.stop(root, ["redis"], remove=True)
    return out


# ---------------------------------------------------------------------------------------------


def markdown(payload: dict) -> str:
    payload = _int_keys(payload)  # as run (batch sizes, concurrencies as ints) or as read back from JSON (strings)
    m = payload["machine"]
    lines = [
        "# Serving benchmark",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"GPU: {m['gpu'] or 'none'}. Command: `{payload['command']}`.",
        "",
    ]
    if "in_process" in payload:
        lines += in_process_markdown(payload)
    if payload.get("http"):
        lines += http_markdown(payload["http"])
    return "\n".join(lines) + "\n"


def _int_keys(value):
    """`value` with every all-digit dict key as an int, as the run held it before JSON wrote it."""
    if isinstance(value, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() else k: _int_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_int_keys(v) for v in value]
    return value


def in_process_markdown(payload: dict) -> list[str]:
    lines = ["## (a) In-process, one task per call (untrained weights, make run's widths)"]
    for mode, what in MODES.items():
        lines += ["", f"**{mode}**: {what}", "",
                  "| model | B=1 latency | B=64 latency | B=1024 latency | B=1 rows/s | B=64 rows/s | B=1024 rows/s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in payload["in_process"][mode].items():
            lines.append(f"| {name} | " + " | ".join(f"{r[b]['latency_ms']:.2f} ms" for b in BATCHES) + " | "
                         + " | ".join(f"{r[b]['rows_per_s']:,.0f}" for b in BATCHES) + " |")
    lines += ["", f"## (b) Experts scaled at top-4 ({len(payload['experts'])} repeats: median [min, max])", ""]
    runs = payload["experts"]

    def spread(values, fmt):
        return f"{fmt(statistics.median(values))} [{fmt(min(values))}, {fmt(max(values))}]"

    for mode in MODES:
        lines += ["", f"**{mode}** path", "",
                  "| experts | sub-network B=1 | sub-network B=64 | B=1 vs 8 experts | B=64 vs 8 experts | "
                  "sub-network rows/s B=1024 | token-level rows/s B=1024 | sub-network / token-level B=1024 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for e in runs[0][mode]:
            r = [run[mode][e] for run in runs]
            ms, x, n = (lambda v: f"{v:.2f} ms"), (lambda v: f"{v:.2f}x"), (lambda v: f"{v:,.0f}")
            lines.append(" | ".join([
                f"| {e}", *(spread([v["sub_latency_ms"][b] for v in r], ms) for b in (1, 64)),
                *(spread([v["latency_vs_8"][b] for v in r], x) for b in (1, 64)),
                spread([v["sub_rows_per_s"] for v in r], n), spread([v["token_rows_per_s"] for v in r], n),
                spread([v["sub_over_token"] for v in r], x)]) + " |")
    return lines


def http_markdown(h: dict) -> list[str]:
    stores = h["stores"]
    rounds = h.get("rounds", 1)
    lines = ["", f"## (c) HTTP `/rank`, {h['candidates']} candidates, per online store",
             "", f"State: `{h['state']}` (champion {h['model']}). Server ({h['workers']} workers), online store and load "
             "generator (aiohttp, one event loop) share the machine; \"busy\" runs one spinning process per core beside "
             "them, in a session of its own (with the kernel's autogroup, a scheduling group of the server's weight: "
             "a neighbour pod with as many cores requested), \"busy, nice 19\" the same group at nice 19 (a BestEffort "
             "pod beside the ranker's requested cores)."
             f" Every service serves at once; they take turns, {h['seconds']:.0f} s "
             f"per level, for {rounds} rounds: each figure is the median over the rounds, [min-max] beside it. Services: "
             + "; ".join(f"{k}: `{v['source'] or 'this checkout'}` {v['env'] or ''}" for k, v in h["variants"].items())
             + ". Stores: " + "; ".join(f"{n}: `{s['online_store']}`" for n, s in stores.items()) + ".", "",
             "CPU per request: of the load generator (client), of `grec serve`'s processes (server: its supervisor "
             "and workers, SQLite's reads included) and of the Redis server (store), all on the same 2 cores.", "",
             "| store | service | concurrency | neighbour | requests/s | p50 | p99 | failed | CPU/request: client | server | store |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]

    def ranged(f: dict, key: str, fmt: str) -> str:
        lo, hi = f.get(f"{key}_range", [f[key], f[key]])
        return f"{f[key]:{fmt}} [{lo:{fmt}}-{hi:{fmt}}]" if rounds > 1 else f"{f[key]:{fmt}}"

    for store, s in stores.items():
        for code, r in s["code"].items():
            for kind in r:
                for c, f in r[kind].items():
                    lines.append(f"| {store} | {code} | {c} | {kind} | {ranged(f, 'requests_per_s', '.0f')} | "
                                 f"{ranged(f, 'p50_ms', '.1f')} ms | {ranged(f, 'p99_ms', '.1f')} ms | {f['failed']} | "
                                 f"{f['client_cpu_ms']:.2f} ms | {f['server_cpu_ms']:.2f} ms | "
                                 f"{'in server' if store == 'sqlite' else format(f['store_cpu_ms'], '.2f') + ' ms'} |")
    lines += ["", "Where a request's time goes (concurrency 1, quiet; medians of the server's `Server-Timing` stages; "
              "the rest is HTTP, BentoML's request parsing and response, and the client, the p50 less the stages):", ""]
    stage_names = sorted({k for s in stores.values() for r in s["code"].values() for k in _quiet_1(r)["stages_ms"]},
                         key=["validate", "read", "encode", "score"].index)
    lines += ["| store | service | " + " | ".join(stage_names) + " | rest | p50 |", "|---|---|" + "---:|" * (len(stage_names) + 2)]
    for store, s in stores.items():
        for code, r in s["code"].items():
            f = _quiet_1(r)
            stages = f["stages_ms"]
            rest = f"{f['p50_ms'] - sum(stages.values()):.2f} ms" if stages else "(no stages reported)"
            lines.append(f"| {store} | {code} | " + " | ".join(f"{stages[k]:.2f} ms" if k in stages else "-" for k in stage_names)
                         + f" | {rest} | {f['p50_ms']:.2f} ms |")
    if all("reads" in s for s in stores.values()):
        lines += ["", "In-process feature read of one customer and 50 items (`OnlineReader.read`; a request now reads only "
                  "the customer, the catalogue is in memory):", "", "| store | reads | p50 | p99 |", "|---|---:|---:|---:|"]
        for n, s in stores.items():
            r = s["reads"]
            lines.append(f"| {n} | {r['reads']} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms |")
    return lines


def _quiet_1(figures: dict) -> dict:
    """Concurrency 1 on a quiet machine (JSON keys are strings once written)."""
    quiet = figures["quiet"]
    return quiet.get(1, quiet.get("1"))


def main(
    state: Annotated[Optional[Path], typer.Option(help="GREC_HOME with a champion and a materialized store, for (c)")] = None,
    skip_http: Annotated[bool, typer.Option(help="Only the in-process parts")] = False,
    seconds: Annotated[float, typer.Option(help="Seconds per HTTP concurrency level and round")] = 10.0,
    rounds: Annotated[int, typer.Option(help="Rounds of (c): the variants take turns, medians reported")] = 3,
    repeats: Annotated[int, typer.Option(help="Repeats of (b), reported as median and range")] = 3,
    stores: Annotated[str, typer.Option("--online-stores", help="Online stores (c) runs against, comma-separated")] = "sqlite,redis",
    skip_in_process: Annotated[bool, typer.Option(help="Only (c), the HTTP part")] = False,
    before: Annotated[Optional[Path], typer.Option(help="A checkout of earlier code to serve side by side (c)")] = None,
):
    payload = {"machine": machine(), "command": " ".join(["python", "benchmarks/serving.py", *sys.argv[1:]])}
    if not skip_in_process:
        typer.echo("(a) in-process")
        nets = models(8)
        for e in (4, 8):
            torch.manual_seed(0)
            nets[f"MMoE {e} experts"] = build_model(BaselineConfig(**SIZES, arch="mmoe", n_experts=e)).eval()
        payload["in_process"] = in_process(nets)
        payload["experts"] = []  # one {experts: results} per repeat: this machine's timings drift by 10-30%
        for repeat in range(repeats):
            typer.echo(f"(b) experts scaled at top-4, repeat {repeat + 1}/{repeats}")
            payload["experts"].append(expert_scaling())
    if state is not None and not skip_http:
        typer.echo("(c) HTTP /rank")
        state = state.resolve()
        from grec.lifecycle.registry import Registry

        os.environ["GREC_HOME"] = str(state)
        champion = Registry("grec").aliases().get("champion")
        variants = {"before": (before.resolve(), {})} if before else {}
        variants |= {"uncompiled": (None, {"GREC_SERVE_COMPILE": "0"}), "compiled": (None, {"GREC_SERVE_COMPILE": "1"})}
        payload["http"] = {"state": str(state), "model": f"grec v{champion}", "candidates": 50, "seconds": seconds,
                           "rounds": rounds,
                           "workers": int(os.environ.get("GREC_SERVE_WORKERS", os.cpu_count() or 1)),
                           "variants": {k: {"source": str(v) if v else None, "env": e} for k, (v, e) in variants.items()},
                           "stores": online_stores(state, stores.split(","), seconds, rounds, variants)}
    json_path, md_path = write_results("serving_http" if skip_in_process else "serving", payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
