"""One function per pipeline step: what each Kubeflow component in components/ calls.

Components only move files in and out of their artifacts; everything they decide is here, tested
without kfp. Steps hand each other folders (tables, training sets, model folders) and small JSON
documents (gate reports, drift results), so a step can be rerun alone from its inputs.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd

from grec.errors import UserError


class ValidationFailed(UserError):
    """The window's tables broke the data contract: the pipeline stops before training."""


def _utc(ts: str) -> pd.Timestamp | None:
    """An ISO time as UTC; '' (a pipeline parameter left empty) is no bound: None."""
    if not ts:
        return None
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


# ---------------------------------------------------------------------------------------------
# validate


def snapshot_window(data_dir: Path, start: str, end: str, out_dir: Path, now: pd.Timestamp | None = None) -> dict:
    """Copy the raw tables as of `end` into out_dir (with the folder's contract): impressions stamped
    in [start, end), customer and item snapshots made before `end` ('' for either: no bound; a
    source that brings its own split, or has no time, is taken whole). Later steps read this
    snapshot, never the live folder, so what was validated is what is trained on.

    Returns {"rows": rows per table, "left_out": {what: {"rows", "first", "last"}}}: every row the
    window leaves out, said, not dropped in silence. Rows stamped after `now` (default: the clock)
    are among them only to be refused by validate_window (a clock error or a shifted export)."""
    from grec.data.contract import read_contract, write_tables
    from grec.data.tables import load_tables

    lo, hi = _utc(start), _utc(end)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    contract = read_contract(data_dir)
    tables = load_tables(Path(data_dir), contract)
    left_out: dict[str, dict] = {}

    def leave_out(what: str, stamps: pd.Series, mask: pd.Series) -> None:
        if mask.any():
            left_out[what] = {"rows": int(mask.sum()), "first": str(stamps[mask].min()), "last": str(stamps[mask].max())}

    imp = tables["impressions"]
    stamps = imp["event_timestamp"]
    leave_out("impressions stamped in the future", stamps, stamps > now)
    keep = pd.Series(True, index=imp.index)
    if lo is not None:
        leave_out("impressions before the window", stamps, stamps < lo)
        keep &= stamps >= lo
    if hi is not None:
        leave_out("impressions from the window's end on", stamps, (stamps >= hi) & (stamps <= now))
        keep &= stamps < hi
        for name in ("customers", "items"):
            updated = tables[name]["updated_at"]
            leave_out(f"{name} snapshots from the window's end on", updated, updated >= hi)
            tables[name] = tables[name][updated < hi].reset_index(drop=True)
    tables["impressions"] = imp[keep].reset_index(drop=True)
    write_tables(tables, out_dir, contract)
    return {"rows": {name: len(frame) for name, frame in tables.items()}, "left_out": left_out}


def left_out_lines(left_out: dict) -> list[str]:
    return [f"{what}: {v['rows']:,} rows ({v['first']} to {v['last']})" for what, v in left_out.items()]


def validate_window(data_dir: Path, start: str, end: str, tables_dir: Path, report_dir: Path, min_task_positives: int = 3):
    """Snapshot the window into tables_dir and check it with Great Expectations (report and Data
    Docs in report_dir). Raises ValidationFailed, naming every failed expectation, if it breaks the
    contract or the live folder holds rows stamped in the future; returns the ValidationReport
    otherwise, with what the window left out in `left_out`."""
    from grec.validation.run import validate
    from grec.validation.suites import ValidationPolicy

    snapshot = snapshot_window(data_dir, start, end, tables_dir)
    future = snapshot["left_out"].get("impressions stamped in the future")
    if future:
        raise ValidationFailed(f"{data_dir}: {future['rows']:,} impressions are stamped in the future ({future['first']} "
                               f"to {future['last']}): a clock error or a shifted export; stopping before training")
    policy = ValidationPolicy(start=_utc(start), end=_utc(end), min_positives_per_task=min_task_positives)
    report = validate(tables_dir, policy, report_dir)
    report.left_out = snapshot["left_out"]
    if not report.success:
        lines = "\n".join(f"- {f.line()}" for f in report.failures)
        raise ValidationFailed(f"{data_dir}: the window {start} to {end} fails validation; stopping before training:\n"
                               f"{lines}\nReport: {report.json}")
    return report


