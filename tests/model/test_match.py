"""Match features: the candidate against the request's query and history, for trees and networks."""

import numpy as np
import pytest
import torch

from grec.data.dataset import Batch
from grec.model.grec import GRec, GRecConfig
from grec.model.match import NAMES, match_features, network_inputs
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
