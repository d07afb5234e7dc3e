"""The storefront with surfaces (`SimulationConfig.pages`): tasks are flow x surface x use case,
each surface converts at its own rate, the rest of the world is the storefront's; deterministic
per seed, its oracle reported per task."""

import json

import numpy as np
import pandas as pd
import pytest

from grec.data.contract import read_contract, to_arrow
from grec.data.simulate import (BRAND_OS, CART, CHECKOUT_SURFACES, GOES_WITH_A_PHONE, OS_NONE, PHONES, SURFACES, WATCH,
                                SimulationConfig, pages_contract, simulate, simulate_to)
from grec.data.simulate_online import Storefront
from grec.data.tables import load_tables

CONFIG = dict(n_impressions=30_000, seed=7)


@pytest.fixture(scope="module")
def worlds() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(with surfaces, without) from one seed."""
    return (simulate(SimulationConfig(**CONFIG, pages=True))["impressions"],
            simulate(SimulationConfig(**CONFIG))["impressions"])


def test_surfaces_change_what_converts_and_nothing_else(worlds):
    pages, plain = worlds
    assert set(pages["surface"]) == set(SURFACES)
    assert ((pages["surface"] == "search") == (pages["search_query"] != "")).all()  # search results are the searches
    for column in ("customer_id", "item_id", "flow", "page_id", "position", "click"):
        np.testing.assert_array_equal(pages[column].to_numpy(), plain[column].to_numpy(), err_msg=column)
    np.testing.assert_allclose(pages["p_ctr"], plain["p_click"], rtol=1e-6)  # clicks are the storefront's
    cvr = pages["p_cvr"] / (plain["p_add_to_cart_given_click"] * plain["p_purchase_given_add_to_cart"])
    by_surface = cvr.groupby(pages["surface"]).mean()
    assert by_surface["deals"] > 1.2 and by_surface["detail"] < 0.8, by_surface  # deals convert, accessories less


def test_the_same_seed_simulates_the_same_world():
    contract = pages_contract()
    first = simulate(SimulationConfig(n_impressions=3_000, seed=3, pages=True))
    second = simulate(SimulationConfig(n_impressions=3_000, seed=3, pages=True))
    other = simulate(SimulationConfig(n_impressions=3_000, seed=4, pages=True))
    for name, table in contract.tables.items():
        assert to_arrow(first[name], table).equals(to_arrow(second[name], table)), name
    assert not to_arrow(first["impressions"], contract.tables["impressions"]).equals(
        to_arrow(other["impressions"], contract.tables["impressions"]))


def test_the_folder_carries_its_contract_and_the_oracle_per_task(tmp_path):
    simulate_to(tmp_path, SimulationConfig(**CONFIG, pages=True))
    contract = read_contract(tmp_path)
    tasks = contract.tasks
    assert tasks.tokens == ("flow", "surface") and tasks.n_tasks == 3 * len(SURFACES) * 4 == 72
    assert tasks.task_name(tasks.flows.index("AAL+deals") * 4 + 3) == "AAL+deals+CTCVR"
    impressions = load_tables(tmp_path)["impressions"]  # read back under the contract
    assert set(impressions["surface"]) == set(SURFACES)
    summary = json.loads((tmp_path / "simulation.json").read_text())["summary"]
    names = {tasks.task_name(t) for t in range(tasks.n_tasks)}
    assert set(summary["oracle_auc_by_task"]) == names == set(summary["positives_by_task"])
    aucs = [a for a in summary["oracle_auc_by_task"].values() if a is not None]
    assert len(aucs) > 45 and 0.6 < np.median(aucs) < 0.95  # the rest: no positive yet at this size
    positives = summary["positives_by_task"]
    assert min(positives.values()) < 20 < max(positives.values())  # conversion tasks as sparse as real ones


@pytest.fixture(scope="module")
def checkout(worlds) -> dict[str, pd.DataFrame]:
    """The same seed with the checkout's two surfaces too."""
    return simulate(SimulationConfig(**CONFIG, pages=True, checkout_pages=True))


