"""Serving costs, side by side in one run on this machine.

(a) In-process latency and throughput at batch 1, 64 and 1024 rows of one task: the task's dense
    sub-network, GRec with its router (task-sentence routing through the full MoE), token-level
    GRec, MMoE with 4 and with 8 experts. Same inputs, same widths as `make run`'s model
    (d_model 32, expert hidden 64, 384-d MiniLM vectors), untrained weights (timing only).
(b) Experts scaled 8, 16, 32, 64 at top-4: the sub-network's latency against its 8-expert figure
    (target: within 1.2x), and its throughput at batch 1024 against token-level GRec's (target:
    at least 1.8x, the Task-MoE paper's 1.9x).
(c) Over HTTP: `/rank` with 50 candidates at concurrency 1, 8 and 32 against `grec serve` (the
    registry champion) in the state folder given by --state, once per Feast online store: the
    state's SQLite store, and Redis (started on loopback by deploy/local/services.py, the state's
    repository applied and materialized into it): throughput and p50/p99 latency, and the
    in-process read of one request's features (1 customer + 50 items). The load generator runs on
    the same machine as the server.

    make run && python benchmarks/serving.py --state .grec     # the committed run (about 10 minutes)
    python benchmarks/serving.py --skip-http                    # (a) and (b) only

Dimension letters: B rows per call.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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


def http_rank(state: Path, concurrencies=(1, 8, 32), seconds: float = 20.0, candidates: int = 50) -> dict:
    """{concurrency: figures} of `grec serve` over the online store the environment selects."""
    import httpx
    import pandas as pd

    customers = pd.read_parquet(state / "data" / "default" / "customers.parquet", columns=["customer_id"])["customer_id"].unique()
    queries = pd.read_parquet(state / "data" / "default" / "impressions.parquet", columns=["search_query"])["search_query"]
    queries = queries[queries != ""].drop_duplicates().sample(200, random_state=0).tolist()
    n_items = len(pd.read_parquet(state / "data" / "default" / "items.parquet", columns=["item_id"]))
    rng = np.random.default_rng(0)

    def body():
        return {"customer_id": int(rng.choice(customers)), "flow": str(rng.choice(["AAL", "EUP", "NSE"])),
                "use_case": str(rng.choice(["CTR", "ATC", "CVR", "CTCVR"])),
                "item_ids": rng.choice(n_items, candidates, replace=False).tolist(),
                "search_query": str(rng.choice(queries)) if rng.random() < 0.5 else ""}

    with local_service(state) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(30):  # warm: first requests encode queries and fill caches
                client.post("/rank", json=body()).raise_for_status()
        results = {}
        for c in concurrencies:
            bodies = [body() for _ in range(20000)]
            latencies: list[float] = []
            stop = time.monotonic() + seconds

            def worker(k: int) -> None:
                with httpx.Client(base_url=url, timeout=30) as client:
                    i = k
                    while time.monotonic() < stop:
                        t = time.perf_counter()
                        client.post("/rank", json=bodies[i % len(bodies)]).raise_for_status()
                        latencies.append(time.perf_counter() - t)
                        i += c

            start = time.monotonic()
            with ThreadPoolExecutor(c) as pool:
                list(pool.map(worker, range(c)))
            wall = time.monotonic() - start
            lat = np.array(latencies) * 1e3
            results[c] = {"requests": len(lat), "requests_per_s": len(lat) / wall, "p50_ms": float(np.percentile(lat, 50)),
                          "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean())}
            typer.echo(f"  concurrency {c}: {results[c]['requests_per_s']:.1f} req/s, p50 {results[c]['p50_ms']:.1f} ms, "
                       f"p99 {results[c]['p99_ms']:.1f} ms")
        return results


def feature_reads(state: Path, n: int = 300, candidates: int = 50) -> dict:
    """In-process OnlineReader.read of one request (a customer and `candidates` items): p50/p99 ms."""
    import pandas as pd

    from grec.features.store import OnlineReader

    customers = pd.read_parquet(state / "data" / "default" / "customers.parquet", columns=["customer_id"])["customer_id"].unique()
    n_items = len(pd.read_parquet(state / "data" / "default" / "items.parquet", columns=["item_id"]))
    reader, rng, times = OnlineReader(), np.random.default_rng(1), []
    for i in range(n + 20):
        ids = rng.choice(n_items, candidates, replace=False).tolist()
        t = time.perf_counter()
        reader.read(int(rng.choice(customers)), ids)
        if i >= 20:  # the first reads open connections and warm caches
            times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"reads": n, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def online_stores(state: Path, stores: list[str], seconds: float) -> dict:
    """(c) once per online store; Redis gets the state's repository applied and materialized first."""
    import pandas as pd

    from grec.features.store import feature_store, materialize, online_store_description, repo_objects

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from deploy.local import services

    out, root, saved = {}, state / "services", dict(os.environ)
    try:
        for store in stores:
            os.environ.clear()
            os.environ.update(saved)
            if store == "redis":
                os.environ.update(services.redis_settings(services.start(["redis"], root)["redis"]))
                start = time.perf_counter()
                feature_store().apply(repo_objects())
                materialize(pd.Timestamp.now(tz="UTC"))  # every view's latest values
                typer.echo(f"  redis: applied and materialized in {time.perf_counter() - start:.0f} s")
            elif store != "sqlite":
                raise typer.BadParameter(f"--online-stores: {store!r}; known: sqlite, redis")
            where = online_store_description(feature_store())
            typer.echo(f"  {where}")
            out[store] = {"online_store": where, "reads": feature_reads(state), "levels": http_rank(state, seconds=seconds)}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if "redis" in stores:
            services.stop(root, ["redis"], remove=True)
    return out


