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
rows (or to the end of the epoch) and reports the rows per second of those steps, the clock
started before the first batch is asked for: the streamed path's reading and encoding of every
buffer it trains on is inside it (the default, 1536 steps, is two full shuffle buffers of this
storefront's rows). Validation is not part of it.

The streamed path reads and encodes on background threads only where the machine has cores to
spare (grec.data.stream.spare_cores); `--background` adds the streamed runs at those sizes with
the background threads forced, side by side.

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

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_results  # noqa: E402

NAME = "training_scale"


def build_sets(folder: Path, base: int, sizes: list[int], log) -> dict[int, Path]:
    """The base training set, and one per larger size with its training shards repeated."""
    from grec.data.split import split_masks
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


def worker(set_dir: Path, stream: bool, steps: int, background: bool) -> dict:
    """Open `set_dir` one way, train `steps` steps, report seconds, rows/s and peak RSS."""
    import torch

    from grec.data import stream as stream_module
    from grec.features.training_set import open_source

    threads = "background" if background or stream_module.spare_cores() else "training thread"
    if background:
        stream_module.spare_cores = lambda: True
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
    cpu, start = time.process_time(), time.perf_counter()  # the first buffer's read and encode count
    batches = data.batches(data.rows["train"], config.batch_size, torch.Generator().manual_seed(0))
    rows = taken = 0
    for batch, labels, _ in batches:
        train_step(net, optimizer, batch, labels)
        rows, taken = rows + len(labels), taken + 1
        if taken == steps:
            break
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    batches.close()
    return {"path": "streamed" if stream else "in memory", "threads": threads if stream else "-",
            "train_rows": len(data.rows["train"]), "open_seconds": opened, "steps": taken, "rows": rows,
            "cores_busy": cpu / seconds,
            "seconds": seconds, "rows_per_second": rows / seconds,
            "rows_per_second_per_core": rows / seconds / torch.get_num_threads(),
            "peak_rss_bytes_after_open": rss_open,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def run(base: int, sizes: list[int], steps: int, memory_sizes: list[int], background_sizes: list[int],
        repeats: int, log=typer.echo) -> dict:
    """Every measurement `repeats` times, in turns (round by round), so a drift in the shared
    machine's speed falls on every row alike and the ratios are taken within a round."""
    out = {"base": base, "sizes": sizes, "steps": steps, "repeats": repeats, "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        env = {**os.environ, "GREC_HOME": str(folder / "home")}  # one text-vector table for every run
        os.environ["GREC_HOME"] = env["GREC_HOME"]
        sets = build_sets(folder, base, sorted(set(sizes) | set(memory_sizes) | set(background_sizes)), log)
        plan = ([(size, False, False) for size in memory_sizes] + [(size, True, False) for size in sizes]
                + [(size, True, True) for size in background_sizes])
        for round_ in range(repeats):
            for size, stream, background in plan:
                command = [sys.executable, __file__, "--worker", str(sets[size]), "--steps", str(steps),
                           "--stream" if stream else "--no-stream", *(["--force-background"] if background else [])]
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
                result = {"impressions": size, "forced": background, "round": round_,
                          **json.loads(done.stdout.strip().splitlines()[-1])}
                out["runs"].append(result)
                log(f"  round {round_ + 1}: {size:,} {result['path']} ({result['threads']}): "
                    f"{result['rows_per_second']:,.0f} rows/s, peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB, "
                    f"opened in {result['open_seconds']:.0f} s")
    return out


def _rows(runs: list[dict]) -> list[list[dict]]:
    """The runs grouped by what they measure (size, path, forced threads), in plan order."""
    groups: dict[tuple, list[dict]] = {}
    for x in runs:
        groups.setdefault((x["impressions"], x["path"], x.get("forced", False)), []).append(x)
    return list(groups.values())


def _median_range(values: list[float], fmt: str) -> str:
    cell = format(float(np.median(values)), fmt)
    return cell if len(values) == 1 else f"{cell} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def _ratio(a: list[dict], b: list[dict], key: str) -> str:
    """a / b of `key`, round by round: the median and the range over rounds."""
    by_round = {x.get("round", 0): x[key] for x in b}
    ratios = [x[key] / by_round[x.get("round", 0)] for x in a if x.get("round", 0) in by_round]
    return "x" + _median_range(ratios, ".2f")


def markdown(payload: dict) -> str:
    r, m = payload["result"], payload["machine"]
    groups = _rows(r["runs"])
    memory = [g for g in groups if g[0]["path"] == "in memory"]
    streamed = sorted((g for g in groups if g[0]["path"] == "streamed" and not g[0].get("forced")),
                      key=lambda g: g[0]["impressions"])
    forced = [g for g in groups if g[0].get("forced")]
    repeats = r.get("repeats", 1)
    lines = [
        "# Training at the size of real logs: peak memory and throughput, streamed and in memory", "",
        f"Reproduce: `{payload['command']}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), GPU: "
        f"{m['gpu'] or 'none'}. Simulated storefront of {r['base']:,} impressions (seed 101, 5 training weeks "
        "and a test week) as a training set; larger sizes repeat its training shards. GRec task-sentence "
        f"(d_model 32, 8 experts top-4), batches of 2048 (example, task) rows, {r['steps']} timed steps "
        "(or the whole epoch where it is shorter) from the first batch asked for, so the streamed path's "
        "reading and encoding of each buffer is inside the time; one fresh process per measurement (its own "
        f"peak RSS), every row measured {repeats} time(s) in turns: the median, and (min-max). Threads: where "
        "the streamed path reads and encodes (background threads only where the machine has cores beyond "
        "torch's threads, grec.data.stream.spare_cores, unless forced); cores busy: CPU seconds over wall "
        "seconds of the timed steps.", "",
        "| size (impressions; the training weeks repeated) | path | threads | training rows | open (s) | steps | rows/s | rows/s per core | cores busy | peak RSS after open (GiB) | peak RSS (GiB) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g in [*memory, *streamed, *forced]:
        x = g[0]
        lines.append(
            f"| {x['impressions']:,} | {x['path']} | {x['threads']} | {x['train_rows']:,} | "
            f"{np.median([y['open_seconds'] for y in g]):.0f} | {x['steps']} | "
            f"{_median_range([y['rows_per_second'] for y in g], ',.0f')} | "
            f"{np.median([y['rows_per_second_per_core'] for y in g]):,.0f} | "
            f"{np.median([y['cores_busy'] for y in g]):.2f} | "
            f"{np.median([y['peak_rss_bytes_after_open'] for y in g]) / 2**30:.2f} | "
            f"{_median_range([y['peak_rss_bytes'] / 2**30 for y in g], '.2f')} |")
    lines.append("")
    if len(streamed) >= 2:
        small, large = streamed[0], streamed[-1]
        lines.append(f"Streamed, {large[0]['impressions']:,} against {small[0]['impressions']:,} impressions (per round): "
                     f"peak RSS {_ratio(large, small, 'peak_rss_bytes')} (target under x1.5), rows/s "
                     f"{_ratio(large, small, 'rows_per_second')}.")
        if memory:
            ref = min(memory, key=lambda g: g[0]["impressions"])
            lines.append(f"Streamed at {large[0]['impressions']:,} against in memory at {ref[0]['impressions']:,} (per round): "
                         f"rows/s {_ratio(large, ref, 'rows_per_second')} (target at least x0.9), peak RSS "
                         f"{_ratio(large, ref, 'peak_rss_bytes')}.")
    for g in forced:
        same = next((h for h in streamed if h[0]["impressions"] == g[0]["impressions"]), None)
        if same is not None:
            lines.append(f"At {g[0]['impressions']:,}, streamed with {same[0]['threads']} against background threads "
                         f"forced (per round): rows/s {_ratio(same, g, 'rows_per_second')}, cores busy "
                         f"{np.median([y['cores_busy'] for y in same]):.2f} against {np.median([y['cores_busy'] for y in g]):.2f}.")
    return "\n".join(lines) + "\n"


def main(
    base: Annotated[int, typer.Option(help="Simulated impressions (the 1x set)")] = 1_000_000,
    sizes: Annotated[str, typer.Option(help="Comma-separated set sizes to stream")] = "1000000,4000000,16000000",
    memory: Annotated[str, typer.Option(help="Comma-separated set sizes to train in memory")] = "1000000",
    steps: Annotated[int, typer.Option(help="Timed optimizer steps per run")] = 1536,
    background: Annotated[str, typer.Option(help="Comma-separated sizes also streamed with background threads forced")] = "4000000",
    worker_set: Annotated[Path | None, typer.Option("--worker", help="(internal) measure one set in this process")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="(with --worker) the path to measure")] = True,
    force_background: Annotated[bool, typer.Option(help="(with --worker) read and encode on background threads")] = False,
    repeats: Annotated[int, typer.Option(help="Times every row is measured, in turns")] = 3,
    render: Annotated[bool, typer.Option(help="Only rewrite the markdown from the committed JSON")] = False,
):
    if worker_set is not None:
        print(json.dumps(worker(worker_set, stream, steps, force_background)))
        return
    if render:
        payload = json.loads((RESULTS / f"{NAME}.json").read_text())
    else:
        payload = {"machine": machine(), "command": " ".join(["python", "benchmarks/training_scale.py", *sys.argv[1:]]),
                   "result": run(base, [int(s) for s in sizes.split(",")], steps,
                                 [int(s) for s in memory.split(",") if s], [int(s) for s in background.split(",") if s],
                                 repeats)}
    json_path, md_path = write_results(NAME, payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
