"""The storefront with surfaces (`SimulationConfig.pages`): tasks are flow x surface x use case,
each surface converts at its own rate, the rest of the world is the storefront's; deterministic
per seed, its oracle reported per task."""

import json

import numpy as np
import pandas as pd
import pytest

from grec.data.contract import read_contract, to_arrow
from grec.data.simulate import SURFACES, SimulationConfig, pages_contract, simulate, simulate_to
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
