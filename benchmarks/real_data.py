"""GRec against the baselines on real logs nobody here generated: Census-Income (KDD) and the Open
Bandit Dataset (../shared/data; sources and citations in the results' header).

Each dataset goes through the platform's own path: the adapter writes its tables and contract.json
(what `grec data load` does), then the same reader as `grec train --data` (open_source), and
grec.benchmark.compare trains the six models (five networks, one LightGBM per task) under one
budget (epochs, batch, learning rate, early stopping on the validation split, never the test
split). Per task: the test AUC averaged over seeds, its spread over seeds, a 95% bootstrap interval
of that seed average (1,000 Poisson reweightings of the test rows, shared by the seeds) and each
model's paired difference to GRec task-sentence. Training time and rows per second.

    python benchmarks/real_data.py                          # the committed run (about 10 minutes)
    python benchmarks/real_data.py --seeds 0 --datasets census   # a quick look
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

from grec.benchmark import compare, detail_table, difference_table  # noqa: E402
from grec.data.real import census, open_bandit  # noqa: E402
from grec.features.training_set import open_source  # noqa: E402
from grec.train import TrainConfig  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
EPOCHS = {"census": 3, "open_bandit": 5}
PUBLISHED = {"census": {"CENSUS+INCOME": 0.9447, "CENSUS+NEVER_MARRIED": 0.9932}}  # MMoE, full train/test split
LOADERS = {"census": lambda out: census.load(SHARED / "census-income-kdd", out, seed=0),
           "open_bandit": lambda out: open_bandit.load(SHARED / "open-bandit", out)}
SOURCES = {"census": census.SOURCE + " Published MMoE test AUC on the full data: income 0.9447, marital 0.9932 "
                                     "(PaddleRec's reproduction).",
           "open_bandit": open_bandit.SOURCE}


def run(name: str, seeds: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        LOADERS[name](Path(folder) / name)
        data = open_source(Path(folder) / name).dataset()
    return compare(data, seeds, TrainConfig(epochs=EPOCHS[name], batch_size=1024), log=typer.echo)


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = ["# GRec on real data", "", f"Reproduce: `{payload['command']}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads). "
             f"Seeds {payload['seeds']}; batch 1024, learning rate 1e-3, early stopping on the validation split. "
             "Per task: test AUC, mean over seeds ± their standard deviation, and the 95% bootstrap interval of "
             "the seed mean (1,000 Poisson reweightings of the test rows). Differences inside the intervals are "
             "not differences.", ""]
    for name, result in payload["datasets"].items():
        lines += [f"## {name.replace('_', ' ').title()}", "", SOURCES[name], "",
                  f"Rows (task rows) train / valid / test: {result['rows']['train']:,} / {result['rows']['valid']:,} / "
                  f"{result['rows']['test']:,}; test positives: "
                  + ", ".join(f"{t} {n:,}" for t, n in result["positives"].items()) + f"; at most {EPOCHS[name]} epochs.", "",
                  *detail_table(result, PUBLISHED.get(name), "MMoE, published (full data)"), "",
                  "GRec task-sentence - model, test AUC (paired 95% bootstrap interval over the test rows):", "",
                  *difference_table(result, list(result["positives"])), ""]
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
