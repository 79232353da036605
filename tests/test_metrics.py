"""Relevance metrics checked by hand and against scipy's own definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import metrics


def test_regression_by_hand() -> None:
    actual = np.array([0.0, 0.5, 1.0, 0.5])
    predicted = np.array([0.1, 0.5, 0.7, 0.5])
    got = metrics.regression(actual, predicted)
    assert got["mae"] == pytest.approx((0.1 + 0 + 0.3 + 0) / 4)
    assert got["mse"] == pytest.approx((0.01 + 0.09) / 4)
    assert got["rmse"] == pytest.approx(math.sqrt(0.025))
    assert got["r2"] == pytest.approx(1 - 0.025 / np.var(actual))


def test_constant_prediction_has_no_correlation_and_zero_r2() -> None:
    actual = np.linspace(0, 1, 20)
    got = metrics.regression(actual, np.full(20, actual.mean()))
    assert got["r2"] == pytest.approx(0.0)
    assert math.isnan(got["spearman"])


def test_tau_c_differs_from_tau_b_on_a_four_level_scale() -> None:
    """tau-c is what the CLIPScore protocol reports on expert scores; with ties it is not tau-b."""
    rng = np.random.default_rng(0)
    experts = rng.integers(1, 5, 200)
    predicted = experts + rng.normal(0, 1.0, 200)
    frame = pd.DataFrame({"expert_1": experts, "expert_2": experts, "expert_3": 5 - experts,
                          "crowd_share": (experts - 1) / 3})
    got = metrics.judgments(frame, predicted)
    assert 0.3 < got["tau_c_expert_1"] == got["tau_c_expert_2"]
    assert got["tau_c_expert_3"] == pytest.approx(-got["tau_c_expert_1"])
    assert got["tau_b_crowd"] > 0.3 and got["tau_b_crowd"] != pytest.approx(got["tau_c_expert_1"])


def test_judgments_skip_missing_values() -> None:
    frame = pd.DataFrame({"crowd_share": [np.nan] * 5 + list(np.linspace(0, 1, 20))})
    predicted = np.r_[np.full(5, 9.0), np.linspace(0, 1, 20)]
    assert metrics.judgments(frame, predicted)["tau_b_crowd"] == pytest.approx(1.0)


def test_per_query_ranking_by_hand() -> None:
    queries = np.array(["q1"] * 3 + ["q2"] * 2 + ["q3"])  # q3 has one photo: not a ranking
    actual = np.array([1.0, 0.5, 0.0, 0.2, 0.8, 1.0])
    predicted = np.array([0.9, 0.8, 0.1, 0.5, 0.5, 0.3])  # q2: a tie, counted against the query
    got = metrics.per_query_ranking(queries, actual, predicted)
    assert got["queries"] == 2
    assert got["mrr"] == pytest.approx((1 + 0.5) / 2)
    ideal_q2 = 0.8 + 0.2 / math.log2(3)
    assert got["ndcg@10"] == pytest.approx((1.0 + (0.2 + 0.8 / math.log2(3)) / ideal_q2) / 2)


def _ranking_one_query_at_a_time(queries, actual, predicted, k=10) -> dict[str, float]:
    """The definition, one query at a time (the code before the vectorised version), as the reference."""
    ndcgs, reciprocal_ranks = [], []
    for query in dict.fromkeys(queries):
        rows = queries == query
        truth, scores = actual[rows], predicted[rows]
        if len(truth) < 2 or truth.max() <= 0:
            continue
        order = np.lexsort((truth, -scores))
        gains = truth[order][:k]
        discounts = 1.0 / np.log2(np.arange(2, len(gains) + 2))
        ideal = np.sort(truth)[::-1][:k]
        ndcgs.append((gains * discounts).sum() / (ideal * discounts[: len(ideal)]).sum())
        reciprocal_ranks.append(1.0 / (np.flatnonzero(truth[order] == truth.max())[0] + 1))
    return {f"ndcg@{k}": np.mean(ndcgs), "mrr": np.mean(reciprocal_ranks), "queries": len(ndcgs)}


@pytest.mark.parametrize("seed", range(5))
def test_per_query_ranking_matches_the_definition_query_by_query(seed: int) -> None:
    """Many queries of different sizes (longer than k, single photos, all-zero truth), ties in predictions and
    truth on a 4-level scale, queries interleaved rather than contiguous."""
    rng = np.random.default_rng(seed)
    queries = rng.choice([f"q{i}" for i in range(60)], size=700)
    actual = rng.integers(0, 4, 700) / 3
    actual[queries == "q0"] = 0.0  # no relevant photo: not a ranking
    predicted = np.round(actual + rng.normal(0, 0.3, 700), 1)  # rounding makes ties
    got = metrics.per_query_ranking(queries, actual, predicted)
    want = _ranking_one_query_at_a_time(queries, actual, predicted)
    assert got["queries"] == want["queries"] and 40 < got["queries"] < 60
    assert got["ndcg@10"] == pytest.approx(want["ndcg@10"], rel=1e-12)
    assert got["mrr"] == pytest.approx(want["mrr"], rel=1e-12)


def test_per_query_ranking_without_any_ranking_is_nan() -> None:
    for queries, actual in ((np.array([], dtype=object), np.array([])), (np.array(["a", "b"]), np.array([1.0, 0.0])),
                            (np.array(["a", "a"]), np.array([0.0, 0.0]))):
        got = metrics.per_query_ranking(queries, actual, np.zeros(len(actual)))
        assert got["queries"] == 0 and math.isnan(got["ndcg@10"]) and math.isnan(got["mrr"])
