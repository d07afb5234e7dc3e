"""Quality monitoring with delayed labels (grec.monitoring.quality, grec.pipeline.steps.quality):
rows inside their label delay are not judged; a champion whose world changed under it (a concept
drift: the same visitors and items, other clicks) is flagged by quality and not by drift; its
weekly figures are kept on its registered version."""

import numpy as np
import pandas as pd
import pytest

from grec.data.schema import SchemaError, TaskVocabulary
from grec.monitoring.quality import QualityPolicy, quality

TASKS = TaskVocabulary(("AAL", "EUP"), ("CTR", "CVR"), {"CTR": "click", "CVR": "purchase"}, {"CTR": None, "CVR": "click"})
END = pd.Timestamp("2026-09-14", tz="UTC")


def week(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A week of rows whose scores rank their clicks (AUC about 0.68)."""
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    click = (rng.random(n) < 0.05 + 0.3 * score ** 2).astype(int)
    purchase = click * (rng.random(n) < 0.5).astype(int)
    frame = pd.DataFrame({"event_timestamp": END - pd.to_timedelta(rng.random(n) * 7, unit="D"),
                          "flow": rng.choice(["AAL", "EUP"], n), "click": click, "purchase": purchase})
    return frame, np.stack([score, rng.random(n)], axis=1), frame["flow"].to_numpy()


def test_rows_inside_their_label_delay_are_not_judged():
    frame, scores, route = week()
    policy = QualityPolicy.load()
    assert policy.delay("CTR") == pd.Timedelta(hours=1) and policy.delay("CVR") == pd.Timedelta(days=7)
    rows = {r.task: r for r in quality(frame, scores, TASKS, route, END, policy, {"AAL+CTR": 0.68, "EUP+CTR": 0.68})}
    last_hour = (frame["event_timestamp"] >= END - pd.Timedelta(hours=1)).to_numpy()
    aal = route == "AAL"
    assert rows["AAL+CTR"].waiting == int((aal & last_hour).sum()) > 0
    assert rows["AAL+CTR"].window.rows == int((aal & ~last_hour).sum()) and rows["AAL+CTR"].judged
    assert not rows["AAL+CTR"].fell and 0.62 < rows["AAL+CTR"].window.auc < 0.74
    # a purchase takes a week: monitored at the week's end, none of it is judged, nothing counted as a negative
    cvr = rows["AAL+CVR"]
    assert not cvr.judged and cvr.window.rows == 0 and cvr.waiting == int((aal & (frame["click"] == 1)).sum())
    assert "inside the CVR label delay" in cvr.reasons[0]
    later = {r.task: r for r in quality(frame, scores, TASKS, route, END + pd.Timedelta(days=8), policy)}
    assert later["AAL+CVR"].waiting == 0 and later["AAL+CVR"].window.rows == cvr.waiting


def test_a_fall_is_read_against_the_gate_beyond_the_noise():
    frame, scores, route = week()
    policy = QualityPolicy.load()
    held = {r.task: r for r in quality(frame, scores, TASKS, route, END, policy, {"AAL+CTR": 0.68})}
    assert not held["AAL+CTR"].fell  # the gate's own level
    scrambled = scores.copy()
    scrambled[:, 0] = np.random.default_rng(1).random(len(frame))  # the ranking lost
    fallen = {r.task: r for r in quality(frame, scrambled, TASKS, route, END, policy, {"AAL+CTR": 0.68})}
    assert fallen["AAL+CTR"].fell and "below the gate's 0.680" in fallen["AAL+CTR"].reasons[0]
    assert not fallen["EUP+CTR"].fell  # no gate figure: judged, not compared


def test_a_bad_policy_is_refused_by_name(tmp_path):
    path = tmp_path / "quality.yaml"
    path.write_text("version: 1\nlabel_delay: {CTR: soon}\n")
    with pytest.raises(SchemaError, match="label_delay"):
        QualityPolicy.load(path)
    path.write_text("version: 1\nmin_positives: 0\n")
    with pytest.raises(SchemaError, match="min_positives"):
        QualityPolicy.load(path)


# ---------------------------------------------------------------------------------------------
# A champion under a concept drift, monitored as the pipeline monitors it

CONCEPT_WEEKS = {"clean": ("2026-07-06", "2026-07-13"), "concept": ("2026-07-13", "2026-07-20")}


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A storefront of 4 training weeks, a test week, a clean week and one whose clicks turned around;
    the per-task trees trained on the first five (quick, and ranking well on this little data),
    judged by the gate and made champion."""
    from grec.data.simulate import SimulationConfig, simulate_to
    from grec.features.store import apply, materialize
    from grec.features.training_set import build_training_set, open_source
    from grec.lifecycle.tracking import train_and_log
    from grec.model.trees import TreeConfig
    from grec.pipeline import steps
    from grec.train import TrainConfig

    home = tmp_path_factory.mktemp("quality-state")
    data = home / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        simulate_to(data, SimulationConfig(n_impressions=120_000, train_weeks=4, monitor_weeks=2, drift=("concept",), seed=4))
        tables = home / "tables"
        steps.snapshot_window(data, "2026-06-01", "2026-07-06", tables)
        apply(tables)
        materialize(pd.Timestamp("2026-07-06", tz="UTC"))
        build_training_set(tables, home / "set")
        source = open_source(home / "set")
        dataset = source.dataset()
        run = train_and_log(TreeConfig(), source, dataset, TrainConfig(progress=False), home / "models" / "trees",
                            "quality-champion", register_as=None)
        policy = home / "gate.yaml"
        policy.write_text("version: 1\nfloors: {default: 0.0}\n")
        report = steps.gate(home / "set", run.model_dir, run.run_id, policy=policy).to_dict()
        version = steps.register(run.model_uri, report)
        steps.promote(version, report)
        yield {"home": home, "data": data, "version": version}


def test_a_concept_drift_is_flagged_by_quality_and_not_by_drift(champion, tmp_path, monkeypatch):
    from grec.lifecycle.registry import Registry
    from grec.pipeline import steps

    monkeypatch.setenv("GREC_HOME", str(champion["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    outcome = {}
    for name, (start, end) in CONCEPT_WEEKS.items():
        drift, _ = steps.monitor(champion["data"], start, end, tmp_path / name / "drift")
        result, paths = steps.quality(champion["data"], start, end, tmp_path / name, as_of="2026-08-01")
        outcome[name] = (drift, result, paths)
    drift, result, paths = outcome["concept"]
    assert not drift.drifted, drift.reasons  # the same visitors, items and scores
    assert result.fell, result.markdown()
    fallen = [r for r in result.tasks if r.fell]
    assert all(r.use_case == "CTR" or r.gate_auc is not None for r in fallen)
    clean_drift, clean, _ = outcome["clean"]
    assert not clean.fell, clean.markdown()
    assert sum(r.judged for r in clean.tasks) >= 3
    # kept on the version: the decision, and the figures week by week (two windows, two points)
    registry = Registry("grec")
    tags = registry.version(champion["version"]).tags
    assert tags["grec.quality.decision"] == "quality fell" and tags["grec.retrain_requested"] == "true"
    judged = next(r for r in clean.tasks if r.judged)
    key = f"quality/{judged.task.replace('+', '/')}/auc"
    history = registry.metric_history(champion["version"], [key])[key]
    assert [round(v, 6) for _, v in history][0] == round(judged.window.auc, 6) and len(history) == 2
    assert paths["png"].exists() and paths["html"].stat().st_size > 100_000  # Evidently's classification report
    assert "QUALITY FELL" in paths["markdown"].read_text()
