"""Match features: the candidate against the request's query and history (its items and their
attributes), for trees and networks alike."""

import numpy as np
import pytest
import torch

from grec.data.batch import Batch
from grec.model.grec import GRec, GRecConfig
from grec.model.match import (
    NAMES,
    attribute_features,
    attribute_names,
    attribute_network_inputs,
    match_features,
    n_attribute_inputs,
    network_inputs,
)
from tests.conftest import SIZES, random_features


def features(n: int, seed: int = 0):
    f = random_features(n, seed)
    f.search = torch.randn(n, 32, generator=torch.Generator().manual_seed(seed))  # one encoder: query and text alike
    return f


def test_they_say_whether_when_and_how_often_the_candidate_was_viewed_and_how_the_query_reads():
    f = features(3)
    f.item = torch.tensor([7, 7, 1])  # the third candidate is the unknown item (code 1)
    f.seq_items = torch.tensor([[0, 0, 7, 9, 7, 5], [0, 0, 0, 0, 3, 4], [0, 0, 0, 1, 1, 2]])
    f.search = torch.zeros(3, 32)
    f.search[0] = f.item_text[0]  # the query is the description itself; the others have no query
    m = dict(zip(NAMES, match_features(f).T.numpy()))
    np.testing.assert_array_equal(m["candidate_viewed"], [1, 0, 0])  # an unknown id matches nothing
    np.testing.assert_array_equal(m["candidate_views"], [2, 0, 0])
    assert m["candidate_last_viewed_ago"][0] == 1 and np.isnan(m["candidate_last_viewed_ago"][1:]).all()
    np.testing.assert_array_equal(m["history_length"], [4, 2, 3])
    assert m["query_description_cosine"][0] == pytest.approx(1.0) and np.isnan(m["query_description_cosine"][1:]).all()
    x = network_inputs(f)
    assert torch.isfinite(x).all()  # the network's form: no NaN, the missing query a flag of its own
    np.testing.assert_allclose(x[:, :2].numpy(), [[1, 1], [0, 0], [0, 0]], atol=1e-6)
    np.testing.assert_allclose(x[:, 4].numpy(), [0.5, 0, 0])  # 1 / (1 + views since the last one)


def test_a_network_with_them_scores_a_request_like_independent_rows():
    torch.manual_seed(0)
    model = GRec(GRecConfig(**{**SIZES, "search_dim": 32}, d_model=32, expert_hidden=32, match_features=True)).eval()
    one = features(1, seed=1)
    f = features(20, seed=2)
    for name in ("context_categorical", "context_numerical", "search", "seq_items", "seq_pages", "flow"):
        setattr(f, name, getattr(one, name).expand(20, *getattr(one, name).shape[1:]).clone())  # one customer
    f.item[:5] = one.seq_items[0, -1]  # some candidates were viewed: the match differs between candidates
    batch = Batch.single(f, torch.zeros(20, dtype=torch.long))
    with torch.no_grad():
        torch.testing.assert_close(model.score_request(batch).logits, model(batch).logits, rtol=1e-4, atol=1e-5)
        scores = model(batch).logits
        model.inputs.match.weight.zero_()
        assert not torch.allclose(model(batch).logits, scores)  # the match features reach the score


def test_attribute_features_say_how_much_and_how_recently_the_history_shares_the_candidates_attributes():
    f = features(3)
    cards = torch.tensor(SIZES["item_cardinalities"])  # [8, 8, 4]: code 8 (8, 4) is unknown
    f.seq_items = torch.tensor([[0, 5, 6, 7], [0, 0, 0, 0], [2, 3, 1, 4]])  # 1: an item outside the vocabulary
    f.seq_item_categorical = torch.tensor([
        [[8, 8, 4], [2, 0, 1], [2, 5, 3], [6, 5, 1]],  # padding, then three known items
        [[8, 8, 4]] * 4,  # an empty history
        [[2, 1, 1], [8, 8, 4], [8, 8, 4], [3, 1, 0]]])  # the spec does not know the attributes of items 3 and 1
    f.seq_item_numerical = torch.zeros(3, 4, 4)
    f.seq_item_numerical[0, 1:, 0] = torch.tensor([1.0, 2.0, 6.0])
    f.item_categorical = torch.tensor([[2, 5, 4], [2, 5, 1], [3, 1, 1]])  # row 0: the third column unknown
    f.item_numerical = torch.zeros(3, 4)
    f.item_numerical[0, 0] = 5.0
    names = attribute_names(["a", "b", "c"], ["w", "x", "y", "z"])
    assert names[:4] == ["history_share_a", "history_since_a", "history_share_b", "history_since_b"] and names[6] == "history_gap_w"
    m = dict(zip(names, attribute_features(f, cards).T.numpy()))
    np.testing.assert_allclose(m["history_share_a"][[0, 2]], [2 / 3, 1 / 2])  # of the known items
    np.testing.assert_allclose(m["history_share_b"][[0, 2]], [2 / 3, 1])
    np.testing.assert_array_equal(m["history_since_a"][[0, 2]], [1, 0])  # the newest match: 1 view ago; the last item
    assert m["history_share_c"][0] == 0 and np.isnan(m["history_since_c"][0])  # an unknown value matches nothing
    assert np.isnan([m[n][1] for n in names]).all()  # no history: nothing to say
    assert m["history_gap_w"][0] == pytest.approx(5.0 - 3.0)  # the candidate against the history's mean
    x = attribute_network_inputs(f, cards)
    assert x.shape == (3, n_attribute_inputs(3, 4)) and torch.isfinite(x).all()
    np.testing.assert_allclose(x[0, :2].numpy(), [2 / 3, 1 / 2])  # share, 1 / (1 + views since)
    np.testing.assert_allclose(x[:, -1].numpy(), np.log1p([3, 0, 2]), rtol=1e-6)  # the known history's length


def test_trees_and_networks_get_the_same_attribute_features_named_from_the_contract(jobs_dataset):
    from grec.model.checkpoint import build_model, model_config
    from grec.model.inputs import InputConfig
    from grec.model.trees import feature_names, tree_matrix

    spec = jobs_dataset.spec
    trees = build_model(model_config("lightgbm", InputConfig.sizes_from(spec)))
    names, _ = feature_names(spec, trees.config)
    ours = attribute_names(spec.item_categorical, spec.item_numerical)
    assert names[-len(ours):] == ours and "history_share_occupation" in ours and "history_gap_salary_k" in ours
    f = jobs_dataset.features.take(torch.arange(500))
    cards = torch.tensor(spec.item_cardinalities)
    np.testing.assert_array_equal(tree_matrix(f, trees.config)[:, -len(ours):], attribute_features(f, cards).numpy())
    net = build_model(model_config("grec", InputConfig.sizes_from(spec)))
    torch.testing.assert_close(net.inputs.item_cardinalities, cards)  # the network reads them with the same codes
    assert (attribute_features(f, cards)[:, 0] > 0).float().mean() > 0.2  # histories do share occupations here
