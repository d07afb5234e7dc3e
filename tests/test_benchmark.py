"""grec.benchmark: a comparison too long for one sitting goes on from the (model, seed)s it kept,
and never mixes what another setting or other code trained."""

import numpy as np
import pytest

from grec.benchmark import MODELS, TrainedCache, compare
from grec.train import TrainConfig

KEY = {"impressions": 60_000, "epochs": 1, "code": "abc"}


def test_compare_reads_kept_models_instead_of_training_them(small_dataset, tmp_path):
    test = small_dataset.rows["test"]
    oracle = test.oracle.numpy()
    noisy = np.clip(oracle + np.random.default_rng(0).normal(0, 0.05, len(oracle)), 0, 1).astype(np.float32)
    chosen = {"MMoE 4": MODELS["MMoE 4"], "GRec task-sentence 8/4": MODELS["GRec task-sentence 8/4"]}
    cache = TrainedCache(tmp_path / "kept", KEY)
    for seed in (0, 1):  # as an earlier run left them: nothing below may train
        cache.put("GRec task-sentence 8/4", chosen["GRec task-sentence 8/4"], seed, oracle, 10.0, 100.0)
        cache.put("MMoE 4", chosen["MMoE 4"], seed, noisy, 20.0, 50.0)

    tasks = small_dataset.spec.tasks
    sparse = [tasks.task_name(t) for t in range(tasks.n_tasks) if tasks.task_name(t).endswith(("CVR", "CTCVR"))]
    trained = []
    result = compare(small_dataset, [0, 1], TrainConfig(epochs=1), chosen, samples=50, log=lambda _: None,
                     cache=TrainedCache(tmp_path / "kept", KEY), means={"sparse tasks": sparse},
                     on_trained=lambda name, net: trained.append(name))
    assert result["resumed"] == 4 and trained == []
    grec, mmoe, truth = (result["models"][m] for m in ("GRec task-sentence 8/4", "MMoE 4", "Oracle (true probability)"))
    assert grec["mean"]["auc"] == pytest.approx(truth["mean"]["auc"]) and grec["seconds"] == 10.0
    assert mmoe["mean"]["auc"] < grec["mean"]["auc"] and mmoe["rows_per_second"] == 50.0
    assert mmoe["vs_challenger"]["auc:mean"][0] > 0  # the oracle's scores beat the noisy ones beyond the noise
    # a mean over chosen tasks (the sparse ones): over those with test positives, with its interval and difference
    held = [t for t in sparse if t in grec["tasks"] and grec["tasks"][t]["ap"] == grec["tasks"][t]["ap"]]
    assert 0 < grec["sparse tasks"]["groups"] <= len(sparse)
    assert grec["sparse tasks"]["ap"] == pytest.approx(np.mean([grec["tasks"][t]["ap"] for t in held]))
    lo, hi = mmoe["vs_challenger"]["ap:sparse tasks"]
    assert lo <= hi and grec["sparse tasks"]["ap_ci"][0] <= grec["sparse tasks"]["ap"] <= grec["sparse tasks"]["ap_ci"][1]


def test_a_kept_folder_of_another_run_or_setting_is_refused(tmp_path):
    cache = TrainedCache(tmp_path / "kept", KEY)
    cache.put("MMoE 4", {"arch": "mmoe"}, 0, np.zeros(3, np.float32), 1.0, 1.0)
    assert cache.get("MMoE 4", {"arch": "mmoe"}, 1) is None  # another seed: not trained yet
    with pytest.raises(ValueError, match="differs in code, epochs"):
        TrainedCache(tmp_path / "kept", {**KEY, "code": "def", "epochs": 2})
    with pytest.raises(ValueError, match="MMoE_4-seed0.npz: trained with settings"):
        cache.get("MMoE 4", {"arch": "mmoe", "match_features": False}, 0)
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["MMoE_4-seed0.npz", "key.json"]  # no temporary left
