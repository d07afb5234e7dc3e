"""The storefront as a ranking service meets it (grec.data.simulate_online): requests of the logs'
world, rankings shown at the carousel's positions, outcomes drawn from the true funnel; deterministic
per seed; what it writes is a batch the data folder takes."""

import numpy as np
import pandas as pd
import pytest

from grec.data.append import append_batch
from grec.data.contract import as_stored, read_contract, write_tables
from grec.data.simulate import SimulationConfig, simulate_to
from grec.data.simulate_online import SLOTS, Storefront
from grec.data.tables import load_tables
from grec.io import write_parquet


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("online") / "shop"
    simulate_to(data, SimulationConfig(n_impressions=4_000, train_weeks=2, monitor_weeks=1, seed=11))
    return data, Storefront.of(data)


def week(store: Storefront) -> tuple[pd.Timestamp, pd.Timestamp]:
    return store.config.windows.monitor


def test_requests_are_the_logs_world(world):
    data, store = world
    tables = load_tables(data)
    requests = store.requests(*week(store), 300, seed=1).frame
    start, end = week(store)
    assert requests["event_timestamp"].between(start, end, inclusive="left").all()
    assert requests["event_timestamp"].is_monotonic_increasing
    assert set(requests["customer_id"]) <= set(tables["customers"]["customer_id"])
    assert set(requests["flow"]) <= set(tables["impressions"]["flow"])
    items = set(tables["items"]["item_id"])
    for candidates in requests["candidates"]:
        assert 1 < len(candidates) == len(set(candidates)) and set(candidates) <= items
    # a search request says what it is after; a page without search has no query
    assert ((requests["search_query"] != "") == (requests["page_id"] == 1)).mean() > 0.95


def test_the_same_seed_draws_the_same_requests_and_outcomes(world):
    _, store = world
    first, again, other = (store.requests(*week(store), 200, seed=s) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert not first.frame["customer_id"].equals(other.frame["customer_id"])
    ranked = [list(c) for c in first.frame["candidates"]]
    shown = store.show(first, ranked, seed=4, first_id=10_000)
    pd.testing.assert_frame_equal(shown, store.show(again, ranked, seed=4, first_id=10_000))
    assert not shown["click"].equals(store.show(first, ranked, seed=5, first_id=10_000)["click"])


def test_outcomes_follow_the_true_funnel_at_the_position_shown(world):
    _, store = world
    requests = store.requests(*week(store), 3_000, seed=3)
    ranked = [list(c) for c in requests.frame["candidates"]]
    shown = store.show(requests, ranked, seed=0, first_id=0)
    counts = requests.frame["candidates"].map(len).clip(upper=SLOTS)
    assert len(shown) == counts.sum()
    np.testing.assert_array_equal(shown["position"], np.concatenate([np.arange(k) for k in counts]))
    # the top item moved down to the last slot clicks less: the logs' position effect
    reversed_top = store.show(requests, [c[:SLOTS][::-1] + c[SLOTS:] for c in ranked], seed=0, first_id=0)
    top = shown[shown["position"] == 0].set_index(["customer_id", "event_timestamp", "item_id"])["p_click"]
    moved = reversed_top.set_index(["customer_id", "event_timestamp", "item_id"])["p_click"].reindex(top.index)
    moved_down = moved[moved.notna()]
    assert (moved_down / top[moved_down.index]).mean() < 0.97  # CLICK_POSITION per slot, noise aside
    # labels drawn from the probabilities: the click rate within its binomial range of their mean
    p = shown["p_click"].to_numpy(float)
    assert abs(shown["click"].mean() - p.mean()) < 4 * np.sqrt((p * (1 - p)).sum()) / len(p)
    assert (shown["add_to_cart"] <= shown["click"]).all() and (shown["purchase"] <= shown["add_to_cart"]).all()


def test_what_was_shown_appends_to_the_data_folder(world, tmp_path):
    data, store = world
    folder = tmp_path / "shop"
    contract = read_contract(data)
    write_tables(load_tables(data), folder, contract)
    before = load_tables(folder)["impressions"]
    requests = store.requests(*week(store), 100, seed=6)
    shown = store.show(requests, [list(c) for c in requests.frame["candidates"]], seed=0,
                       first_id=int(before["impression_id"].max()) + 1)
    batch = tmp_path / "batch"
    batch.mkdir()
    table = contract.tables["impressions"]
    write_parquet(batch / table.file, as_stored(shown, table))
    append_batch(folder, batch)
    after = load_tables(folder)["impressions"]
    assert len(after) == len(before) + len(shown)
    pd.testing.assert_frame_equal(after.tail(len(shown)).reset_index(drop=True), shown.reset_index(drop=True),
                                  check_dtype=False)


def test_requests_outside_the_worlds_time_and_rankings_outside_the_candidates_are_refused(world):
    _, store = world
    end = store.config.end
    with pytest.raises(ValueError, match="the world's time"):
        store.requests(end, end + pd.Timedelta(days=7), 10)
    requests = store.requests(*week(store), 5, seed=0)
    ranked = [list(c) for c in requests.frame["candidates"]]
    ranked[2] = [10**9, *ranked[2]]
    with pytest.raises(ValueError, match="request 2: ranked items \\[1000000000\\] are not among its candidates"):
        store.show(requests, ranked)
