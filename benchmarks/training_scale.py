"""Training at the size of real logs: peak memory and throughput of the streamed path
(grec.data.stream) at 1M, 4M and 16M impressions, beside the in-memory path at 1M.

The storefront: `--base` simulated impressions (seed 101, 5 training weeks and a test week) written
as a training set (parquet in row groups of BLOCK_ROWS). A larger size repeats the base set's
training rows as more parquet shards (`train.parquet/part-*.parquet`; validation and test weeks
unchanged): the simulator would take hours at 16M on this machine, and what is measured here (the
memory a path holds and the rows it trains per second) depends on the number of rows, not on
their values.

Each measurement is a fresh process (`--worker`), so its peak RSS is its own: it opens the set
(fitting the vocabularies and encoding the distinct texts where it streams; loading and encoding
every row where it does not), then trains GRec task-sentence for `--steps` optimizer steps of 2048
rows and reports the rows per second of those steps (validation is not part of it).

    python benchmarks/training_scale.py                       # the committed run
    python benchmarks/training_scale.py --base 100000 --sizes 100000,400000 --steps 50   # a quick look
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_results  # noqa: E402

NAME = "training_scale"


def build_sets(folder: Path, base: int, sizes: list[int], log) -> dict[int, Path]:
    """The base training set, and one per larger size with its training shards repeated."""
    from grec.data.dataset import split_masks
    from grec.data.simulate import SimulationConfig, simulate_to
    from grec.features.training_set import RAW_JOIN, open_source, write_training_set

    start = time.perf_counter()
    simulate_to(folder / "data", SimulationConfig(n_impressions=base, train_weeks=5, seed=101))
    source = open_source(folder / "data")
    base_set = folder / f"set-{base}"
    write_training_set(base_set, source.frame, split_masks(source.frame, source.contract, source.split),
                       source.split, source.contract, RAW_JOIN, folder / "data" / "impressions.parquet")
    del source
    log(f"simulated and wrote {base:,} impressions in {time.perf_counter() - start:.0f} s")
    sets = {}
    for size in sizes:
        copies = max(1, round(size / base))
        if copies == 1:
            sets[size] = base_set
            continue
        target = folder / f"set-{size}"
        shutil.copytree(base_set, target, ignore=shutil.ignore_patterns("train.parquet"))
        (target / "train.parquet").mkdir()
        for k in range(copies):
            os.link(base_set / "train.parquet", target / "train.parquet" / f"part-{k:04d}.parquet")
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["rows"]["train"] *= copies
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
        sets[size] = target
    return sets


def worker(set_dir: Path, stream: bool, steps: int) -> dict:
    """Open `set_dir` one way, train `steps` steps, report seconds, rows/s and peak RSS."""
    import torch

    from grec.features.training_set import open_source
    from grec.model.checkpoint import build_model, model_config
    from grec.model.inputs import InputConfig
    from grec.train import TrainConfig, seed_everything, train_step

    config = TrainConfig()
    seed_everything(0)
    start = time.perf_counter()
    data = open_source(set_dir).dataset(stream=stream)
    opened = time.perf_counter() - start
    rss_open = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    net = build_model(model_config("grec", InputConfig.sizes_from(data.spec)))
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    net.train()
    batches = data.batches(data.rows["train"], config.batch_size, torch.Generator().manual_seed(0))
    rows, warmup = 0, 5  # the first steps fill the prefetch queues and warm the allocator
    for step, (batch, labels, _) in enumerate(batches):
        if step == warmup:
            rows, start = 0, time.perf_counter()
        train_step(net, optimizer, batch, labels)
        rows += len(labels)
        if step + 1 == warmup + steps:
            break
    seconds = time.perf_counter() - start
    batches.close()
    return {"path": "streamed" if stream else "in memory", "train_rows": len(data.rows["train"]), "open_seconds": opened, "steps": steps, "rows": rows,
            "seconds": seconds, "rows_per_second": rows / seconds,
            "rows_per_second_per_core": rows / seconds / torch.get_num_threads(),
            "peak_rss_bytes_after_open": rss_open,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def run(base: int, sizes: list[int], steps: int, memory_sizes: list[int], log=typer.echo) -> dict:
    out = {"base": base, "sizes": sizes, "steps": steps, "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        env = {**os.environ, "GREC_HOME": str(folder / "home")}  # one text-vector table for every run
        os.environ["GREC_HOME"] = env["GREC_HOME"]
        sets = build_sets(folder, base, sorted(set(sizes) | set(memory_sizes)), log)
        plan = [(size, False) for size in memory_sizes] + [(size, True) for size in sizes]
        for size, stream in plan:
            command = [sys.executable, __file__, "--worker", str(sets[size]), "--steps", str(steps),
                       "--stream" if stream else "--no-stream"]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
            result = {"impressions": size, **json.loads(done.stdout.strip().splitlines()[-1])}
            out["runs"].append(result)
            log(f"  {size:,} {result['path']}: {result['rows_per_second']:,.0f} rows/s, "
                f"peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB, opened in {result['open_seconds']:.0f} s")
    return out


def markdown(payload: dict) -> str:
    r, m = payload["result"], payload["machine"]
    runs = r["runs"]
    streamed = sorted((x for x in runs if x["path"] == "streamed"), key=lambda x: x["impressions"])
    memory = [x for x in runs if x["path"] == "in memory"]
    lines = [
        "# Training at the size of real logs: peak memory and throughput, streamed and in memory", "",
        f"Reproduce: `{payload['command']}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), GPU: "
        f"{m['gpu'] or 'none'}. Simulated storefront of {r['base']:,} impressions (seed 101, 5 training weeks "
        "and a test week) as a training set; larger sizes repeat its training shards. GRec task-sentence "
        f"(d_model 32, 8 experts top-4), batches of 2048 (example, task) rows, {r['steps']} timed steps "
        "after 5 warm-up steps, one fresh process per row (its own peak RSS).", "",
        "| size (impressions; the training weeks repeated) | path | training rows | open (s) | rows/s | rows/s per core | peak RSS after open (GiB) | peak RSS (GiB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for x in [*memory, *streamed]:
        lines.append(f"| {x['impressions']:,} | {x['path']} | {x['train_rows']:,} | {x['open_seconds']:.0f} | "
                     f"{x['rows_per_second']:,.0f} | {x['rows_per_second_per_core']:,.0f} | "
                     f"{x['peak_rss_bytes_after_open'] / 2**30:.2f} | {x['peak_rss_bytes'] / 2**30:.2f} |")
    if len(streamed) >= 2:
        small, large = streamed[0], streamed[-1]
        lines += ["", f"Streamed, {large['impressions']:,} against {small['impressions']:,} impressions: peak RSS "
                  f"x{large['peak_rss_bytes'] / small['peak_rss_bytes']:.2f} (target under x1.5), rows/s "
                  f"x{large['rows_per_second'] / small['rows_per_second']:.2f}."]
        if memory:
            ref = min(memory, key=lambda x: x["impressions"])
            lines.append(f"Streamed at {large['impressions']:,} against in memory at {ref['impressions']:,}: rows/s "
                         f"x{large['rows_per_second'] / ref['rows_per_second']:.2f} (target at least x0.9), peak RSS "
                         f"x{large['peak_rss_bytes'] / ref['peak_rss_bytes']:.2f}.")
    return "\n".join(lines) + "\n"


def main(
    base: Annotated[int, typer.Option(help="Simulated impressions (the 1x set)")] = 1_000_000,
    sizes: Annotated[str, typer.Option(help="Comma-separated set sizes to stream")] = "1000000,4000000,16000000",
    memory: Annotated[str, typer.Option(help="Comma-separated set sizes to train in memory")] = "1000000",
    steps: Annotated[int, typer.Option(help="Timed optimizer steps per run")] = 300,
    worker_set: Annotated[Path | None, typer.Option("--worker", help="(internal) measure one set in this process")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="(with --worker) the path to measure")] = True,
    render: Annotated[bool, typer.Option(help="Only rewrite the markdown from the committed JSON")] = False,
):
    if worker_set is not None:
        print(json.dumps(worker(worker_set, stream, steps)))
        return
    if render:
        payload = json.loads((RESULTS / f"{NAME}.json").read_text())
    else:
        payload = {"machine": machine(), "command": " ".join(["python", "benchmarks/training_scale.py", *sys.argv[1:]]),
                   "result": run(base, [int(s) for s in sizes.split(",")], steps,
                                 [int(s) for s in memory.split(",") if s])}
    json_path, md_path = write_results(NAME, payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
