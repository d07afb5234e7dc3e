"""Interactions the network learns attribute by attribute (grec.model.interactions), for any
contract: outcomes decided by how the history's items' attributes meet the candidate's, or by
whether the query names the candidate's attribute, are learned with them and missed without."""

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from grec.data.batch import Batch
from grec.model.grec import GRec, GRecConfig
from grec.train import train_step
from tests.conftest import SIZES, random_features

CONFIG = dict(SIZES, search_dim=32, d_model=16, expert_hidden=16, tower_hidden=16, match_features=True)


def world(n: int, seed: int, outcome: str):
    """Random examples whose label depends only on attributes: `history` (the share of the
    history with the candidate's first column's value) or `query` (whether the query names the
    candidate's second column's value). Item ids carry nothing: a model must read attributes."""
    g = torch.Generator().manual_seed(seed)
    f = random_features(n, seed)
    f.search = torch.zeros(n, 32)  # no query (one encoder for queries and descriptions: 32 wide here)
    if outcome == "history":  # a taste for one value of the first column, shown by most of the history
        k = SIZES["item_cardinalities"][0]
        taste = torch.randint(0, k, (n, 1), generator=g)
        codes = f.seq_item_categorical[..., 0]
        f.seq_item_categorical[..., 0] = torch.where(torch.rand(codes.shape, generator=g) < 0.6, taste, codes)
        f.item_categorical[:, 0] = torch.where(torch.rand(n, generator=g) < 0.5, taste[:, 0], f.item_categorical[:, 0])
        known = f.seq_items > 0
        same = (f.seq_item_categorical[..., 0] == f.item_categorical[:, None, 0]) & known
        score = 5 * (same.sum(1) / known.sum(1).clamp_min(1)) - 2.5
    else:
        # what each value of the column reads like as a query vector: one meaning for train and test
        directions = torch.randn(SIZES["item_cardinalities"][1] + 1, 32, generator=torch.Generator().manual_seed(99))
        named = torch.where(torch.rand(n, generator=g) < 0.5, f.item_categorical[:, 1],
                            torch.randint(0, SIZES["item_cardinalities"][1], (n,), generator=g))
        f.search = directions[named] + 0.3 * torch.randn(n, 32, generator=g)
        score = 4.0 * (named == f.item_categorical[:, 1]) - 2.0
    label = torch.bernoulli(torch.sigmoid(score), generator=g)
    return Batch.single(f, torch.zeros(n, dtype=torch.long)), label


def fitted_auc(outcome: str, learned: bool) -> float:
    torch.manual_seed(0)
    model = GRec(GRecConfig(**CONFIG, learned_interactions=learned))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    train, labels = world(4000, 1, outcome)
    for _ in range(4):
        for rows in torch.randperm(len(labels)).split(256):
            batch = train.select(rows)
            train_step(model.train(), optimizer, batch, labels[rows])
    test, truth = world(3000, 2, outcome)
    with torch.no_grad():
        scores = model.eval()(test).logits
    return roc_auc_score(truth.numpy(), scores.numpy())


def test_the_history_meets_the_candidate_attribute_by_attribute():
    learned, without = fitted_auc("history", True), fitted_auc("history", False)
    assert learned > 0.75 and learned > without + 0.15, (learned, without)


def test_the_query_meets_the_candidates_attributes():
    learned, without = fitted_auc("query", True), fitted_auc("query", False)
    assert learned > 0.8 and learned > without + 0.1, (learned, without)


def test_a_request_is_scored_like_independent_rows_with_every_interaction():
    torch.manual_seed(0)
    model = GRec(GRecConfig(**CONFIG, attribute_features=True, learned_interactions=True)).eval()
    one, f = random_features(1, seed=1), random_features(20, seed=2)
    one.search = torch.randn(1, 32)
    for name in ("context_categorical", "context_numerical", "search", "seq_items", "seq_pages", "flow",
                 "seq_item_categorical", "seq_item_numerical"):
        setattr(f, name, getattr(one, name).expand(20, *getattr(one, name).shape[1:]).clone())  # one customer
    batch = Batch.single(f, torch.zeros(20, dtype=torch.long))
    with torch.no_grad():
        torch.testing.assert_close(model.score_request(batch).logits, model(batch).logits, rtol=1e-4, atol=1e-5)
        scores = model(batch).logits
        f.seq_item_categorical[:, -1, 0] = (f.seq_item_categorical[:, -1, 0] + 1) % SIZES["item_cardinalities"][0]
        assert not np.allclose(model(batch).logits.numpy(), scores.numpy())  # the history's attributes reach the score
