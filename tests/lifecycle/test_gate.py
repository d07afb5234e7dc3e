"""The gate's rules on synthetic scores whose quality is known: labels drawn from a true
probability, models that see it through more or less noise."""

import numpy as np
import pytest

from grec.data.schema import SchemaError
from grec.lifecycle.gate import GatePolicy, judge, paired_bootstrap

TASKS = ("AAL+CTR", "AAL+CVR", "EUP+CTR", "NSE+CTR")


def write_policy(tmp_path, text):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def week():
    """Four tasks over 4,000 impressions; rows of impression i for each task it belongs to."""
    rng = np.random.default_rng(0)
    n = 4000
    logit = rng.normal(-3.0, 1.2, size=n)
    rows = {t: np.arange(n) if t != "AAL+CVR" else np.arange(0, n, 2) for t in TASKS}
    impression = np.concatenate(list(rows.values()))
    label = (rng.random(len(impression)) < 1 / (1 + np.exp(-logit[impression]))).astype(np.float32)
    task = np.repeat(np.arange(len(TASKS)), [len(r) for r in rows.values()])
    tasks = {t: task == i for i, t in enumerate(TASKS)}

    def model(noise, seed, extra_noise_on=None):
        g = np.random.default_rng(seed)
        score = logit[impression] + g.normal(0, noise, size=len(impression))
        if extra_noise_on:
            sel = tasks[extra_noise_on]
            score[sel] += g.normal(0, 4.0, size=sel.sum())
        return 1 / (1 + np.exp(-score))

    return tasks, label, impression, model


def run(week_, challenger, champion, policy):
    tasks, label, impression, _ = week_
    held = {"source": "synthetic", "fingerprint": "0" * 64, "window": "the week s to e", "rows": len(label)}
    return judge(tasks, label, impression, challenger, champion, policy, {"name": "grec", "version": "2", "run_id": "r2"},
                 None if champion is None else {"name": "grec", "version": "1", "run_id": "r1"}, held)


def test_identical_models_have_a_zero_interval(week):
    tasks, label, impression, model = week
    prob = model(1.0, seed=3)
    diffs = paired_bootstrap(tasks, label, impression, prob, prob, samples=50, seed=0)
    assert all(np.all(d == 0) for d in diffs.values())


def test_the_default_policy_file_loads_and_floors_resolve_most_specific_first(tmp_path):
    policy = GatePolicy.load()
    assert policy.version >= 1 and policy.max_task_drop == 0.002 and policy.max_mean_drop == 0.0
    custom = GatePolicy.load(write_policy(tmp_path, "version: 3\nfloors: {default: 0.6, CVR: 0.55, NSE+CVR: 0.5}\n"))
    assert (custom.floor("AAL+CTR"), custom.floor("AAL+CVR"), custom.floor("NSE+CVR")) == (0.6, 0.55, 0.5)
    assert len(custom.sha256) == 64 and custom.sha256 != policy.sha256


