"""Model behaviour: GRec learns the simulated storefront, and runs repeat exactly under a seed."""

import numpy as np
import pytest
import torch

from grec.features.training_set import load_dataset
from grec.evaluate import evaluate, predict
from grec.model.checkpoint import build_model, model_config
from grec.model.grec import GRecConfig
from grec.model.inputs import InputConfig
from grec.train import TrainConfig, train_model


def grec_for(data, **kw):
    return build_model(GRecConfig(**InputConfig.sizes_from(data.spec), **kw))


def test_checkpoint_is_written(small_dataset, tmp_path):
    model = grec_for(small_dataset, d_model=32)
    summary = train_model(model, small_dataset, TrainConfig(epochs=1, progress=False), checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and summary["best_epoch"] == 1
    assert summary["rows_per_second"] > 0


def test_runs_repeat_under_a_seed_and_a_stopped_run_resumes_to_the_uninterrupted_model(small_dataset, tmp_path):
    def run(epochs, folder, resume=False):
        torch.manual_seed(5)
        model = grec_for(small_dataset, d_model=16)
        config = TrainConfig(epochs=epochs, batch_size=4096, patience=3, seed=5, progress=False, resume=resume)
        return model, train_model(model, small_dataset, config, checkpoint_dir=folder)

    whole, whole_summary = run(2, tmp_path / "whole")
    stopped, stopped_summary = run(1, tmp_path / "stopped")  # as if killed after its first epoch
    # runs repeat exactly under a seed: the stopped run's first epoch is the whole run's
    assert stopped_summary["history"][0] == whole_summary["history"][0]
    resumed, resumed_summary = run(2, tmp_path / "stopped", resume=True)
    assert [e["epoch"] for e in resumed_summary["history"]] == [1, 2]
    assert resumed_summary["history"] == whole_summary["history"]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_soft_targets_fit_the_true_probabilities_and_early_stop_on_their_cross_entropy(small_dataset):
    torch.manual_seed(0)
    model = grec_for(small_dataset, d_model=16)
    summary = train_model(model, small_dataset, TrainConfig(epochs=1, batch_size=4096, target="oracle", progress=False))
    valid = small_dataset.rows["valid"]
    p = np.clip(predict(model, small_dataset, valid), 1e-7, 1 - 1e-7)
    q = valid.oracle.numpy()
    # the validation loss is the cross-entropy against the true probabilities, not the labels' log-loss
    np.testing.assert_allclose(summary["history"][0]["valid_loss"], -np.mean(q * np.log(p) + (1 - q) * np.log1p(-p)), rtol=1e-5)


@pytest.mark.slow
def test_grec_learns_ctr_close_to_the_oracle(tmp_path_factory):
    from grec.data.simulate import SimulationConfig, simulate_to

    out = tmp_path_factory.mktemp("learn")
    # the incumbents benchmark's storefront at half its size (5 training weeks, the last validating)
    simulate_to(out, SimulationConfig(n_impressions=200_000, train_weeks=5, seed=101))
    data = load_dataset(out)
    torch.manual_seed(0)
    model = build_model(model_config("grec", InputConfig.sizes_from(data.spec)))  # as `grec train` builds it
    # batches of 4096 at twice the default rate: 3 epochs reach what 4 of the defaults did (CTR
    # 0.7527 against the bound 0.7489; the defaults at 3 epochs gave 0.7454), in 60 s instead of 100
    train_model(model, data, TrainConfig(epochs=3, batch_size=4096, lr=2e-3, progress=False))
    ctr = evaluate(model, data, "test")["by_use_case"]["CTR"]
    assert ctr["auc"] >= 0.70
    assert ctr["auc"] >= ctr["oracle_auc"] - 0.05


def test_a_non_finite_input_stops_training_at_its_step_naming_the_column(small_dataset):
    """An infinity that reached the tables (past validation, or in a float32 overflow) stops the
    run at the first step whose loss is not a number, before any weight changes, naming the column
    by the contract's name; not an epoch of loss=nan."""
    import dataclasses

    from grec.train import NonFiniteLoss

    column = small_dataset.spec.context_numerical.index("monthly_bill")
    numbers = small_dataset.features.context_numerical.clone()
    numbers[::50, column] = float("inf")
    data = dataclasses.replace(small_dataset, features=dataclasses.replace(small_dataset.features,
                                                                          context_numerical=numbers))
    torch.manual_seed(0)
    model = grec_for(data, d_model=16)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    with pytest.raises(NonFiniteLoss, match=r"training stopped at step 1 \(epoch 1\).*monthly_bill"):
        train_model(model, data, TrainConfig(epochs=1, batch_size=4096, progress=False))
    assert all(torch.equal(before[k], v) for k, v in model.named_parameters())
