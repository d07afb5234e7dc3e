"""Drift between what the champion learned from and what it sees now, measured with Evidently.

Reference: a sample of the champion's training rows with its own scores, logged to its MLflow run
at training time (`monitoring/reference.parquet`), so monitoring needs nothing but the registry.
Current window: the newest impressions, joined point-in-time through the feature store exactly as
training rows are, scored by the champion; and, where the ranking service ran in the window, its
prediction log (what was actually served).

Like is compared with like. The reference was logged by whatever showed the training weeks'
items; an impression the ranking service placed shows the champion's own pick, so its item columns
and the champion's score of it move with no change in the world (the feedback loop). Those
impressions are left out of the window's comparison (`unranked`; kept where nothing else is left,
and said so). The service's scores are of every candidate it ranked, a population no training row
is: they are compared with the service's own scores of the window before (the first served window
is the next one's reference).

Compared: the monitored input columns of the champion's own FeatureSpec (its context and item
features and the flow; the history length and whether there was a search, where its data has
histories and search) and, per task of its task vocabulary (flow + use case), its score
distribution. Nothing here names a dataset's columns or tasks: they come from the spec (and the
reference's score columns). Evidently picks the test per column (Wasserstein distance for numbers,
Jensen-Shannon for categories above 1,000 rows, threshold 0.1; below that K-S, chi-square or Z
p-values) and says which columns drifted; `drift_policy.yaml` turns those into one decision, and
the same share is the Evidently report's own dataset-drift threshold, so the HTML report's verdict
on the features is the policy's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from grec.data.schema import SchemaError, TaskVocabulary
from grec.io import write_json, write_text
from grec.policy import read_policy

POLICY_FILE = Path(__file__).with_name("drift_policy.yaml")
REFERENCE_ARTIFACT = "monitoring/reference.parquet"
# Monitored columns computed from the rows, each only where the data has the input it summarises.
DERIVED = {"history_length": "numerical", "has_search": "categorical"}
DERIVED_FROM = {"history_length": "histories", "has_search": "search"}
SCORE_PREFIX = "score "


def score_column(task: str) -> str:
    return f"{SCORE_PREFIX}{task}"


def task_names(tasks: TaskVocabulary | Sequence[str]) -> list[str]:
    """The task names (`FLOW+USE_CASE`, flow-major) of a task vocabulary; names pass through."""
    if isinstance(tasks, TaskVocabulary):
        return [tasks.task_name(i) for i in range(tasks.n_tasks)]
    return list(tasks)




@dataclass
class DriftPolicy:
    version: int
    feature_drift_share: float
    drifted_tasks: int
    min_rows_per_task: int
    sample_rows: int
    seed: int
    path: str
    sha256: str

    @classmethod
    def load(cls, path: Path | None = None) -> DriftPolicy:
        path = Path(path or POLICY_FILE)
        known = {"version", "feature_drift_share", "drifted_tasks", "min_rows_per_task", "sample_rows", "seed"}
        raw, sha256 = read_policy(path, known, "drift")
        policy = cls(int(raw["version"]), float(raw.get("feature_drift_share", 0.3)), int(raw.get("drifted_tasks", 1)),
                     int(raw.get("min_rows_per_task", 500)), int(raw.get("sample_rows", 20000)), int(raw.get("seed", 0)),
                     str(path.resolve()), sha256)
        if not 0 < policy.feature_drift_share <= 1:
            raise SchemaError(f"{path}: feature_drift_share must be in (0, 1], got {policy.feature_drift_share}")
        if policy.drifted_tasks < 1 or policy.sample_rows < 1000:
            raise SchemaError(f"{path}: drifted_tasks must be >= 1 and sample_rows >= 1000")
        return policy


# ---------------------------------------------------------------------------------------------
# Rows to compare


def feature_columns(spec) -> dict[str, str]:
    """{column: "numerical" | "categorical"} of the monitored inputs of a FeatureSpec: its context
    and item feature columns and the flow (under the user's name for it), plus the history length where its data has histories
    and whether there was a search where it has search."""
    columns = {c: "categorical" for c in [*spec.context_categorical, *spec.item_categorical,
                                          *(spec.user_name(t) for t in spec.tasks.tokens)]}
    columns |= {c: "numerical" for c in [*spec.context_numerical, *spec.item_numerical]}
    return columns | {c: kind for c, kind in DERIVED.items() if spec.has(DERIVED_FROM[c])}


def drift_rows(model, spec, frame: pd.DataFrame) -> pd.DataFrame:
    """The monitored columns of training-set-layout rows, plus the model's score for every task of
    the spec's vocabulary on the rows of the task's flow (`score AAL+CTR`, ...; NaN on the other
    flows' rows). Score columns come use case by use case (all flows of the first use case, ...)."""
    from grec.lifecycle.pyfunc import score_use_cases

    monitored = feature_columns(spec)
    out = frame.rename(columns={"flow": spec.user_name("flow")})  # the report names the user's columns
    out = out[[c for c in monitored if c not in DERIVED]].reset_index(drop=True).copy()
    if "history_length" in monitored:
        out["history_length"] = frame["viewed_item_ids"].map(len).to_numpy()
    if "has_search" in monitored:
        out["has_search"] = (frame["search_query"].fillna("") != "").astype(np.int64).to_numpy()
    flow = spec.tasks.routes_of(frame)  # each row's route: its flow, or its task tokens joined
    scores = score_use_cases(model, spec, frame[spec.input_columns()].reset_index(drop=True))  # (N, U)
    for u, use_case in enumerate(spec.tasks.use_cases):
        for f in spec.tasks.flows:
            out[score_column(f"{f}+{use_case}")] = np.where(flow == f, scores[:, u], np.nan)
    return out


def sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame.sample(n, random_state=seed).sort_index() if len(frame) > n else frame


def reference_rows(model, spec, source, policy: DriftPolicy | None = None) -> pd.DataFrame:
    """A sample of the training split of `source` (a DataSource) with the model's scores."""
    policy = policy or DriftPolicy.load()
    train = source.training_sample(policy.sample_rows, policy.seed)
    if train.empty:
        raise SchemaError(f"{source.path}: no training rows to take the drift reference from")
    return drift_rows(model, spec, train)


def window_rows(data_dir: Path, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The impressions of `data_dir` stamped in [start, end), with their features as of their
    time from the feature store (the training set's join, under its policy for rows without a
    feature value), and those left out {what: {rows, first, last, example}}."""
    from grec.features.training_set import load_impressions, point_in_time_rows

    impressions, contract = load_impressions(Path(data_dir))
    window = impressions[(impressions["event_timestamp"] >= start) & (impressions["event_timestamp"] < end)]
    if window.empty:
        path = Path(data_dir) / contract.tables["impressions"].file
        raise SchemaError(f"{path}: no impressions between {start} and {end}: nothing to monitor")
    return point_in_time_rows(window.reset_index(drop=True))


def unranked(window: pd.DataFrame, log: pd.DataFrame, tasks: TaskVocabulary, policy: DriftPolicy,
             start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
    """The window's impressions (stamped in [start, end)) the ranking service did not place (its log's
    pages of the window joined with them: grec.monitoring.quality.served_outcomes), and a note saying
    how many were left out; all of them, noted, where fewer than policy.min_rows_per_task would be left."""
    from grec.monitoring.quality import served_outcomes

    shown = served_outcomes(log, window, tasks, start, end) if len(window) else pd.DataFrame()
    if shown.empty:
        return window, []
    ranked = window["impression_id"].isin(set(shown["impression_id"].astype("int64")))
    n = int(ranked.sum())
    if n == 0:
        return window, []
    if len(window) - n < policy.min_rows_per_task:
        return window, [f"all but {len(window) - n:,} of the window's {len(window):,} impressions were placed by the "
                        "ranking service: compared as they are (the champion's own picks, against a reference logged "
                        "by whatever showed the training weeks)"]
    return window[~ranked.to_numpy()].reset_index(drop=True), [
        f"{n:,} of the window's {len(window):,} impressions were placed by the ranking service and are left out: "
        "their items are the champion's own picks, the reference's were shown by whatever showed the training weeks"]


def served_scores(log: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, tasks: TaskVocabulary) -> pd.DataFrame:
    """The prediction log's rows for pages in [start, end) (the time a request named, its
    event_timestamp, else when it was logged) as one score column per task of the model's task
    vocabulary `tasks`; rows of other tasks are left out of every column."""
    if log.empty:
        return pd.DataFrame()
    when = pd.to_datetime(log["logged_at"], utc=True)
    if "event_timestamp" in log:
        when = pd.to_datetime(log["event_timestamp"], utc=True).fillna(when)
    log = log[(when >= start) & (when < end)]
    out = pd.DataFrame(index=log.index)
    task = pd.Series(tasks.routes_of(log), index=log.index).astype(str) + "+" + log["use_case"].astype(str)
    for t in task_names(tasks):
        out[score_column(t)] = np.where(task == t, log["score"], np.nan)
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Comparison and decision


@dataclass
class ColumnDrift:
    column: str
    method: str
    threshold: float
    value: float
    drifted: bool
    rows_reference: int = 0
    rows_current: int = 0
    mean_reference: float | None = None
    mean_current: float | None = None


@dataclass
class DriftResult:
    drifted: bool
    reasons: list[str]
    policy: dict
    window: dict  # start, end, rows, served rows
    reference: dict  # model, version, run_id, rows
    features: list[ColumnDrift]
    tasks: list[ColumnDrift]  # the champion's scores on the window's impressions
    served: list[ColumnDrift] = field(default_factory=list)  # the prediction log's scores
    not_compared: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out of a comparison, and why

    @property
    def feature_share(self) -> float:
        return sum(c.drifted for c in self.features) / max(len(self.features), 1)

    def to_dict(self) -> dict:
        return {"decision": "drift" if self.drifted else "no drift", "feature_share": self.feature_share, **asdict(self)}

    def markdown(self) -> str:
        w, r = self.window, self.reference
        lines = [f"# Drift report: {w['start']} to {w['end']}: **{'DRIFT' if self.drifted else 'NO DRIFT'}**", "",
                 f"- Reference: {r['model']} v{r['version']} training rows ({r['rows']:,} sampled), run `{r['run_id']}`",
                 f"- Window: {w['rows']:,} impressions sampled, {w['served_rows']:,} served rows in the prediction log",
                 f"- Policy v{self.policy['version']}: drift when at least {self.policy['feature_drift_share']:.0%} of "
                 f"the features or {self.policy['drifted_tasks']} task(s) drift", ""]
        if self.reasons:
            lines += ["Why:", *(f"- {x}" for x in self.reasons), ""]
        if self.notes:
            lines += ["Compared like with like:", *(f"- {x}" for x in self.notes), ""]
        if w.get("left_out"):
            from grec.features.training_set import left_out_lines

            lines += ["Left out of the window (no feature value within a TTL):", *(f"- {x}" for x in left_out_lines(w["left_out"])), ""]
        lines += [f"Features drifted: {sum(c.drifted for c in self.features)} of {len(self.features)} "
                  f"({self.feature_share:.0%})", "", "| feature | method | value | threshold | drifted |", "|---|---|---:|---:|---|"]
        lines += [f"| {c.column} | {c.method} | {c.value:.3f} | {c.threshold} | {'yes' if c.drifted else ''} |" for c in self.features]
        for title, rows in (("Champion scores per task, window impressions", self.tasks),
                            ("Served scores per task, against the window before", self.served)):
            if not rows:
                continue
            lines += ["", f"{title}:", "", "| task | rows ref | rows now | mean ref | mean now | method | value | drifted |",
                      "|---|---:|---:|---:|---:|---|---:|---|"]
            lines += [f"| {c.column.removeprefix('score ')} | {c.rows_reference:,} | {c.rows_current:,} | {c.mean_reference:.4f} | "
                      f"{c.mean_current:.4f} | {c.method} | {c.value:.3f} | {'yes' if c.drifted else ''} |" for c in rows]
        if self.not_compared:
            lines += ["", "Not compared (too few rows): " + ", ".join(self.not_compared)]
        return "\n".join(lines) + "\n"

    def save(self, folder: Path, stem: str) -> tuple[Path, Path]:
        folder = Path(folder)
        json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
        write_json(json_path, self.to_dict())
        write_text(md_path, self.markdown())
        return json_path, md_path


def _evidently(reference: pd.DataFrame, current: pd.DataFrame, columns: dict[str, str], tasks: list[str],
               drift_share: float):
    """Run Evidently's drift tests: the snapshot and {column: ColumnDrift}.

    The features go through DataDriftPreset with `drift_share` as its dataset-drift threshold (its
    DriftedColumnsCount and the report's "Dataset Drift is detected" line: share of drifted columns
    >= drift_share); the scores through one ValueDrift each. A column counts as drifted when
    Evidently's own test for it fails (a distance at or above its threshold, a p-value below it)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numerical = [c for c, k in columns.items() if k == "numerical"] + [score_column(t) for t in tasks]
    categorical = [c for c, k in columns.items() if k == "categorical"]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    metrics = [DataDriftPreset(columns=list(columns), drift_share=drift_share)] if columns else []
    metrics += [ValueDrift(column=score_column(t)) for t in tasks]
    keep = [*columns, *(score_column(t) for t in tasks)]
    snapshot = Report(metrics, include_tests=True).run(Dataset.from_pandas(current[keep], data_definition=definition),
                                                       Dataset.from_pandas(reference[keep], data_definition=definition))
    report = snapshot.dict()
    failed = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in report["tests"] if t.get("id") == "drift"}
    found = {}
    for m in report["metrics"]:
        config = m["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            found[config["column"]] = ColumnDrift(config["column"], config["method"], float(config["threshold"]),
                                                  float(m["value"]), bool(failed[m["id"]]))
    return snapshot, found


