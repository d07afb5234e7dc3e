"""Pipeline steps without kfp: the window snapshot the training pipeline validates and trains on."""

import pandas as pd

from grec.data.tables import load_tables
from grec.data.simulate import SimulationConfig, simulate_to
from grec.pipeline.steps import comparison_markdown, snapshot_window


def test_snapshot_keeps_the_window_and_the_snapshots_made_before_its_end(tmp_path):
    simulate_to(tmp_path / "raw", SimulationConfig(n_impressions=5_000, train_weeks=2, monitor_weeks=1, seed=1))
    snapshot = snapshot_window(tmp_path / "raw", "2026-06-08", "2026-06-22", tmp_path / "snap")
    rows, left_out = snapshot["rows"], snapshot["left_out"]
    raw, snap = load_tables(tmp_path / "raw"), load_tables(tmp_path / "snap")
    ts = raw["impressions"]["event_timestamp"]
    inside = (ts >= pd.Timestamp("2026-06-08", tz="UTC")) & (ts < pd.Timestamp("2026-06-22", tz="UTC"))
    assert rows["impressions"] == int(inside.sum()) == len(snap["impressions"]) and 0 < inside.sum() < len(ts)
    # every impression it leaves out is counted, by why
    assert left_out["impressions before the window"]["rows"] == int((ts < pd.Timestamp("2026-06-08", tz="UTC")).sum())
    assert left_out["impressions from the window's end on"]["rows"] == int((ts >= pd.Timestamp("2026-06-22", tz="UTC")).sum())
    assert sum(v["rows"] for k, v in left_out.items() if k.startswith("impressions")) + rows["impressions"] == len(ts)
    pd.testing.assert_frame_equal(snap["impressions"], raw["impressions"][inside].reset_index(drop=True))
    assert len(snap["customers"]) == len(raw["customers"])  # profiles are stamped before the window opens


def test_comparison_table_names_the_leader_per_task():
    table = pd.DataFrame({"GRec": [0.8, 0.6], "mmoe": [0.7, 0.65], "positives": [100, 20]},
                         index=pd.Index(["AAL+CTR", "AAL+CVR"], name="task"))
    text = comparison_markdown(table, "GRec", "mmoe")
    assert "ahead on 1 of 2 tasks" in text and "| AAL+CVR | 20 | 0.6000 | 0.6500 | -0.0500 |" in text


def test_comparison_reads_each_difference_against_its_interval_and_says_what_serving_takes():
    table = pd.DataFrame({"GRec": [0.8, 0.6], "mmoe": [0.7, 0.65], "lightgbm": [0.75, 0.5], "positives": [100, 20]},
                         index=pd.Index(["AAL+CTR", "AAL+CVR"], name="task"))
    table.attrs["intervals"] = {"mmoe": {"AAL+CTR": [0.05, 0.15], "AAL+CVR": [-0.2, 0.1], "mean": [-0.04, 0.08]},
                                "lightgbm": {"AAL+CTR": [0.01, 0.09], "AAL+CVR": [0.02, 0.2], "mean": [0.01, 0.12]}}
    table.attrs["costs"] = {"GRec": {"models": 1, "flops_per_row": 2.5e6, "request_seconds": 0.004},
                            "lightgbm": {"models": 12, "flops_per_row": 0.0, "comparisons_per_row": 1234.0,
                                         "request_seconds": 0.002}}
    text = comparison_markdown(table, "GRec", ["mmoe", "lightgbm"])
    assert "against mmoe: ahead on 1 of 2 tasks; mean difference +0.0250 (95% interval [-0.0400, +0.0800]: inside the noise)" in text
    assert "against lightgbm: ahead on 2 of 2 tasks" in text and "ahead beyond the noise" in text
    assert "| AAL+CVR | 20 | 0.6000 | 0.6500 | 0.5000 | -0.0500 [-0.200, +0.100] | +0.1000 [+0.020, +0.200] |" in text
    assert "| GRec | 1 | 2.50 MFLOPs | 4.00 ms |" in text and "| lightgbm | 12 | 1,234 node comparisons | 2.00 ms |" in text


def test_impressions_stamped_in_the_future_stop_the_pipeline_by_count(tmp_path):
    """A planted +365-day shift: not silently outside the window, but refused before training."""
    import pytest

    from grec.data.contract import write_tables
    from grec.pipeline.steps import ValidationFailed, validate_window

    simulate_to(tmp_path / "raw", SimulationConfig(n_impressions=5_000, train_weeks=2, seed=1))
    tables = load_tables(tmp_path / "raw")
    tables["impressions"].loc[:99, "event_timestamp"] = pd.Timestamp.now(tz="UTC").floor("s") + pd.Timedelta(days=365)
    write_tables(tables, tmp_path / "shifted")
    with pytest.raises(ValidationFailed, match="100 impressions are stamped in the future"):
        validate_window(tmp_path / "shifted", "2026-06-01", "2026-06-15", tmp_path / "snap", tmp_path / "report")
