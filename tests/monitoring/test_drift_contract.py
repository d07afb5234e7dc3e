"""Drift follows the model's own spec and contract, not the storefront's: the monitored columns are
the spec's features (history length and search only where the data has them), the scores are its
task vocabulary's, the reference is its contract's training split; the storefront's columns and
order stay as they were. And the Evidently report's own verdict is the policy's: the report's
dataset-drift threshold is the policy's share, and a column drifts when Evidently's test says so."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from grec.data import schema
from grec.data.contract import TELECOM
from grec.data.spec import FeatureSpec
from grec.data.split import TimeSplit
from grec.data.schema import TELECOM_TASKS, TaskVocabulary
from grec.features.training_set import RAW_JOIN, DataSource
from grec.monitoring import drift
from grec.monitoring.drift import (DriftPolicy, compare, dataset_drift, drift_rows, feature_columns, reference_rows,
                                   score_column, served_scores, task_names)

WEB_APP = TaskVocabulary(("WEB", "APP"), ("CTR", "CTCVR"), {"CTR": "click", "CTCVR": "buy"}, {"CTR": None, "CTCVR": None})


def small_spec(**overrides) -> FeatureSpec:
    return FeatureSpec(**{"context_categorical": ["region"], "context_numerical": ["age"], "item_categorical": [],
                          "item_numerical": ["price"], "tasks": WEB_APP, "inputs": ["item_vectors"], **overrides})


def input_frame(spec: FeatureSpec, n: int, seed: int = 0, **columns) -> pd.DataFrame:
    """Rows in the training-set layout of `spec` (every input column), random values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.integers(0, 4, n) for c in [*spec.context_categorical, *spec.item_categorical]})
    for c in [*spec.context_numerical, *spec.item_numerical]:
        frame[c] = rng.normal(0, 1, n).astype(np.float32)
    frame["item_id"] = rng.integers(0, 10, n)
    frame["search_query"] = np.where(rng.random(n) < 0.5, "phones", "")
    frame["description"] = ""
    frame["image_embedding"] = [np.zeros(1, np.float32)] * n
    frame["viewed_item_ids"] = [np.arange(k) for k in rng.integers(0, 5, n)]
    frame["visited_page_ids"] = frame["viewed_item_ids"]
    frame["flow"] = rng.choice(list(spec.tasks.flows), n)
    return frame.assign(**columns)


@pytest.fixture
def scores(monkeypatch):
    """The model's score is the use case's position / 10 (no network needed)."""
    def score_use_cases(model, spec, frame):
        return np.tile(np.arange(len(spec.tasks.use_cases), dtype=np.float32) / 10, (len(frame), 1))

    monkeypatch.setattr("grec.lifecycle.pyfunc.score_use_cases", score_use_cases)


def test_the_storefront_monitors_the_same_columns_in_the_same_order(scores):
    spec = FeatureSpec()
    assert task_names(TELECOM_TASKS) == [f"{f}+{u}" for f in schema.FLOWS for u in schema.USE_CASES]
    features = [*schema.CONTEXT_CATEGORICAL, *schema.ITEM_CATEGORICAL, "flow", *schema.CONTEXT_NUMERICAL,
                *schema.ITEM_NUMERICAL, "history_length", "has_search"]
    assert list(feature_columns(spec)) == features
    assert feature_columns(spec)["has_search"] == "categorical" and feature_columns(spec)["history_length"] == "numerical"
    out = drift_rows(None, spec, input_frame(spec, 50))
    assert list(out.columns) == features + [score_column(f"{f}+{u}") for u in schema.USE_CASES for f in schema.FLOWS]


def test_columns_and_scores_come_from_the_spec(scores):
    spec = small_spec()
    assert feature_columns(spec) == {"region": "categorical", "flow": "categorical", "age": "numerical", "price": "numerical"}
    frame = input_frame(spec, 200)
    out = drift_rows(None, spec, frame)
    tasks = ["WEB+CTR", "APP+CTR", "WEB+CTCVR", "APP+CTCVR"]
    assert list(out.columns) == ["region", "flow", "age", "price", *map(score_column, tasks)]
    web = (frame["flow"] == "WEB").to_numpy()
    assert (out.loc[web, score_column("WEB+CTCVR")] == np.float32(0.1)).all()
    assert out.loc[web, score_column("APP+CTCVR")].isna().all() and out.loc[~web, score_column("APP+CTR")].eq(0).all()


@pytest.mark.parametrize("inputs, derived", [(["search"], ["has_search"]), (["histories"], ["history_length"]),
                                             (["search", "histories"], ["history_length", "has_search"]), ([], [])])
def test_history_length_and_search_are_monitored_only_where_the_data_has_them(scores, inputs, derived):
    spec = small_spec(inputs=inputs)
    assert [c for c in feature_columns(spec) if c in drift.DERIVED] == derived
    assert [c for c in drift_rows(None, spec, input_frame(spec, 20)).columns if c in drift.DERIVED] == derived


def test_the_reference_is_the_contracts_training_split(scores):
    spec = small_spec()
    frame = input_frame(spec, 300, split=np.repeat(["test", "train", "valid"], 100),
                        event_timestamp=pd.Timestamp("2026-01-01", tz="UTC"))
    frame.loc[frame["split"] == "train", "age"] = 7.0
    source = DataSource(Path("src"), None, RAW_JOIN, "", SimpleNamespace(split="split"), joined=frame)
    ref = reference_rows(None, spec, source)
    assert len(ref) == 100 and (ref["age"] == 7.0).all()