# ---------------------------------------------------------------------------------------------
# features


def build_features(tables_dir: Path, end: str, out_dir: Path, max_lost_share: float | None = None):
    """Feast: register the repository with sources built from the tables, load the online store up
    to `end`, and write the point-in-time training set to out_dir (impressions without a feature
    value within a TTL left out up to `max_lost_share` of them, default the builder's policy, and
    refused past it). Returns its manifest."""
    from grec.features.store import apply, materialize
    from grec.features.training_set import build_training_set

    apply(Path(tables_dir))
    materialize(_utc(end) or pd.Timestamp.now(tz="UTC"))
    policy = {} if max_lost_share is None else {"max_lost_share": max_lost_share}
    return build_training_set(Path(tables_dir), Path(out_dir), **policy)


# ---------------------------------------------------------------------------------------------
# train


def train(training_set: Path, out_dir: Path, arch: str = "grec", epochs: int = 8, seed: int = 0,
          tags: dict[str, str] | None = None, launch=None, backend=None):
    """Train `arch` on the training set, log the run to MLflow (not registered: the gate comes
    first) and save the model folder to out_dir. Returns grec.lifecycle.tracking.TrainedRun.

    launch (grec.pipeline.launch.Launch): in this process (default), under torchrun here, or as a
    Kubeflow TrainJob (`backend`: the TrainerClient's KubernetesBackendConfig, default in-cluster);
    the LightGBM incumbents always train here."""
    from grec.pipeline import launch as launching

    launch = launch or launching.Launch()
    if launch.on == "process" or arch == "lightgbm":
        return _train_here(Path(training_set), Path(out_dir), arch, epochs, seed, tags)

    def args_for(staged_set: Path, model_dir: Path) -> list[str]:
        return launching.train_arguments(staged_set, model_dir, arch, epochs, seed, tags)

    if launch.on == "torchrun":
        launching.run_torchrun(args_for(training_set, out_dir), launch.procs_per_node)
        return launching.read_trained(out_dir)
    from grec.pipeline import trainjob

    return trainjob.train(Path(training_set), Path(out_dir), args_for, arch, launch, backend)


def _train_here(training_set: Path, out_dir: Path, arch: str, epochs: int, seed: int, tags: dict[str, str] | None):
    from grec.features.training_set import open_source
    from grec.lifecycle.tracking import train_and_log
    from grec.model.checkpoint import model_config
    from grec.model.inputs import InputConfig
    from grec.train import TrainConfig

    began = time.perf_counter()
    source = open_source(training_set)
    data = source.dataset()
    opened = time.perf_counter() - began
    config = model_config(arch, InputConfig.sizes_from(data.spec))
    run_name = "grec-task_sentence" if arch == "grec" else arch
    run = train_and_log(config, source, data, TrainConfig(epochs=epochs, seed=seed), out_dir, run_name,
                        register_as=None, tags=tags)
    run.summary["phases"] = {"open and encode": opened, **run.summary["phases"]}
    return run


def time_spent(summary: dict) -> str:
    """Where a training's wall time went, in words: epochs run (and the best), then each phase."""
    epochs = f"{len(summary['history'])} epochs (best {summary['best_epoch']}): " if isinstance(summary["history"], list) else ""
    return epochs + ", ".join(f"{k} {v:.0f} s" for k, v in summary.get("phases", {}).items())


# ---------------------------------------------------------------------------------------------
# evaluate and gate


