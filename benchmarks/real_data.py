"""GRec against the baselines on real logs nobody here generated: Census-Income (KDD) and the Open
Bandit Dataset (../shared/data; sources and citations in the results' header).

Every model goes through the platform's own path (grec.data.real.* -> dataset_from_frame ->
model_config -> train_model -> evaluate) with the same budget: epochs, batch, learning rate,
early stopping on the validation split (never the test split). Per task: the test AUC averaged
over seeds, its spread over seeds, and a 95% bootstrap interval of that seed average (1,000
Poisson reweightings of the test rows, shared by the seeds). Training time and rows per second.

    python benchmarks/real_data.py                          # the committed run (about 15 minutes)
    python benchmarks/real_data.py --seeds 0 --datasets census   # a quick look
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

from grec.data.dataset import FeatureSpec, dataset_from_frame  # noqa: E402
from grec.data.real import census, open_bandit  # noqa: E402
from grec.evaluate import predict, task_masks  # noqa: E402
from grec.lifecycle.gate import weighted_auc  # noqa: E402
from grec.model.checkpoint import build_model, model_config  # noqa: E402
from grec.model.inputs import InputConfig  # noqa: E402
from grec.train import TrainConfig, train_model  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = {  # name: model_config arguments
    "GRec task-sentence 8/4": {"arch": "grec"},
    "GRec token 8/4": {"arch": "grec", "routing": "token"},
    "MMoE 4": {"arch": "mmoe"},
    "Shared-bottom": {"arch": "shared_bottom"},
    "Single-task": {"arch": "single_task"},
}
EPOCHS = {"census": 3, "open_bandit": 5}
PUBLISHED = {"census": {"CENSUS+INCOME": 0.9447, "CENSUS+NEVER_MARRIED": 0.9932}}  # MMoE, full train/test split
SOURCES = {
    "census": "UCI Census-Income (KDD), test split only (99,762 rows), carved 60/20/20 stratified on both labels, "
              "seed 0; the MMoE paper's benchmark (Ma et al., KDD 2018). Published MMoE test AUC on the full "
              "data: income 0.9447, marital 0.9932 (PaddleRec's reproduction).",
    "open_bandit": "Open Bandit Dataset, small version (ZOZOTOWN; Saito et al., arXiv:2008.07146): 3 campaigns as "
                   "flows, click as CTR; train on the Thompson-sampling logs and the random logs before 11-28, "
                   "validate on the random logs of 11-28, test on the random logs of 11-29..30 (unbiased).",
}


def dataset(name: str):
    if name == "census":
        raw = census.read(SHARED / "census-income-kdd")
        frame, settings = census.model_frame(raw, census.split(raw, seed=0))
    else:
        impressions, items = open_bandit.read(SHARED / "open-bandit")
        frame, settings = open_bandit.model_frame(impressions, items, open_bandit.split(impressions))
    spec = FeatureSpec.fit(frame[frame["split"] == "train"], **settings)
    return dataset_from_frame(frame, None, spec=spec)


def run(name: str, seeds: list[int], samples: int = 1000) -> dict:
    data = dataset(name)
    test = data.rows["test"]
    label = test.label.numpy()
    masks = task_masks(data, test)
    weights = np.random.default_rng(0).poisson(1.0, (samples, len(label))).astype(np.float64)  # shared by all models
    out = {"rows": {k: len(v) for k, v in data.rows.items()},
           "positives": {task: int(label[m].sum()) for task, m in masks.items()}, "models": {}}
    for model_name, settings in MODELS.items():
        probs, seconds, speed = [], [], []
        for seed in seeds:
            torch.manual_seed(seed)
            arch = settings["arch"]
            net = build_model(model_config(arch, InputConfig.sizes_from(data.spec),
                                           **{k: v for k, v in settings.items() if k != "arch"}))
            summary = train_model(net, data, TrainConfig(epochs=EPOCHS[name], batch_size=1024, seed=seed, progress=False))
            probs.append(predict(net, data, test))
            seconds.append(summary["seconds"])
            speed.append(summary["rows_per_second"])
        tasks = {}
        for task, m in masks.items():
            aucs = [float(weighted_auc(label[m], p[m], np.ones((1, m.sum())))[0]) for p in probs]
            boot = np.nanmean([weighted_auc(label[m], p[m], weights[:, m]) for p in probs], axis=0)  # (B,) seed-mean AUC
            lo, hi = np.nanquantile(boot, [0.025, 0.975])
            tasks[task] = {"auc": statistics.mean(aucs), "sd": statistics.stdev(aucs) if len(aucs) > 1 else 0.0,
                           "ci": [float(lo), float(hi)], "per_seed": aucs}
        out["models"][model_name] = {"tasks": tasks, "seconds": statistics.mean(seconds),
                                     "rows_per_second": statistics.mean(speed)}
        typer.echo(f"  {name} {model_name}: " + ", ".join(f"{t} {v['auc']:.4f}" for t, v in tasks.items())
                   + f" ({statistics.mean(seconds):.0f} s)")
    return out


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = ["# GRec on real data", "", f"Reproduce: `{payload['command']}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads). "
             f"Seeds {payload['seeds']}; batch 1024, learning rate 1e-3, early stopping on the validation split. "
             "Per task: test AUC, mean over seeds ± their standard deviation, and the 95% bootstrap interval of "
             "the seed mean (1,000 Poisson reweightings of the test rows). Differences inside the intervals are "
             "not differences.", ""]
    for name, result in payload["datasets"].items():
        tasks = list(result["positives"])
        lines += [f"## {name.replace('_', ' ').title()}", "", SOURCES[name], "",
                  f"Rows (task rows) train / valid / test: {result['rows']['train']:,} / {result['rows']['valid']:,} / "
                  f"{result['rows']['test']:,}; test positives: "
                  + ", ".join(f"{t} {n:,}" for t, n in result["positives"].items()) + f"; at most {EPOCHS[name]} epochs.", "",
                  "| model | " + " | ".join(tasks) + " | train time | rows/s |",
                  "|---|" + "---:|" * (len(tasks) + 2)]
        for model, r in result["models"].items():
            cells = [f"{r['tasks'][t]['auc']:.4f} ± {r['tasks'][t]['sd']:.4f} [{r['tasks'][t]['ci'][0]:.3f}, "
                     f"{r['tasks'][t]['ci'][1]:.3f}]" for t in tasks]
            lines.append(f"| {model} | " + " | ".join(cells) + f" | {r['seconds']:.0f} s | {r['rows_per_second']:,.0f} |")
        if name in PUBLISHED:
            lines.append("| MMoE, published (full data) | " + " | ".join(f"{PUBLISHED[name][t]:.4f}" for t in tasks) + " | | |")
        lines.append("")
    return "\n".join(lines)


def main(
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds")] = "0,1,2",
    datasets: Annotated[str, typer.Option(help="census, open_bandit")] = "census,open_bandit",
):
    if not SHARED.exists():
        raise typer.BadParameter(f"{SHARED} is absent: the real data lives in ../shared/data beside the checkout")
    seed_list = [int(s) for s in seeds.split(",")]
    payload = {"machine": machine(), "command": " ".join(["python", "benchmarks/real_data.py", *sys.argv[1:]]),
               "seeds": seed_list, "datasets": {}}
    for name in datasets.split(","):
        typer.echo(name)
        payload["datasets"][name] = run(name, seed_list)
    json_path, md_path = write_results("real_data", payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
