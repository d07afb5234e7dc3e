"""The champion's quality on a window whose outcomes have arrived, per task, beside what the gate saw.

Drift says the inputs moved; quality says whether the champion still ranks well. A task's label is
known only some time after the impression (a click within the hour, a purchase within days): the
policy's `label_delay` per use case. Monitoring at `as_of`, a row is judged for a use case only if
it is older than that use case's delay; younger rows get drift only (they are counted, never read as
negatives).

Per task (route + use case) on the window's impressions: rows, positives, AUC and AP with 95%
bootstrap intervals, calibration (the mean score, expected, against the observed rate), and the
AUC the gate saw on its test week. On the served rows (the prediction log joined with the
impressions, grec.monitoring.outcomes): the same, on what the service actually ranked and the
customers saw. A task's quality has fallen when its window AUC's upper bound lies below the gate's
AUC minus `auc_drop` (beyond the noise of both weeks); `fallen_tasks` such tasks request retraining.

Nothing names a dataset: tasks, labels and populations come from the model's task vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from grec.data.schema import SchemaError, TaskVocabulary
from grec.metrics import weighted_ap, weighted_auc
from grec.policy import read_policy

POLICY_FILE = Path(__file__).with_name("quality_policy.yaml")


@dataclass(frozen=True)
class QualityPolicy:
    version: int
    label_delay: dict[str, pd.Timedelta]  # use case -> how long its label takes to arrive
    default_delay: pd.Timedelta  # use cases the policy does not name
    min_positives: int  # a task is judged with at least this many positives (and negatives)
    auc_drop: float
    fallen_tasks: int
    bootstrap: int
    seed: int
    path: str = ""
    sha256: str = ""

    @classmethod
    def load(cls, path: Path | None = None) -> QualityPolicy:
        path = Path(path or POLICY_FILE)
        known = {"version", "label_delay", "default_delay", "min_positives", "auc_drop", "fallen_tasks",
                 "bootstrap", "seed"}
        raw, sha256 = read_policy(path, known, "quality")
        try:
            delays = {str(k): pd.Timedelta(v) for k, v in (raw.get("label_delay") or {}).items()}
            default = pd.Timedelta(raw.get("default_delay", "7d"))
        except ValueError as e:
            raise SchemaError(f"{path}: label_delay: {e} (write a duration such as 1h, 2d, 7d)") from None
        policy = cls(int(raw["version"]), delays, default, int(raw.get("min_positives", 20)),
                     float(raw.get("auc_drop", 0.02)), int(raw.get("fallen_tasks", 1)), int(raw.get("bootstrap", 500)),
                     int(raw.get("seed", 0)), str(path.resolve()), sha256)
        if any(d < pd.Timedelta(0) for d in [*delays.values(), default]):
            raise SchemaError(f"{path}: label delays must not be negative")
        if policy.min_positives < 1 or policy.fallen_tasks < 1 or policy.bootstrap < 100 or policy.auc_drop < 0:
            raise SchemaError(f"{path}: min_positives and fallen_tasks >= 1, bootstrap >= 100, auc_drop >= 0")
        return policy

    def delay(self, use_case: str) -> pd.Timedelta:
        return self.label_delay.get(use_case, self.default_delay)

    def to_dict(self) -> dict:
        return asdict(self) | {"label_delay": {k: _duration(v) for k, v in self.label_delay.items()},
                               "default_delay": _duration(self.default_delay)}


def _duration(delay: pd.Timedelta) -> str:
    """1h, 2d, 90min: a delay as the policy file writes it."""
    for unit, size in (("d", pd.Timedelta(days=1)), ("h", pd.Timedelta(hours=1)), ("min", pd.Timedelta(minutes=1))):
        if delay >= size and delay % size == pd.Timedelta(0):
            return f"{delay // size}{unit}"
    return f"{delay.total_seconds():g}s"


@dataclass
class Figures:
    """A task's ranking quality on one set of rows."""

    rows: int
    positives: int
    auc: float | None = None
    auc_ci: tuple[float, float] | None = None
    ap: float | None = None
    ap_ci: tuple[float, float] | None = None
    expected: float | None = None  # the mean score
    observed: float | None = None  # the label's rate


