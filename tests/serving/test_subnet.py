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


def test_a_three_token_sentence_routes_and_exports_every_task_exactly():
    """Tasks of three tokens ([flow, page, use case]: 3 flows x 2 pages as six routes): the router
    sees the mean of the three token embeddings, routes that share a token share its embedding,
    and every task's sub-network equals the full model to 1e-5."""
    routes = [[f, p] for f in range(3) for p in range(2)]
    torch.manual_seed(0)
    model = GRec(GRecConfig(**SIZES, n_flows=6, route_tokens=routes, d_model=32, expert_hidden=32)).eval()
    with torch.no_grad():
        model.mixing.router.gate.weight.mul_(5.0)
    task_tokens = model.inputs.task
    assert task_tokens.flows.num_embeddings == 3 and [t.num_embeddings for t in task_tokens.others] == [2]
    sentence = task_tokens.sentence(torch.tensor([0, 1, 2]), torch.tensor([3, 3, 3]))  # routes AAL+0, AAL+1, EUP+0
    assert sentence.shape == (3, 3, 32)
    torch.testing.assert_close(sentence[0, 0], sentence[1, 0])  # one flow: one flow token
    torch.testing.assert_close(sentence[0, 1], sentence[2, 1])  # one page: one page token
    routing = model.task_routing()
    assert routing.expert_index.shape[0] == 24
    assert len({tuple(routing.expert_index[t, 0].tolist()) for t in range(24)}) > 1  # tasks choose differently
    subnets = export_subnetworks(model)
    assert sorted(subnets) == list(range(24))
    with torch.no_grad():
        for task, subnet in subnets.items():
            route, use_case = divmod(task, 4)
            features = random_features(64, seed=task)
            features.flow = torch.full((64,), route)
            batch = Batch.single(features, torch.full((64,), use_case))
            torch.testing.assert_close(subnet(batch).logits, model(batch).logits, rtol=0, atol=1e-5, msg=f"task {task}")
