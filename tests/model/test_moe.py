import pytest
import torch

from grec.model.moe import ROUTINGS, SparseMoE, StackedExperts, load_balance_loss, route, router_z_loss


def test_top_k_and_capacity_hold():
    torch.manual_seed(0)
    B, S, E, K, C = 64, 5, 8, 4, 2
    routing = route(torch.randn(B, S, E), S, K, C)
    idx = routing.expert_index
    # every token picks K distinct experts, with gates summing to one
    assert idx.shape == (B, S, K)
    assert all(len(set(row.tolist())) == K for row in idx.reshape(-1, K))
    torch.testing.assert_close(routing.gates.sum(-1), torch.ones(B, S))
    # no expert takes more than C tokens of one example
    load = torch.zeros(B, E, dtype=torch.long)
    for b in range(B):
        for e in idx[b][routing.kept[b]].tolist():
            load[b, e] += 1
    assert load.max() <= C
    # and capacity really binds: some assignments are dropped
    assert not routing.kept.all()


def test_first_choices_queue_before_second_choices():
    # all 5 tokens of an example pick experts (0, 1) in that order: capacity 2 keeps tokens 0 and 1
    logits = torch.tensor([4.0, 3.0, 0.0, 0.0]).expand(1, 5, 4)
    routing = route(logits, 5, 2, 2)
    assert routing.kept[0, :, 0].tolist() == [True, True, False, False, False]
    assert routing.kept[0, :, 1].tolist() == [True, True, False, False, False]


def test_no_capacity_keeps_everything():
    routing = route(torch.randn(8, 5, 8), 5, 4, None)
    assert routing.kept.all()


def test_dispatch_matches_a_plain_loop():
    torch.manual_seed(1)
    B, S, D, E, K = 6, 5, 16, 8, 3
    experts = StackedExperts(E, D, 32)
    x = torch.randn(B, S, D)
    routing = route(torch.randn(B, S, E), S, K, 2)
    expected = torch.zeros(B, S, D)
    for b in range(B):
        for s in range(S):
            for j in range(K):
                if routing.kept[b, s, j]:
                    e = int(routing.expert_index[b, s, j])
                    expected[b, s] += routing.gates[b, s, j] * experts.expert(e, x[b, s][None])[0]
    torch.testing.assert_close(experts.dispatch(x, routing), expected, rtol=1e-5, atol=1e-5)


def test_aux_losses_are_finite_and_reach_the_router():
    torch.manual_seed(2)
    moe = SparseMoE(16, 8, 4, 32, "token", 2, n_tasks=12)
    x = torch.randn(32, 5, 16)
    out = moe(x, torch.zeros(32, dtype=torch.long), torch.randn(32, 2, 16))
    for name, value in out.aux_losses.items():
        assert torch.isfinite(value), name
    (out.aux_losses["load_balance"] + out.aux_losses["router_z"]).backward()
    assert moe.router.gate.weight.grad.abs().sum() > 0


def test_load_balance_is_one_when_uniform():
    E = 8
    logits = torch.zeros(4, 5, E)
    index = torch.arange(E).repeat(5).reshape(4, 5, 2)  # every expert equally often
    assert load_balance_loss(logits, index).item() == pytest.approx(1.0)
    assert router_z_loss(logits).item() == pytest.approx(torch.log(torch.tensor(8.0)).item() ** 2)


@pytest.mark.parametrize("routing", ROUTINGS)
def test_gate_input_shape_per_routing(routing):
    moe = SparseMoE(16, 8, 4, 32, routing, 2, n_tasks=12)
    h = torch.randn(10, 5, 16)
    g = moe.gate_input(h, torch.arange(10) % 12, torch.randn(10, 2, 16))
    assert g.shape == ((10, 5, 16) if routing == "token" else (10, 1, 16))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="routing"):
        SparseMoE(16, 8, 4, 32, "bogus", 2, n_tasks=12)
    with pytest.raises(ValueError, match="top_k"):
        SparseMoE(16, 4, 5, 32, "token", 2, n_tasks=12)