@pytest.mark.parametrize("text, message", [
    ("max_task_drop: 0.01\n", "'version' is required"),
    ("version: 1\nmax_task_dorp: 0.01\n", "unknown gate policy fields ['max_task_dorp']"),
    ("version: 1\nfloors: {CTR: 7}\n", "floors.CTR = 7.0 is not an AUC"),
    ("version: 1\nmax_task_drop: -0.1\n", "cannot be negative"),
])
def test_a_bad_policy_file_is_refused_with_the_field_named(tmp_path, text, message):
    with pytest.raises(SchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        GatePolicy.load(write_policy(tmp_path, text))


def test_a_better_challenger_passes_with_intervals_above_zero(week, tmp_path):
    policy = GatePolicy.load(write_policy(tmp_path, "version: 1\nbootstrap: {samples: 300}\n"))
    _, _, _, model = week
    report = run(week, model(0.3, seed=1), model(2.0, seed=2), policy)
    assert report.passed and report.decision == "promote" and not report.reasons
    assert all(t.diff > 0 and t.ci[0] < t.diff < t.ci[1] for t in report.tasks)
    assert report.mean["diff"] > 0 and report.mean["ci"][0] > 0


def test_a_challenger_worse_on_one_task_is_refused_and_the_report_names_it(week, tmp_path):
    policy = GatePolicy.load(write_policy(tmp_path, "version: 1\nbootstrap: {samples: 300}\n"))
    _, _, _, model = week
    champion = model(1.0, seed=1)
    challenger = model(0.5, seed=2, extra_noise_on="EUP+CTR")  # better everywhere but one task
    report = run(week, challenger, champion, policy)
    assert not report.passed and report.failed_tasks() == ["EUP+CTR"]
    assert any(r.startswith("EUP+CTR: AUC fell by") for r in report.reasons)
    line = next(l for l in report.markdown().splitlines() if l.startswith("| EUP+CTR"))
    assert "FAIL: AUC fell by" in line
    assert report.to_dict()["decision"] == "refuse"


def test_a_mean_that_falls_is_refused_even_within_each_task_tolerance(week, tmp_path):
    policy = GatePolicy.load(write_policy(tmp_path, "version: 1\nmax_task_drop: 0.5\nbootstrap: {samples: 100}\n"))
    _, _, _, model = week
    report = run(week, model(2.0, seed=1), model(0.5, seed=2), policy)
    assert not report.passed and report.failed_tasks() == [] and not report.mean["passed"]
    assert report.reasons[-1].startswith("mean AUC fell by")


def test_with_no_champion_the_floors_alone_decide(week, tmp_path):
    _, label, _, model = week
    policy = GatePolicy.load(write_policy(tmp_path, "version: 1\nfloors: {default: 0.6}\n"))
    assert run(week, model(0.5, seed=1), None, policy).passed
    untrained = np.random.default_rng(5).random(len(label))  # what an untrained network scores: chance
    report = run(week, untrained, None, policy)
    assert not report.passed and set(report.failed_tasks()) == set(TASKS)
    assert all("below the floor 0.600" in t.reasons[0] for t in report.tasks)


def test_a_floor_fails_a_task_only_beyond_the_noise_of_its_week(tmp_path):
    """A sparse task's AUC under the floor with an interval reaching over it passes; the same model on
    a week with enough positives to tell fails."""
    policy = GatePolicy.load(write_policy(tmp_path, "version: 2\nfloors: {default: 0.6}\nbootstrap: {samples: 300}\n"))
    for n, positives, fails in ((400, 12, False), (20_000, 600, True)):
        label = np.r_[np.zeros(n - positives), np.ones(positives)].astype(np.float32)
        # a weak model: the positives spread evenly over the top 90% of the negatives' scores, AUC 0.55
        score = np.r_[np.linspace(0, 1, n - positives), np.linspace(0.1, 1.0, positives)]
        report = judge({"AAL+CVR": np.ones(n, bool)}, label, np.arange(n), score, None, policy,
                       {"name": "grec", "version": "2", "run_id": "r2"}, None, {"rows": n})
        verdict = report.tasks[0]
        assert verdict.challenger_auc < 0.6 and verdict.auc_ci[0] < verdict.challenger_auc < verdict.auc_ci[1]
        assert (verdict.auc_ci[1] < 0.6) == fails and report.passed == (not fails), (n, verdict)


def test_a_task_without_enough_positives_is_reported_not_judged(week, tmp_path):
    tasks, label, impression, model = week
    policy = GatePolicy.load(write_policy(tmp_path, "version: 1\nmin_positives: 100000\n"))
    report = run(week, model(1.0, seed=1), model(0.5, seed=2), policy)
    assert not report.passed and all(not t.judged for t in report.tasks)
    assert "no task has 100000 positives" in report.reasons[-1]
