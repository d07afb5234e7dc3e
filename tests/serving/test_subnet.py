"""Each task's dense sub-network scores exactly what the full GRec scores for that task."""

import pytest
import torch

from grec.data.batch import Batch
from grec.model.grec import GRec, GRecConfig
from grec.serving.subnet import TaskSubNetwork, export_subnetworks
from tests.conftest import SIZES, random_features


def make(routing, **kw):
    torch.manual_seed(0)
    model = GRec(GRecConfig(**SIZES, routing=routing, d_model=32, expert_hidden=32, **kw)).eval()
    with torch.no_grad():  # an untrained router is nearly uniform; spread it so the gates differ
        model.mixing.router.gate.weight.mul_(5.0)
    return model


def task_batch(task: int, n: int = 96) -> Batch:
    flow, use_case = divmod(task, 4)
    features = random_features(n, seed=task)
    features.flow = torch.full((n,), flow)
    return Batch.single(features, torch.full((n,), use_case))


@pytest.mark.parametrize("routing, kw", [
    ("task_sentence", {}),  # the paper's setting: capacity 2, top-4 of 8
    ("task_sentence", {"capacity": None}),
    ("task", {"top_k": 2, "n_experts": 16}),
])
def test_every_task_sub_network_equals_the_full_model(routing, kw):
    model = make(routing, **kw)
    subnets = export_subnetworks(model)
    assert sorted(subnets) == list(range(12))
    with torch.no_grad():
        for task, subnet in subnets.items():
            batch = task_batch(task)
            full, sub = model(batch).logits, subnet(batch).logits
            torch.testing.assert_close(sub, full, rtol=0, atol=1e-5, msg=f"task {task}")


def test_a_sub_network_keeps_only_its_tasks_experts():
    model = make("task_sentence")
    subnet = TaskSubNetwork(model, 5)
    (tokens,) = subnet.mixing.tokens  # capacity 2: the first two tokens take all four experts
    assert tokens == slice(0, 2)
    assert subnet.mixing.w1[0].shape == (32, 4 * 32) and subnet.mixing.w2[0].shape == (4 * 32, 32)


def test_token_routing_has_no_sub_network():
    with pytest.raises(ValueError, match="serve it through the full MoE"):
        TaskSubNetwork(make("token"), 0)


def one_request(task: int, n: int = 50) -> Batch:
    """n candidates of one customer: every customer-side field equal to the first row's."""
    batch = task_batch(task, n)
    f = batch.features
    for name in ("context_categorical", "context_numerical", "search", "seq_items", "seq_pages"):
        setattr(f, name, getattr(f, name)[:1].expand_as(getattr(f, name)).clone())
    return batch


@pytest.mark.parametrize("routing", ["task_sentence", "token"])
def test_a_request_encodes_the_customer_once_and_scores_the_same(routing):
    model = make(routing)
    with torch.no_grad():
        for task in (0, 7, 11):
            batch = one_request(task)
            full = model(batch).logits
            torch.testing.assert_close(model.score_request(batch).logits, full, rtol=0, atol=1e-5)
            if routing != "token":
                torch.testing.assert_close(TaskSubNetwork(model, task).score_request(batch).logits, full, rtol=0, atol=1e-5)
