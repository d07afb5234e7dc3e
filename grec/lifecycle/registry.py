"""The model registry: versions under one name, moved by aliases, every move recorded.

- `challenger` points to the newest registered version (set at registration).
- `champion` moves only when the gate passes; the replaced champion gets `previous-champion`.
- `rollback` puts `previous-champion` back as champion; `previous-champion` then steps back to
  the version that one had replaced, or goes away.
Every promotion and rollback leaves tags on the versions it touched (who or what decided, when, the
gate's decision and report), so the registry itself is the audit log.

Registrations, promotions and rollbacks hold an exclusive lock from reading the aliases to writing
them (grec.lifecycle.registry_lock: kept in the registry itself, so it holds across machines
sharing one tracking server): two processes promoting at once are serialized, the second judged
against the champion the first left.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from grec import settings
from grec.errors import UserError
from grec.lifecycle.gate import GatePolicy, GateReport, judge, score_held_out
from grec.lifecycle.registry_lock import RegistryLock
from grec.lifecycle.store import MODEL_NAME, configure

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous-champion"
TAG = "grec."  # prefix of the tags this module writes on versions


class RegistryError(UserError, RuntimeError):
    """A registry operation that cannot be done as asked (no such version, nothing to roll back to)."""


def default_actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_ref(value: str) -> tuple[str, str]:
    """'grec@challenger' -> ('grec', '@challenger'); 'grec:3' -> ('grec', '3'): a registered
    model and which of its versions (an alias, marked '@', or a version number)."""
    if "@" in value:
        name, _, alias = value.partition("@")
        if name and alias:
            return name, "@" + alias
    elif ":" in value:
        name, _, version = value.partition(":")
        if name and version.isdigit():
            return name, version
    raise ValueError(f"{value!r}: name a registered model's version as NAME@ALIAS or NAME:VERSION")


def load_ref(value: str):
    """(model, spec, name, version) of a registered version named 'NAME:VERSION' or 'NAME@ALIAS'."""
    name, which = parse_ref(value)
    registry = Registry(name)
    version = registry.aliases().get(which[1:]) if which.startswith("@") else which
    if version is None:
        raise RegistryError(f"{value}: the registry's {name} has no alias {which[1:]}")
    model, spec = registry.load(version)
    return model, spec, name, version


@dataclass
class Promotion:
    version: str
    champion_before: str | None
    champion_after: str | None
    changed: bool
    message: str
    report: GateReport | None = None
    report_paths: tuple[Path, Path] | None = None  # JSON, markdown


class Registry:
    def __init__(self, name: str = MODEL_NAME, tracking_uri: str | None = None):
        self.name = name
        self.tracking_uri = configure(tracking_uri)
        self.client = MlflowClient(self.tracking_uri, self.tracking_uri)

    # -- reading ---------------------------------------------------------------------------

    def aliases(self) -> dict[str, str]:
        """{alias: version} ({} when nothing is registered yet)."""
        try:
            return {k: str(v) for k, v in self.client.get_registered_model(self.name).aliases.items()}
        except MlflowException:
            return {}

    def versions(self) -> list:
        return sorted(self.client.search_model_versions(f"name='{self.name}'"), key=lambda v: int(v.version))

    def version(self, version: str):
        try:
            return self.client.get_model_version(self.name, str(version))
        except MlflowException:
            raise RegistryError(f"model '{self.name}' has no version {version!r} in {self.tracking_uri}") from None

    def load(self, version: str):
        """(torch model, FeatureSpec) of a registered version, through its pyfunc (what serving loads)."""
        wrapper = mlflow.pyfunc.load_model(f"models:/{self.name}/{version}").unwrap_python_model()
        return wrapper.model, wrapper.spec

    def status(self) -> dict:
        aliases = self.aliases()
        by_version: dict[str, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(v, []).append(alias)
        rows = []
        for mv in self.versions():
            run = self.client.get_run(mv.run_id) if mv.run_id else None
            metrics = run.data.metrics if run else {}
            rows.append({
                "version": str(mv.version),
                "aliases": sorted(by_version.get(str(mv.version), [])),
                "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat(timespec="seconds"),
                "run_id": mv.run_id,
                "test_mean_auc": metrics.get("test/mean/auc"),
                "tags": {k: v for k, v in mv.tags.items() if k.startswith(TAG)},
            })
        return {"name": self.name, "tracking_uri": self.tracking_uri, "aliases": aliases, "versions": rows}

    # -- writing ---------------------------------------------------------------------------

    def lock(self, actor: str | None = None) -> RegistryLock:
        """The model's alias lock (across machines: it lives in the registry)."""
        return RegistryLock(self.client, self.name, actor or default_actor())

    def _tag(self, version: str, **tags: str) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, version, TAG + key.replace("__", "."), str(value))

    def mark_challenger(self, version: str) -> None:
        """Point `challenger` at `version` unless a newer version already holds it."""
        with self.lock():
            current = self.aliases().get(CHALLENGER)
            if current is None or int(version) > int(current):
                self.client.set_registered_model_alias(self.name, CHALLENGER, str(version))

    def gate(self, model, spec, source, policy: GatePolicy, candidate: dict) -> GateReport:
        """Judge `model` (with its FeatureSpec; registered or not) against the current champion on
        the test week of `source` (a DataSource). `candidate`: name, version (or None) and run_id."""
        champion = self.aliases().get(CHAMPION)
        tasks, label, impression, prob = score_held_out(model, spec, source)
        champion_prob, champion_info = None, None
        if champion is not None:
            champion_prob = score_held_out(*self.load(champion), source)[3]
            champion_info = {"name": self.name, "version": champion, "run_id": self.version(champion).run_id}
        held = {"source": str(source.path), "fingerprint": source.fingerprint, "window": source.test_rows(),
                "rows": int(len(label))}
        return judge(tasks, label, impression, prob, champion_prob, policy, candidate, champion_info, held)

    def promote(
        self,
        version: str | None = None,
        held_out: Path | None = None,
        policy: GatePolicy | None = None,
        decided_by: str | None = None,
    ) -> Promotion:
        """Gate `version` (default: the challenger) against the champion on the held-out week of
        `held_out` (default: the data the version was trained on) and move the aliases if it passes.
        Promoting the champion again changes nothing."""
        from grec.features.training_set import open_source

        policy = policy or GatePolicy.load()
        decided_by = decided_by or default_actor()
        with self.lock():
            aliases = self.aliases()
            version = str(version or aliases.get(CHALLENGER) or "")
            if not version:
                raise RegistryError(f"model '{self.name}' has no challenger to promote; register one with `grec train`")
            mv = self.version(version)
            champion = aliases.get(CHAMPION)
            if champion == version:
                return Promotion(version, champion, champion, False, f"version {version} is already the champion")
            run = self.client.get_run(mv.run_id)
            source = open_source(held_out or run.data.params["data.source"], splits=("test",))
            report = self.gate(*self.load(version), source, policy, {"name": self.name, "version": version, "run_id": mv.run_id})
            return self._act(version, report, decided_by)

    def promote_judged(self, version: str, report: GateReport, decided_by: str | None = None) -> Promotion:
        """Act on a gate report made and recorded earlier (a pipeline gates, then registers with
        `record_gate`, then promotes): move the aliases if it passed, provided the champion it
        judged against is still the champion."""
        with self.lock():
            self.version(version)
            judged_against = (report.champion or {}).get("version")
            champion = self.aliases().get(CHAMPION)
            if champion == str(version):
                return Promotion(version, champion, champion, False, f"version {version} is already the champion")
            if champion != judged_against:
                raise RegistryError(f"the gate judged {self.name} v{version} against champion "
                                    f"{'v' + judged_against if judged_against else 'none'}, but the champion is now "
                                    f"{'v' + champion if champion else 'none'}; gate it again")
            return self._act(str(version), report, decided_by or default_actor(), record=False)

    def record_gate(self, version: str, report: GateReport, decided_by: str | None = None) -> tuple[Path, Path]:
        """Save the gate report (state folder and the version's run) and tag the version with its
        decision. Returns the (JSON, markdown) paths."""
        mv = self.version(version)
        against = (report.champion or {}).get("version") or "none"
        report.challenger["version"] = str(version)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        paths = report.save(settings.reports_dir() / "gate", f"{self.name}-v{version}-vs-{against}-{stamp}")
        for path in paths:
            self.client.log_artifact(mv.run_id, str(path), "gate")
        self._tag(version, gate__decision=report.decision, gate__at=_now(), gate__by=decided_by or default_actor(),
                  gate__against=against, gate__policy_version=report.policy["version"],
                  gate__report=f"runs:/{mv.run_id}/gate/{paths[1].name}",
                  gate__failed_tasks=",".join(report.failed_tasks()))
        return paths

    def _act(self, version: str, report: GateReport, decided_by: str, record: bool = True) -> Promotion:
        """Record the gate's decision on `version` (unless already recorded) and, if it passed, make
        it the champion. The caller holds the lock."""
        champion = self.aliases().get(CHAMPION)
        paths = self.record_gate(version, report, decided_by) if record else None
        if not report.passed:
            failed = ", ".join(report.failed_tasks()) or "the mean AUC"
            return Promotion(version, champion, champion, False, f"refused by the gate (failed: {failed})", report, paths)
        if champion is not None:  # previous first: a crash in between leaves champion == previous, never a lost one
            self.client.set_registered_model_alias(self.name, PREVIOUS, champion)
        self.client.set_registered_model_alias(self.name, CHAMPION, version)
        self._tag(version, promoted_at=_now(), promoted_by=decided_by, replaced_version=champion or "none")
        return Promotion(version, champion, version, True, f"version {version} is the champion", report, paths)

    def record_drift(self, version: str, result, report_json: Path) -> None:
        """Log a drift report to the version's run and tag the version with the decision. Drift
        sets `grec.retrain_requested` (what a scheduler or a person acts on); a later clean window
        does not clear it, since the model still has not seen the drifted one."""
        mv = self.version(version)
        folder = f"drift/{result.window['start'][:10]}_{result.window['end'][:10]}"
        for path in Path(report_json).parent.glob("drift*"):
            self.client.log_artifact(mv.run_id, str(path), folder)
        self._tag(version, drift__decision="drift" if result.drifted else "no drift", drift__at=_now(),
                  drift__window=f"{result.window['start']}/{result.window['end']}",
                  drift__report=f"runs:/{mv.run_id}/{folder}/{Path(report_json).name}",
                  retrain_requested="true" if result.drifted else mv.tags.get(TAG + "retrain_requested", "false"))

    def gate_aucs(self, version: str) -> dict[str, float]:
        """{task: AUC} the gate saw on the version's test week (its gate report; {} if it was never judged)."""
        import json

        report = self.version(version).tags.get(TAG + "gate.report", "")
        if not report:
            return {}
        path = mlflow.artifacts.download_artifacts(report.rsplit(".", 1)[0] + ".json", tracking_uri=self.tracking_uri)
        return {t["task"]: t["challenger_auc"] for t in json.loads(Path(path).read_text())["tasks"]
                if t.get("challenger_auc") is not None and t["challenger_auc"] == t["challenger_auc"]}  # not NaN

    def record_quality(self, version: str, result, files: list[Path], when: datetime) -> str:
        """Log a quality report to the version's run, its per-task figures as the run's metrics at
        the window's end (`when`: so their history is the champion's quality week by week), and tag
        the version with the decision; a fall requests retraining, as drift does. Returns the run's
        artifact folder the files went to."""
        from mlflow.entities import Metric

        mv = self.version(version)
        artifacts = f"quality/{result.window['start'][:10]}_{result.window['end'][:10]}"
        for path in files:
            self.client.log_artifact(mv.run_id, str(path), artifacts)
        stamp = int(when.timestamp() * 1000)
        metrics = [Metric(k, float(v), stamp, stamp // 86_400_000) for k, v in result.metrics().items()]
        for start in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(mv.run_id, metrics=metrics[start:start + 1000])
        self._tag(version, quality__decision="quality fell" if result.fell else "quality held", quality__at=_now(),
                  quality__window=f"{result.window['start']}/{result.window['end']}",
                  retrain_requested="true" if result.fell else mv.tags.get(TAG + "retrain_requested", "false"))
        return artifacts

    def metric_history(self, version: str, keys: list[str]) -> dict[str, list[tuple[datetime, float]]]:
        """Each metric's history on the version's run: [(time, value)] oldest first (one per window
        when the times are the windows' ends)."""
        run_id = self.version(version).run_id
        out = {}
        for key in keys:
            points = sorted((m.timestamp, m.value) for m in self.client.get_metric_history(run_id, key))
            out[key] = [(datetime.fromtimestamp(t / 1000, timezone.utc), v) for t, v in dict(points).items()]
        return out

    def register(self, model_uri: str, tags: dict[str, str] | None = None) -> str:
        """Register a logged model (`models:/m-...` or `runs:/...`) as the next version and point
        `challenger` at it; returns the version."""
        mv = mlflow.register_model(model_uri, self.name, tags=tags)
        self.mark_challenger(str(mv.version))
        return str(mv.version)

    def rollback(self, decided_by: str | None = None, reason: str = "") -> Promotion:
        """Make `previous-champion` the champion again; `previous-champion` steps back one promotion."""
        decided_by = decided_by or default_actor()
        with self.lock():
            aliases = self.aliases()
            champion, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
            if champion is None or previous is None:
                raise RegistryError(f"model '{self.name}' has no {'champion' if champion is None else 'previous champion'} "
                                    "to roll back from")
            self.client.set_registered_model_alias(self.name, CHAMPION, previous)
            self._tag(champion, rolled_back_at=_now(), rolled_back_by=decided_by, rolled_back_reason=reason or "-")
            self._tag(previous, restored_at=_now(), restored_by=decided_by)
            older = self.version(previous).tags.get(TAG + "replaced_version", "none")
            if older not in ("none", champion, previous):
                self.client.set_registered_model_alias(self.name, PREVIOUS, older)
            else:
                self.client.delete_registered_model_alias(self.name, PREVIOUS)
            return Promotion(previous, champion, previous, True, f"rolled back: version {previous} is the champion again")