# ---------------------------------------------------------------------------------------------


def markdown(payload: dict) -> str:
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
    stores = h.get("stores") or {"sqlite": {"online_store": "sqlite", "levels": h["levels"]}}  # older runs: SQLite only
    names = list(stores)
    lines = ["", f"## (c) HTTP `/rank`, {h['candidates']} candidates, {h['seconds']:.0f} s per level, per online store",
              "", f"State: `{h['state']}` (champion {h['model']}). Server, online store and load generator share the "
              "machine. Stores: " + "; ".join(f"{n}: `{stores[n]['online_store']}`" for n in names) + ".", "",
              "| concurrency | " + " | ".join(f"{n} requests/s | {n} p50 | {n} p99" for n in names) + " |",
              "|---:|" + "---:|---:|---:|" * len(names)]
    for c in stores[names[0]]["levels"]:
        cells = [(stores[n]["levels"][c]) for n in names]
        lines.append(f"| {c} | " + " | ".join(f"{r['requests_per_s']:.1f} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms"
                                             for r in cells) + " |")
    if all("reads" in stores[n] for n in names):
        lines += ["", "In-process feature read of one request (1 customer + 50 items, `OnlineReader.read`):", "",
                  "| store | reads | p50 | p99 |", "|---|---:|---:|---:|"]
        for n in names:
            r = stores[n]["reads"]
            lines.append(f"| {n} | {r['reads']} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms |")
    return lines


def main(
    state: Annotated[Optional[Path], typer.Option(help="GREC_HOME with a champion and a materialized store, for (c)")] = None,
    skip_http: Annotated[bool, typer.Option(help="Only the in-process parts")] = False,
    seconds: Annotated[float, typer.Option(help="Seconds per HTTP concurrency level")] = 20.0,
    repeats: Annotated[int, typer.Option(help="Repeats of (b), reported as median and range")] = 3,
    stores: Annotated[str, typer.Option("--online-stores", help="Online stores (c) runs against, comma-separated")] = "sqlite,redis",
    skip_in_process: Annotated[bool, typer.Option(help="Only (c), the HTTP part")] = False,
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
        payload["http"] = {"state": str(state), "model": f"grec v{champion}", "candidates": 50, "seconds": seconds,
                           "stores": online_stores(state, stores.split(","), seconds)}
    json_path, md_path = write_results("serving_http" if skip_in_process else "serving", payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
