"""grec.metrics: AUC and AP under bootstrap weights equal scikit-learn's, with ties, on unit
weights and on integer weights (a row weighted k times is the row repeated k times)."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from grec.metrics import weighted_ap, weighted_auc


@pytest.mark.parametrize("metric, reference", [(weighted_auc, roc_auc_score), (weighted_ap, average_precision_score)])
def test_matches_sklearn_with_ties_and_reweighting(metric, reference):
    rng = np.random.default_rng(1)
    label = rng.random(500) < 0.2
    score = np.round(rng.random(500), 1)  # many ties
    assert metric(label, score, np.ones((1, 500)))[0] == pytest.approx(reference(label, score))
    counts = rng.poisson(1.0, (3, 500))  # integer weights == repeating rows
    for row, got in zip(counts, metric(label, score, counts.astype(float))):
        repeated = np.repeat(np.arange(500), row)
        assert got == pytest.approx(reference(label[repeated], score[repeated]))


def test_a_weighting_without_positives_is_nan():
    label, score = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    weights = np.array([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    for metric in (weighted_auc, weighted_ap):
        values = metric(label, score, weights)
        assert np.isnan(values[0]) and np.isfinite(values[1])
