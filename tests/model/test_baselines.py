import pytest
import torch

from grec.model.baselines import BASELINES, BaselineConfig, MMoE, SingleTask
from grec.model.checkpoint import build_model
from tests.conftest import SIZES, random_batch


@pytest.mark.parametrize("arch", BASELINES)
def test_baselines_score_every_row(arch):
    torch.manual_seed(0)
    model = build_model(BaselineConfig(**SIZES, arch=arch, d_model=32, expert_hidden=32)).eval()
    batch = random_batch(40, 3)
    out = model(batch)
    assert out.logits.shape == (len(batch),)
    assert torch.isfinite(out.logits).all()


def test_mmoe_gates_differ_by_task_and_use_every_expert():
    torch.manual_seed(0)
    model = MMoE(BaselineConfig(**SIZES, arch="mmoe", d_model=32, expert_hidden=32))
    torch.nn.init.normal_(model.mixing.gates)
    h = torch.randn(1, 32)
    gates = torch.stack([torch.einsum("bd,bde->be", h, model.mixing.gates[[t]]).softmax(-1)[0] for t in range(12)])
    assert gates.shape == (12, 4) and (gates > 0).all()
    assert not torch.allclose(gates[0], gates[1])


def test_single_task_sends_each_row_to_its_own_member():
    torch.manual_seed(0)
    model = SingleTask(BaselineConfig(**SIZES, arch="single_task", d_model=32, expert_hidden=32)).eval()
    batch = random_batch(60, 3)
    logits = model(batch).logits
    task = batch.task(4)
    t = int(task[0])
    rows = (task == t).nonzero().squeeze(1)
    torch.testing.assert_close(logits[rows], model.members[t](batch.select(rows)).logits)
    # a change to another task's member leaves this task's scores alone
    other = (t + 1) % 12
    with torch.no_grad():
        model.members[other].towers.b2.add_(5.0)
    torch.testing.assert_close(model(batch).logits[rows], logits[rows])


def ple_reference(layer, x: torch.Tensor, task: int) -> torch.Tensor:
    """PLE for one row written as the paper draws it, expert by expert, every task's branch kept:
    x (S, D) -> (S, D)."""
    def outputs(experts, h, which):
        return torch.stack([experts.expert(e, h) for e in which], 1)  # (S, E, D)

    def gate(h, weights):
        return (h.mean(0) @ weights).softmax(-1)  # (E,)

    n_tasks, n_own = layer.task_gates.shape[1], layer.n_own
    shared_experts = range(layer.shared[0].w1.shape[0])
    own = [range(t * n_own, (t + 1) * n_own) for t in range(n_tasks)]
    h = layer.norm(x)
    level1_shared = outputs(layer.shared[0], h, shared_experts)
    level1_own = [outputs(layer.own[0], h, own[t]) for t in range(n_tasks)]
    branches = [torch.einsum("sed,e->sd", torch.cat([level1_shared, level1_own[t]], 1), gate(h, layer.task_gates[0, t]))
                for t in range(n_tasks)]
    everything = torch.cat([level1_shared, *level1_own], 1)
    shared_branch = torch.einsum("sed,e->sd", everything, gate(h, layer.shared_gate))
    level2 = torch.cat([outputs(layer.shared[1], shared_branch, shared_experts),
                        outputs(layer.own[1], branches[task], own[task])], 1)
    return x + torch.einsum("sed,e->sd", level2, gate(branches[task], layer.task_gates[1, task]))


def test_ple_matches_the_papers_layer_written_expert_by_expert():
    """The batched layer (gathering each row's own experts) against PLE written plainly, two
    levels, every task's branch computed: the same output for every row."""
    torch.manual_seed(0)
    model = build_model(BaselineConfig(**SIZES, arch="ple", d_model=16, expert_hidden=8, n_experts=2,
                                       n_task_experts=2)).eval()
    layer = model.mixing
    with torch.no_grad():
        for gates in (layer.task_gates, layer.shared_gate):
            torch.nn.init.normal_(gates)  # zeros at init would make every gate uniform
        x, task = torch.randn(6, 5, 16), torch.tensor([0, 3, 7, 11, 3, 5])
        got = layer(x, task, None).y
        for row in range(len(task)):
            torch.testing.assert_close(got[row], ple_reference(layer, x[row], int(task[row])), atol=1e-5, rtol=1e-5)


def test_ple_rows_read_every_tasks_first_level_experts_and_only_their_own_second_level():
    """The cost PLE pays for many tasks: the shared gate mixes every task's first-level experts,
    so each row runs them all; its second level reads only the row's own task experts."""
    torch.manual_seed(0)
    layer = build_model(BaselineConfig(**SIZES, arch="ple", d_model=16, expert_hidden=8)).mixing.eval()
    with torch.no_grad():
        torch.nn.init.normal_(layer.shared_gate)
        torch.nn.init.normal_(layer.task_gates)
        x, task = torch.randn(2, 5, 16), torch.tensor([0, 0])
        before = layer(x, task, None).y
        layer.own[1].w1[5].add_(1.0)  # task 5's second-level expert: not this row's
        torch.testing.assert_close(layer(x, task, None).y, before)
        layer.own[0].w2[5].add_(1.0)  # task 5's first-level expert: mixed into the shared branch
        assert (layer(x, task, None).y - before).abs().max() > 1e-3
