"""The second simulated world (grec.data.simulate_jobs): a job board written as a team's own logs,
deterministic per seed, with its true probability per task, outcomes driven by attribute-level
matches, and a contract drafted by `grec data init` with the arguments a team would pass."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from grec.data.contract import read_contract
from grec.data.schema import Role
from grec.data.simulate_jobs import JOBS_INIT, SURFACES, JobsConfig, simulate_jobs
from tests.conftest import JOBS_TEST


@pytest.fixture(scope="module")
def tables():
    return simulate_jobs(JobsConfig(**JOBS_TEST))


def test_the_same_seed_gives_the_same_logs_and_another_seed_other_logs(tables):
    again = simulate_jobs(JobsConfig(**JOBS_TEST))
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(frame, again[name])
    other = simulate_jobs(JobsConfig(**{**JOBS_TEST, "seed": 4}))
    assert not other["impressions"]["item_id"].equals(tables["impressions"]["item_id"])
    # the world (jobs, seekers, histories) does not depend on how many impressions are drawn
    fewer = simulate_jobs(JobsConfig(**{**JOBS_TEST, "n_impressions": 5_000}))
    pd.testing.assert_frame_equal(fewer["items"], tables["items"])


def test_rates_and_funnel_are_those_of_logs(tables):
    imp = tables["impressions"]
    assert set(imp["flow"]) == set(SURFACES)
    assert (imp["saved"] <= imp["viewed"]).all() and (imp["applied"] <= imp["viewed"]).all()
    assert 0.03 < imp["viewed"].mean() < 0.12  # a few views per hundred jobs shown
    viewed = imp[imp["viewed"] == 1]
    assert 0.1 < viewed["saved"].mean() < 0.35 and 0.03 < viewed["applied"].mean() < 0.12  # applying is the sparse step
    assert ((imp["search_query"] != "") == (imp["flow"] == "SEARCH")).all()
    assert imp["viewed_item_ids"].map(len).max() == 20
    assert (imp["viewed_item_ids"].map(len) == imp["visited_page_ids"].map(len)).all()


def test_each_tasks_true_probability_ranks_its_outcomes(tables):
    imp = tables["impressions"]
    for column in ("p_view", "p_save", "p_apply_given_view"):
        assert imp[column].between(0, 1).all()
    for surface in SURFACES:
        part = imp[imp["flow"] == surface]
        viewed = part[part["viewed"] == 1]
        for label, p, rows in (("viewed", "p_view", part), ("saved", "p_save", part),
                               ("applied", "p_apply_given_view", viewed)):
            assert roc_auc_score(rows[label], rows[p]) > 0.7, (surface, label)


def test_outcomes_follow_attribute_matches_of_history_and_query(tables):
    imp, items = tables["impressions"], tables["items"].set_index("item_id")
    occupation = items["occupation"]
    shown = occupation.loc[imp["item_id"]].to_numpy()
    share = np.array([np.mean(occupation.loc[h].to_numpy() == o) if len(h) else np.nan
                      for h, o in zip(imp["viewed_item_ids"], shown)])
    # seekers view jobs of the occupation their history holds, far more than jobs of another
    assert imp["p_view"][share >= 0.5].mean() > 2 * imp["p_view"][share == 0].mean()
    # a search names an occupation in words: a job of that occupation is viewed more
    search = imp[imp["flow"] == "SEARCH"]
    words = {o: "backend" for o in (0,)}
    named = search["search_query"].str.contains(words[0]) & (occupation.loc[search["item_id"]].to_numpy() == 0)
    other = search["search_query"].str.contains(words[0]) & (occupation.loc[search["item_id"]].to_numpy() != 0)
    assert search["p_view"][named].mean() > 2 * search["p_view"][other].mean()


def test_grec_data_init_drafts_its_contract_with_the_true_probabilities_kept_out(jobs_data):
    contract = read_contract(jobs_data)
    tasks = contract.tasks
    assert tasks.flows == tuple(sorted(SURFACES)) and tasks.use_cases == tuple(JOBS_INIT["use_cases"])
    assert tasks.populations["APPLY"] == "viewed" and tasks.oracles == JOBS_INIT["oracles"]
    assert contract.tables["impressions"].names(Role.ORACLE) == ["p_view", "p_save", "p_apply_given_view"]
    features = {c for t in contract.tables for kind in ("categorical", "numerical") for c in contract.features(t, kind)}
    assert not features & {"p_view", "p_save", "p_apply_given_view"}
    assert {"occupation", "company", "city", "salary_k"} <= set(contract.features("items", "categorical")
                                                                + contract.features("items", "numerical"))
    assert contract.inputs == ("search", "histories", "item_vectors")


def test_the_dataset_carries_each_use_cases_oracle(jobs_dataset, jobs_data):
    frame = pd.read_parquet(jobs_data / "impressions.parquet")
    rows = jobs_dataset.rows["test"]
    apply = rows.use_case.numpy() == 2
    np.testing.assert_array_equal(rows.label[apply].numpy(), 1.0 * (rows.label[apply].numpy() == 1))
    expected = frame["p_apply_given_view"].to_numpy()[rows.impression[apply].numpy()]
    np.testing.assert_allclose(rows.oracle[apply].numpy(), expected, rtol=1e-6)
    assert (frame["viewed"].to_numpy()[rows.impression[apply].numpy()] == 1).all()  # APPLY: over viewed rows
