"""The data plane's costs on this machine: text embedding, feature store, training sets, online reads.

Everything runs in a fresh temporary state folder:
1. sentence-encoder throughput (all-MiniLM-L6-v2, CPU): distinct search queries and item
   descriptions, texts per second;
2. `grec features apply` on N impressions (derive the five source tables, encode every distinct
   text once, register the repository);
3. the point-in-time training set for all N impressions (`grec features training-set`);
4. materializing the online store (SQLite) up to the end of the window;
5. online reads for one customer plus 50 candidate items: p50 / p99 over many random requests;
6. the offline store side by side: the training set and the materialization again with Feast's
   file store (dask), DuckDB (the default) and Spark (local mode on this machine's cores), each in
   a process of its own (time and peak RSS, Spark's JVM included), on the same source files: the
   training set twice (the first pays the process's imports, the encoder's load and for Spark the
   JVM's start), then the materialization; the training sets are compared.

    python benchmarks/features.py                          # the committed run (1M impressions)
    python benchmarks/features.py --impressions 100000     # a quick look
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402


OFFLINE_STORES = ("file", "duckdb", "spark")
# One offline store's steps in a fresh process (its peak RSS is its own): argv = state, store, data,
# end, feature repo. Spark: the repository's feature_store.spark.yaml (local mode, all cores), its
# registry applied in a state folder of its own over the same source files (SparkSources), and the
# JVM's peak RSS added (a child process: counted once it has exited).
OFFLINE_STEP = """
import json, os, re, resource, sys, time
from pathlib import Path
home, store, data, end, repo = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5])
os.environ["GREC_HOME"] = str(home)
if store == "spark":
    os.environ["GREC_HOME"] = str(home / "spark-state")
    (home / "spark-state" / "features").mkdir(parents=True)
    (home / "spark-state" / "features" / "sources").symlink_to(home / "features" / "sources")
    os.environ["FEAST_FS_YAML_FILE_PATH"] = str(repo / "feature_store.spark.yaml")
    from grec.features.store import feature_store, repo_objects
    feature_store().apply(repo_objects())
else:
    text = re.sub(r"offline_store:\\n  type: \\w+", f"offline_store:\\n  type: {store}", (repo / "feature_store.yaml").read_text())
    (home / f"feature_store.{store}.yaml").write_text(text)
    os.environ["FEAST_FS_YAML_FILE_PATH"] = str(home / f"feature_store.{store}.yaml")
from grec.features.store import materialize
from grec.features.training_set import build_training_set
t = time.perf_counter(); build_training_set(data, home / f"cold-{store}"); t_cold = time.perf_counter() - t
t = time.perf_counter(); manifest = build_training_set(data, home / f"set-{store}"); t_set = time.perf_counter() - t
t = time.perf_counter(); materialize(end); t_mat = time.perf_counter() - t
jvm_mb = 0.0
if store == "spark":
    from grec.features.store import stop_spark
    stop_spark()
    jvm_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"training_set_cold_s": t_cold, "training_set_s": t_set, "materialize_s": t_mat, "rows": sum(manifest.rows.values()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + jvm_mb, "jvm_peak_rss_mb": jvm_mb}))
