"""The promotion gate: a challenger against the champion, task by task, on the same held-out week.

Rules come from a versioned policy file (gate_policy.yaml beside this module by default): for every
task the AUC may not fall by more than a tolerance, the mean AUC over tasks may not fall, and every
task must clear an absolute floor beyond the noise (the upper end of the challenger's own bootstrap
interval below the floor fails it: a week with a dozen purchases cannot tell 0.51 from 0.55, and
even the simulator's true probability scores under 0.55 on such a week). With no champion the
floors alone decide. Each difference is
reported with a paired bootstrap confidence interval (impressions resampled with Poisson(1)
weights, the same weights for both models and for every task, so the mean's interval is right too).

`judge` is pure (arrays in, report out); `score_held_out` turns a model and a data source into
the arrays.

Dimension letters: R task rows, N impressions, B bootstrap samples, G groups of tied scores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from grec.data.schema import SchemaError
from grec.io import write_json, write_text
from grec.metrics import weighted_auc
from grec.policy import read_policy

POLICY_FILE = Path(__file__).with_name("gate_policy.yaml")


@dataclass(frozen=True)
class GatePolicy:
    version: int
    max_task_drop: float
    max_mean_drop: float
    min_positives: int
    floors: dict[str, float]
    bootstrap_samples: int
    confidence: float
    seed: int
    path: str
    sha256: str

    @classmethod
    def load(cls, path: Path | None = None) -> GatePolicy:
        path = Path(path or POLICY_FILE)
        raw, sha256 = read_policy(path, {"version", "max_task_drop", "max_mean_drop", "min_positives", "floors", "bootstrap"},
                                  "gate")
        floors = {str(k): float(v) for k, v in (raw.get("floors") or {}).items()}
        for key, value in floors.items():
            if not 0.0 <= value <= 1.0:
                raise SchemaError(f"{path}: floors.{key} = {value} is not an AUC in [0, 1]")
        boot = raw.get("bootstrap") or {}
        policy = cls(
            version=int(raw["version"]),
            max_task_drop=float(raw.get("max_task_drop", 0.002)),
            max_mean_drop=float(raw.get("max_mean_drop", 0.0)),
            min_positives=int(raw.get("min_positives", 10)),
            floors=floors,
            bootstrap_samples=int(boot.get("samples", 1000)),
            confidence=float(boot.get("confidence", 0.95)),
            seed=int(boot.get("seed", 0)),
            path=str(path.resolve()),
            sha256=sha256,
        )
        if policy.max_task_drop < 0 or policy.max_mean_drop < 0:
            raise SchemaError(f"{path}: max_task_drop and max_mean_drop are tolerances and cannot be negative")
        if not 0 < policy.confidence < 1:
            raise SchemaError(f"{path}: bootstrap.confidence must be in (0, 1), got {policy.confidence}")
        return policy

    def floor(self, task: str) -> float:
        """The most specific floor: the task's, else its use case's, else the default (else 0)."""
        use_case = task.split("+")[-1]
        return self.floors.get(task, self.floors.get(use_case, self.floors.get("default", 0.0)))


# ---------------------------------------------------------------------------------------------
# AUC under bootstrap weights


def bootstrap_auc(
    tasks: dict[str, np.ndarray],
    label: np.ndarray,
    impression: np.ndarray,
    score: np.ndarray,
    samples: int,
    seed: int,
    chunk: int = 100,
) -> dict[str, np.ndarray]:
    """{task: (B,) AUC(score)} over `samples` Poisson(1) reweightings of the impressions.

    tasks: {name: (R,) bool}; label, impression, score: (R,). An impression keeps one weight across
    its tasks, so the tasks are resampled jointly; the same seed gives the same weightings, so two
    models' draws pair up (paired_bootstrap)."""
    rng = np.random.default_rng(seed)
    n = int(impression.max()) + 1 if len(impression) else 0
    out: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    for start in range(0, samples, chunk):
        weights = rng.poisson(1.0, size=(min(chunk, samples - start), n)).astype(np.float32)  # (b, N)
        for task, sel in tasks.items():
            out[task].append(weighted_auc(label[sel], score[sel], weights[:, impression[sel]]))  # (b,)
    return {t: np.concatenate(v) for t, v in out.items()}