def dataset_drift(snapshot) -> dict | None:
    """The snapshot's dataset-level drift result on the features (DriftedColumnsCount): {"count",
    "share", "drift_share", "drifted"}; None for a report without features (the served scores')."""
    for m in snapshot.dict()["metrics"]:
        config = m["config"]
        if config.get("type", "").endswith(":DriftedColumnsCount"):
            share, threshold = float(m["value"]["share"]), float(config["drift_share"])
            return {"count": int(m["value"]["count"]), "share": share, "drift_share": threshold, "drifted": share >= threshold}
    return None


def _task_rows(reference: pd.DataFrame, current: pd.DataFrame, policy: DriftPolicy,
               tasks: Sequence[str]) -> tuple[list[str], list[str]]:
    """(tasks both sides can compare, tasks with too few rows), of `tasks` in their order."""
    ok, short = [], []
    for t in tasks:
        c = score_column(t)
        n_ref = int(reference[c].notna().sum()) if c in reference else 0
        n_cur = int(current[c].notna().sum()) if c in current else 0
        (ok if min(n_ref, n_cur) >= policy.min_rows_per_task else short).append(t)
    return ok, short


def _with_counts(d: ColumnDrift, reference: pd.DataFrame, current: pd.DataFrame) -> ColumnDrift:
    ref, cur = reference[d.column].dropna(), current[d.column].dropna()
    d.rows_reference, d.rows_current = len(ref), len(cur)
    d.mean_reference, d.mean_current = float(ref.mean()), float(cur.mean())
    return d


