"""The model zoo: every relevance model is a scikit-learn estimator built by name, with its own search space.

Hyper-parameters are chosen by scikit-learn's searchers (GridSearchCV for small grids, RandomizedSearchCV for the
tree ensembles) on inner folds that are themselves grouped by image, so the inner search never sees a photo on
both sides either. Predictions are clipped to the 0..1 range of the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import loguniform, randint
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold, RandomizedSearchCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

CONSTANT = "constant"
ZERO_SHOT = "zero-shot"
MODEL_NAMES = (CONSTANT, ZERO_SHOT, "ridge", "random-forest", "hist-gradient-boosting", "mlp")
INNER_FOLDS = 3
SEED = 0
SLOW = frozenset({"random-forest", "hist-gradient-boosting", "mlp"})


class ModelError(ValueError):
    """A model name or setting that cannot be trained; raised before any work starts."""


class CalibratedScore(RegressorMixin, BaseEstimator):
    """The encoder's zero-shot score (one feature column) mapped monotonically to 0..1 relevance (isotonic)."""

    def __init__(self, column: str = "cosine") -> None:
        self.column = column

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> CalibratedScore:
        self.isotonic_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(X[self.column], y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.isotonic_.predict(X[self.column])


@dataclass(frozen=True)
class Spec:
    """How to build one model: the estimator, its search space, and which searcher explores it."""

    estimator: BaseEstimator
    space: dict
    randomized: bool = False
    draws: int | None = None  # candidates a randomized search tries (each randomized spec names its own)
    parallel_candidates: bool = False  # single-threaded and slow enough to be worth one process per candidate


def _spec(name: str, zero_shot_score: str, threads: int) -> Spec:
    if name == CONSTANT:
        return Spec(DummyRegressor(strategy="mean"), {})
    if name == ZERO_SHOT:
        return Spec(CalibratedScore(zero_shot_score), {})
    if name == "ridge":
        return Spec(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": [0.1, 1.0, 10.0, 100.0, 1000.0]})
    if name == "random-forest":
        # "sqrt"/"log2" keep wide feature sets (photo and text vectors, ~1,150 columns) affordable on 2 cores.
        # Three draws: the fourth (max_features "log2") was never chosen on a demo target (24 of 24 fits, the
        # full zoo's runs), so dropping it leaves every prediction as it was and saves a quarter of the search.
        return Spec(
            RandomForestRegressor(n_estimators=100, n_jobs=threads, random_state=SEED),
            {"min_samples_leaf": randint(2, 30), "max_features": ["sqrt", "log2", 0.2, 0.33], "max_depth": [None, 16]},
            randomized=True, draws=3,
        )
    if name == "hist-gradient-boosting":
        # 100 rounds on 31 bins at twice the learning rate: a fit spends most of its time finding splits (rounds x
        # bins x features), and 200 rounds on 255 bins took 2.9x as long for out-of-fold R2 within 0.011 on every
        # demo target and feature set (the image set lost most: 0.444 -> 0.433; measured on the demo database).
        # Two draws: the third and fourth were never the ones chosen there (24 of 24 fits: identical out-of-fold
        # predictions without them), and each cost a quarter to a third of the search.
        return Spec(
            HistGradientBoostingRegressor(max_iter=100, max_bins=31, early_stopping=False, random_state=SEED),
            {"learning_rate": loguniform(0.06, 0.3), "max_leaf_nodes": randint(8, 32),
             "min_samples_leaf": randint(20, 80), "l2_regularization": loguniform(1e-2, 10.0)},
            randomized=True, draws=2,
        )
    if name == "mlp":
        return Spec(
            make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(64,), early_stopping=True,
                                                         max_iter=300, random_state=SEED)),
            # alpha 1e-2 was never chosen on a demo target (24 of 24 fits) and was half of the search's fits.
            {"mlpregressor__alpha": [1.0], "mlpregressor__hidden_layer_sizes": [(32,), (128, 32)]},
            parallel_candidates=True,
        )
    raise ModelError(f"unknown model {name!r}; choose from: {', '.join(MODEL_NAMES)}")


def check_names(names: list[str]) -> None:
    unknown = [name for name in names if name not in MODEL_NAMES]
    if unknown:
        raise ModelError(f"unknown model(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(MODEL_NAMES)}")


def is_slow(name: str) -> bool:
    """Whether fitting ``name`` takes long enough (seconds, not milliseconds) to be worth a worker process."""
    return name in SLOW


def fit(name: str, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, *, zero_shot_score: str,
        threads: int = 2, seconds: dict[str, float] | None = None) -> tuple[BaseEstimator, dict]:
    """Fit model ``name`` (searching its hyper-parameters on inner folds grouped by ``groups``).
    Returns the fitted estimator and the chosen parameters; ``seconds``, when given, receives the wall seconds
    of the whole fit ("fit") and of the search on inner folds in it ("search")."""
    started = time.perf_counter()
    seconds = {} if seconds is None else seconds
    seconds["search"] = 0.0
    spec = _spec(name, zero_shot_score, threads)
    if not spec.space:
        estimator = clone(spec.estimator).fit(X, y)
        seconds["fit"] = time.perf_counter() - started
        return estimator, {}
    inner = GroupKFold(n_splits=min(INNER_FOLDS, len(np.unique(groups))))
    if spec.randomized:
        search = RandomizedSearchCV(spec.estimator, spec.space, n_iter=spec.draws, cv=inner,
                                    scoring="neg_mean_squared_error", random_state=SEED, refit=False)
    else:
        search = GridSearchCV(spec.estimator, spec.space, cv=inner, scoring="neg_mean_squared_error", refit=False,
                              n_jobs=threads if spec.parallel_candidates else None)
    # The search sees a plain array: scikit-learn checks a DataFrame's every column on every call (each step of
    # a pipeline, every fit and score): 7.4 of a ridge search's 12.8 s under cProfile. The chosen model is fitted on
    # the named frame, so it keeps the column names that serving checks. Same numbers either way.
    search.fit(X.to_numpy(), y, groups=groups)
    seconds["search"] = time.perf_counter() - started
    estimator = clone(spec.estimator).set_params(**search.best_params_).fit(X, y)
    seconds["fit"] = time.perf_counter() - started
    return estimator, _plain(search.best_params_)


def fit_single_threaded(name: str, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, test: pd.DataFrame | None,
                        zero_shot_score: str) -> tuple:
    """One fit of a cross-validation, as a worker process runs it (pipeline/train.py): single-threaded, since
    the fits run side by side, one per core, and OpenMP or BLAS threads would only contend. Returns (predictions
    of ``test``, or the fitted estimator where ``test`` is None; the chosen parameters; the fit's seconds).
    It lives here rather than in train.py so that a worker imports scikit-learn alone, not torch and the
    database (about 3 s a worker)."""
    seconds: dict[str, float] = {}
    with threadpool_limits(1):
        estimator, params = fit(name, X, y, groups, zero_shot_score=zero_shot_score, threads=1, seconds=seconds)
        result = estimator if test is None else predict(estimator, test)
    return result, params, seconds


def search_space(name: str) -> dict:
    """The searched space in words, for the run's stored parameters."""
    return {key: repr(value) if hasattr(value, "rvs") else value
            for key, value in _spec(name, "cosine", 1).space.items()}


def _plain(params: dict) -> dict:
    return {key: (value.item() if isinstance(value, np.generic) else value) for key, value in params.items()}


def predict(estimator: BaseEstimator, X: pd.DataFrame) -> np.ndarray:
    return np.clip(np.asarray(estimator.predict(X), dtype=np.float64), 0.0, 1.0)
