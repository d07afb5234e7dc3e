"""GRec on worlds it was not built for: the storefront, a second simulated world of another domain
(a job board, grec.data.simulate_jobs, whose contract `grec data init` drafts), and two real logs
(Census-Income, Open Bandit), side by side under one set of settings.

Every world goes through the platform's own path (its tables and contract.json -> open_source ->
model_config -> train_model -> predict) with the same budget: TrainConfig's defaults (at most 8
epochs, batch 2048, learning rate 1e-3, early stopping on the validation split, never the test
split), the same model defaults; nothing is tuned per world. Per world, grec.benchmark.compare
gives the test AUC and AP per use case (pooled over flows) and their mean over seeds, 95% bootstrap
intervals (Poisson reweightings of the test impressions, shared by every model and seed) and each
model's paired difference to GRec task-sentence with its interval.

Models: GRec task-sentence, MMoE and one LightGBM per task, all with the generic engineered
features (grec.model.match) and the networks with the learned interactions (grec.model.interactions);
on simulated worlds also the oracle and the reachable ceiling (the same GRec and LightGBM fitted
to the true probabilities, first seed only), and the ablation (grec.benchmark.ABLATIONS: learned
only, engineered only, neither; the incumbents without the attribute features; every seed on the
job board, the first on the storefront).

    python benchmarks/worlds.py                                   # the committed run (hours on 2 cores)
    python benchmarks/worlds.py --worlds jobs --seeds 0 --jobs-impressions 60000 --name worlds_quick
    python benchmarks/worlds.py --render                          # rewrite the markdown from the JSON

Each trained (model, seed) keeps its test predictions under $GREC_HOME/benchmarks/<name>/<world>/
(keyed by the world, the budget and the code), so a stopped run goes on where it stopped.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, code_fingerprint, machine, write_results  # noqa: E402

NAME = "worlds"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CHALLENGER = "GRec task-sentence 8/4"
MAIN = ("GRec task-sentence 8/4", "MMoE 4", "LightGBM per task")
CEILINGS = ("Ceiling: GRec on true probabilities", "Ceiling: LightGBM on true probabilities")
ABLATION = ("GRec, learned interactions only", "GRec, engineered features only", "GRec, neither (match features only)",
            "LightGBM per task without the attribute features")
SIMULATED = ("storefront", "jobs")
WORLDS = ("storefront", "jobs", "census", "open_bandit")


def world_data(world: str, folder: Path, impressions: dict[str, int]) -> tuple[Path, dict]:
    """Write `world`'s tables and contract under `folder`; returns the folder and what it is."""
    out = folder / world
    if world == "storefront":
        from grec.data.simulate import SimulationConfig, simulate_to

        config = SimulationConfig(n_impressions=impressions["storefront"], train_weeks=5, seed=101)
        simulate_to(out, config)
        return out, {"what": "the simulated telecom storefront (grec simulate)", "impressions": config.n_impressions,
                     "weeks": "5 training (the last validates) + 1 test", "seed": 101}
    if world == "jobs":
        from grec.data.scaffold import draft_contract, write_draft
        from grec.data.simulate_jobs import JOBS_INIT, JobsConfig, simulate_jobs_to

        config = JobsConfig(n_impressions=impressions["jobs"], seed=11)
        simulate_jobs_to(out, config)
        write_draft(draft_contract(out, name="jobs", **JOBS_INIT))  # what `grec data init` does
        return out, {"what": "a job board (grec.data.simulate_jobs), contract drafted by grec data init",
                     "impressions": config.n_impressions, "weeks": "5 training (the last validates) + 1 test", "seed": 11}
    from grec.data.real import census, open_bandit

    if world == "census":
        census.load(SHARED / "census-income-kdd", out, seed=0)
        return out, {"what": census.SOURCE}
    open_bandit.load(SHARED / "open-bandit", out)
    return out, {"what": open_bandit.SOURCE}


