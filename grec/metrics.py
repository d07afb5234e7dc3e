"""Ranking metrics under bootstrap weights: AUC and average precision of one score column for
many reweightings of its rows at once (the gate's, the benchmarks' and quality monitoring's
intervals). Each equals scikit-learn's on unit weights, and on integer weights equals it on the
rows repeated that many times.

Dimension letters: R rows, B weightings, G groups of tied scores.
"""

from __future__ import annotations

import numpy as np


def weighted_auc(label: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of `score` for every row of `weights`: label (R,), score (R,), weights (B, R) -> (B,).

    The Mann-Whitney statistic with tied scores counted half, as roc_auc_score does; one sort
    serves all B weightings. NaN where a weighting leaves no positive or no negative."""
    order = np.argsort(score, kind="stable")
    s, y, w = score[order], label[order].astype(bool), weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # (G,) first row of each tie group
    pos = np.add.reduceat(w * y, starts, axis=1)  # (B, G)
    neg = np.add.reduceat(w * ~y, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each group
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(1) / (pos.sum(1) * neg.sum(1))


def weighted_ap(label: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision of `score` for every row of `weights`: label (R,), score (R,), weights
    (B, R) -> (B,). Tied scores form one threshold, as in average_precision_score; NaN where a
    weighting leaves no positive."""
    order = np.argsort(-score, kind="stable")
    s, y, w = score[order], label[order].astype(bool), weights[:, order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # (G,) last row of each tie group
    tp = np.cumsum(w * y, axis=1)[:, ends]  # (B, G) weighted true positives at each threshold
    fp = np.cumsum(w * ~y, axis=1)[:, ends]
    gained = np.diff(tp, axis=1, prepend=0.0)  # recall steps (unnormalised)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (gained * precision).sum(1) / tp[:, -1]