def compare(training_set: Path, models: dict[str, Path], challenger: str = "GRec", samples: int = 1000,
            min_positives: int = 10) -> pd.DataFrame:
    """Per-task test AUC of each model folder on the training set's held-out rows (its test week,
    or the rows its contract's split column says are test), side by side: one row per task of the
    dataset's own vocabulary, one column per model (plus the oracle where the data has one).

    attrs: "held_out" (which rows, in words); "intervals" {model: {task: [lo, hi]}}, the paired 95%
    bootstrap interval of (challenger - model) per task and for the mean ("mean") over the tasks
    with `min_positives` positives and negatives ("mean_over"; a task with a handful of positives
    ranks nothing), the same Poisson reweightings of the held-out impressions for every model;
    "costs" {model: what
    serving it takes}: models to keep (one network, or one booster per task), FLOPs or tree-node
    comparisons per row, and the seconds to score one request's 50 candidates."""
    import numpy as np

    from grec.evaluate import evaluate_predictions, predict
    from grec.features.training_set import open_source
    from grec.lifecycle.gate import paired_bootstrap
    from grec.model.checkpoint import load_model

    source = open_source(Path(training_set), splits=("test",))
    columns, probs, costs = {}, {}, {}
    for name, folder in models.items():
        net, spec = load_model(folder)
        data = source.dataset(spec=spec)
        rows = data.rows["test"]
        probs[name] = predict(net, data, rows)
        report = evaluate_predictions(data, rows, probs[name])
        columns[name] = {task: m["auc"] for task, m in report["by_task"].items()}
        columns["positives"] = {task: m["positives"] for task, m in report["by_task"].items()}
        if all("oracle_auc" in m for m in report["by_task"].values()):
            columns["oracle"] = {task: m["oracle_auc"] for task, m in report["by_task"].items()}
        costs[name] = serving_cost(net, data, rows)
    order = [*models, *(c for c in ("oracle", "positives") if c in columns)]
    table = pd.DataFrame(columns)[order].rename_axis("task")
    table.attrs["held_out"] = source.test_rows()
    table.attrs["costs"] = costs
    if challenger in probs and len(probs) > 1:
        from grec.evaluate import task_masks

        # every model's rows are the same held-out rows in the same order (one training set)
        masks = {t: m for t, m in task_masks(data, rows).items() if t in table.index}
        label, impression = rows.label.numpy(), rows.impression.numpy()
        judged = [t for t, m in masks.items() if min(label[m].sum(), (1 - label[m]).sum()) >= min_positives]
        table.attrs["mean_over"] = judged
        intervals = {}
        for name in (n for n in probs if n != challenger):
            diffs = paired_bootstrap({t: masks[t] for t in judged}, label, impression, probs[challenger], probs[name],
                                     samples, seed=0)
            draws = {**diffs, "mean": np.mean([diffs[t] for t in judged], axis=0) if judged else np.array([np.nan])}
            intervals[name] = {t: [float(q) for q in np.nanquantile(d, [0.025, 0.975])] for t, d in draws.items()}
        table.attrs["intervals"] = intervals
    return table


def serving_cost(net, data, rows, candidates: int = 50, repeats: int = 20) -> dict:
    """What serving `net` takes: separately trained models to keep, work per row (FLOPs, or node
    comparisons for trees), and the median seconds to score one request of `candidates` rows of
    one task through the path the ranking service uses (a task-routed GRec's dense sub-network),
    at one intra-op thread as each serving worker runs (one worker per core): more threads on a
    core shared with a training step or a neighbour made a 2 ms request read 200 ms."""
    import statistics
    import time

    import torch

    from grec.evaluate import flops_per_example
    from grec.serving.subnet import TASK_ROUTINGS, export_subnetworks

    work = flops_per_example(net, data, "test")
    n_models = len(net.boosters) if hasattr(net, "boosters") else len(net.members) if hasattr(net, "members") else 1
    order = torch.argsort(rows.impression, stable=True)[:candidates]
    batch = data.batch(rows.take(order))
    batch.use_case[:] = 0  # one task: the first use case of the first row's flow
    batch.features.flow[:] = batch.features.flow[0]
    serving = net
    if getattr(net.config, "routing", None) in TASK_ROUTINGS:
        serving = export_subnetworks(net)[int(batch.task(net.config.n_use_cases)[0])]
    score, seconds = getattr(serving, "score_request", serving), []  # single-task members: their forward
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for _ in range(repeats + 1):  # the first call warms up
                start = time.perf_counter()
                score(batch)
                seconds.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return {"models": n_models, "flops_per_row": work["total"], "comparisons_per_row": work.get("comparisons"),
            "request_seconds": statistics.median(seconds[1:]), "candidates": len(batch)}