def last_viewed_phone(impressions: pd.DataFrame, items: pd.DataFrame) -> np.ndarray:
    """Per impression, the most recent phone of its viewed items (-1: none), read from the tables."""
    category = items.set_index("item_id")["category"]
    phones = set(category.index[category.isin(PHONES)])
    return np.array([next((i for i in reversed(list(v)) if i in phones), -1) for v in impressions["viewed_item_ids"]])


def test_the_checkout_pages_take_landing_and_home_rows_and_change_nothing_else(worlds, checkout):
    six, eight = worlds[0], checkout["impressions"]
    assert set(eight["surface"]) == set(SURFACES + CHECKOUT_SURFACES)
    moved = eight["surface"].isin(CHECKOUT_SURFACES).to_numpy()
    assert 0.1 < moved.mean() < 0.3
    assert set(six["surface"][moved]) == {"landing", "home"}
    for column in ("customer_id", "item_id", "flow", "surface", "page_id", "position", "click", "add_to_cart",
                   "purchase", "p_ctr", "p_cvr"):
        np.testing.assert_array_equal(eight[column].to_numpy()[~moved], six[column].to_numpy()[~moved], err_msg=column)
    assert (eight["page_id"][moved] == CART).all()  # both on the cart's page
    items = checkout["items"].set_index("item_id")
    interstitial = (eight["surface"] == "interstitial").to_numpy()
    shown = items.loc[eight["item_id"][interstitial], "category"]
    assert set(shown) <= set(GOES_WITH_A_PHONE)
    assert (last_viewed_phone(eight[interstitial], checkout["items"]) >= 0).all()  # a phone is in the cart


def test_the_interstitial_converts_on_the_fit_to_the_phone_and_the_cart_on_viewed_items(checkout):
    """Each checkout surface's own reason to add to cart, read back from the tables: what the
    models must learn from the history against the candidate."""
    impressions, items = checkout["impressions"], checkout["items"].set_index("item_id")
    atc_given_click = impressions["p_atc"] / impressions["p_ctr"]
    rows = impressions[impressions["surface"] == "interstitial"]
    phone = items.loc[last_viewed_phone(rows, checkout["items"])]
    accessory = items.loc[rows["item_id"]]
    third_party = BRAND_OS[accessory["brand"].to_numpy()] == OS_NONE
    fits = (third_party | (accessory["brand"].to_numpy() == phone["brand"].to_numpy())
            | ((accessory["category"].to_numpy() == WATCH)
               & (accessory["os"].to_numpy() == phone["os"].to_numpy())))
    assert 0.2 < fits.mean() < 0.9
    ratio = atc_given_click[rows.index[fits]].mean() / atc_given_click[rows.index[~fits]].mean()
    assert ratio > 2.5, ratio  # exp(1.6) on the logit, less what the other terms spread
    cart = impressions[impressions["surface"] == "cart"]
    viewed = np.array([i in set(v) for i, v in zip(cart["item_id"], cart["viewed_item_ids"])])
    assert 0.2 < viewed.mean() < 0.9
    assert atc_given_click[cart.index[viewed]].mean() / atc_given_click[cart.index[~viewed]].mean() > 1.5


def test_the_checkout_pages_make_96_tasks_deterministic_per_seed_and_need_pages(tmp_path):
    config = SimulationConfig(n_impressions=3_000, seed=3, pages=True, checkout_pages=True)
    contract = pages_contract(checkout_pages=True)
    first, second = simulate(config), simulate(config)
    for name, table in contract.tables.items():
        assert to_arrow(first[name], table).equals(to_arrow(second[name], table)), name
    simulate_to(tmp_path, config)
    tasks = read_contract(tmp_path).tasks
    assert tasks.n_tasks == 3 * 8 * 4 == 96 and "NSE+interstitial" in tasks.flows
    summary = json.loads((tmp_path / "simulation.json").read_text())["summary"]
    assert len(summary["positives_by_task"]) == 96
    with pytest.raises(ValueError, match="needs pages"):
        SimulationConfig(checkout_pages=True)
    with pytest.raises(ValueError, match="checkout_pages"):
        Storefront(config)