"""


def offline_stores(home: Path, data: Path, end) -> dict:
    """{store: figures} of OFFLINE_STEP per store, and whether their training sets are equal."""
    import subprocess

    import pandas as pd

    from grec.features.store import FEATURE_REPO

    out = {}
    for store in OFFLINE_STORES:
        done = subprocess.run([sys.executable, "-c", OFFLINE_STEP, str(home), store, str(data), str(end), str(FEATURE_REPO)],
                              capture_output=True, text=True, check=True)
        out[store] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {store}: {out[store]}")
    first, *others = OFFLINE_STORES
    out["identical_training_sets"] = all(
        pd.read_parquet(home / f"set-{first}" / f"{split}.parquet").equals(pd.read_parquet(home / f"set-{o}" / f"{split}.parquet"))
        for o in others for split in ("train", "valid", "test"))
    return out


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main(
    impressions: Annotated[int, typer.Option(help="Impressions to simulate")] = 1_000_000,
    requests: Annotated[int, typer.Option(help="Online reads timed")] = 500,
    candidates: Annotated[int, typer.Option(help="Items per online read")] = 50,
    encode_texts: Annotated[int, typer.Option(help="Distinct queries timed for the encoder")] = 3000,
    seed: Annotated[int, typer.Option()] = 0,
):
    with tempfile.TemporaryDirectory() as home:
        os.environ["GREC_HOME"] = home
        from grec import settings
        from grec.data.tables import load_table
        from grec.data.schema import IMPRESSIONS, ITEMS
        from grec.data.simulate import SimulationConfig, simulate_to
        from grec.data.text import SentenceEncoder
        from grec.features.store import OnlineReader, apply, materialize
        from grec.features.training_set import build_training_set

        data = settings.data_dir()
        _, t_sim = _timed(simulate_to, data, SimulationConfig(n_impressions=impressions, seed=seed))
        imp = load_table(data / IMPRESSIONS.file, IMPRESSIONS)
        queries = imp["search_query"][imp["search_query"] != ""].unique()
        descriptions = load_table(data / ITEMS.file, ITEMS)["description"].tolist()

        encoder = SentenceEncoder()
        _, t_load = _timed(lambda: encoder.model)
        sample = list(np.random.default_rng(seed).choice(queries, size=min(encode_texts, len(queries)), replace=False))
        _, t_queries = _timed(encoder.encode, sample)
        _, t_desc = _timed(encoder.encode, descriptions)

        _, t_apply = _timed(apply, data)
        manifest, t_set = _timed(build_training_set, data)
        end = imp["event_timestamp"].max() + np.timedelta64(1, "s")
        _, t_mat = _timed(materialize, end)

        reader = OnlineReader()
        rng = np.random.default_rng(seed + 1)
        customers = rng.choice(imp["customer_id"].unique(), size=requests)
        n_items = len(descriptions)
        reader.read(int(customers[0]), list(range(candidates)))  # first read opens the SQLite file
        latencies = []
        for customer in customers:
            items = rng.choice(n_items, size=candidates, replace=False).tolist()
            _, seconds = _timed(reader.read, int(customer), items)
            latencies.append(seconds * 1000)
        latencies = np.array(latencies)
        offline = offline_stores(Path(home), data, end)

    rows = sum(manifest.rows.values())
    results = {
        "impressions": impressions,
        "distinct_queries": int(len(queries)),
        "items": n_items,
        "simulate_s": t_sim,
        "encoder_load_s": t_load,
        "encoder_queries_per_s": len(sample) / t_queries,
        "encoder_descriptions_per_s": len(descriptions) / t_desc,
        "features_apply_s": t_apply,
        "training_set_s": t_set,
        "training_set_rows": rows,
        "training_set_rows_per_s": rows / t_set,
        "materialize_s": t_mat,
        "online_requests": requests,
        "online_candidates": candidates,
        "online_p50_ms": float(np.percentile(latencies, 50)),
        "online_p99_ms": float(np.percentile(latencies, 99)),
        "online_mean_ms": float(latencies.mean()),
        "offline_stores": offline,
    }
    env = machine()
    r = results
    from importlib.metadata import version

    from grec.features.store import FEATURE_REPO

    feast_version = version("feast")
    offline_default = re.search(r"offline_store:\n  type: (\w+)", (FEATURE_REPO / "feature_store.yaml").read_text()).group(1)
    md = f"""# Data plane costs

Command: `python benchmarks/features.py --impressions {impressions} --requests {requests}`.
Machine: {env['cpu']}, {env['cores']} cores, torch threads {env['torch_threads']}, GPU: {env['gpu'] or 'none'}.
Sizes: {impressions:,} impressions, {r['distinct_queries']:,} distinct search queries, {n_items} items.
Stores: Feast {feast_version} with the repository's configuration ({offline_default} offline store, SQLite online store), all under a fresh state folder.

| Step | Figure |
|---|---|
| Sentence encoder (all-MiniLM-L6-v2, CPU), load | {t_load:.1f} s |
| ... search queries ({len(sample):,} distinct) | {r['encoder_queries_per_s']:,.0f} texts/s |
| ... item descriptions ({n_items}) | {r['encoder_descriptions_per_s']:,.0f} texts/s |
| `features apply`: sources + every distinct text encoded + registry | {t_apply:.1f} s |
| Point-in-time training set, {rows:,} impressions | {t_set:.1f} s ({r['training_set_rows_per_s']:,.0f} rows/s) |
| Materialize the online store (all views, whole window) | {t_mat:.1f} s |
| Online read, 1 customer + {candidates} items, p50 | {r['online_p50_ms']:.1f} ms |
| Online read, 1 customer + {candidates} items, p99 | {r['online_p99_ms']:.1f} ms |

Offline store side by side (the same source files; each store's training set and
materialization in a fresh process; peak RSS of that process, plus Spark's JVM (local mode,
`feature_repo/feature_store.spark.yaml`) for Spark):

| offline store | training set, first in the process | training set, again | materialize | peak RSS |
|---|---:|---:|---:|---:|
""" + "\n".join(f"| {name} | {offline[name]['training_set_cold_s']:.1f} s | {offline[name]['training_set_s']:.1f} s | "
                f"{offline[name]['materialize_s']:.1f} s | "
                f"{offline[name]['peak_rss_mb']:,.0f} MB |" for name in OFFLINE_STORES) + f"""

Training sets identical row for row: {offline['identical_training_sets']}. Against DuckDB's time, the training set again: dask {offline['file']['training_set_s'] / offline['duckdb']['training_set_s']:.2f}x, Spark {offline['spark']['training_set_s'] / offline['duckdb']['training_set_s']:.2f}x; materialize: dask {offline['file']['materialize_s'] / offline['duckdb']['materialize_s']:.2f}x, Spark {offline['spark']['materialize_s'] / offline['duckdb']['materialize_s']:.2f}x. Spark's JVM alone peaked at {offline['spark']['jvm_peak_rss_mb']:,.0f} MB.

An online read is two `get_online_features` calls (customer views, then item views) through the
serving feature service's references. Queries are short (a few words); descriptions are ~30 words,
hence the gap in encoder throughput.
"""
    json_path, md_path = write_results("features", {"machine": env, "results": results}, md)
    print(md)
    print(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
