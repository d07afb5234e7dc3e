"""The drift decision on frames of known difference: same law -> no drift; a shifted share of
features -> drift naming them; a shifted score distribution for one task -> drift naming the task;
the prediction log's scores compared on their own; bad policy files refused naming the field."""

import numpy as np
import pandas as pd
import pytest

from grec.data.schema import TELECOM_TASKS, SchemaError
from grec.monitoring.drift import DriftPolicy, compare, score_column, served_scores, task_names, unranked

TASKS = task_names(TELECOM_TASKS)

COLUMNS = {"tenure_months": "numerical", "monthly_bill": "numerical", "price": "numerical", "flow": "categorical",
           "category": "categorical"}


def rows(n: int, seed: int, nse: float = 0.1, tenure_shift: float = 0.0, score_shift: dict | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    flow = rng.choice(["AAL", "EUP", "NSE"], n, p=[0.5, 0.5 - nse, nse] if nse < 0.5 else [0.3, 0.2, 0.5])
    frame = pd.DataFrame({"tenure_months": rng.exponential(48, n) + tenure_shift, "monthly_bill": rng.normal(60, 15, n),
                          "price": rng.lognormal(5, 0.5, n), "flow": flow, "category": rng.integers(0, 8, n)})
    for task in TASKS:
        f = task.split("+")[0]
        score = rng.beta(2, 40, n) + (score_shift or {}).get(task, 0.0)
        frame[score_column(task)] = np.where(flow == f, score, np.nan)
    return frame


def run(reference, current, policy=None, served=None, served_before=None):
    policy = policy or DriftPolicy.load()
    return compare(reference, current, COLUMNS, TASKS, policy, {"start": "a", "end": "b", "served_rows": 0},
                   {"model": "grec", "version": "1", "run_id": "r"}, served, served_before)[0]


def test_the_same_law_does_not_drift():
    result = run(rows(20_000, 0), rows(8_000, 1))
    assert not result.drifted and result.reasons == [] and result.feature_share == 0


def test_a_shift_in_many_features_is_drift_and_names_them():
    result = run(rows(20_000, 0), rows(8_000, 1, nse=0.6, tenure_shift=30))
    assert result.drifted
    assert {c.column for c in result.features if c.drifted} == {"flow", "tenure_months"}
    assert "flow" in result.reasons[0] and "40%" in result.reasons[0]
    assert "DRIFT" in result.markdown()


def test_window_rows_left_out_for_want_of_a_feature_value_are_said_in_the_report():
    left_out = {"customer_profile: no value within its TTL of 180 days, 0:00:00": {
        "rows": 12, "first": "2026-09-08", "last": "2026-09-09", "example": "customer_id=7 at 2026-09-08"}}
    result = compare(rows(20_000, 0), rows(8_000, 1), COLUMNS, TASKS, DriftPolicy.load(),
                     {"start": "a", "end": "b", "served_rows": 0, "left_out": left_out},
                     {"model": "grec", "version": "1", "run_id": "r"})[0]
    assert ("- customer_profile: no value within its TTL of 180 days, 0:00:00: 12 rows (2026-09-08 to 2026-09-09; "
            "e.g. customer_id=7 at 2026-09-08)") in result.markdown()
    assert result.to_dict()["window"]["left_out"] == left_out


def test_one_task_whose_scores_moved_is_drift_and_is_named():
    result = run(rows(20_000, 0), rows(8_000, 1, score_shift={"EUP+CVR": 0.05}))
    assert result.drifted and result.feature_share == 0
    assert [c.column for c in result.tasks if c.drifted] == [score_column("EUP+CVR")]
    assert result.reasons == ["champion scores drifted on 1 task(s): EUP+CVR"]


def test_served_scores_are_compared_with_the_window_before():
    rng = np.random.default_rng(3)
    log = pd.DataFrame({"flow": "AAL", "use_case": "CTR", "score": np.r_[rng.beta(2, 40, 3_000), rng.beta(2, 40, 3_000) + 0.1],
                        "logged_at": np.repeat(pd.to_datetime(["2026-09-01", "2026-09-08"], utc=True), 3_000)})
    week = pd.Timestamp("2026-09-07", tz="UTC"), pd.Timestamp("2026-09-14", tz="UTC")
    served = served_scores(log, *week, TELECOM_TASKS)
    before = served_scores(log, week[0] - pd.Timedelta(days=7), week[0], TELECOM_TASKS)
    assert served[score_column("AAL+CTR")].notna().all() and served[score_column("EUP+CTR")].isna().all()
    assert len(served) == len(before) == 3_000
    result = run(rows(20_000, 0), rows(8_000, 1), served=served, served_before=before)
    assert [c.column for c in result.served] == [score_column("AAL+CTR")] and result.served[0].drifted
    assert result.reasons == ["served scores drifted on 1 task(s): AAL+CTR"]
    # the same law a week later: no drift (against the training rows, candidates are another population)
    same = served_scores(log.assign(score=rng.beta(2, 40, 6_000)), *week, TELECOM_TASKS)
    assert not run(rows(20_000, 0), rows(8_000, 1), served=same, served_before=before).drifted
    # the first served window: nothing to compare it with, and the report says so
    first = run(rows(20_000, 0), rows(8_000, 1), served=served)
    assert not first.drifted and first.served == [] and "window before" in first.markdown()
    outside = served_scores(log, pd.Timestamp("2026-09-14", tz="UTC"), pd.Timestamp("2026-09-21", tz="UTC"), TELECOM_TASKS)
    assert outside.empty


def test_impressions_the_service_placed_are_left_out_of_the_window():
    rng = np.random.default_rng(4)
    n = 2_000
    window = pd.DataFrame({"impression_id": np.arange(n), "customer_id": rng.integers(0, 300, n),
                           "item_id": rng.integers(0, 50, n), "flow": "AAL", "clicked": 0,
                           "event_timestamp": pd.Timestamp("2026-09-08", tz="UTC") + pd.to_timedelta(np.arange(n), "min")})
    placed = window.iloc[::4]  # the service ranked these pages a second before they were shown
    log = pd.DataFrame({"request_id": [f"r{i}" for i in range(len(placed))], "endpoint": "rank", "use_case": "CTR",
                        "customer_id": placed["customer_id"].to_numpy(), "item_id": placed["item_id"].to_numpy(),
                        "flow": "AAL", "score": 0.1, "event_timestamp": placed["event_timestamp"] - pd.Timedelta(seconds=1),
                        "logged_at": pd.Timestamp("2026-12-01", tz="UTC")})
    week = pd.Timestamp("2026-09-07", tz="UTC"), pd.Timestamp("2026-09-14", tz="UTC")
    kept, notes = unranked(window, log, TELECOM_TASKS, DriftPolicy.load(), *week)
    assert set(kept["impression_id"]) == set(window["impression_id"]) - set(placed["impression_id"])
    assert notes and notes[0].startswith("500 of the window's 2,000 impressions")
    assert unranked(window, log.iloc[:0], TELECOM_TASKS, DriftPolicy.load(), *week) == (window, [])
    # the log's pages of another week place nothing in this one
    assert unranked(window, log, TELECOM_TASKS, DriftPolicy.load(), week[1], week[1] + pd.Timedelta(days=7))[1] == []
    # a window the service placed almost whole is compared as it is, and the note says so
    kept, notes = unranked(window.iloc[::4], log, TELECOM_TASKS, DriftPolicy.load(), *week)
    assert len(kept) == 500 and "compared as they are" in notes[0]


def test_tasks_with_too_few_rows_are_not_compared():
    current = rows(8_000, 1)
    current.loc[current["flow"] == "NSE", [score_column(t) for t in TASKS if t.startswith("NSE")]] = np.nan
    result = run(rows(20_000, 0), current)
    assert set(result.not_compared) == {t for t in TASKS if t.startswith("NSE")}


@pytest.mark.parametrize("text, field", [
    ("feature_drift_share: 0.3\n", "version"),
    ("version: 1\nfeature_drift_share: 0\n", "feature_drift_share"),
    ("version: 1\nthreshold: 0.2\n", "threshold"),
    ("version: 1\ndrifted_tasks: 0\n", "drifted_tasks"),
])
def test_bad_policy_files_are_refused_naming_the_field(tmp_path, text, field):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(SchemaError, match=field):
        DriftPolicy.load(path)
