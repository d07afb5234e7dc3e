"""Pipeline steps without kfp: the window snapshot the training pipeline validates and trains on."""

import pandas as pd

from grec.data.dataset import load_tables
from grec.data.simulate import SimulationConfig, simulate_to
from grec.pipeline.steps import comparison_markdown, snapshot_window


def test_snapshot_keeps_the_window_and_the_snapshots_made_before_its_end(tmp_path):
    simulate_to(tmp_path / "raw", SimulationConfig(n_impressions=5_000, train_weeks=2, monitor_weeks=1, seed=1))
    rows = snapshot_window(tmp_path / "raw", "2026-06-08", "2026-06-22", tmp_path / "snap")
    raw, snap = load_tables(tmp_path / "raw"), load_tables(tmp_path / "snap")
    ts = raw["impressions"]["event_timestamp"]
    inside = (ts >= pd.Timestamp("2026-06-08", tz="UTC")) & (ts < pd.Timestamp("2026-06-22", tz="UTC"))
    assert rows["impressions"] == int(inside.sum()) == len(snap["impressions"]) and 0 < inside.sum() < len(ts)
    pd.testing.assert_frame_equal(snap["impressions"], raw["impressions"][inside].reset_index(drop=True))
    assert len(snap["customers"]) == len(raw["customers"])  # profiles are stamped before the window opens


def test_comparison_table_names_the_leader_per_task():
    table = pd.DataFrame({"GRec": [0.8, 0.6], "mmoe": [0.7, 0.65], "positives": [100, 20]},
                         index=pd.Index(["AAL+CTR", "AAL+CVR"], name="task"))
    text = comparison_markdown(table, "GRec", "mmoe")
    assert "ahead on 1 of 2 tasks" in text and "| AAL+CVR | 20 | 0.6000 | 0.6500 | -0.0500 |" in text
