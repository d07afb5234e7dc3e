import pytest
import torch

from grec.model.checkpoint import build_model, load_model, save_model
from grec.model.grec import GRec, GRecConfig
from grec.model.moe import ROUTINGS
from grec.data.spec import FeatureSpec
from tests.conftest import SIZES, random_batch


def make(routing="task_sentence", **kw):
    torch.manual_seed(0)
    return GRec(GRecConfig(**SIZES, routing=routing, d_model=32, expert_hidden=32, **kw)).eval()


@pytest.mark.parametrize("routing", ROUTINGS)
def test_shapes_for_every_routing(routing):
    batch = random_batch(40, 3)
    out = make(routing)(batch)
    R, S, K = len(batch), 5, 4
    assert out.logits.shape == (R,)
    assert out.routing.expert_index.shape == (R, S, K)
    assert out.routing.gates.shape == (R, S, K)
    assert out.routing.logits.shape == ((R, S, 8) if routing == "token" else (R, 1, 8))
    assert torch.isfinite(out.logits).all()


def experts_by_task(model, batch):
    """task -> set of expert tuples seen over all its rows and tokens."""
    out = model(batch)
    seen = {}
    for t, idx in zip(batch.task(4).tolist(), out.routing.expert_index):
        seen.setdefault(t, set()).update(tuple(sorted(tok.tolist())) for tok in idx)
    return seen


@pytest.mark.parametrize("routing", ["task", "task_sentence"])
def test_task_routing_picks_the_same_experts_for_every_example_of_a_task(routing):
    seen = experts_by_task(make(routing), random_batch(300, 4, seed=3))
    assert len(seen) == 12
    assert all(len(sets) == 1 for sets in seen.values())


@pytest.mark.parametrize("routing", ["token", "sentence"])
def test_example_level_routing_depends_on_the_example(routing):
    seen = experts_by_task(make(routing), random_batch(300, 4, seed=3))
    assert any(len(sets) > 1 for sets in seen.values())


def test_aux_losses_are_finite_and_carry_gradients():
    model = make("task_sentence").train()
    out = model(random_batch(50, 3))
    assert set(out.aux_losses) == {"load_balance", "router_z"}
    assert all(torch.isfinite(v) for v in out.aux_losses.values())
    out.aux_loss.backward()
    assert model.mixing.router.gate.weight.grad.abs().sum() > 0
    assert model.inputs.task.flows.weight.grad.abs().sum() > 0  # the task sentence feeds the gate


def test_rows_of_one_example_share_its_encoding():
    model = make()
    batch = random_batch(20, 4)
    single = type(batch)(batch.features.take(batch.example), torch.arange(len(batch)), batch.use_case)
    torch.testing.assert_close(model(batch).logits, model(single).logits, rtol=1e-5, atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    model = make("task", n_experts=16, top_k=2)
    spec = FeatureSpec(n_items=SIZES["n_items"], n_pages=SIZES["n_pages"])
    save_model(model, spec, tmp_path / "m")
    loaded, loaded_spec = load_model(tmp_path / "m")
    assert loaded.config == model.config and loaded_spec == spec
    batch = random_batch(30, 2)
    torch.testing.assert_close(loaded(batch).logits, model(batch).logits)
    assert (tmp_path / "m" / "config.json").read_text().count('"model": "GRecConfig"') == 1
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left


def test_build_model_refuses_unknown_arch():
    from grec.model.baselines import BaselineConfig

    with pytest.raises(ValueError, match="unknown baseline"):
        build_model(BaselineConfig(**SIZES, arch="xgboost"))