def run_world(world: str, seeds: list[int], ablation: bool, impressions: dict[str, int], keep: Path, log=typer.echo) -> dict:
    from grec.benchmark import ABLATIONS, CEILINGS as CEILING_SETTINGS, MODELS, TrainedCache, compare
    from grec.features.training_set import open_source
    from grec.train import TrainConfig

    names = list(MAIN) + (list(CEILINGS) if world in SIMULATED else []) + (list(ABLATION) if ablation else [])
    chosen = {n: {**MODELS, **CEILING_SETTINGS, **ABLATIONS}[n] for n in names}
    for n in names:  # an estimate of the ceiling, and the storefront's ablation, from the first seed alone
        if n in CEILINGS or (n in ABLATION and world != "jobs"):
            chosen[n] = {**chosen[n], "seeds": seeds[:1]}
    budget = TrainConfig()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["GREC_HOME"] = str(Path(folder) / "home")  # this world's text vectors
        began = time.perf_counter()
        path, about = world_data(world, Path(folder), impressions)
        data = open_source(path).dataset()
        about["encoded_seconds"] = round(time.perf_counter() - began)
        log(f"{world}: {len(data.features):,} impressions, tasks {data.spec.tasks.n_tasks}, written and encoded in "
            f"{about['encoded_seconds']} s")
        key = {"world": world, **{k: v for k, v in about.items() if k != "encoded_seconds"}, "epochs": budget.epochs,
               "batch_size": budget.batch_size, "lr": budget.lr, "patience": budget.patience, "code": code_fingerprint()}
        cache = TrainedCache(keep / world, key)
        result = compare(data, seeds, budget, chosen, log=log, challenger=CHALLENGER, cache=cache)
    result["world"] = about
    return result


# ---------------------------------------------------------------------------------------------
# The report


def _cell(model: dict | None, key: str = "auc") -> str:
    if model is None:
        return "-"
    lo, hi = model["mean"][f"{key}_ci"]
    return f"{model['mean'][key]:.4f} [{lo:.3f}, {hi:.3f}]"


def _diff(model: dict | None, key: str) -> str:
    from grec.benchmark import difference_cell

    return "-" if model is None else difference_cell(model, key)


