"""The data plane's costs on this machine: text embedding, feature store, training sets, online reads.

Everything runs in a fresh temporary state folder:
1. sentence-encoder throughput (all-MiniLM-L6-v2, CPU): distinct search queries and item
   descriptions, texts per second;
2. `grec features apply` on N impressions (derive the five source tables, encode every distinct
   text once, register the repository);
3. the point-in-time training set for all N impressions (`grec features training-set`);
4. materializing the online store (SQLite) up to the end of the window;
5. online reads for one customer plus 50 candidate items: p50 / p99 over many random requests.

    python benchmarks/features.py                          # the committed run (1M impressions)
    python benchmarks/features.py --impressions 100000     # a quick look
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402


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
        from grec.data.dataset import load_table
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
    }
    env = machine()
    r = results
    md = f"""# Data plane costs

Command: `python benchmarks/features.py --impressions {impressions} --requests {requests}`.
Machine: {env['cpu']}, {env['cores']} cores, torch threads {env['torch_threads']}, GPU: {env['gpu'] or 'none'}.
Sizes: {impressions:,} impressions, {r['distinct_queries']:,} distinct search queries, {n_items} items.
Stores: Feast 0.67 file offline store (dask), SQLite online store, all under a fresh state folder.

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

An online read is two `get_online_features` calls (customer views, then item views) through the
serving feature service's references. Queries are short (a few words); descriptions are ~30 words,
hence the gap in encoder throughput.
"""
    json_path, md_path = write_results("features", {"machine": env, "results": results}, md)
    print(md)
    print(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
