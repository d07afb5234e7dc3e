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
