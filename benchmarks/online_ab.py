"""The paper's online A/B (its Table 2) on the simulated storefront: GRec against the single-task
recommenders (one LightGBM per task) and against MMoE, on live traffic of the world they were
trained on.

One world (`grec simulate`: training weeks, a test week, then a production week), the three models
trained on the same training set through the platform's path (grec.lifecycle.tracking.train_and_log:
GRec task-sentence 8/4, MMoE with 4 experts, LightGBM per task; one budget, TrainConfig's defaults)
and registered, the Feast online store materialized at the end of the test week; then two
experiments on the production week (grec.experiment): the customers split 50/50 by a stable hash,
each request ranked by its arm's model through the ranking service's path, the first six shown,
the outcomes drawn from the world's true funnel at the position shown. Per task and pooled per use
case: conversions per 1,000 requests for each arm [95% bootstrap interval over customers] and the
lift. The world's requests are the same in both experiments (one seed); only the split's name
differs, so each experiment has its own customers per arm.

    python benchmarks/online_ab.py                                   # the committed run
    python benchmarks/online_ab.py --impressions 60000 --requests 4000 --name online_ab_quick
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results  # noqa: E402

PAPER = {  # Table 2: GRec's improvement over the single-task recommenders, online
    "Home Page (AAL CTCVR)": "+8.5%", "Home Page (EUP CTCVR)": "+2.1%",
    "Accessory Interstitial Page (AAL CVR)": "+20.3%", "Accessory Interstitial Page (EUP CVR)": "+12.0%"}


def train_models(data: Path, home: Path, end: pd.Timestamp, log=typer.echo) -> dict[str, str]:
    """The three arms trained on the weeks before `end` and registered: {label: 'grec:N'}."""
    from grec.features.store import apply, materialize
    from grec.features.training_set import build_training_set, open_source
    from grec.lifecycle.tracking import train_and_log
    from grec.model.checkpoint import model_config
    from grec.model.inputs import InputConfig
    from grec.model.trees import TreeConfig
    from grec.pipeline import steps
    from grec.train import TrainConfig

    tables = home / "tables"
    steps.snapshot_window(data, "", end.isoformat(), tables)  # the production week is not trained on
    apply(tables)
    materialize(end)
    build_training_set(tables, home / "set")
    source = open_source(home / "set")
    dataset = source.dataset()
    sizes = InputConfig.sizes_from(dataset.spec)
    configs = {"GRec task-sentence 8/4": model_config("grec", sizes), "MMoE 4": model_config("mmoe", sizes),
               "LightGBM per task": TreeConfig()}
    versions = {}
    for label, config in configs.items():
        began = time.perf_counter()
        run = train_and_log(config, source, dataset, TrainConfig(progress=False), home / "models" / label.split()[0],
                            label, register_as="grec")
        versions[label] = f"grec:{run.version}"
        log(f"{label}: registered {versions[label]} ({time.perf_counter() - began:.0f} s)")
    return versions


def markdown(payload: dict) -> str:
    from grec.experiment import lift_text

    m = payload["machine"]
    lines = ["# Online A/B on the simulated storefront: GRec against per-task LightGBM and against MMoE", "",
             f"Reproduce: `{payload['command']}`", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}. World: `grec simulate` with "
             f"{payload['impressions']:,} impressions, seed {payload['world_seed']} (13 training weeks, the last "
             f"validating, a test week, then the production week {payload['window'][0]} to {payload['window'][1]}); "
             f"{payload['requests']:,} requests per experiment, customers split 50/50 by a stable hash; the first 6 of "
             "each ranking shown at positions 0-5; outcomes from the world's true funnel at the position shown. Cells: "
             "conversions of the task's label among the shown items per 1,000 requests [95% bootstrap interval over "
             "customers] (conversions in requests); lift: treatment (GRec) over control.", "",
             "The paper's Table 2 (GRec over the single-task recommenders, online): "
             + "; ".join(f"{k} {v}" for k, v in PAPER.items()) + ".", "",
             "## GRec's lift per use case (pooled over the routes)", "",
             "| use case | " + " | ".join(f"GRec over {e['labels']['control']}" for e in payload["experiments"]) + " |",
             "|---|" + "---|" * len(payload["experiments"])]
    use_cases = [row["use_case"] for row in payload["experiments"][0]["use_cases"]]
    for use_case in use_cases:
        cells = [lift_text(next(r for r in e["use_cases"] if r["use_case"] == use_case)) for e in payload["experiments"]]
        lines.append(f"| {use_case} | " + " | ".join(cells) + " |")
    lines.append("")
    for experiment in payload["experiments"]:
        labels, models = experiment["labels"], experiment["models"]
        tables = experiment["markdown"].split("\n\n", 2)[2]  # the experiment's tables, after its title and legend
        lines += [f"## {labels['treatment']} ({models['challenger']}) against {labels['control']} ({models['champion']})",
                  "", tables, ""]
    return "\n".join(lines)


def main(
    impressions: Annotated[int, typer.Option(help="Impressions of the world (training and test weeks)")] = 400_000,
    requests: Annotated[int, typer.Option(help="Requests per experiment, from the production week")] = 100_000,
    seed: Annotated[int, typer.Option(help="World seed")] = 0,
    name: Annotated[str, typer.Option(help="Results file stem under benchmarks/results/")] = "online_ab",
):
    from grec.data.simulate import SimulationConfig, simulate_to
    from grec.experiment import ExperimentConfig, markdown as experiment_markdown, run_experiment
    from grec.serving.experiment import CHALLENGER, CHAMPION

    command = " ".join(["python", "benchmarks/online_ab.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        os.environ["GREC_HOME"] = str(home)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        config = SimulationConfig(n_impressions=impressions, monitor_weeks=1, seed=seed)
        data = home / "data"
        simulate_to(data, config)
        production = config.windows.monitor
        versions = train_models(data, home, production[0])
        grec = versions["GRec task-sentence 8/4"]
        experiments = []
        for control in ("LightGBM per task", "MMoE 4"):
            label = f"grec-vs-{control.split()[0].lower()}"
            began = time.perf_counter()
            result = run_experiment(data, ExperimentConfig(label, versions[control], grec, production[0].isoformat(),
                                                           production[1].isoformat(), requests, 0.5, seed),
                                    home / "experiments" / label, log=typer.echo)
            typer.echo(f"{label}: {time.perf_counter() - began:.0f} s")
            labels = {"control": control, "treatment": "GRec task-sentence 8/4"}
            experiments.append(result.to_dict() | {"labels": labels, "markdown": experiment_markdown(
                result, {CHAMPION: labels["control"], CHALLENGER: labels["treatment"]})})
    payload = {"machine": machine(), "command": command, "impressions": impressions, "requests": requests,
               "world_seed": seed, "window": [t.isoformat() for t in production], "models": versions,
               "experiments": experiments}
    json_path, md_path = write_results(name, payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