def test_without_a_split_column_the_reference_is_the_rows_before_the_validation_window(scores):
    spec = FeatureSpec()
    ts = pd.Series(pd.date_range("2026-01-01", periods=30, freq="D", tz="UTC"))
    frame = input_frame(spec, 30, event_timestamp=ts)
    source = DataSource(Path("src"), TimeSplit.from_timestamps(ts), RAW_JOIN, "", TELECOM, joined=frame)
    ref = reference_rows(None, spec, source)
    assert len(ref) == 16  # 30 days less the test and the validation weeks


def score_rows(n: int, seed: int, tasks: list[str], flows: list[str], shift: dict | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    flow = rng.choice(flows, n)
    frame = pd.DataFrame({"age": rng.normal(40, 10, n), "flow": flow})
    for t in tasks:
        frame[score_column(t)] = np.where(flow == t.split("+")[0], rng.beta(2, 40, n) + (shift or {}).get(t, 0.0), np.nan)
    return frame


def test_another_vocabularys_tasks_are_compared_and_served_by_name():
    tasks = task_names(WEB_APP)
    reference, current = (score_rows(n, s, tasks, ["WEB", "APP"], {"APP+CTCVR": 0.05} if s else None)
                          for n, s in ((8_000, 0), (4_000, 1)))
    columns = {"age": "numerical", "flow": "categorical"}
    window, info = {"start": "a", "end": "b", "served_rows": 0}, {"model": "m", "version": "1", "run_id": "r"}
    log = pd.DataFrame({"flow": ["WEB"] * 4_000 + ["AAL"] * 10, "use_case": ["CTR"] * 4_010,
                        "score": [0.1] * 2_000 + [0.5] * 2_010,
                        "logged_at": pd.to_datetime(["2026-09-01"] * 2_000 + ["2026-09-08"] * 2_010, utc=True)})
    served = served_scores(log, pd.Timestamp("2026-09-07", tz="UTC"), pd.Timestamp("2026-09-14", tz="UTC"), WEB_APP)
    before = served_scores(log, pd.Timestamp("2026-08-31", tz="UTC"), pd.Timestamp("2026-09-07", tz="UTC"), WEB_APP)
    assert list(served.columns) == [score_column(t) for t in tasks] and served[score_column("WEB+CTR")].notna().sum() == 2_000
    result, _ = compare(reference, current, columns, WEB_APP, DriftPolicy.load(), window, info, served, before)
    assert [c.column for c in result.tasks] == [score_column(t) for t in tasks]
    assert [c.column for c in result.tasks if c.drifted] == [score_column("APP+CTCVR")]
    assert [c.column for c in result.served] == [score_column("WEB+CTR")] and result.served[0].drifted


# ---------------------------------------------------------------------------------------------
# The Evidently report says what the policy decides


def shifted(n: int, seed: int, n_columns: int, n_shifted: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(2.0 if i < n_shifted else 0.0, 1, n) for i in range(n_columns - 1)})
    frame["kind"] = rng.integers(0, 4, n)  # a categorical column, never shifted
    return frame


def evidently_and_policy(n_shifted: int, n: int = 3_000, policy: DriftPolicy | None = None):
    columns = {**{f"x{i}": "numerical" for i in range(9)}, "kind": "categorical"}
    result, snapshots = compare(shifted(n, 0, 10, 0), shifted(n, 1, 10, n_shifted), columns, [], policy or DriftPolicy.load(),
                                {"start": "a", "end": "b", "served_rows": 0}, {"model": "m", "version": "1", "run_id": "r"})
    return result, snapshots[0], dataset_drift(snapshots[0])


@pytest.mark.parametrize("n_shifted, drifted", [(4, True), (3, True), (2, False), (0, False)])
def test_the_reports_dataset_drift_is_the_policys_feature_decision(n_shifted, drifted):
    result, snapshot, verdict = evidently_and_policy(n_shifted)
    assert verdict["drift_share"] == DriftPolicy.load().feature_drift_share == 0.3
    assert verdict["count"] == n_shifted == sum(c.drifted for c in result.features)
    assert verdict["share"] == pytest.approx(result.feature_share)
    assert verdict["drifted"] is drifted and result.drifted is drifted
    tests = {t["metric_config"]["params"]["type"].rsplit(":", 1)[-1]: t for t in snapshot.dict()["tests"] if t["id"] == "lt"}
    assert tests["DriftedColumnsCount"]["status"] == ("FAIL" if drifted else "SUCCESS")  # "share less than 0.3"


def test_the_reports_threshold_is_the_policys(tmp_path):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("version: 2\nfeature_drift_share: 0.5\n")
    result, snapshot, verdict = evidently_and_policy(4, policy=DriftPolicy.load(policy_file))
    assert verdict == {"count": 4, "share": 0.4, "drift_share": 0.5, "drifted": False} and not result.drifted
    _, snapshot, _ = evidently_and_policy(4)
    html = tmp_path / "drift.html"
    snapshot.save_html(str(html))
    text = html.read_text()
    assert "Dataset Drift is detected. Dataset drift detection threshold is 0.3" in text
    assert "threshold is 0.5" not in text


def test_small_samples_use_evidentlys_own_verdict_for_p_value_tests():
    """Under 1,000 reference rows Evidently tests numbers with K-S: a p-value *below* the threshold
    is drift. The policy reads Evidently's verdict, so it still agrees with the report."""
    result, _, verdict = evidently_and_policy(4, n=900)
    assert {c.method for c in result.features if c.column.startswith("x")} == {"K-S p_value"}
    assert [c.column for c in result.features if c.drifted] == ["x0", "x1", "x2", "x3"]  # p-values ~0
    assert verdict["count"] == 4 and verdict["drifted"] and result.drifted
