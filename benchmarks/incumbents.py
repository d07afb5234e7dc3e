"""GRec against what it replaces: one LightGBM per task (the incumbents), MMoE, single-task networks,
the oracle and the reachable ceiling, on a simulated storefront sized so the sparse tasks can be read.

The storefront: `--impressions` over `--train-weeks` weeks (the last of them the validation week)
and one test week, seed 101 (nobody tuned to it). Every model goes through the platform's own path
(load_dataset -> model_config -> train_model -> predict) under one budget and early-stops on the
validation week. grec.benchmark.compare gives per task and per use case (pooled over flows) the
test AUC and AP over seeds, 95% bootstrap intervals (Poisson reweightings of the test impressions),
and each model's paired difference to GRec task-sentence with its interval.

The oracle is the true probability (it sees the hidden taste, intent and noise: out of any model's
reach). The reachable ceiling is the same inputs fitted to the true probabilities instead of the
labels (grec.benchmark.CEILINGS): an estimate from below of the best score the observable features
allow.

    python benchmarks/incumbents.py                       # the committed run
    python benchmarks/incumbents.py --impressions 100000 --seeds 0 --epochs 1   # a quick look
    python benchmarks/incumbents.py --render              # rewrite the markdown from the committed JSON

Every trained (model, seed) keeps its test predictions under $GREC_HOME/benchmarks/<name>/ (keyed by
the storefront, the budget and a hash of the grec modules it runs), so a run stopped part way (the 800k run
takes hours on 2 cores) goes on where it stopped when the same command is given again; a changed
setting or changed code starts afresh under a refusal, never a mix. --fresh ignores what is kept.
    python benchmarks/incumbents.py --impressions 200000 --name match_features \
        --models "GRec task-sentence 8/4,GRec task-sentence 8/4 without match features,MMoE 4,MMoE 4 without match features,LightGBM per task"
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, code_fingerprint, machine, write_results  # noqa: E402

NAME = "incumbents"


def run(impressions: int, train_weeks: int, seeds: list[int], epochs: int, models: list[str], log=typer.echo,
        keep: Path | None = None) -> dict:
    """The comparison; with `keep`, each trained (model, seed) is kept there and reused."""
    from grec.benchmark import ABLATIONS, CEILINGS, MODELS, TrainedCache, compare
    from grec.features.training_set import load_dataset
    from grec.data.simulate import SimulationConfig, simulate_to
    from grec.train import TrainConfig

    known = {**MODELS, **ABLATIONS, **CEILINGS}
    unknown = [m for m in models if m not in known]
    if unknown:
        raise typer.BadParameter(f"--models: unknown {unknown}; known: {', '.join(known)}")
    chosen = {name: known[name] for name in models}
    budget = TrainConfig(epochs=epochs, batch_size=2048)
    cache = None
    if keep is not None:
        key = {"impressions": impressions, "train_weeks": train_weeks, "simulator_seed": 101, "epochs": epochs,
               "batch_size": budget.batch_size, "lr": budget.lr, "code": code_fingerprint()}
        cache = TrainedCache(keep, key)
        log(f"trained models kept in {keep}")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["GREC_HOME"] = str(Path(folder) / "home")  # the text-vector table of this run
        config = SimulationConfig(n_impressions=impressions, train_weeks=train_weeks, seed=101)
        simulate_to(Path(folder) / "data", config)
        start = time.perf_counter()
        data = load_dataset(Path(folder) / "data")
        log(f"dataset: {len(data.features):,} impressions, encoded in {time.perf_counter() - start:.0f} s")
        result = compare(data, seeds, budget, chosen, log=log, cache=cache)
    if result["resumed"]:
        log(f"{result['resumed']} of {len(seeds) * len(chosen)} trained models were read from {keep}")
    result["simulation"] = {"impressions": impressions, "train_weeks": train_weeks, "test_weeks": 1, "seed": 101}
    return result


def markdown(payload: dict) -> str:
    from grec.benchmark import difference_cell, difference_table, interval_cell

    r, m, sim = payload["result"], payload["machine"], payload["result"]["simulation"]
    pooled = r["mean_over"]
    lines = [
        "# GRec against the incumbents (one LightGBM per task), MMoE and the reachable ceiling", "",
        f"Reproduce: `{payload['command']}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"GPU: {m['gpu'] or 'none'}. Simulated storefront: {sim['impressions']:,} impressions, "
        f"{sim['train_weeks']} training weeks (the last one validates) and 1 test week, simulator seed {sim['seed']}. "
        f"Model seeds {payload['seeds']}; at most {r['budget']['epochs']} epochs, batch {r['budget']['batch_size']}, "
        f"learning rate {r['budget']['lr']}; LightGBM early-stops after 50 rounds without validation gain.", "",
        f"Rows (task rows) train / valid / test: {r['rows']['train']:,} / {r['rows']['valid']:,} / {r['rows']['test']:,}. "
        "Test positives pooled over flows: " + ", ".join(f"{g[4:]} {n:,}" for g, n in r["pooled_positives"].items())
        + "; per task: " + ", ".join(f"{t} {n:,}" for t, n in r["positives"].items()) + ".", "",
        *([f"{r['resumed']} of the (model, seed)s were trained by an earlier run of this command on the same code "
           "and read from what it kept (their train time is that run's).", ""] if r.get("resumed") else []),
        "Cells: test value, ± the spread over seeds, [95% bootstrap interval of the seed mean]. The last columns: "
        "the paired 95% interval of (GRec task-sentence - model), on the same reweightings; 'level' where it holds 0.", "",
        "## Mean over the use cases (pooled over flows)", "",
        "| model | mean AUC | mean AP | GRec - model, AUC | GRec - model, AP | train time |",
        "|---|---:|---:|---|---|---:|"]
    for name, model in r["models"].items():
        lines.append(f"| {name} | {interval_cell(model['mean'], 'auc')} | {interval_cell(model['mean'], 'ap')} | "
                     f"{difference_cell(model, 'auc:mean')} | {difference_cell(model, 'ap:mean')} | {model['seconds']:.0f} s |")
    lines += ["", "## AUC per use case (pooled over flows)", "",
              "| model | " + " | ".join(g[4:] for g in pooled) + " |", "|---|" + "---:|" * len(pooled)]
    for name, model in r["models"].items():
        lines.append(f"| {name} | " + " | ".join(interval_cell(model["tasks"][g], "auc") for g in pooled) + " |")
    lines += ["", "## GRec task-sentence - model, AUC per use case (paired 95% interval)", "",
              *difference_table(r, pooled)]
    tasks = list(r["positives"])
    lines += ["", "## AUC per task", "", "| model | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for name, model in r["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{model['tasks'][t]['auc']:.4f}" for t in tasks) + " |")
    return "\n".join(lines) + "\n"


def main(
    impressions: Annotated[int, typer.Option(help="Simulated impressions in all")] = 400_000,
    train_weeks: Annotated[int, typer.Option(help="Training weeks (the last one is the validation week)")] = 5,
    seeds: Annotated[str, typer.Option(help="Comma-separated model seeds")] = "0,1,2",
    epochs: Annotated[int, typer.Option(help="At most this many epochs per network")] = 3,
    models: Annotated[str, typer.Option(help="Comma-separated names from grec.benchmark.MODELS and CEILINGS")] = (
        "GRec task-sentence 8/4,GRec token 8/4,MMoE 4,Single-task,LightGBM per task,"
        "Ceiling: GRec on true probabilities,Ceiling: LightGBM on true probabilities"),
    render: Annotated[bool, typer.Option(help="Only rewrite the markdown from the committed JSON")] = False,
    name: Annotated[str, typer.Option(help="Results file stem under benchmarks/results/")] = NAME,
    fresh: Annotated[bool, typer.Option(help="Train everything again, ignoring the models kept from an earlier run")] = False,
):
    if render:
        payload = json.loads((RESULTS / f"{name}.json").read_text())
    else:
        from grec.settings import state_dir

        seed_list = [int(s) for s in seeds.split(",")]
        keep = state_dir() / "benchmarks" / name
        if fresh and keep.exists():
            shutil.rmtree(keep)
        payload = {"machine": machine(), "command": " ".join(["python", "benchmarks/incumbents.py", *sys.argv[1:]]),
                   "seeds": seed_list,
                   "result": run(impressions, train_weeks, seed_list, epochs, models.split(","), keep=keep)}
    json_path, md_path = write_results(name, payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