def compare(reference: pd.DataFrame, current: pd.DataFrame, columns: dict[str, str],
            tasks: TaskVocabulary | Sequence[str], policy: DriftPolicy, window: dict, reference_info: dict,
            served: pd.DataFrame | None = None, served_before: pd.DataFrame | None = None,
            notes: Sequence[str] = ()):
    """Evidently reports of `current` against `reference` and the policy's decision: (DriftResult,
    [snapshots]: the window's report, then the served one when the log had rows). `tasks`: the
    tasks whose scores are compared, in report order (the model's task vocabulary, or names).
    `served`: the service's scores in the window (served_scores), compared with `served_before`,
    its scores in the window before; `notes`: what was left out of `current` (unranked)."""
    tasks = task_names(tasks)
    current = sample(current, policy.sample_rows, policy.seed)
    reference = sample(reference, policy.sample_rows, policy.seed)
    compared, short = _task_rows(reference, current, policy, tasks)
    snapshot, found = _evidently(reference, current, columns, compared, policy.feature_drift_share)
    features = [found[c] for c in columns]
    task_drift = [_with_counts(found[score_column(t)], reference, current) for t in compared]
    snapshots, served_drift, notes = [snapshot], [], list(notes)
    if served is not None and not served.empty:
        before = served_before if served_before is not None else pd.DataFrame()
        served = sample(served, policy.sample_rows, policy.seed)
        served_tasks, _ = _task_rows(before, served, policy, tasks)
        if served_tasks:
            before = sample(before, policy.sample_rows, policy.seed)
            served_snapshot, served_found = _evidently(before, served, {}, served_tasks, policy.feature_drift_share)
            snapshots.append(served_snapshot)
            served_drift = [_with_counts(served_found[score_column(t)], before, served) for t in served_tasks]
        else:
            notes.append("the service's scores are not compared: it served too few rows per task in the window before "
                         "(this window's are the next one's reference)")
    result = DriftResult(False, [], asdict(policy), {**window, "rows": len(current)}, {**reference_info, "rows": len(reference)},
                         features, task_drift, served_drift, [t for t in short], notes)
    if result.feature_share >= policy.feature_drift_share:
        names = ", ".join(c.column for c in features if c.drifted)
        result.reasons.append(f"{result.feature_share:.0%} of the features drifted (policy: {policy.feature_drift_share:.0%}): {names}")
    for label, rows in (("champion scores", task_drift), ("served scores", served_drift)):
        drifted = [c.column.removeprefix("score ") for c in rows if c.drifted]
        if len(drifted) >= policy.drifted_tasks:
            result.reasons.append(f"{label} drifted on {len(drifted)} task(s): {', '.join(drifted)}")
    result.drifted = bool(result.reasons)
    return result, snapshots


def save_reference(model, spec, source, folder: Path | None = None) -> Path:
    """Write the reference rows to a parquet file (for logging with the run); returns its path."""
    folder = Path(folder or tempfile.mkdtemp(prefix="grec-reference-"))
    path = folder / Path(REFERENCE_ARTIFACT).name
    reference_rows(model, spec, source).to_parquet(path, index=False)
    return path
