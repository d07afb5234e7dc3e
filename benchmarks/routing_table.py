"""The paper's Table 1 on our simulated storefront.

MMoE 4/4 and GRec 8/4 with token, sentence, task and task-sentence routing, plus the single-task
row (one model per task): routing FLOPs per example, AP and AUC per use case on the held-out test
week, the oracle's AUC and AP, over several seeds with their spread. Every model trains with the
same budget (epochs, batch, learning rate) and early-stops on the validation week, never the test.

    python benchmarks/routing_table.py                      # the committed run
    python benchmarks/routing_table.py --impressions 50000 --seeds 0 --epochs 1   # a quick look
    python benchmarks/routing_table.py --render     # rewrite the markdown from the committed JSON
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

from grec.data.schema import USE_CASES  # noqa: E402

# (system, experts/top-k, routing granularity, model settings)
VARIANTS = [
    ("MMoE", "4/4", "sentence", {"arch": "mmoe", "n_experts": 4}),
    ("GRec", "8/4", "token", {"routing": "token"}),
    ("GRec", "8/4", "sentence", {"routing": "sentence"}),
    ("GRec", "8/4", "task", {"routing": "task"}),
    ("GRec", "8/4", "task-sentence", {"routing": "task_sentence"}),
    ("Single-task", "-", "-", {"arch": "single_task"}),
]


def build(variant: dict, sizes: dict):
    from grec.model.baselines import BaselineConfig
    from grec.model.checkpoint import build_model
    from grec.model.grec import GRecConfig

    config = BaselineConfig(**sizes, **variant) if "arch" in variant else GRecConfig(**sizes, **variant)
    return build_model(config)


def run_one(variant: dict, data, seed: int, epochs: int) -> dict:
    import torch

    from grec.evaluate import evaluate, flops_per_example
    from grec.model.inputs import InputConfig
    from grec.train import TrainConfig, train_model

    torch.manual_seed(seed)
    model = build(variant, InputConfig.sizes_from(data.spec))
    summary = train_model(model, data, TrainConfig(epochs=epochs, seed=seed, progress=False))
    report = evaluate(model.cpu(), data, "test")
    flops = flops_per_example(model, data)
    return {
        "seed": seed,
        "ap": {u: report["by_use_case"][u]["ap"] for u in USE_CASES},
        "auc": {u: report["by_use_case"][u]["auc"] for u in USE_CASES},
        "mean_ap": report["mean"]["ap"],
        "mean_auc": report["mean"]["auc"],
        "by_task_auc": {t: m["auc"] for t, m in report["by_task"].items()},
        "routing_flops": flops["mixing"],
        "total_flops": flops["total"],
        "train_seconds": summary["seconds"],
        "rows_per_second": summary["rows_per_second"],
        "best_epoch": summary["best_epoch"],
    }


def spread(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}


def fmt(s: dict, scale: float = 100.0) -> str:
    return f"{s['mean'] * scale:.2f} ± {s['std'] * scale:.2f}"


def markdown(payload: dict) -> str:
    rows, oracle = payload["rows"], payload["oracle"]
    lines = [
        "# Table 1 on the simulated storefront",
        "",
        f"Reproduce: `{payload['command']}`",
        "",
        f"Machine: {payload['machine']['cpu']}, {payload['machine']['cores']} cores, torch {payload['machine']['torch']} "
        f"({payload['machine']['torch_threads']} threads). Data: {payload['sizes']['impressions']:,} simulated impressions "
        f"(seed {payload['sizes']['data_seed']}), rows train/valid/test {payload['sizes']['rows']['train']:,} / "
        f"{payload['sizes']['rows']['valid']:,} / {payload['sizes']['rows']['test']:,}; test = the week after training, "
        f"validation = the last training week (early stopping). Seeds {payload['seeds']}, at most {payload['epochs']} epochs. "
        "Figures are mean ± standard deviation over seeds, in percent.",
        "",
        "## Average precision per use case (the paper's metric) and routing FLOPs",
        "",
        "| System | Experts / top-k | Routing | Routing FLOPs | CTR | CTCVR | ATC | CVR | mean AP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = ["CTR", "CTCVR", "ATC", "CVR"]  # the paper's column order
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['experts']} | {r['routing']} | {r['routing_flops']['mean'] / 1e6:.2f}M | "
            + " | ".join(fmt(r["ap"][u]) for u in order) + f" | {fmt(r['mean_ap'])} |"
        )
    lines.append("| Oracle (true probabilities) | | | | " + " | ".join(f"{oracle['ap'][u] * 100:.2f}" for u in order)
                 + f" | {np.mean([oracle['ap'][u] for u in order]) * 100:.2f} |")
    lines += [
        "",
        "## AUC per use case, total FLOPs and training cost",
        "",
        "| System | Routing | CTR | CTCVR | ATC | CVR | mean AUC | total FLOPs | train s | rows/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} {r['experts']} | {r['routing']} | " + " | ".join(fmt(r["auc"][u]) for u in order)
            + f" | {fmt(r['mean_auc'])} | {r['total_flops']['mean'] / 1e6:.2f}M | {r['train_seconds']['mean']:.0f} | "
            f"{r['rows_per_second']['mean']:,.0f} |"
        )
    lines.append("| Oracle | | " + " | ".join(f"{oracle['auc'][u] * 100:.2f}" for u in order)
                 + f" | {np.mean([oracle['auc'][u] for u in order]) * 100:.2f} | | | |")
    lines += ["", "## What the table says", ""] + [f"- {c}" for c in payload["conclusions"]] + [""]
    return "\n".join(lines)


def conclusions(rows: list[dict]) -> list[str]:
    by = {f"{r['system']} {r['routing']}": r for r in rows}
    ts, token = by["GRec task-sentence"], by["GRec token"]
    out = [
        f"Routing FLOPs: task-sentence {ts['routing_flops']['mean'] / 1e6:.2f}M vs token "
        f"{token['routing_flops']['mean'] / 1e6:.2f}M per example, a ratio of "
        f"{ts['routing_flops']['mean'] / token['routing_flops']['mean']:.2f}."
    ]
    for other in ("MMoE sentence", "Single-task -", "GRec token"):
        o = by[other]
        diffs = np.array(ts["per_seed_mean_ap"]) - np.array(o["per_seed_mean_ap"])
        sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan")
        verdict = "is ahead of" if diffs.mean() > 0 else "trails"
        # clear only beyond two standard errors of the paired per-seed differences
        inside = len(diffs) > 1 and abs(diffs.mean()) <= 2 * sd / np.sqrt(len(diffs))
        inside = " (within two standard errors of the seed spread: not a clear difference)" if inside else ""
        out.append(
            f"Task-sentence GRec {verdict} {other.replace(' -', '').replace(' sentence', '')} on mean AP by "
            f"{diffs.mean() * 100:+.2f} points (per-seed differences {', '.join(f'{d * 100:+.2f}' for d in diffs)}; "
            f"sd {sd * 100:.2f}){inside}."
        )
    return out


def main(
    impressions: Annotated[int, typer.Option(help="Simulated impressions")] = 200_000,
    seeds: Annotated[str, typer.Option(help="Comma-separated training seeds")] = "0,1,2",
    epochs: Annotated[int, typer.Option(help="Most epochs per model (early stopping may end sooner)")] = 4,
    data_seed: Annotated[int, typer.Option(help="Simulator seed")] = 0,
    out: Annotated[Path, typer.Option(help="Results folder")] = Path(__file__).resolve().parent / "results",
    render: Annotated[bool, typer.Option(help="Only rewrite the markdown (and conclusions) from the results JSON")] = False,
):
    from grec.features.training_set import load_dataset
    from grec.data.simulate import SimulationConfig, simulate_to

    if render:
        payload = json.loads((out / "routing_table.json").read_text())
        payload["conclusions"] = conclusions(payload["rows"])
        print("Wrote", *write_results("routing_table", payload, markdown(payload), out))
        return
    seed_list = [int(s) for s in seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        simulate_to(Path(tmp), SimulationConfig(n_impressions=impressions, seed=data_seed))
        data = load_dataset(Path(tmp))
    test = data.rows["test"]
    from grec.evaluate import evaluate_predictions

    oracle_report = evaluate_predictions(data, test, test.oracle.numpy())["by_use_case"]
    rows = []
    for system, experts, routing, variant in VARIANTS:
        runs = []
        for seed in seed_list:
            t = time.perf_counter()
            runs.append(run_one(variant, data, seed, epochs))
            print(f"{system} {experts} {routing} seed {seed}: mean AP {runs[-1]['mean_ap']:.4f} "
                  f"AUC {runs[-1]['mean_auc']:.4f} ({time.perf_counter() - t:.0f}s)", flush=True)
        rows.append({
            "system": system, "experts": experts, "routing": routing, "settings": variant,
            "ap": {u: spread([r["ap"][u] for r in runs]) for u in USE_CASES},
            "auc": {u: spread([r["auc"][u] for r in runs]) for u in USE_CASES},
            "mean_ap": spread([r["mean_ap"] for r in runs]),
            "mean_auc": spread([r["mean_auc"] for r in runs]),
            "per_seed_mean_ap": [r["mean_ap"] for r in runs],
            "routing_flops": spread([r["routing_flops"] for r in runs]),
            "total_flops": spread([r["total_flops"] for r in runs]),
            "train_seconds": spread([r["train_seconds"] for r in runs]),
            "rows_per_second": spread([r["rows_per_second"] for r in runs]),
            "runs": runs,
        })
    payload = {
        "command": f"python benchmarks/routing_table.py --impressions {impressions} --seeds {seeds} --epochs {epochs} --data-seed {data_seed}",
        "machine": machine(),
        "sizes": {"impressions": impressions, "data_seed": data_seed, "rows": {k: len(v) for k, v in data.rows.items()},
                  "items": data.spec.n_items},
        "seeds": seed_list,
        "epochs": epochs,
        "oracle": {"ap": {u: oracle_report[u]["ap"] for u in USE_CASES}, "auc": {u: oracle_report[u]["auc"] for u in USE_CASES}},
        "rows": rows,
    }
    payload["conclusions"] = conclusions(rows)
    paths = write_results("routing_table", payload, markdown(payload), out)
    print(markdown(payload))
    print("Wrote", *paths)


if __name__ == "__main__":
    typer.run(main)
