"""GRec against the baselines and the incumbents on one dataset under one budget: every model
through the platform's own path (dataset -> model_config -> train_model -> predict), early-stopped
on the validation split (never the test split). Per task and per use case: the test AUC and AP
averaged over seeds, their spread over seeds, a 95% bootstrap interval of that seed average
(Poisson reweightings of the test impressions, shared by every model and seed), and each model's
paired difference to GRec with its interval; training time and rows per second.

Used by `grec benchmark aliexpress` and benchmarks/real_data.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from grec.data.dataset import Dataset
from grec.evaluate import predict, task_masks
from grec.io import atomic_write, write_json
from grec.metrics import weighted_ap, weighted_auc
from grec.model.checkpoint import build_model, model_config
from grec.model.inputs import InputConfig
from grec.train import TrainConfig, train_model

MODELS = {  # name: model_config arguments ("target": what it is fitted to, see TrainConfig.target;
           # "seeds": the model's own seeds instead of the comparison's)
    "GRec task-sentence 8/4": {"arch": "grec"},
    "GRec token 8/4": {"arch": "grec", "routing": "token"},
    "MMoE 4": {"arch": "mmoe"},
    "Shared-bottom": {"arch": "shared_bottom"},
    "Single-task": {"arch": "single_task"},
    "LightGBM per task": {"arch": "lightgbm"},
}
# The reachable ceiling on simulated data: the same inputs fitted to the true probabilities instead
# of the 0/1 labels. The best score E[p | observed features] maximises AUC among scores of what a
# model sees; fitting p (not y) removes the label noise, so these estimate that score from below.
CEILINGS = {
    "Ceiling: GRec on true probabilities": {"arch": "grec", "target": "oracle"},
    "Ceiling: LightGBM on true probabilities": {"arch": "lightgbm", "target": "oracle"},
}
# Which part of the gain the network learns by itself: GRec with only the learned attribute
# interactions (grec.model.interactions), with only the engineered attribute features
# (grec.model.match), with neither (the model before them), and the incumbents without theirs.
ABLATIONS = {
    "GRec, learned interactions only": {"arch": "grec", "attribute_features": False},
    "GRec, engineered features only": {"arch": "grec", "learned_interactions": False},
    "GRec, neither (match features only)": {"arch": "grec", "attribute_features": False, "learned_interactions": False},
    "LightGBM per task without the attribute features": {"arch": "lightgbm", "attribute_features": False},
    "GRec task-sentence 8/4 without match features": {"arch": "grec", "match_features": False},
    "MMoE 4 without match features": {"arch": "mmoe", "match_features": False},
}
CHALLENGER = "GRec task-sentence 8/4"


class TrainedCache:
    """Each trained (model, seed)'s test predictions kept in a folder, so that a comparison too long
    for one sitting stops and goes on: a rerun with the same `key` (the data, the budget, the code)
    trains only what is missing. A folder written under another key is refused, never mixed."""

    def __init__(self, folder: Path, key: dict):
        self.folder = Path(folder)
        key_file = self.folder / "key.json"
        if key_file.exists():
            saved = json.loads(key_file.read_text())
            if saved != key:
                changed = sorted(k for k in {*saved, *key} if saved.get(k) != key.get(k))
                raise ValueError(f"{self.folder} holds predictions of another run (it differs in {', '.join(changed)}); "
                                 "remove that folder or give this run another name")
        else:
            write_json(key_file, key)

    def _path(self, name: str, seed: int) -> Path:
        return self.folder / f"{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}-seed{seed}.npz"

    def get(self, name: str, settings: dict, seed: int) -> tuple[np.ndarray, float, float] | None:
        """(test probabilities, seconds, rows/s) of a model trained earlier under this key, if any."""
        path = self._path(name, seed)
        if not path.exists():
            return None
        with np.load(path) as saved:
            if json.loads(str(saved["settings"])) != settings:
                raise ValueError(f"{path}: trained with settings {str(saved['settings'])}, asked for {json.dumps(settings)}")
            return saved["probs"], float(saved["seconds"]), float(saved["rows_per_second"])

    def put(self, name: str, settings: dict, seed: int, probs: np.ndarray, seconds: float, speed: float) -> None:
        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, probs=probs, seconds=seconds, rows_per_second=speed, settings=json.dumps(settings))
        atomic_write(self._path(name, seed), write)


def _scores(label, probs, weights, metric) -> tuple[float, list[float], np.ndarray]:
    """A metric averaged over seeds: (point value, per seed, (B,) over the bootstrap weightings)."""
    ones = np.ones((1, len(label)))
    per_seed = [float(metric(label, p, ones)[0]) for p in probs]
    boot = np.mean([metric(label, p, weights) for p in probs], axis=0)
    return float(np.mean(per_seed)), per_seed, boot


def compare(data: Dataset, seeds: list[int], budget: TrainConfig, models: dict = MODELS, samples: int = 1000,
            log: Callable[[str], None] = print, challenger: str = CHALLENGER, cache: TrainedCache | None = None,
            means: dict[str, list[str]] | None = None, on_trained: Callable[[str, torch.nn.Module], None] | None = None,
            ) -> dict:
    """Train every model once per seed on `data` and score the test rows (see the module docstring).

    Per task and per use case (pooled over flows): AUC and AP, their seed mean, spread and 95%
    bootstrap interval, and for every other model the paired difference to `challenger` with its
    interval (the same Poisson weightings of the test impressions for every model and seed, so the
    rows' tasks are resampled jointly). "mean" is over the use cases whose test rows hold both
    classes. On simulated data the oracle (the true probability) is a row of its own. With `cache`,
    a (model, seed) it holds is read instead of trained ("resumed" counts them). `means`: more
    means than "mean", each over the groups it names ({"sparse tasks": [task names]}), with
    their intervals and paired differences as "mean" has; `on_trained(name, net)`: every model
    trained here (not those read from the cache), as it is after training."""
    test = data.rows["test"]
    label = test.label.numpy()
    groups = {**task_masks(data, test), **{f"ALL+{u}": test.use_case.numpy() == i
                                           for i, u in enumerate(data.spec.tasks.use_cases)}}
    groups = {g: m for g, m in groups.items() if m.any()}
    use_cases = [g for g in groups if g.startswith("ALL+") and 0 < label[groups[g]].sum() < groups[g].sum()]
    impression = test.impression.numpy()
    n = int(impression.max()) + 1 if len(impression) else 0
    weights = np.random.default_rng(0).poisson(1.0, (samples, n)).astype(np.float32)  # (B, N): one per impression
    positives = {g: int(label[m].sum()) for g, m in groups.items()}
    out = {"rows": {k: len(v) for k, v in data.rows.items()},
           "positives": {g: v for g, v in positives.items() if not g.startswith("ALL+")},
           "pooled_positives": {g: v for g, v in positives.items() if g.startswith("ALL+")}, "mean_over": use_cases,
           "budget": {"epochs": budget.epochs, "batch_size": budget.batch_size, "lr": budget.lr}, "models": {}}
    boots, out["resumed"] = {}, 0
    for name, settings in models.items():
        probs, seconds, speed = [], [], []
        for seed in settings.get("seeds", seeds):  # a model's own seeds where it names them (a ceiling: one)
            trained = cache.get(name, settings, seed) if cache else None
            out["resumed"] += trained is not None
            if trained is None:
                *trained, net = _train_and_predict(data, settings, dataclasses.replace(budget, seed=seed))
                if cache:
                    cache.put(name, settings, seed, *trained)
                if on_trained:
                    on_trained(name, net)
            probs.append(trained[0])
            seconds.append(trained[1])
            speed.append(trained[2])
        out["models"][name] = {"seconds": statistics.mean(seconds), "rows_per_second": statistics.mean(speed),
                               **_summarise(label, probs, groups, use_cases, weights, impression, boots.setdefault(name, {}),
                                            means)}
        log(f"  {name}: " + ", ".join(f"{g} {out['models'][name]['tasks'][g]['auc']:.4f}" for g in use_cases)
            + f" ({statistics.mean(seconds):.0f} s)")
    if test.oracle is not None:
        out["models"]["Oracle (true probability)"] = {
            "seconds": 0.0, "rows_per_second": 0.0,
            **_summarise(label, [test.oracle.numpy()], groups, use_cases, weights, impression,
                         boots.setdefault("Oracle (true probability)", {}), means)}
    if challenger in boots:  # paired: the same weightings for both, so shared noise cancels
        for name, b in boots.items():
            if name != challenger:
                out["models"][name]["vs_challenger"] = {key: _interval(boots[challenger][key] - b[key]) for key in b}
    return out


def _train_and_predict(data: Dataset, settings: dict, budget: TrainConfig) -> tuple[np.ndarray, float, float, torch.nn.Module]:
    """One model of `settings` trained under `budget` (its seed included): test probabilities,
    seconds, rows/s, and the model."""
    torch.manual_seed(budget.seed)
    arch_settings = {k: v for k, v in settings.items() if k not in ("arch", "target", "seeds")}
    net = build_model(model_config(settings["arch"], InputConfig.sizes_from(data.spec), **arch_settings))
    summary = train_model(net, data, dataclasses.replace(budget, progress=False, target=settings.get("target", "label")))
    return predict(net, data, data.rows["test"]), summary["seconds"], summary["rows_per_second"], net


def _interval(diffs: np.ndarray) -> list[float]:
    lo, hi = np.nanquantile(diffs, [0.025, 0.975])
    return [float(lo), float(hi)]


def _summarise(label, probs, groups, use_cases, weights, impression, boots: dict, means: dict | None = None) -> dict:
    """Per group (task or pooled use case) and for the mean over `use_cases` (and each of `means`:
    {name: groups}): AUC and AP over the seeds; the bootstrap draws go to `boots` ({"auc:<group>":
    (B,)...}) for paired differences. weights (B, N) per impression, impression (R,) each row's."""
    tasks = {}
    for g, m in groups.items():
        entry, w = {}, weights[:, impression[m]]  # (B, R_g)
        for key, metric in (("auc", weighted_auc), ("ap", weighted_ap)):
            value, per_seed, boot = _scores(label[m], [p[m] for p in probs], w, metric)
            entry |= {key: value, f"{key}_sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
                      f"{key}_ci": _interval(boot), f"{key}_per_seed": per_seed}
            boots[f"{key}:{g}"] = boot
        tasks[g] = entry
    out = {"tasks": tasks}
    for name, over in {"mean": use_cases, **(means or {})}.items():
        over, entry = [g for g in over if g in tasks], {}
        for key in ("auc", "ap"):
            values = [tasks[g][key] for g in over if np.isfinite(tasks[g][key])]
            draws = [boots[f"{key}:{g}"] for g in over if np.isfinite(tasks[g][key])]
            # an extra mean over sparse groups: a draw that leaves one group without a positive
            # averages the others (nanmean); "mean" is over groups that always have some
            average = np.mean if name == "mean" else np.nanmean
            boots[f"{key}:{name}"] = average(draws, axis=0) if draws else np.array([np.nan])
            entry |= {key: float(np.mean(values)) if values else float("nan"), f"{key}_ci": _interval(boots[f"{key}:{name}"])}
        out[name] = entry | ({"groups": len(over)} if name != "mean" else {})
    return out


def interval_cell(entry: dict, key: str = "auc") -> str:
    """'value ± seed spread [95% interval]' of one metric of a group."""
    sd = f" ± {entry[f'{key}_sd']:.4f}" if entry.get(f"{key}_sd") else ""
    lo, hi = entry[f"{key}_ci"]
    return f"{entry[key]:.4f}{sd} [{lo:.3f}, {hi:.3f}]"


def difference_cell(model: dict, key: str) -> str:
    """The paired 95% interval of (challenger - model) for `key` ("auc:<group>", "ap:mean"...), read."""
    if key not in model.get("vs_challenger", {}):
        return "-"
    lo, hi = model["vs_challenger"][key]
    verdict = "GRec ahead" if lo > 0 else "GRec behind" if hi < 0 else "level"
    return f"[{lo:+.3f}, {hi:+.3f}] {verdict}"


def difference_table(result: dict, groups: list[str], metric: str = "auc") -> list[str]:
    """Markdown lines: a row per model compared with the challenger, a column per group."""
    lines = ["| model | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for name, model in result["models"].items():
        if "vs_challenger" in model:
            lines.append(f"| {name} | " + " | ".join(difference_cell(model, f"{metric}:{g}") for g in groups) + " |")
    return lines


def detail_table(result: dict, published: dict[str, float] | None = None, published_name: str = "") -> list[str]:
    """Markdown lines: a row per model, a column per task (AUC ± sd [interval]), time and speed."""
    tasks = list(result["positives"])
    lines = ["| model | " + " | ".join(tasks) + " | train time | rows/s |", "|---|" + "---:|" * (len(tasks) + 2)]
    for model, r in result["models"].items():
        cells = [interval_cell(r["tasks"][t], "auc") for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {r['seconds']:.0f} s | {r['rows_per_second']:,.0f} |")
    if published:
        lines.append(f"| {published_name} | " + " | ".join(f"{published[t]:.4f}" if t in published else "" for t in tasks) + " | | |")
    return lines


def flow_table(result: dict, flows: list[str], use_cases: list[str], published: dict[str, dict[str, tuple]] | None = None,
               published_note: str = "") -> list[str]:
    """Markdown lines in the published multi-scenario layout: a row per model, a column per flow,
    each cell the use cases' AUCs 'a / b' (three decimals after the point, as published)."""
    def cell(values) -> str:
        return " / ".join("–" if v is None or np.isnan(v) else f"{v:.4f}".lstrip("0") for v in values)

    lines = ["| Model | " + " | ".join(flows) + " |", "|---|" + "---|" * len(flows)]
    for model, r in result["models"].items():
        lines.append(f"| {model} | " + " | ".join(
            cell(r["tasks"].get(f"{f}+{u}", {}).get("auc") for u in use_cases) for f in flows) + " |")
    for model, by_flow in (published or {}).items():
        lines.append(f"| {model}{published_note} | " + " | ".join(
            cell(by_flow[f]) if f in by_flow else "" for f in flows) + " |")
    return lines