@dataclass
class TaskQuality:
    task: str
    use_case: str
    labelled_before: str  # rows older than this are judged (as_of minus the use case's delay)
    waiting: int  # rows of the task still inside their label delay: drift only
    window: Figures
    served: Figures | None = None
    gate_auc: float | None = None  # what the gate saw on its test week
    judged: bool = False
    fell: bool = False
    reasons: list[str] = field(default_factory=list)


def _bootstrap(labels: np.ndarray, scores: np.ndarray, n: int, rng: np.random.Generator, chunk: int = 100):
    """95% intervals of AUC and AP over `n` Poisson(1) reweightings of the rows (grec.metrics: one
    sort serves a chunk of weightings)."""
    aucs, aps = [], []
    for start in range(0, n, chunk):
        weights = rng.poisson(1.0, (min(chunk, n - start), len(labels))).astype(np.float32)  # (b, R)
        aucs.append(weighted_auc(labels, scores, weights))
        aps.append(weighted_ap(labels, scores, weights))

    def interval(draws: list[np.ndarray]) -> tuple[float, float] | None:
        values = np.concatenate(draws)
        values = values[np.isfinite(values)]  # a weighting without a positive or a negative
        return (float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))) if len(values) else None

    return interval(aucs), interval(aps)


def figures(labels: np.ndarray, scores: np.ndarray, policy: QualityPolicy, rng: np.random.Generator) -> Figures:
    """Rows, positives, AUC and AP [95% bootstrap intervals] and calibration of one task's rows."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, scores = np.asarray(labels, np.int64), np.asarray(scores, np.float64)
    out = Figures(len(labels), int(labels.sum()))
    if len(labels):
        out.expected, out.observed = float(scores.mean()), float(labels.mean())
    if min(out.positives, out.rows - out.positives) >= policy.min_positives:
        out.auc, out.ap = float(roc_auc_score(labels, scores)), float(average_precision_score(labels, scores))
        out.auc_ci, out.ap_ci = _bootstrap(labels, scores, policy.bootstrap, rng)
    return out


def task_rows(frame: pd.DataFrame, tasks: TaskVocabulary, route: np.ndarray, task: int) -> np.ndarray:
    """The rows of `frame` a task is defined on: its route's, in its use case's population."""
    f, u = divmod(task, len(tasks.use_cases))
    rows = route == tasks.flows[f]
    population = tasks.populations.get(tasks.use_cases[u])
    if population is not None:
        rows &= frame[population].to_numpy() == 1
    return rows


def quality(window: pd.DataFrame, scores: np.ndarray, tasks: TaskVocabulary, route: np.ndarray, as_of: pd.Timestamp,
            policy: QualityPolicy, gate_auc: dict[str, float] | None = None,
            served: pd.DataFrame | None = None) -> list[TaskQuality]:
    """Per task of `tasks`: `window` (impressions in the training-set layout, with event_timestamp
    and the label columns), `scores` ((N, U): the champion's probability of each use case per row),
    `route` (each row's route), `served` (grec.monitoring.outcomes' shown rows: their `task`,
    `score`, event_timestamp and labels)."""
    rng = np.random.default_rng(policy.seed)
    times = pd.to_datetime(window["event_timestamp"], utc=True)
    out = []
    for t in range(tasks.n_tasks):
        name, use_case = tasks.task_name(t), tasks.use_cases[t % len(tasks.use_cases)]
        label = tasks.labels[use_case]
        cutoff = as_of - policy.delay(use_case)
        rows = task_rows(window, tasks, route, t)
        ripe = (times < cutoff).to_numpy()
        quality_row = TaskQuality(name, use_case, cutoff.isoformat(), int((rows & ~ripe).sum()),
                                  figures(window.loc[rows & ripe, label].to_numpy(),
                                          scores[rows & ripe, t % len(tasks.use_cases)], policy, rng),
                                  gate_auc=(gate_auc or {}).get(name))
        if served is not None and len(served):
            mine = served[(served["task"] == name)
                          & (pd.to_datetime(served["event_timestamp"], utc=True) < cutoff)]
            population = tasks.populations.get(use_case)
            if population is not None:
                mine = mine[mine[population] == 1]
            quality_row.served = figures(mine[label].to_numpy(), mine["score"].to_numpy(), policy, rng)
        _judge(quality_row, policy)
        out.append(quality_row)
    return out


def _judge(row: TaskQuality, policy: QualityPolicy) -> None:
    figures_ = row.window
    if figures_.auc is None:
        row.reasons.append(f"not judged: {figures_.positives} positives of {figures_.rows} labelled rows "
                           f"(at least {policy.min_positives} of each class needed)"
                           + (f"; {row.waiting} rows still inside the {row.use_case} label delay" if row.waiting else ""))
        return
    row.judged = True
    if row.gate_auc is not None and figures_.auc_ci is not None and figures_.auc_ci[1] < row.gate_auc - policy.auc_drop:
        row.fell = True
        row.reasons.append(f"AUC {figures_.auc:.3f} [{figures_.auc_ci[0]:.3f}, {figures_.auc_ci[1]:.3f}] below the gate's "
                           f"{row.gate_auc:.3f} less {policy.auc_drop}")


def fell(rows: list[TaskQuality], policy: QualityPolicy) -> bool:
    """Whether quality fell beyond the noise on enough tasks to request retraining."""
    return sum(r.fell for r in rows) >= policy.fallen_tasks


@dataclass
class QualityResult:
    fell: bool
    reasons: list[str]
    as_of: str
    policy: dict
    window: dict  # start, end
    model: dict  # model, version, run_id
    tasks: list[TaskQuality]

    def to_dict(self) -> dict:
        return {"decision": "quality fell" if self.fell else "quality held", **asdict(self)}

    def metrics(self) -> dict[str, float]:
        """The figures kept on the version's run, per task (MLflow metric names: '+' is not allowed)."""
        out = {}
        for row in self.tasks:
            key = "quality/" + row.task.replace("+", "/")
            for name, value in (("auc", row.window.auc), ("ap", row.window.ap), ("expected", row.window.expected),
                                ("observed", row.window.observed)):
                if value is not None:
                    out[f"{key}/{name}"] = value
            if row.served is not None and row.served.auc is not None:
                out[f"{key}/served_auc"] = row.served.auc
        return out

    def markdown(self) -> str:
        w = self.window
        judged = [r for r in self.tasks if r.judged]
        lines = [f"# Quality report: {w['start']} to {w['end']}, as of {self.as_of}: "
                 f"**{'QUALITY FELL' if self.fell else 'QUALITY HELD'}**", "",
                 f"- Model: {self.model['model']} v{self.model['version']}",
                 f"- Policy v{self.policy['version']}: a task falls when its AUC's upper 95% bound is under the gate's "
                 f"less {self.policy['auc_drop']}; {self.policy['fallen_tasks']} fallen task(s) request retraining; "
                 f"label delays {', '.join(f'{k} {v}' for k, v in self.policy['label_delay'].items())} "
                 f"(else {self.policy['default_delay']})",
                 f"- Judged: {len(judged)} of {len(self.tasks)} tasks (at least {self.policy['min_positives']} positives "
                 "and negatives among rows past their label delay)", ""]
        if self.reasons:
            lines += ["Why:", *(f"- {x}" for x in self.reasons), ""]
        lines += ["| task | labelled rows | positives | waiting | AUC [95%] | gate AUC | AP [95%] | expected | observed "
                  "| served rows | served AUC | fell |", "|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---|"]
        for r in self.tasks:
            f, s = r.window, r.served
            lines.append(f"| {r.task} | {f.rows:,} | {f.positives:,} | {r.waiting:,} | {interval_text(f.auc, f.auc_ci)} | "
                         f"{_num(r.gate_auc)} | {interval_text(f.ap, f.ap_ci)} | {_num(f.expected, 4)} | {_num(f.observed, 4)} | "
                         f"{s.rows if s else 0:,} | {_num(s.auc if s else None)} | {'yes' if r.fell else ''} |")
        return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def interval_text(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def decide(rows: list[TaskQuality], policy: QualityPolicy, as_of: pd.Timestamp, window: dict,
           model: dict) -> QualityResult:
    fallen = [r.task for r in rows if r.fell]
    reasons = [f"quality fell on {len(fallen)} task(s): {', '.join(fallen)}"] if len(fallen) >= policy.fallen_tasks else []
    return QualityResult(bool(reasons), reasons, as_of.isoformat(), policy.to_dict(), window, model, rows)


def classification_report(window: pd.DataFrame, scores: np.ndarray, tasks: TaskVocabulary, route: np.ndarray,
                          rows: list[TaskQuality]):
    """Evidently's classification preset on the judged tasks' labelled rows (the label as target, the
    champion's score as the probability), with the task as a column, so the report's quality by
    column is quality by task: a snapshot, or None when no task was judged. (One named classification
    per task would need a value on every row for every task; Evidently 0.7 drops no missing values.)"""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    times = pd.to_datetime(window["event_timestamp"], utc=True)
    parts = []
    for t, row in enumerate(rows):
        if not row.judged:
            continue
        mine = task_rows(window, tasks, route, t) & (times < pd.Timestamp(row.labelled_before)).to_numpy()
        parts.append(pd.DataFrame({"task": row.task, "target": window.loc[mine, tasks.labels[row.use_case]].to_numpy(np.int64),
                                   "score": scores[mine, t % len(tasks.use_cases)]}))
    if not parts:
        return None
    frame = pd.concat(parts, ignore_index=True)
    definition = DataDefinition(classification=[BinaryClassification(target="target", prediction_probas="score", pos_label=1)],
                                numerical_columns=["score"], categorical_columns=["target", "task"])
    return Report([ClassificationPreset()]).run(Dataset.from_pandas(frame, data_definition=definition), None)


def served_outcomes(log: pd.DataFrame, window: pd.DataFrame, tasks: TaskVocabulary, start: pd.Timestamp,
                    end: pd.Timestamp, window_join: pd.Timedelta = pd.Timedelta(minutes=10)) -> pd.DataFrame:
    """The /rank rows the service logged for pages in [start, end) (their event_timestamp, else when
    logged) that were shown, joined with their impressions' outcomes (grec.monitoring.outcomes), each
    with its `task`."""
    from grec.monitoring.outcomes import join_outcomes

    if log.empty or "request_id" not in log:
        return pd.DataFrame()
    log = log[log["endpoint"] == "rank"] if "endpoint" in log else log
    when = pd.to_datetime(log["event_timestamp"], utc=True) if "event_timestamp" in log else log["logged_at"]
    when = when.fillna(pd.to_datetime(log["logged_at"], utc=True))
    log = log[(when >= start) & (when < end)].assign(event_timestamp=when)
    if log.empty:
        return pd.DataFrame()
    joined = join_outcomes(log, window, tasks, window_join)
    shown = joined[joined["shown"]].copy()
    return shown.assign(task=tasks.routes_of(shown).astype(str) + "+" + shown["use_case"].astype(str))


def history_plot(history: dict[str, list], path: Path, title: str) -> Path | None:
    """AUC per task over the windows monitored so far (`history`: task -> [(window end, AUC)])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = {task: points for task, points in history.items() if points}
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for task, points in sorted(lines.items()):
        ax.plot([t for t, _ in points], [v for _, v in points], marker="o", label=task, linewidth=1)
    ax.set_ylabel("window AUC")
    ax.set_title(title, fontsize=9)
    if len(lines) <= 16:
        ax.legend(fontsize=6, ncol=2)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
