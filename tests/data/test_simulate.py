"""Tests for the storefront simulator: funnel, windows, contract types, determinism, ground truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grec.data import schema
from grec.data.schema import oracle_scores
from grec.data.simulate import (
    CATEGORY_KEYWORD,
    MAX_SEQ_LEN,
    PROSPECT_MAX_SEQ_LEN,
    SimulationConfig,
    simulate,
    simulate_to,
    summarize,
)
from grec.data.contract import to_arrow, write_tables

CONFIG = SimulationConfig(n_impressions=40_000, seed=7)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def impressions(tables) -> pd.DataFrame:
    return tables["impressions"]


@pytest.fixture(scope="module")
def summary(tables) -> dict:
    return summarize(tables)


@pytest.fixture(scope="module")
def written(tables, tmp_path_factory) -> dict:
    return write_tables(tables, tmp_path_factory.mktemp("simulated"))


# ------------------------------------------------------------------ funnel and rates


def test_funnel_is_nested(impressions):
    click, atc, purchase = (impressions[k].to_numpy() for k in ("click", "add_to_cart", "purchase"))
    assert np.all(atc <= click), "add_to_cart without click"
    assert np.all(purchase <= atc), "purchase without add_to_cart"
    assert set(np.unique(click)) <= {0, 1}


def test_rates_in_band(summary):
    rates = summary["rates"]["all"]
    assert 0.015 < rates["click_rate"] < 0.06, rates
    assert 0.12 < rates["add_to_cart_per_click"] < 0.40, rates
    assert rates["purchase_per_click"] <= 0.12, rates
    assert rates["purchase_rate"] < rates["click_rate"] / 8  # conversions much rarer than clicks


def test_rates_differ_by_flow(summary):
    by_flow = summary["rates"]
    # Prospects (NSE) convert less: credit checks, no tenure.
    assert by_flow["NSE"]["purchase_per_click"] < by_flow["EUP"]["purchase_per_click"]
    assert by_flow["NSE"]["purchase_per_click"] < by_flow["AAL"]["purchase_per_click"]
    assert len({round(by_flow[f]["click_rate"], 4) for f in schema.FLOWS}) == 3


def test_flows_and_customers(tables, impressions):
    assert set(impressions["flow"].unique()) == set(schema.FLOWS)
    joined = impressions.merge(tables["customers"], on="customer_id", validate="many_to_one")
    nse = joined["flow"] == "NSE"
    # Prospects: no tenure, plan, lines or bill; existing customers have them.
    assert (joined.loc[nse, ["tenure_months", "plan_type", "lines_on_account", "monthly_bill"]] == 0).all().all()
    assert (joined.loc[~nse, "tenure_months"] > 0).all()
    assert (joined.loc[~nse, "lines_on_account"] >= 1).all()
    # Upgraders have older devices.
    age = joined.groupby("flow")["device_age_months"].mean()
    assert age["EUP"] > age["AAL"]
    prospects = (tables["customers"]["tenure_months"] == 0).mean()
    assert 0.1 < prospects < 0.3


# ------------------------------------------------------------------ time


def test_timestamps_inside_window_and_sorted(impressions):
    ts = impressions["event_timestamp"]
    (train_start, train_end), (test_start, test_end) = CONFIG.windows.train, CONFIG.windows.test
    assert train_end == test_start
    assert ts.min() >= train_start and ts.max() < test_end
    assert ts.is_monotonic_increasing
    np.testing.assert_array_equal(impressions["impression_id"].to_numpy(), np.arange(len(impressions)))
    test_share = (ts >= test_start).mean()
    expected = CONFIG.test_weeks / (CONFIG.train_weeks + CONFIG.test_weeks)
    assert abs(test_share - expected) < 0.015


def test_diurnal_pattern(impressions):
    hours = impressions["event_timestamp"].dt.hour.value_counts()
    assert hours.loc[[19, 20]].sum() > 3 * hours.loc[[3, 4]].sum()


def test_windows_accessors():
    windows = SimulationConfig(start="2026-01-05", train_weeks=2, test_weeks=1).windows
    assert windows.train == windows["train"] == windows[0]
    assert windows.test[1] - windows.train[0] == pd.Timedelta(weeks=3)
    assert str(windows.train[0].tz) == "UTC"


def test_flow_shift_drift_changes_only_the_drift_weeks():
    """The same world with and without the drift: rows before the drift start are identical, and
    after it the new-customer promotion moves traffic to NSE."""
    base = dict(n_impressions=30_000, seed=3, train_weeks=2, test_weeks=1, monitor_weeks=2)
    clean = simulate(SimulationConfig(**base))
    drifted_config = SimulationConfig(**base, drift=("flow_shift",))
    drifted = simulate(drifted_config)
    pd.testing.assert_frame_equal(clean["customers"], drifted["customers"])
    pd.testing.assert_frame_equal(clean["items"], drifted["items"])
    start = drifted_config.drift_start
    assert start == drifted_config.windows.monitor[1] - pd.Timedelta(weeks=1)
    before = [t["impressions"][t["impressions"]["event_timestamp"] < start].drop(columns="impression_id") for t in (clean, drifted)]
    pd.testing.assert_frame_equal(*before)
    nse = [(t["impressions"].loc[t["impressions"]["event_timestamp"] >= start, "flow"] == "NSE").mean() for t in (clean, drifted)]
    assert nse[1] > 2 * nse[0]
    with pytest.raises(ValueError, match="unknown scenario"):
        SimulationConfig(**base, drift=("meteor",))
    with pytest.raises(ValueError, match="monitor weeks"):
        SimulationConfig(n_impressions=1_000, drift=("flow_shift",))


def test_price_change_snapshots_the_phones_and_lowers_their_add_to_cart():
    base = dict(n_impressions=30_000, seed=3, train_weeks=2, test_weeks=1, monitor_weeks=1)
    clean = simulate(SimulationConfig(**base))
    config = SimulationConfig(**base, drift=("price_change",))
    drifted = simulate(config)
    items, start = drifted["items"], config.drift_start
    new = items[items["updated_at"] == start]
    old = items[items["updated_at"] < start].set_index("item_id").loc[new["item_id"]]
    assert len(new) > 0 and len(old) == len(clean["items"].merge(new[["item_id"]]))
    np.testing.assert_allclose(new["price"].to_numpy(), old["price"].to_numpy() * 1.25, rtol=1e-4)
    assert (new["discount_pct"] == 0).all()
    pd.testing.assert_frame_equal(clean["items"], items[items["updated_at"] < start].reset_index(drop=True))
    phones = set(new["item_id"])
    after = [t["impressions"][(t["impressions"]["event_timestamp"] >= start) & t["impressions"]["item_id"].isin(phones)]
             for t in (clean, drifted)]
    assert len(after[0]) == len(after[1]) > 500  # the same impressions, shown as before
    atc = [a["p_add_to_cart_given_click"].mean() for a in after]
    assert atc[1] < 0.9 * atc[0]  # dearer phones: fewer carts
    before = [t["impressions"][t["impressions"]["event_timestamp"] < start] for t in (clean, drifted)]
    pd.testing.assert_frame_equal(*before)


def test_device_launch_adds_new_flagships_shown_only_after_the_launch():
    base = dict(n_impressions=30_000, seed=3, train_weeks=2, test_weeks=1, monitor_weeks=1)
    clean = simulate(SimulationConfig(**base))
    config = SimulationConfig(**base, drift=("device_launch",))
    launched = simulate(config)
    n, start = len(clean["items"]), config.drift_start
    pd.testing.assert_frame_equal(clean["items"], launched["items"].iloc[:n])
    new = launched["items"].iloc[n:]
    assert len(new) == 6 and (new["updated_at"] == start).all() and (new["category"] == 0).all()  # flagships
    assert (new["discount_pct"] == 0).all() and new["description"].str.len().min() > 20
    imp = launched["impressions"]
    is_new = imp["item_id"] >= n
    assert not (is_new & (imp["event_timestamp"] < start)).any()  # nothing shown before the launch
    assert is_new[imp["event_timestamp"] >= start].mean() > 0.03  # launch hype: a visible share after it
    before = [t["impressions"][t["impressions"]["event_timestamp"] < start] for t in (clean, launched)]
    pd.testing.assert_frame_equal(*before)


def test_config_defaults_and_validation():
    assert SimulationConfig(n_impressions=1_000).customer_count == 200
    assert SimulationConfig(n_impressions=100_000).customer_count == 5_000
    assert SimulationConfig(n_impressions=100_000, n_customers=123).customer_count == 123
    with pytest.raises(ValueError):
        SimulationConfig(n_pages=5)
    with pytest.raises(ValueError):
        SimulationConfig(n_items=3)


# ------------------------------------------------------------------ contract


def test_frames_have_schema_columns_in_order(tables):
    for name, table in schema.TABLES.items():
        assert list(tables[name].columns) == table.names()


def test_written_arrow_types_match_schema(written):
    for name, table in schema.TABLES.items():
        arrow_schema = pq.read_schema(written[name])
        assert arrow_schema.names == table.names(), name
        for column in table.columns:
            assert arrow_schema.field(column.name).type == schema.ARROW_TYPES[column.dtype], (name, column.name)


def test_written_tables_read_back(tables, written):
    for name in schema.TABLES:
        back = pq.read_table(written[name])
        assert back.num_rows == len(tables[name])
    items = pq.read_table(written["items"]).to_pandas()
    lengths = items["image_embedding"].map(len)
    assert (lengths == CONFIG.embedding_dim).all()
    assert items["image_embedding"].iloc[0].dtype == np.float32
    impressions = pq.read_table(written["impressions"])
    assert impressions.column("viewed_item_ids").combine_chunks().equals(
        to_arrow(tables["impressions"], schema.IMPRESSIONS).column("viewed_item_ids").combine_chunks())


def test_write_is_atomic_and_leaves_no_temp_files(written):
    folder = next(iter(written.values())).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(t.file for t in schema.TABLES.values())


def test_simulate_to_writes_summary(tmp_path):
    config = SimulationConfig(n_impressions=3_000, seed=1)
    paths = simulate_to(tmp_path, config)
    assert set(paths) == {"customers", "items", "impressions", "simulation"}
    meta = json.loads(paths["simulation"].read_text())
    assert meta["config"]["n_impressions"] == 3_000
    assert meta["config"]["n_customers"] == config.customer_count
    assert set(meta["summary"]["oracle_auc_by_task"]) == {schema.task_name(t) for t in range(len(schema.TASKS))}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_categorical_codes_are_non_negative(tables):
    for name, table in schema.TABLES.items():
        for column in table.names(schema.Role.CONTEXT_CATEGORICAL, schema.Role.ITEM_CATEGORICAL):
            assert (tables[name][column] >= 0).all(), column
    assert tables["impressions"]["page_id"].max() < CONFIG.n_pages
    assert set(tables["impressions"]["position"].unique()) <= set(range(6))


# ------------------------------------------------------------------ determinism


def _as_arrow(frames: dict[str, pd.DataFrame]) -> dict[str, pa.Table]:
    return {name: to_arrow(frame, schema.TABLES[name]) for name, frame in frames.items()}


def test_deterministic_under_seed():
    config = SimulationConfig(n_impressions=4_000, seed=3)
    first, second = _as_arrow(simulate(config)), _as_arrow(simulate(config))
    for name in schema.TABLES:
        assert first[name].equals(second[name]), name
    other = _as_arrow(simulate(SimulationConfig(n_impressions=4_000, seed=4)))
    assert not first["impressions"].equals(other["impressions"])
    assert not first["items"].equals(other["items"])


def test_world_does_not_depend_on_impression_count():
    small = simulate(SimulationConfig(n_impressions=2_000, n_customers=300, seed=5))
    large = simulate(SimulationConfig(n_impressions=5_000, n_customers=300, seed=5))
    for name in ("customers", "items"):
        assert to_arrow(small[name], schema.TABLES[name]).equals(to_arrow(large[name], schema.TABLES[name]))


def test_to_arrow_names_the_bad_column(tables):
    broken = tables["customers"].head().assign(region=["a", "b", "c", "d", "e"])
    with pytest.raises(schema.SchemaError, match="region"):
        to_arrow(broken, schema.CUSTOMERS)
    with pytest.raises(schema.SchemaError, match="monthly_bill"):
        to_arrow(tables["customers"].drop(columns="monthly_bill"), schema.CUSTOMERS)


# ------------------------------------------------------------------ ground truth


def test_probabilities_are_valid(impressions):
    for column in schema.ORACLE_COLUMNS:
        p = impressions[column].to_numpy()
        assert p.dtype == np.float32
        assert np.all((p > 0) & (p < 1)), column


def test_oracle_scores_follow_the_funnel(impressions):
    scores = oracle_scores(impressions)
    assert set(scores) == set(schema.USE_CASES)
    np.testing.assert_allclose(scores["CTCVR"], scores["CTR"] * scores["CVR"], rtol=1e-6)
    assert np.all(scores["ATC"] <= scores["CTR"]) and np.all(scores["CTCVR"] <= scores["ATC"])


def test_oracle_auc_in_plausible_band(summary):
    for use_case, auc in summary["oracle_auc"]["all"].items():
        assert 0.65 < auc < 0.92, (use_case, auc)
    for task, auc in summary["oracle_auc_by_task"].items():
        if task.endswith("CTR") or task.endswith("ATC"):  # enough positives per flow at this size
            assert 0.6 < auc < 0.92, (task, auc)


def test_oracle_is_calibrated(impressions):
    # The stored probabilities are the ones the labels were drawn from.
    assert abs(impressions["p_click"].mean() - impressions["click"].mean()) < 0.004
    clicked = impressions[impressions["click"] == 1]
    assert abs(clicked["p_add_to_cart_given_click"].mean() - clicked["add_to_cart"].mean()) < 0.04


# ------------------------------------------------------------------ sequences


def test_sequences_are_aligned_and_valid(tables, impressions):
    items = impressions["viewed_item_ids"]
    pages = impressions["visited_page_ids"]
    lengths = items.map(len).to_numpy()
    assert lengths.max() <= MAX_SEQ_LEN and lengths.min() == 0
    np.testing.assert_array_equal(lengths, pages.map(len).to_numpy())
    assert lengths[impressions["flow"].to_numpy() == "NSE"].max() <= PROSPECT_MAX_SEQ_LEN
    flat_items = np.concatenate(items.to_numpy())
    flat_pages = np.concatenate(pages.to_numpy())
    assert flat_items.dtype == np.int64 and flat_pages.dtype == np.int64
    assert flat_items.min() >= 0 and flat_items.max() < len(tables["items"])
    assert flat_pages.min() >= 0 and flat_pages.max() < CONFIG.n_pages


def test_sequences_reflect_the_customer(impressions):
    # Rows of the same customer share history: consecutive views overlap.
    long = impressions[impressions["viewed_item_ids"].map(len) >= 10]
    one = long[long["customer_id"] == long["customer_id"].mode()[0]]
    histories = [set(s) for s in one["viewed_item_ids"]]
    assert len(histories) >= 3
    overlap = np.mean([len(a & b) > 0 for a, b in zip(histories, histories[1:])])
    assert overlap > 0.5


def test_recently_viewed_items_are_clicked_more(impressions):
    viewed = np.fromiter((i in s for i, s in zip(impressions["item_id"], impressions["viewed_item_ids"])),
                         bool, len(impressions))
    assert 0.02 < viewed.mean() < 0.3
    click = impressions["click"].to_numpy()
    assert click[viewed].mean() > 1.3 * click[~viewed].mean()


# ------------------------------------------------------------------ search and catalogue


def _query_matches_category(impressions: pd.DataFrame, items: pd.DataFrame) -> np.ndarray:
    category = items.set_index("item_id")["category"].reindex(impressions["item_id"]).to_numpy()
    query = impressions["search_query"].to_numpy()
    match = np.zeros(len(impressions), dtype=bool)
    for k, pattern in enumerate(CATEGORY_KEYWORD):
        rows = np.flatnonzero((category == k) & (query != ""))
        match[rows] = pd.Series(query[rows]).str.contains(pattern).to_numpy()
    return match


def test_search_queries_present_and_reveal_intent(tables, impressions):
    query = impressions["search_query"]
    searched = (query != "").to_numpy()
    assert 0.2 < searched.mean() < 0.35
    assert query.map(lambda q: isinstance(q, str)).all()
    match = _query_matches_category(impressions, tables["items"])
    click = impressions["click"].to_numpy()
    assert 0.2 < match[searched].mean() < 0.8
    # A query naming the shown item's category means a much likelier click (the keyword proxy
    # misses brand-only queries and typos, and cannot tell phone tiers apart, so the gap is smaller
    # than the true intent effect).
    assert click[match].mean() > 1.5 * click[searched & ~match].mean()


def test_search_queries_depend_on_flow(impressions):
    searched = impressions[impressions["search_query"] != ""]
    kids = searched["search_query"].str.contains("for kids|add a line|second line")
    assert kids[searched["flow"] == "AAL"].mean() > 5 * max(kids[searched["flow"] == "EUP"].mean(), 1e-4)


def test_items_catalogue(tables):
    items = tables["items"]
    assert len(items) == CONFIG.n_items
    assert items["item_id"].is_unique
    assert (items["price"] > 0).all() and items["rating"].between(1, 5).all()
    assert (items["discount_pct"] == 0).mean() > 0.5
    assert items["description"].map(lambda d: isinstance(d, str) and len(d) > 20).all()
    # Accessories have no OS; phones do.
    phones = items["category"] <= 2
    assert (items.loc[phones, "os"] > 0).all()
    assert (items.loc[items["category"] >= 5, "os"] == 0).all()
    assert items["image_embedding"].map(len).eq(CONFIG.embedding_dim).all()


def test_embeddings_reveal_category(tables):
    items = tables["items"]
    image = np.stack(items["image_embedding"].to_numpy())
    category = items["category"].to_numpy()
    centres = np.stack([image[category == k].mean(axis=0) for k in range(category.max() + 1)])
    nearest = np.argmax(image @ centres.T, axis=1)
    assert (nearest == category).mean() > 0.6