def markdown(payload: dict) -> str:
    from grec.benchmark import difference_table, interval_cell

    m = payload["machine"]
    worlds = {w: payload["worlds"][w] for w in WORLDS if w in payload["worlds"]}  # in one order, however run
    names = list(worlds)
    commands = dict.fromkeys(r.get("command", payload["command"]) for r in worlds.values())
    lines = ["# GRec across worlds: the storefront, a job board, Census-Income, Open Bandit", "",
             "Reproduce: " + "; ".join(f"`{c}`" for c in commands), "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
             f"GPU: {m['gpu'] or 'none'}. Model seeds: " + ", ".join(f"{w} {r.get('seeds', payload['seeds'])}"
                                                                   for w, r in worlds.items())
             + ". One budget for every world: TrainConfig's "
             "defaults (at most 8 epochs, batch 2048, learning rate 1e-3, early stopping on the validation split), "
             "the platform's model defaults; nothing tuned per world. Cells: the test mean over the use cases "
             "(pooled over flows) of AUC or AP, averaged over seeds [95% bootstrap interval]. Differences: the paired "
             "95% interval of (GRec task-sentence - model) on the same reweightings; 'level' where it holds 0.", ""]
    for name, r in worlds.items():
        w = r["world"]
        lines.append(f"- **{name}**: {w['what']}" + (f"; {w['impressions']:,} impressions, {w['weeks']} weeks, "
                                                    f"seed {w['seed']}" if "impressions" in w else "")
                     + f". Use cases judged: {', '.join(g[4:] for g in r['mean_over'])}; test positives "
                     + ", ".join(f"{g[4:]} {n:,}" for g, n in r["pooled_positives"].items()) + ".")
    models = list(dict.fromkeys(n for r in worlds.values() for n in r["models"]))
    for key, title in (("auc", "Mean AUC"), ("ap", "Mean AP")):
        lines += ["", f"## {title}, every world side by side", "",
                  "| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for model in models:
            lines.append(f"| {model} | " + " | ".join(_cell(worlds[w]["models"].get(model), key) for w in names) + " |")
        lines += ["", f"GRec task-sentence - model, {title.lower()} (paired 95% interval):", "",
                  "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for model in models:
            if model == CHALLENGER:
                continue
            lines.append(f"| {model} | " + " | ".join(_diff(worlds[w]["models"].get(model), f"{key}:mean") for w in names) + " |")
    lines += ["", "## Train time (seconds per model, mean over seeds; one 2-core machine, models in turn)", "",
              "| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for model in models:
        lines.append(f"| {model} | " + " | ".join(
            f"{worlds[w]['models'][model]['seconds']:.0f}" if model in worlds[w]["models"] and
            model != "Oracle (true probability)" else "-" for w in names) + " |")
    for name, r in worlds.items():
        pooled = r["mean_over"]
        lines += ["", f"## {name}: AUC per use case (pooled over flows)", "",
                  "| model | " + " | ".join(g[4:] for g in pooled) + " |", "|---|" + "---:|" * len(pooled)]
        for model, entry in r["models"].items():
            lines.append(f"| {model} | " + " | ".join(interval_cell(entry["tasks"][g], "auc") for g in pooled) + " |")
        lines += ["", "GRec task-sentence - model, AUC per use case:", "", *difference_table(r, pooled)]
    return "\n".join(lines) + "\n"


def main(
    worlds: Annotated[str, typer.Option(help="Comma-separated: " + ", ".join(WORLDS))] = ",".join(WORLDS),
    seeds: Annotated[str, typer.Option(help="Comma-separated model seeds")] = "0,1,2",
    ablation: Annotated[bool, typer.Option(help="Train the ablation's models too (simulated worlds)")] = True,
    storefront_impressions: Annotated[int, typer.Option(help="The storefront's impressions")] = 300_000,
    jobs_impressions: Annotated[int, typer.Option(help="The job board's impressions")] = 240_000,
    name: Annotated[str, typer.Option(help="Results file stem under benchmarks/results/")] = NAME,
    render: Annotated[bool, typer.Option(help="Only rewrite the markdown from the committed JSON")] = False,
):
    if render:
        payload = json.loads((RESULTS / f"{name}.json").read_text())
    else:
        from grec.settings import state_dir

        unknown = set(worlds.split(",")) - set(WORLDS)
        if unknown:
            raise typer.BadParameter(f"--worlds: unknown {sorted(unknown)}; known: {', '.join(WORLDS)}")
        if not SHARED.exists() and {"census", "open_bandit"} & set(worlds.split(",")):
            raise typer.BadParameter(f"{SHARED} is absent: the real data lives in ../shared/data beside the checkout")
        seed_list = [int(s) for s in seeds.split(",")]
        keep = state_dir() / "benchmarks" / name
        previous = RESULTS / f"{name}.json"
        payload = {"machine": machine(), "command": " ".join(["python", "benchmarks/worlds.py", *sys.argv[1:]]),
                   "seeds": seed_list, "worlds": {}}
        if previous.exists():  # a run of some worlds adds to (or replaces) those of the committed file
            payload["worlds"] = json.loads(previous.read_text()).get("worlds", {})
        sizes = {"storefront": storefront_impressions, "jobs": jobs_impressions}
        for world in worlds.split(","):
            result = run_world(world, seed_list, ablation and world in SIMULATED, sizes, keep)
            payload["worlds"][world] = {**result, "command": payload["command"], "seeds": seed_list}
            write_results(name, payload, markdown(payload))  # after each world: a long run keeps what it has
    json_path, md_path = write_results(name, payload, markdown(payload))
    typer.echo(f"Wrote {json_path} and {md_path}")


if __name__ == "__main__":
    typer.run(main)