def comparison_markdown(table: pd.DataFrame, challenger: str, baselines: list[str] | str) -> str:
    """The comparison as markdown: per task the AUCs, and (challenger - each baseline) with its
    paired 95% interval where `table.attrs` has them; then what serving each model takes."""
    baselines = [baselines] if isinstance(baselines, str) else list(baselines)
    intervals, costs = table.attrs.get("intervals", {}), table.attrs.get("costs", {})
    models = [c for c in table.columns if c != "positives"]
    lines = [f"# {challenger} against {', '.join(baselines)}, test AUC per task", "",
             f"Held out: {table.attrs.get('held_out', 'the test rows')}.", ""]
    judged = table.attrs.get("mean_over", list(table.index))
    lines += [f"Means over the {len(judged)} of {len(table)} tasks with enough positives to rank"
              + (f": {', '.join(judged) or 'none'}." if len(judged) < len(table) else " (all)."), ""]
    for b in baselines:
        diff = (table[challenger] - table[b])[judged]
        verdict = ""
        if b in intervals:
            lo, hi = intervals[b]["mean"]
            verdict = (f" (95% interval [{lo:+.4f}, {hi:+.4f}]: "
                       + ("ahead beyond the noise" if lo > 0 else "behind beyond the noise" if hi < 0 else "inside the noise") + ")")
        lines.append(f"- against {b}: ahead on {int((diff > 0).sum())} of {len(diff)} tasks; "
                     f"mean difference {diff.mean():+.4f}{verdict}.")
    lines += ["", "| task | positives | " + " | ".join(models) + " | "
              + " | ".join(f"{challenger} - {b}" for b in baselines) + " |",
              "|---|---:|" + "---:|" * len(models) + "---:|" * len(baselines)]
    for task, row in table.iterrows():
        values = " | ".join("-" if pd.isna(row[c]) else f"{row[c]:.4f}" for c in models)
        diffs = []
        for b in baselines:
            d = row[challenger] - row[b]
            ci = intervals.get(b, {}).get(task)
            diffs.append("-" if pd.isna(d) else f"{d:+.4f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""))
        lines.append(f"| {task} | {int(row['positives']):,} | {values} | {' | '.join(diffs)} |")
    if costs:
        lines += ["", "What serving each takes (one request: 50 candidates of one task, scored in process on one CPU "
                  "thread as a serving worker scores it, median of 20, uncompiled: the service compiles each task's "
                  "network, about 2.5x faster; HTTP and the feature read come on top, see the serving benchmark):", "",
                  "| model | models to keep | work per row | request latency |", "|---|---:|---:|---:|"]
        for name, c in costs.items():
            work = (f"{c['comparisons_per_row']:,.0f} node comparisons" if c.get("comparisons_per_row") is not None
                    else f"{c['flops_per_row'] / 1e6:.2f} MFLOPs")
            lines.append(f"| {name} | {c['models']} | {work} | {c['request_seconds'] * 1e3:.2f} ms |")
    return "\n".join(lines) + "\n"


def gate(training_set: Path, model_dir: Path, run_id: str, model_name: str = "grec", policy: Path | None = None):
    """Judge the model folder against the registry's champion on the training set's test week
    (grec.lifecycle.gate). Returns the GateReport; nothing in the registry changes."""
    from grec.features.training_set import open_source
    from grec.lifecycle.gate import GatePolicy
    from grec.lifecycle.registry import Registry
    from grec.model.checkpoint import load_model

    source = open_source(Path(training_set), splits=("test",))
    net, spec = load_model(model_dir)
    return Registry(model_name).gate(net, spec, source, GatePolicy.load(policy),
                                     {"name": model_name, "version": None, "run_id": run_id})


# ---------------------------------------------------------------------------------------------
# register, promote, package


def register(model_uri: str, report: dict, model_name: str = "grec", tags: dict[str, str] | None = None,
             decided_by: str = "pipeline") -> str:
    """Register the logged model as the next version (alias challenger), with the gate's decision
    recorded on it whatever it was. Returns the version."""
    from grec.lifecycle.gate import GateReport
    from grec.lifecycle.registry import Registry

    registry = Registry(model_name)
    version = registry.register(model_uri, tags)
    registry.record_gate(version, GateReport.from_dict(report), decided_by)
    return version


def promote(version: str, report: dict, model_name: str = "grec", decided_by: str = "pipeline"):
    """Make `version` the champion on the strength of its (passed) gate report. Returns Promotion."""
    from grec.lifecycle.gate import GateReport
    from grec.lifecycle.registry import Registry

    return Registry(model_name).promote_judged(version, GateReport.from_dict(report), decided_by)


def package(out_path: Path, model_name: str = "grec", alias: str = "champion") -> str:
    """Build the ranking service's Bento around `model_name@alias` and export it to out_path (a
    .bento archive a cluster can import). Returns the Bento tag."""
    from grec import settings
    from grec.serving.bento import build, import_champion

    settings.use_bentoml_home()
    import bentoml

    model = import_champion(model_name, alias)
    tag = build(str(model.tag))
    tag_run(model.info.metadata["run_id"], {"grec.bento": tag})
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    exported = bentoml.export_bento(tag, str(out_path))
    if Path(exported) != Path(out_path):  # bentoml appends ".bento" to a path without it
        shutil.move(exported, out_path)
    return tag


def tag_run(run_id: str, tags: dict[str, str]) -> None:
    """Add tags to an MLflow run (a later step's outputs, so the run leads to all of them)."""
    from mlflow import MlflowClient

    from grec.lifecycle.store import configure

    uri = configure()
    client = MlflowClient(uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value))


