"""GRec where the paper argues for it: many tasks.

The storefront at three task counts, one world (grec.data.simulate, one seed of the world):
12 tasks (flow x use case, the default storefront), 48 (flow x four surface groups x use case:
search, browse, deals, and the rest), 72 (flow x the six surfaces x use case, `--pages`) and 96
(the checkout's accessory interstitial and cart page too, `--checkout-pages`), where each surface
converts at its own rate and for its own reasons, and the conversion tasks are as sparse as real ones.
Models, every one through the platform's own path (open_source -> model_config -> train_model ->
predict) under one budget (TrainConfig's defaults, early stopping on the validation week): GRec
task-sentence 8/4 and 32/4, MMoE with 4 and 8 experts, PLE, and one LightGBM per task.

Per model and task count (grec.benchmark.compare): test AUC and AP per task and per use case
(pooled), their means, the mean AP over the sparse tasks (fewer than SPARSE test positives, at
least one), each with a 95% bootstrap interval and the paired difference to GRec 8/4; the gap to
the oracle (the true probability); training rows/s; and what serving one task costs, measured
side by side in one process after training (grec.pipeline.steps.serving_cost: 50 candidates of
one task at one thread, the path the ranking service scores, median of 20, three rounds in
turns): parameters, FLOPs per row, models to keep, request latency.

    python benchmarks/many_tasks.py                                  # the committed run (hours)
    python benchmarks/many_tasks.py --tasks 12,72 --seeds 0 --impressions 100000 --name many_tasks_quick
    python benchmarks/many_tasks.py --render                         # rewrite the markdown and picture

Trained predictions are kept under $GREC_HOME/benchmarks/<name>/<tasks>/ (keyed by the data, the
budget and the code): a stopped run goes on where it stopped, and more seeds add to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, code_fingerprint, machine, write_results  # noqa: E402

NAME = "many_tasks"
CHALLENGER = "GRec task-sentence 8/4"
MODELS = {
    "GRec task-sentence 8/4": {"arch": "grec"},
    "GRec task-sentence 32/4": {"arch": "grec", "experts": 32},
    "MMoE 4": {"arch": "mmoe"},
    "MMoE 8": {"arch": "mmoe", "experts": 8},
    "PLE": {"arch": "ple"},
    "LightGBM per task": {"arch": "lightgbm"},
}
# 48 tasks: the six surfaces in four groups (the landing, home and detail pages as "other")
SURFACE_GROUPS = {"search": "search", "browse": "browse", "deals": "deals", "landing": "other", "home": "other",
                  "detail": "other"}
TASK_COUNTS = (12, 48, 72, 96)
SPARSE = 30  # a task is sparse when its test week holds fewer positives than this (and at least one)
WORLD_SEED = 202


def world(tasks: int, folder: Path, impressions: int) -> Path:
    """The storefront with `tasks` tasks written to folder/<tasks>."""
    from grec.data.contract import read_contract, write_tables
    from grec.data.simulate import SimulationConfig, simulate_to
    from grec.data.tables import load_tables

    if tasks not in TASK_COUNTS:
        raise typer.BadParameter(f"--tasks: {tasks} is not one of {TASK_COUNTS}")
    out = folder / str(tasks)
    simulate_to(out, SimulationConfig(n_impressions=impressions, train_weeks=5, seed=WORLD_SEED, pages=tasks != 12,
                                      checkout_pages=tasks == 96))
    if tasks == 48:  # the same impressions, surfaces grouped: fewer, larger tasks
        contract = read_contract(out)
        tables = load_tables(out, contract)
        tables["impressions"]["surface"] = tables["impressions"]["surface"].map(SURFACE_GROUPS)
        groups = list(dict.fromkeys(SURFACE_GROUPS.values()))
        routes = tuple(f"{flow}+{group}" for flow in dict.fromkeys(r.split("+")[0] for r in contract.tasks.flows)
                       for group in groups)
        write_tables(tables, out, dataclasses.replace(contract, tasks=dataclasses.replace(contract.tasks, flows=routes)))
    return out


def serving_costs(nets: dict, data, rounds: int = 3) -> dict:
    """What serving one task of each model costs, measured side by side: `rounds` rounds, the
    models in turns, the median request latency over them."""
    import torch

    from grec.pipeline.steps import serving_cost

    rows, seconds, out = data.rows["test"], {name: [] for name in nets}, {}
    for _ in range(rounds):
        for name, net in nets.items():
            cost = serving_cost(net.eval(), data, rows)
            seconds[name].append(cost["request_seconds"])
            out[name] = {k: v for k, v in cost.items() if k != "request_seconds"}
    for name, net in nets.items():
        params = sum(p.numel() for p in net.parameters()) if isinstance(net, torch.nn.Module) else 0
        out[name] |= {"request_ms": 1e3 * statistics.median(seconds[name]), "parameters": params or None}
    return out


def run_tasks(tasks: int, seeds: list[int], impressions: int, keep: Path, models: dict = MODELS, log=typer.echo) -> dict:
    from grec.benchmark import TrainedCache, compare
    from grec.features.training_set import open_source
    from grec.model.checkpoint import build_model, model_config
    from grec.model.inputs import InputConfig
    from grec.train import TrainConfig

    budget = TrainConfig()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["GREC_HOME"] = str(Path(folder) / "home")
        began = time.perf_counter()
        data = open_source(world(tasks, Path(folder), impressions)).dataset()
        vocabulary = data.spec.tasks
        log(f"{tasks} tasks ({'+'.join(vocabulary.tokens)} x use case): {len(data.features):,} impressions, written "
            f"and encoded in {time.perf_counter() - began:.0f} s")
        key = {"tasks": tasks, "impressions": impressions, "world_seed": WORLD_SEED, "epochs": budget.epochs,
               "batch_size": budget.batch_size, "lr": budget.lr, "patience": budget.patience, "code": code_fingerprint()}
        cache = TrainedCache(keep / str(tasks), key)
        test = data.rows["test"]
        names = [vocabulary.task_name(t) for t in range(vocabulary.n_tasks)]
        task = test.task(len(vocabulary.use_cases)).numpy()
        positives = {n: int(test.label.numpy()[task == t].sum()) for t, n in enumerate(names)}
        sparse = [n for n, p in positives.items() if 0 < p < SPARSE]
        nets = {}
        result = compare(data, seeds, budget, models, log=log, challenger=CHALLENGER, cache=cache,
                         means={"sparse tasks": sparse}, on_trained=lambda name, net: nets.setdefault(name, net))
        for name, settings in models.items():  # read from the cache: a network's cost needs no training
            if name not in nets and settings["arch"] != "lightgbm":
                extra = {k: v for k, v in settings.items() if k != "arch"}
                nets[name] = build_model(model_config(settings["arch"], InputConfig.sizes_from(data.spec), **extra))
        costs = serving_costs(nets, data)
    result["costs"] = costs
    result["sparse"] = {"threshold": SPARSE, "tasks": len(sparse)}
    result["task_positives"] = positives
    result["tokens"] = list(vocabulary.tokens)
    return result


def surface_information(impressions: int) -> dict:
    """What knowing the surface is worth to a ranking, in this world: each 72-task's test rows ranked
    by the true probability (which knows the surface's conversion rate) and by the true probability
    of the same impressions in the world without surfaces (the default storefront, drawn identically:
    the same shown items, clicks and intents). Equal within a task, the tasks of one flow and use
    case differ only in their rates, which no within-task ranking (AUC, AP) can see: routing on the
    surface then has nothing to learn that routing on the flow does not."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from grec.data.schema import USE_CASE_LABEL, USE_CASE_POPULATION, oracle_scores
    from grec.data.simulate import PAGES_ORACLES, SimulationConfig, simulate

    config = SimulationConfig(n_impressions=impressions, train_weeks=5, seed=WORLD_SEED)
    pages = simulate(dataclasses.replace(config, pages=True))["impressions"]
    plain = oracle_scores(simulate(config)["impressions"])
    test = (pages["event_timestamp"] >= config.windows.test[0]).to_numpy()
    route = (pages["flow"] + "+" + pages["surface"]).to_numpy()
    out: dict = {"use_cases": {}, "tasks": 0}
    for use_case, label in USE_CASE_LABEL.items():
        population = USE_CASE_POPULATION[use_case]
        rows = test & (np.ones(len(pages), bool) if population is None else pages[population].to_numpy() == 1)
        figures = {"auc_with": [], "auc_without": [], "ap_with": [], "ap_without": []}
        for name in np.unique(route[rows]):
            mine = rows & (route == name)
            y = pages[label].to_numpy()[mine]
            if 0 < y.sum() < len(y):
                for key, score in (("with", pages[PAGES_ORACLES[use_case]].to_numpy()), ("without", plain[use_case])):
                    figures[f"auc_{key}"].append(roc_auc_score(y, score[mine]))
                    figures[f"ap_{key}"].append(average_precision_score(y, score[mine]))
        out["tasks"] += len(figures["auc_with"])
        out["use_cases"][use_case] = {k: float(np.mean(v)) for k, v in figures.items()} | {
            "tasks": len(figures["auc_with"]),
            "largest_auc_difference": float(np.max(np.abs(np.subtract(figures["auc_with"], figures["auc_without"]))))}
    return out


# ---------------------------------------------------------------------------------------------
# The report


def _cell(entry: dict | None, key: str) -> str:
    if not entry or entry.get(key) is None or entry[key] != entry[key]:
        return "-"
    lo, hi = entry[f"{key}_ci"]
    return f"{entry[key]:.4f} [{lo:.3f}, {hi:.3f}]"


def _cost(cost: dict | None, key: str) -> str:
    if not cost:
        return "-"
    if key == "work":
        return (f"{cost['comparisons_per_row']:,.0f} comparisons" if cost.get("comparisons_per_row") is not None
                else f"{cost['flops_per_row'] / 1e6:.2f} MFLOPs")
    if key == "parameters":
        return f"{cost['parameters'] / 1e3:,.0f}k" if cost.get("parameters") else "-"
    return f"{cost['request_ms']:.2f} ms" if key == "request_ms" else f"{cost[key]:,}"


def markdown(payload: dict) -> str:
    from grec.benchmark import difference_cell

    m = payload["machine"]
    levels = {k: payload["levels"][k] for k in sorted(payload["levels"], key=int)}
    lines = ["# Many tasks: GRec against MMoE, PLE and per-task LightGBM as the tasks grow", "",
             "Reproduce: " + "; ".join(f"`{c}`" for c in dict.fromkeys(r["command"] for r in levels.values())), "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
             f"GPU: {m['gpu'] or 'none'}. The simulated storefront (world seed {WORLD_SEED}, 5 training weeks, the "
             "last validating, and a test week); 12 tasks: flow x use case; 48: flow x four surface groups x use "
             "case; 72: flow x six surfaces x use case; 96: flow x eight surfaces (the checkout's accessory interstitial "
             "and cart page too) x use case. One budget (TrainConfig's defaults, early stopping on the "
             "validation week). Cells: test value averaged over seeds [95% bootstrap interval]; differences: the "
             "paired 95% interval of (GRec task-sentence 8/4 - model); 'level' where it holds 0. Sparse tasks: "
             f"fewer than {SPARSE} test positives (at least one). Serving: one request of 50 candidates of one task "
             "at one thread through the path the ranking service scores (a GRec task's dense sub-network), "
             "median of three rounds taken in turns.", ""]
    for tasks, r in levels.items():
        mean_over = ", ".join(g[4:] for g in r["mean_over"])
        lines += [f"## {tasks} tasks ({'+'.join(r['tokens'])} x use case)", "",
                  f"Seeds {r['seeds']}; test rows {r['rows']['test']:,}; sparse tasks {r['sparse']['tasks']} of "
                  f"{tasks}; mean over the use cases {mean_over}.", "",
                  "| model | mean AUC | mean AP | sparse tasks' AP | AP vs GRec 8/4 (mean) | AP vs GRec 8/4 (sparse) | "
                  "rows/s | parameters | models | work per row | request |",
                  "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|"]
        for name, model in r["models"].items():
            cost = r.get("costs", {}).get(name)
            lines.append(f"| {name} | {_cell(model['mean'], 'auc')} | {_cell(model['mean'], 'ap')} | "
                         f"{_cell(model.get('sparse tasks'), 'ap')} | {difference_cell(model, 'ap:mean')} | "
                         f"{difference_cell(model, 'ap:sparse tasks')} | "
                         f"{model['rows_per_second']:,.0f} | {_cost(cost, 'parameters')} | {_cost(cost, 'models')} | "
                         f"{_cost(cost, 'work')} | {_cost(cost, 'request_ms')} |")
        oracle = r["models"].get("Oracle (true probability)")
        if oracle:
            gaps = {n: oracle["mean"]["auc"] - mo["mean"]["auc"] for n, mo in r["models"].items() if mo is not oracle}
            lines += ["", "Gap to the oracle's mean AUC: " + ", ".join(f"{n} {g:+.4f}" for n, g in gaps.items()) + "."]
        lines.append("")
    if "picture" in payload:
        lines += [f"![quality against serving cost]({payload['picture']})", ""]
    if "surfaces" in payload:
        info = payload["surfaces"]
        lines += ["## What the surface tells a ranking", "",
                  f"`{info['command']}`: the test week's {info['tasks']} judged tasks of 72, each ranked by its true "
                  "probability (which knows the surface) and by the true probability of the same impressions in the "
                  "world without surfaces. Means over the tasks of each use case:", "",
                  "| use case | tasks | AUC knowing the surface | AUC without | AP knowing | AP without | largest AUC difference |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {u} | {f['tasks']} | {f['auc_with']:.4f} | {f['auc_without']:.4f} | {f['ap_with']:.4f} | "
                  f"{f['ap_without']:.4f} | {f['largest_auc_difference']:.4f} |" for u, f in info["use_cases"].items()]
        lines.append("")
    return "\n".join(lines)


def picture(payload: dict, path: Path) -> None:
    """Mean AP against one task's request latency, a line per model through the task counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    levels = sorted(payload["levels"], key=int)
    for name in MODELS:
        points = [(int(k), payload["levels"][k]["models"][name], payload["levels"][k].get("costs", {}).get(name))
                  for k in levels if name in payload["levels"][k]["models"]]
        if not points:
            continue
        left.plot([t for t, _, _ in points], [m["mean"]["ap"] for _, m, _ in points], marker="o", label=name)
        costed = [(c["request_ms"], m["mean"]["ap"], t) for t, m, c in points if c]
        right.plot([x for x, _, _ in costed], [y for _, y, _ in costed], marker="o", label=name)
        for x, y, t in costed:
            right.annotate(str(t), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    left.set(xlabel="tasks", ylabel="mean test AP (use cases pooled)", title="Quality as tasks grow")
    right.set(xlabel="one task's request, 50 candidates (ms, one thread)", ylabel="mean test AP",
              title="Quality against serving cost (labels: tasks)")
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(
    tasks: Annotated[str, typer.Option(help="Comma-separated task counts: 12, 48, 72, 96")] = "12,48,72,96",
    seeds: Annotated[str, typer.Option(help="Comma-separated model seeds")] = "0,1,2",
    impressions: Annotated[int, typer.Option(help="Impressions of the world")] = 300_000,
    models: Annotated[str, typer.Option(help="Comma-separated model names (default: all of MODELS)")] = ",".join(MODELS),
    name: Annotated[str, typer.Option(help="Results file stem under benchmarks/results/")] = NAME,
    render: Annotated[bool, typer.Option(help="Only rewrite the markdown and picture from the committed JSON")] = False,
    surfaces: Annotated[bool, typer.Option(help="Only measure what the surface tells a ranking (surface_information)")] = False,
):
    png = RESULTS / f"{name}.png"
    if render or surfaces:
        payload = json.loads((RESULTS / f"{name}.json").read_text())
        if surfaces:
            payload["surfaces"] = surface_information(impressions) | {
                "command": " ".join(["python", "benchmarks/many_tasks.py", *sys.argv[1:]])}
    else:
        from grec.settings import state_dir

        seed_list = [int(s) for s in seeds.split(",")]
        unknown = set(models.split(",")) - set(MODELS)
        if unknown:
            raise typer.BadParameter(f"--models: unknown {sorted(unknown)}; known: {', '.join(MODELS)}")
        chosen = {n: MODELS[n] for n in models.split(",")}
        keep = state_dir() / "benchmarks" / name
        previous = RESULTS / f"{name}.json"
        payload = {"machine": machine(), "levels": {}}
        if previous.exists():  # a run of some task counts adds to (or replaces) those of the committed file
            kept = json.loads(previous.read_text())
            payload["levels"] = kept.get("levels", {})
            payload |= {k: kept[k] for k in ("surfaces",) if k in kept}  # the surface measure is its own run
        command = " ".join(["python", "benchmarks/many_tasks.py", *sys.argv[1:]])
        for count in (int(t) for t in tasks.split(",")):
            result = run_tasks(count, seed_list, impressions, keep, chosen)
            payload["levels"][str(count)] = {**result, "command": command, "seeds": seed_list, "impressions": impressions}
            payload["picture"] = png.name
            picture(payload, png)
            write_results(name, payload, markdown(payload))  # after each task count: a long run keeps what it has
    picture(payload, png)
    json_path, md_path = write_results(name, payload, markdown(payload))
    typer.echo(f"Wrote {json_path}, {md_path} and {png}")


if __name__ == "__main__":
    typer.run(main)
