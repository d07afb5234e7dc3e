"""An A/B test on the simulated storefront (grec.experiment): requests of the served world's last
week split by customer, ranked through the service's path, shown to the world; the report's counts
are the logs', what was shown is where it was ranked, and the batch appends to the data folder."""

import shutil

import numpy as np
import pandas as pd
import pytest

from grec.data.append import append_batch
from grec.data.contract import read_contract, write_tables
from grec.data.simulate_online import SLOTS, Storefront
from grec.data.schema import TaskVocabulary
from grec.data.tables import load_tables
from grec.experiment import MIN_CONVERSIONS, ExperimentConfig, report, run_experiment
from grec.serving.experiment import Split
from grec.serving.prediction_log import read_log


@pytest.fixture(scope="module")
def aa(served, tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    version = f"grec:{served['version']}"
    config = ExperimentConfig("aa-test", version, version, "2026-08-31", "2026-09-07", requests=800, seed=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GREC_HOME", str(served["home"]))
        result = run_experiment(served["data"], config, out, log=lambda *_: None)
    return config, result, out


def test_each_customer_sees_one_arm_the_split_says(aa):
    config, result, out = aa
    log = read_log(out / "predictions").drop_duplicates("request_id")
    assert len(log) == config.requests == sum(result.requests.values())
    split = Split(config.name, config.treatment_share)
    assert (log["arm"] == log["customer_id"].map(split.arm)).all()
    assert log.groupby("customer_id")["arm"].nunique().max() == 1
    assert 0.35 < (log["arm"] == "challenger").mean() < 0.65


def test_the_reports_counts_are_the_logs(aa, served):
    config, result, out = aa
    tasks = read_contract(served["data"]).tasks
    shown = pd.read_parquet(out / "batch" / "impressions.parquet")
    log = read_log(out / "predictions").drop_duplicates("request_id").set_index("request_id")
    # independently of the join: the world's requests in order, each shown on its first slots
    requests = Storefront.of(served["data"]).requests(pd.Timestamp(config.start), pd.Timestamp(config.end),
                                                      config.requests, config.seed).frame
    counts = requests["candidates"].map(len).clip(upper=SLOTS).to_numpy()
    assert len(shown) == counts.sum()
    request = np.repeat(np.arange(len(requests)), counts)
    use_case = np.array(tasks.use_cases)[request % len(tasks.use_cases)]
    label = np.select([use_case == u for u in tasks.use_cases], [shown[tasks.labels[u]] for u in tasks.use_cases])
    arm = log.loc[[f"{result.request_prefix}{r}" for r in request], "arm"].to_numpy()
    for name in ("champion", "challenger"):
        assert sum(row[name]["conversions"] for row in result.tasks) == label[arm == name].sum()
        assert sum(row[name]["requests"] for row in result.tasks) == result.requests[name]
    # what was shown is where it was ranked
    ranks = read_log(out / "predictions").set_index(["request_id", "item_id"])["rank"]
    keys = list(zip([f"{result.request_prefix}{r}" for r in request], shown["item_id"]))
    np.testing.assert_array_equal(ranks.loc[keys].to_numpy(), shown["position"].to_numpy())


def test_the_intervals_hold_their_estimates_and_the_batch_appends(aa, served, tmp_path):
    config, result, out = aa
    for row in result.use_cases + result.tasks:
        for arm in ("champion", "challenger"):
            lo, hi = row[arm]["interval"]
            assert lo <= row[arm]["per_1000"] <= hi
        if row["lift_interval"] is not None and row["lift"] is not None:
            assert row["lift_interval"][0] <= row["lift"] <= row["lift_interval"][1]
        lo, hi = row["difference_interval"]
        assert lo <= row["difference"] <= hi
    assert "| use case |" in (out / "result.md").read_text()
    folder = tmp_path / "shop"
    write_tables(load_tables(served["data"]), folder, read_contract(served["data"]))
    before = len(load_tables(folder)["impressions"])
    append_batch(folder, out / "batch")
    assert len(load_tables(folder)["impressions"]) == before + result.impressions


def _served_rows(rates: dict[str, float], requests: int, seed: int) -> tuple[pd.DataFrame, object]:
    """Served rows of a one-task world: `requests` per arm, six items each, converting at the arm's rate."""
    tasks = TaskVocabulary(("AAL",), ("CVR",), {"CVR": "purchase"}, {"CVR": None})
    rng = np.random.default_rng(seed)
    frames = []
    for arm, rate in rates.items():
        n = requests * 6
        frames.append(pd.DataFrame({"request_id": np.repeat([f"{arm}-{r}" for r in range(requests)], 6),
                                    "arm": arm, "customer_id": np.repeat(rng.integers(0, 10**9, requests), 6),
                                    "flow": "AAL", "use_case": "CVR", "purchase": rng.random(n) < rate}))
    return pd.concat(frames, ignore_index=True), tasks


def test_the_verdict_reads_the_difference_and_needs_conversions():
    joined, tasks = _served_rows({"champion": 0.01, "challenger": 0.03}, 3000, seed=0)
    (row,), _ = report(joined, tasks)
    assert row["verdict"] == "treatment ahead" and row["difference_interval"][0] > 0
    # an arm that converted nothing: the lift's interval is undefined, the difference's is not
    joined, tasks = _served_rows({"champion": 0.0005, "challenger": 0.0}, 400, seed=1)
    (row,), _ = report(joined, tasks)
    assert row["challenger"]["conversions"] == 0 < row["champion"]["conversions"] < MIN_CONVERSIONS
    assert row["verdict"] == "too few conversions"
    # the same arm twice: level, in most worlds
    verdicts = [report(*_served_rows({"champion": 0.02, "challenger": 0.02}, 2000, seed=s))[0][0]["verdict"]
                for s in range(10)]
    assert verdicts.count("level") >= 8


def test_serving_a_production_week_logs_it_and_appends_what_happened(served, tmp_path, monkeypatch):
    """`grec experiment serve`: the champion ranks a window of the world; the service's own log has
    each request at the page's time; the outcomes are appended to the data folder (a copy here)."""
    from typer.testing import CliRunner

    from grec.cli import app

    monkeypatch.setenv("GREC_HOME", str(served["home"]))
    data = tmp_path / "shop"
    shutil.copytree(served["data"], data)  # the tables and the world's simulation.json
    before = len(load_tables(data)["impressions"])
    done = CliRunner().invoke(app, ["experiment", "serve", "--start", "2026-09-01", "--end", "2026-09-03",
                                    "--requests", "150", "--data", str(data)])
    assert done.exit_code == 0, done.output
    assert "Served 150 requests with grec:v" in done.output
    log = read_log(served["home"] / "predictions")
    mine = log[log["request_id"].str.startswith("served-2026-09-01-", na=False)].drop_duplicates("request_id")
    assert len(mine) == 150 and set(mine["arm"]) == {"champion"}
    times = pd.to_datetime(mine["event_timestamp"], utc=True)
    assert times.between(pd.Timestamp("2026-09-01", tz="UTC"), pd.Timestamp("2026-09-03", tz="UTC")).all()
    after = load_tables(data)["impressions"]
    assert len(after) > before and after["impression_id"].is_unique
    # drift compares like with like: the impressions the champion placed are its own picks, left out
    from grec.pipeline import steps

    shown = len(after) - before
    result, _ = steps.monitor(data, "2026-08-27", "2026-09-03", tmp_path / "drift")  # a week: enough logged rows
    assert result.notes[0].startswith(f"{shown:,} of the window's") and "left out" in result.notes[0]
    assert result.served == [] and "window before" in result.notes[1]  # the first served window