# ---------------------------------------------------------------------------------------------
# monitor


def monitor(data_dir: Path, start: str, end: str, out_dir: Path, model_name: str = "grec", alias: str = "champion",
            policy: Path | None = None):
    """Compare the window [start, end) of `data_dir` (and the prediction log's rows logged in it)
    with the reference the `alias` version logged at training time; write the drift report (JSON,
    markdown, Evidently HTML) to out_dir and record the decision on the version. Returns
    (DriftResult, {"json", "markdown", "html", "served_html"?: paths})."""
    import mlflow

    from grec import settings
    from grec.features.store import apply
    from grec.lifecycle.registry import Registry, RegistryError
    from grec.monitoring.drift import (REFERENCE_ARTIFACT, DriftPolicy, compare, drift_rows, feature_columns,
                                       served_scores, unranked, window_rows)
    from grec.serving.prediction_log import read_log

    drift_policy = DriftPolicy.load(policy)
    registry = Registry(model_name)
    version = registry.aliases().get(alias)
    if version is None:
        raise RegistryError(f"model '{model_name}' has no '{alias}' alias to monitor; run the training pipeline first")
    run_id = registry.version(version).run_id
    reference = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT,
                                                                   tracking_uri=registry.tracking_uri))
    net, spec = registry.load(version)
    apply(Path(data_dir))  # the window's customers, items and activity into the feature sources
    lo, hi = _utc(start), _utc(end)
    window, left_out = window_rows(Path(data_dir), lo, hi)
    log = read_log(settings.predictions_dir())
    window, notes = unranked(window, log, spec.tasks, drift_policy, lo, hi)
    current = drift_rows(net, spec, window)
    served = served_scores(log, lo, hi, spec.tasks)
    before = served_scores(log, lo - (hi - lo), lo, spec.tasks)
    result, snapshots = compare(reference, current, feature_columns(spec), spec.tasks, drift_policy,
                                {"start": lo.isoformat(), "end": hi.isoformat(), "served_rows": len(served),
                                 "left_out": left_out},
                                {"model": model_name, "version": version, "run_id": run_id}, served, before, notes)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = result.save(out_dir, "drift")
    paths = {"json": json_path, "markdown": md_path, "html": out_dir / "drift.html"}
    snapshots[0].save_html(str(paths["html"]))
    if len(snapshots) > 1:
        paths["served_html"] = out_dir / "drift-served.html"
        snapshots[1].save_html(str(paths["served_html"]))
    registry.record_drift(version, result, json_path)
    return result, paths


