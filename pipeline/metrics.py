"""Metrics of relevance predictions: regression, rank correlation with each human judgment, per-query ranking.

Rank correlation follows the CLIPScore paper (Hessel et al. 2021): Kendall tau-c between the predictions and each
expert's 1..4 scores (the 4-level scale has many ties, tau-c corrects for the unequal table shape), tau-b against
the crowd's share of "yes" votes. Per-query ranking: for each query with two or more rated photos, order its photos
by prediction; nDCG@10 uses the true relevance as gain, MRR the rank of the first photo with the query's highest
true relevance (ties in the prediction count against the query).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

EXPERTS = ("expert_1", "expert_2", "expert_3")
CROWD = "crowd_share"
# A correlation needs a few pairs with more than one value on each side; below this it is not reported.
MIN_PAIRS_FOR_CORRELATION = 10


def regression(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    error = predicted - actual
    mse = float(np.mean(error**2))
    variance = float(np.var(actual))
    return {
        "mae": float(np.mean(np.abs(error))),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "r2": 1.0 - mse / variance if variance > 0 else float("nan"),
        "spearman": _correlation(stats.spearmanr, actual, predicted),
    }


def _correlation(function, x: np.ndarray, y: np.ndarray, **options) -> float:
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < MIN_PAIRS_FOR_CORRELATION or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(function(x, y, **options).statistic)


def judgments(frame: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """Kendall tau-c against each expert and tau-b against the crowd, over the pairs that carry each judgment."""
    result = {}
    for column in EXPERTS:
        if column in frame:
            result[f"tau_c_{column}"] = _correlation(stats.kendalltau, frame[column].to_numpy(float), predicted,
                                                     variant="c")
    if CROWD in frame:
        result["tau_b_crowd"] = _correlation(stats.kendalltau, frame[CROWD].to_numpy(float), predicted, variant="b")
    return result


def per_query_ranking(query_ids: np.ndarray, actual: np.ndarray, predicted: np.ndarray,
                      k: int = 10) -> dict[str, float]:
    """Mean nDCG@k and MRR over queries with two or more rated photos (NaN when there are none).

    Computed for all queries at once on sorted arrays: a pandas group per query took about 1 s per training run
    (six calls: each fold and all out-of-fold predictions), more than the ridge fits it scored."""
    codes, _ = pd.factorize(np.asarray(query_ids))  # queries numbered in order of first appearance
    actual, predicted = np.asarray(actual, np.float64), np.asarray(predicted, np.float64)
    if not len(codes):
        return _no_ranking(k)
    # Rows by query, then prediction (best first), then true relevance (lowest first): pessimistic tie handling,
    # a photo predicted equal to a better one is ranked after it. The ideal order sorts by truth alone.
    ranked = actual[np.lexsort((actual, -predicted, codes))]
    ideal = actual[np.lexsort((-actual, codes))]
    query = np.sort(codes)
    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
    sizes = np.diff(np.r_[starts, len(query)])
    rank = np.arange(len(query)) - np.repeat(starts, sizes)  # 0-based, within the query
    discount = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    best = np.maximum.reduceat(ranked, starts)
    first_best = np.minimum.reduceat(np.where(ranked == np.repeat(best, sizes), rank, len(rank)), starts)
    kept = (sizes >= 2) & (best > 0)
    if not kept.any():
        return _no_ranking(k)
    ndcg = np.add.reduceat(ranked * discount, starts)[kept] / np.add.reduceat(ideal * discount, starts)[kept]
    return {f"ndcg@{k}": float(np.mean(ndcg)), "mrr": float(np.mean(1.0 / (first_best[kept] + 1))),
            "queries": int(kept.sum())}


def _no_ranking(k: int) -> dict[str, float]:
    return {f"ndcg@{k}": float("nan"), "mrr": float("nan"), "queries": 0}


def all_metrics(frame: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """Every metric of ``predicted`` against ``frame`` (columns target, query_id and any judgment columns)."""
    actual = frame["target"].to_numpy(float)
    return {
        **regression(actual, predicted),
        **judgments(frame, predicted),
        **per_query_ranking(frame["query_id"].to_numpy(), actual, predicted),
        "pairs": len(frame),
    }