def paired_bootstrap(tasks: dict[str, np.ndarray], label: np.ndarray, impression: np.ndarray, a: np.ndarray,
                     b: np.ndarray, samples: int, seed: int) -> dict[str, np.ndarray]:
    """{task: (B,) AUC(a) - AUC(b)} on the same reweightings: shared noise cancels, and the per-task
    differences are resampled jointly, so their mean is valid too."""
    draws_b = bootstrap_auc(tasks, label, impression, b, samples, seed)
    return {t: d - draws_b[t] for t, d in bootstrap_auc(tasks, label, impression, a, samples, seed).items()}


# ---------------------------------------------------------------------------------------------
# The decision


@dataclass
class TaskVerdict:
    task: str
    rows: int
    positives: int
    floor: float
    challenger_auc: float
    champion_auc: float | None = None
    diff: float | None = None  # challenger - champion
    ci: tuple[float, float] | None = None
    auc_ci: tuple[float, float] | None = None  # the challenger's own AUC interval (the floor reads its upper end)
    judged: bool = True  # False: too few positives (or negatives) in the week to judge the task
    passed: bool = True
    reasons: list[str] = field(default_factory=list)


@dataclass
class GateReport:
    passed: bool
    challenger: dict  # name, version, run_id
    champion: dict | None
    policy: dict  # version, path, sha256 and the rules
    held_out: dict  # source, fingerprint, window, rows
    tasks: list[TaskVerdict]
    mean: dict  # challenger_auc, champion_auc, diff, ci, passed
    reasons: list[str]  # why, when refused

    @property
    def decision(self) -> str:
        return "promote" if self.passed else "refuse"

    def failed_tasks(self) -> list[str]:
        return [t.task for t in self.tasks if not t.passed]

    def to_dict(self) -> dict:
        return {"decision": self.decision, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> GateReport:
        """The report `to_dict` wrote (read back by a later pipeline step that acts on it)."""
        fields = {k: v for k, v in d.items() if k != "decision"}
        tasks = [TaskVerdict(**{**t, "ci": tuple(t["ci"]) if t.get("ci") is not None else None}) for t in fields.pop("tasks")]
        return cls(tasks=tasks, **fields)

    def markdown(self) -> str:
        ch, champ = self.challenger, self.champion
        versus = f"champion v{champ['version']}" if champ else "no champion (floors alone decide)"
        pct = round(100 * self.policy["confidence"])
        who = f"v{ch['version']}" if ch.get("version") else f"challenger (run {str(ch.get('run_id'))[:12]}, not yet registered)"
        lines = [
            f"# Promotion gate: {ch['name']} {who} against {versus}: **{self.decision.upper()}**",
            "",
            f"- Held out: {self.held_out['window']}, {self.held_out['rows']:,} task rows "
            f"from `{self.held_out['source']}` (fingerprint `{self.held_out['fingerprint'][:16]}`)",
            f"- Policy v{self.policy['version']} (`{self.policy['path']}`, sha256 `{self.policy['sha256'][:16]}`): "
            f"per-task AUC drop at most {self.policy['max_task_drop']}, mean AUC drop at most "
            f"{self.policy['max_mean_drop']}, floors {self.policy['floors']}, tasks judged with at least "
            f"{self.policy['min_positives']} positives and negatives",
            f"- Intervals: paired bootstrap, {self.policy['bootstrap_samples']} samples, {pct}%",
            "",
        ]
        if self.reasons:
            lines += ["Refused because:", *(f"- {r}" for r in self.reasons), ""]
        lines += [f"| task | rows | positives | challenger AUC | champion AUC | difference | {pct}% CI | floor | result |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]

        def fmt(x, sign=False):
            return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else (f"{x:+.4f}" if sign else f"{x:.4f}")

        for t in self.tasks:
            ci = "-" if t.ci is None or math.isnan(t.ci[0]) else f"[{t.ci[0]:+.4f}, {t.ci[1]:+.4f}]"
            result = "; ".join(t.reasons) if not t.judged else ("pass" if t.passed else "FAIL: " + "; ".join(t.reasons))
            lines.append(f"| {t.task} | {t.rows:,} | {t.positives:,} | {fmt(t.challenger_auc)} | {fmt(t.champion_auc)} | "
                         f"{fmt(t.diff, True)} | {ci} | {t.floor:.3f} | {result} |")
        m = self.mean
        ci = "-" if m["ci"] is None else f"[{m['ci'][0]:+.4f}, {m['ci'][1]:+.4f}]"
        lines.append(f"| **mean of the judged tasks** | | | {fmt(m['challenger_auc'])} | {fmt(m['champion_auc'])} | {fmt(m['diff'], True)} | "
                     f"{ci} | | {'pass' if m['passed'] else 'FAIL'} |")
        return "\n".join(lines) + "\n"

    def save(self, folder: Path, stem: str) -> tuple[Path, Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
        write_json(json_path, self.to_dict())
        write_text(md_path, self.markdown())
        return json_path, md_path


def _auc(label: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # here: promoting and rolling back never need scikit-learn

    return float(roc_auc_score(label, score)) if 0 < label.sum() < len(label) else math.nan


def judge(
    tasks: dict[str, np.ndarray],
    label: np.ndarray,
    impression: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    policy: GatePolicy,
    challenger_info: dict,
    champion_info: dict | None,
    held_out: dict,
) -> GateReport:
    """Apply `policy` to the challenger's (and the champion's) probabilities on the same rows.

    tasks: {name: (R,) bool}; label, impression, challenger, champion: (R,)."""
    alpha = (1 - policy.confidence) / 2
    diffs = None
    own = bootstrap_auc(tasks, label, impression, challenger, policy.bootstrap_samples, policy.seed)  # {task: (B,)}
    if champion is not None:  # the same seed: the champion's draws pair with the challenger's
        theirs = bootstrap_auc(tasks, label, impression, champion, policy.bootstrap_samples, policy.seed)
        diffs = {t: own[t] - theirs[t] for t in tasks}
    verdicts = []
    for task, sel in tasks.items():
        y = label[sel]
        v = TaskVerdict(task, int(sel.sum()), int(y.sum()), policy.floor(task), _auc(y, challenger[sel]))
        if min(v.positives, v.rows - v.positives) < policy.min_positives:
            v.judged = False
            v.reasons.append(f"not judged: {v.positives} positives in {v.rows} rows (the policy needs "
                             f"{policy.min_positives} of each class)")
        else:
            lo, hi = np.nanquantile(own[task], [alpha, 1 - alpha])
            v.auc_ci = (float(lo), float(hi))
            if hi < v.floor:
                v.reasons.append(f"AUC {v.challenger_auc:.4f} ({policy.confidence:.0%} interval [{lo:.3f}, {hi:.3f}]) "
                                 f"below the floor {v.floor:.3f}")
        if champion is not None:
            v.champion_auc = _auc(y, champion[sel])
            v.diff = v.challenger_auc - v.champion_auc
            lo, hi = np.nanquantile(diffs[task], [alpha, 1 - alpha]) if np.isfinite(diffs[task]).any() else (math.nan,) * 2
            v.ci = (float(lo), float(hi))
            if v.judged and v.diff < -policy.max_task_drop:
                v.reasons.append(f"AUC fell by {-v.diff:.4f} (allowed {policy.max_task_drop})")
        v.passed = not v.judged or not v.reasons
        verdicts.append(v)

    judged = [v for v in verdicts if v.judged]  # the mean is over the tasks the week can judge
    mean = {"tasks": [v.task for v in judged], "challenger_auc": float(np.mean([v.challenger_auc for v in judged]))
            if judged else math.nan, "champion_auc": None, "diff": None, "ci": None, "passed": True}
    if champion is not None and judged:
        mean["champion_auc"] = float(np.mean([v.champion_auc for v in judged]))
        mean["diff"] = mean["challenger_auc"] - mean["champion_auc"]
        mean_diffs = np.mean(np.stack([diffs[v.task] for v in judged]), axis=0)  # (B,)
        mean["ci"] = tuple(float(q) for q in np.nanquantile(mean_diffs, [alpha, 1 - alpha]))
        mean["passed"] = bool(mean["diff"] >= -policy.max_mean_drop)
    reasons = [f"{v.task}: {'; '.join(v.reasons)}" for v in verdicts if not v.passed]
    if not mean["passed"]:
        reasons.append(f"mean AUC fell by {-mean['diff']:.4f} (allowed {policy.max_mean_drop})")
    if not judged:
        reasons.append(f"no task has {policy.min_positives} positives and negatives in the held-out week to judge")
    return GateReport(not reasons, challenger_info, champion_info, asdict(policy), held_out, verdicts, mean, reasons)


def score_held_out(model, spec, source) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """A model's probabilities on the test window of `source` (a grec.features.training_set.DataSource),
    with the rows' tasks, labels and impressions: (tasks, label, impression, prob)."""
    from grec.evaluate import predict, task_masks

    data = source.dataset(spec=spec)
    rows = data.rows["test"]
    return task_masks(data, rows), rows.label.numpy(), rows.impression.numpy(), predict(model, data, rows)