def quality(data_dir: Path, start: str, end: str, out_dir: Path, model_name: str = "grec", alias: str = "champion",
            as_of: str = "", policy: Path | None = None):
    """The `alias` version's ranking quality per task on the window [start, end) of `data_dir` whose
    labels have arrived by `as_of` (default now; grec.monitoring.quality), on its impressions and on
    the rows the ranking service served (the prediction log joined with them), beside the AUC its
    gate saw; written to out_dir (quality.json, .md, Evidently's classification report quality.html,
    and quality.png: AUC per task over the windows monitored so far), kept on the version (metrics,
    tags; a fall requests retraining). Returns (QualityResult, paths)."""
    from datetime import datetime, timezone

    from grec import settings
    from grec.features.store import apply
    from grec.io import write_json, write_text
    from grec.lifecycle.registry import Registry, RegistryError
    from grec.lifecycle.pyfunc import score_use_cases
    from grec.monitoring import quality as q
    from grec.monitoring.drift import window_rows
    from grec.serving.prediction_log import read_log

    quality_policy = q.QualityPolicy.load(policy)
    registry = Registry(model_name)
    version = registry.aliases().get(alias)
    if version is None:
        raise RegistryError(f"model '{model_name}' has no '{alias}' alias to monitor; run the training pipeline first")
    net, spec = registry.load(version)
    apply(Path(data_dir))
    lo, hi = _utc(start), _utc(end)
    when = _utc(as_of) or pd.Timestamp(datetime.now(timezone.utc))
    window, _ = window_rows(Path(data_dir), lo, hi)
    scores = score_use_cases(net, spec, window[spec.input_columns()].reset_index(drop=True))
    route = spec.tasks.routes_of(window)
    served = q.served_outcomes(read_log(settings.predictions_dir()), window, spec.tasks, lo, hi)
    rows = q.quality(window.reset_index(drop=True), scores, spec.tasks, route, when, quality_policy,
                     registry.gate_aucs(version), served)
    window_info = {"start": lo.isoformat(), "end": hi.isoformat(), "impressions": len(window), "served_rows": len(served)}
    result = q.decide(rows, quality_policy, when, window_info,
                      {"model": model_name, "version": version, "run_id": registry.version(version).run_id})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "quality.json", "markdown": out_dir / "quality.md", "html": out_dir / "quality.html"}
    write_json(paths["json"], result.to_dict())
    snapshot = q.classification_report(window.reset_index(drop=True), scores, spec.tasks, route, rows)
    if snapshot is not None:
        snapshot.save_html(str(paths["html"]))
    else:
        paths["html"].write_text("<html><body><p>No task had labelled rows enough to judge in this window.</p></body></html>")
    artifacts = registry.record_quality(version, result, [paths["json"], paths["html"]], hi.to_pydatetime())
    keys = [f"quality/{r.task.replace('+', '/')}/auc" for r in rows]
    history = registry.metric_history(version, keys)  # this window's figures included
    png = q.history_plot({r.task: history[k] for r, k in zip(rows, keys)}, out_dir / "quality.png",
                         f"{model_name} v{version}: window AUC per task")
    write_text(paths["markdown"], result.markdown() + (f"\n![AUC per task, window by window]({png.name})\n" if png else ""))
    for path in [paths["markdown"], *([png] if png else [])]:
        registry.client.log_artifact(result.model["run_id"], str(path), artifacts)
    return result, paths | ({"png": png} if png else {})


def validation_markdown(report) -> str:
    """A validation report as a short markdown table (the pipeline's report artifact)."""
    lines = ["# Data validation (Great Expectations)", "", "| table | rows | expectations | result |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {t['rows']:,} | {t['expectations']} | {'ok' if t['success'] else 'FAILED'} |"
              for name, t in report.tables.items()]
    if report.failures:
        lines += ["", *(f"- {f.line()}" for f in report.failures)]
    if getattr(report, "left_out", None):
        lines += ["", "Left out of the window (not validated, not trained on):", "",
                  *(f"- {line}" for line in left_out_lines(report.left_out))]
    if report.warnings:
        lines += ["", *(f"- warning: {w}" for w in report.warnings)]
    return "\n".join(lines) + "\n"


def headline_metrics(report: dict) -> dict[str, float]:
    """Test-week AUC, the mean of the use cases' (each pooled over flows, as the registry's test
    AUC), and per task, of a grec.evaluate report, NaN-free, for kfp Metrics."""
    import math

    out = {"test_auc.mean_of_use_cases": report["mean"]["auc"]}
    out |= {f"test_auc.{task}": m["auc"] for task, m in report["by_task"].items()}
    return {k: float(v) for k, v in out.items() if not math.isnan(v)}
