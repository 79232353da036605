"""The scale of Live search's scores: the cut-off slider's bounds, and the score below which results are usually
not relevant (the "relevance marker"). Pure logic, no Streamlit and no SQL, so it is tested on plain numbers.

Why: an encoder's cosines do not use -1..1 (the offline encoder's sit between about 0.15 and 0.66), so a -1..1
slider leaves the useful part a sliver. And a score means nothing to a reviewer until it is tied to what people
judged relevant: the marker is where P(relevant) crosses 0.5, fitted on the reviewers' labels (a 1-D logistic
regression of relevant vs not relevant on the stored score) or read off a calibrated model (an isotonic map from
cosine to 0..1 relevance, the `zero-shot` model of `python -m pipeline train`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_EACH = 5  # relevant and not-relevant labels each, before a fit is trusted
STEP = 0.01
RIDGE = 1e-3  # keeps the fit finite when the labels separate perfectly


@dataclass(frozen=True)
class Marker:
    """A score where results stop being relevant on average, and where it comes from (for the caption)."""

    score: float
    source: str  # "labels" or "model"
    detail: str  # e.g. "12 relevant / 30 not relevant labels"

    def describe(self) -> str:
        return f"{self.score:.2f} ({self.detail})"


def slider_bounds(low: float, high: float, markers: Sequence[Marker] = ()) -> tuple[float, float]:
    """Bounds for the cut-off slider: the observed scores rounded outward to STEP, widened to hold the markers,
    and never empty (a single score gets one step either side)."""
    points = [low, high, *(m.score for m in markers)]
    points = [p for p in points if math.isfinite(p)]
    if not points:
        return -1.0, 1.0
    lower = math.floor(min(points) / STEP) * STEP
    upper = math.ceil(max(points) / STEP) * STEP
    if upper - lower < STEP:
        lower, upper = lower - STEP, upper + STEP
    return round(lower, 2), round(upper, 2)


def logistic_crossing(scores: Sequence[float], relevant: Sequence[bool], min_each: int = MIN_EACH,
                      detail_unit: str = "labels") -> Marker | None:
    """Where a 1-D logistic fit of relevant on score crosses P = 0.5, or None with fewer than ``min_each`` of
    either verdict, or when relevance does not rise with the score (nothing to mark). Newton steps on the
    log-likelihood with a small ridge on the slope; the score is standardised first so the ridge does not depend
    on the encoder's scale."""
    x = np.asarray(scores, dtype=float)
    y = np.asarray(relevant, dtype=float)
    keep = np.isfinite(x)
    x, y = x[keep], y[keep]
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives < min_each or negatives < min_each:
        return None
    centre, spread = float(x.mean()), float(x.std())
    if spread == 0:
        return None
    design = np.column_stack([np.ones_like(x), (x - centre) / spread])
    weights = np.zeros(2)
    penalty = np.diag([0.0, RIDGE * len(x)])
    for _ in range(100):
        p = 1 / (1 + np.exp(-design @ weights))
        gradient = design.T @ (y - p) - penalty @ weights
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        weights += step
        if np.abs(step).max() < 1e-10:
            break
    intercept, slope = weights
    if slope <= 0:
        return None
    return Marker(float(centre - intercept / slope * spread), "labels",
                  f"{positives} relevant / {negatives} not relevant {detail_unit}")


def isotonic_crossing(thresholds_x: Sequence[float], thresholds_y: Sequence[float], run: str) -> Marker | None:
    """The lowest score a calibrated (isotonic, non-decreasing) map takes to relevance 0.5 or more, or None when it
    never gets there. ``thresholds_x`` / ``_y`` are sklearn's IsotonicRegression X_thresholds_ / y_thresholds_:
    the map interpolates linearly between them, so the crossing is interpolated too."""
    x = np.asarray(thresholds_x, dtype=float)
    y = np.asarray(thresholds_y, dtype=float)
    reached = np.flatnonzero(y >= 0.5)
    if not len(reached):
        return None
    i = int(reached[0])
    score = x[i] if i == 0 or y[i] == y[i - 1] else x[i - 1] + (0.5 - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1])
    return Marker(float(score), "model", f"calibrated model {run}")


def first_below(scores: Sequence[float], marker: Marker | None) -> int | None:
    """Index of the first score (scores ranked best first) under the marker, where the page draws "below here
    results are usually not relevant"; None without a marker or when every score is at or above it."""
    if marker is None:
        return None
    return next((i for i, score in enumerate(scores) if score < marker.score), None)


def no_good_match(best: float | None, marker: Marker | None) -> bool:
    """True when even the best result scores under the marker: the page says there is no good match."""
    return best is not None and marker is not None and best < marker.score


def page_count(total: int, per_page: int) -> int:
    """Pages needed for ``total`` results, at least 1 (page 1 of an empty result says so)."""
    return max(1, math.ceil(total / per_page))
