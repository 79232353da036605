"""Train stage: reads a target's pairs (`relevance`, `expert_ratings`, `crowd_ratings`, `captions`, `objects`,
`embeddings`, and `labels` with ``include_feedback``); writes `model_runs`, `model_predictions` and one model file
per run under the artifacts folder.

For each feature set and model: K-fold cross-validation grouped by image (GroupKFold on the target's groups; no
photo on both sides; hyper-parameters searched on inner folds of the training part only), metrics per fold and
over all out-of-fold predictions, then a final fit on every pair, saved as ``<run id>.joblib`` with its sha256
recorded. A constant baseline is trained in every call, and each run records whether it beat that baseline's MSE
on every fold.

The fold fits and the final fit of a run are independent, so they run in ``threads`` worker processes, each fit
single-threaded (two fits at once rather than one fit's OpenMP threads waiting on each other; benchmarks/train.py
times the old way beside this one). Every fit's seeds are fixed, so the results equal fits one after another.

Every check that can fail (model names, feature sets, too few pairs or photos, a target with a single value, bad
features) runs before the first model is fitted, so a refused call stores nothing and removes nothing.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from joblib import Parallel, delayed
from sklearn.model_selection import GroupKFold

from db import embeddings as store
from db import models as model_store
from db.database import Database
from pipeline import caption_features, metrics, models, targets
from pipeline.embed import text_vectors
from pipeline.encoders.base import Encoder
from pipeline.features import FEATURE_SETS, FeatureSet, PairFeatures, feature_set, fit_basis
from pipeline.progress import bar

MIN_PAIRS_PER_FOLD = 10
BASELINE_FEATURES = "none"
LATENCY_PAIRS = 1000


class TrainingError(ValueError):
    """Training was refused before any work started; nothing was stored or removed."""


@dataclass
class RunSummary:
    id: str
    model: str
    feature_set: str
    metrics: dict
    fold_mse: list[float]
    beats_baseline: bool | None
    train_seconds: float
    seconds: dict[str, float]  # phase -> seconds; see _run


@dataclass
class Prepared:
    """Everything a training call needs, built and checked before the first fit."""

    target: targets.Target
    pairs: pd.DataFrame  # the target's pairs, then the feedback pairs
    folds: np.ndarray  # fold of each target pair; feedback pairs of photos outside the target: -1 (always train)
    features: dict[str, pd.DataFrame]  # feature set name -> features of `pairs`
    builders: dict[str, PairFeatures]  # feature set name -> what computed them (its basis goes into the artifact)
    feedback_pairs: int
    n_folds: int
    feature_seconds: dict[str, float]  # "sources" or a feature set -> wall seconds (a shared part: its first set)


def default_artifacts(db: Database) -> Path:
    return db.path.resolve().parent / "models"


def train(db: Database, encoder: Encoder, prepared: Prepared, model_names: list[str], *, artifacts: Path | None = None,
          threads: int = 2, quiet: bool = False) -> list[RunSummary]:
    """Cross-validate, fit and register the constant baseline and every named model on every prepared feature
    set. ``prepared`` comes from :func:`prepare`, which made every check."""
    models.check_names(model_names)
    artifacts = artifacts or default_artifacts(db)
    artifacts.mkdir(parents=True, exist_ok=True)
    stamp = f"{datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:4]}"  # two calls in one second stay apart
    jobs = [(BASELINE_FEATURES, models.CONSTANT)] + [
        (name, model) for name in prepared.features for model in model_names if model != models.CONSTANT]
    summaries: list[RunSummary] = []
    baseline_mse: list[float] = []
    for set_name, model in bar(jobs, desc=f"train {prepared.target.name}", unit="model", disable=quiet):
        summary = _run(db, encoder, prepared, set_name, model, baseline_mse, artifacts, stamp, threads)
        baseline_mse = baseline_mse or summary.fold_mse
        summaries.append(summary)
    return summaries


def prepare(db: Database, encoder: Encoder, *, target: str = "expert", dataset: str | None = None,
            feature_set_names: list[str] | None = None, folds: int = 5, include_feedback: bool = False) -> Prepared:
    """Load the target's pairs (and reviewers' labels), assign folds, compute every feature set; every check
    that can refuse the call runs here, before any model is fitted."""
    if folds < 2:
        raise TrainingError(f"--folds must be at least 2 (got {folds})")
    loaded = targets.load(db, target, dataset, folds=folds)
    pairs = loaded.pairs
    _check_pairs(loaded, folds)
    group_fold = fold_of_group(pairs, folds)
    feedback = model_store.feedback_pairs(db, loaded.dataset) if include_feedback else pd.DataFrame()
    if not feedback.empty:
        # A labelled photo of the target keeps its photo's group (and fold); any other photo is a group of its
        # own that is never held out (fold -1), so it only ever trains.
        group_of_photo = pairs.drop_duplicates("image_id").set_index("image_id")["group"]
        feedback = feedback.assign(group=feedback["image_id"].map(group_of_photo).fillna(feedback["image_id"]))
        pairs = pd.concat([pairs, feedback[["image_id", "query_id", "query_text", "target", "group"]]],
                          ignore_index=True)
    fold = pairs["group"].map(group_fold).fillna(-1).astype(int).to_numpy()
    wanted = [feature_set(name) for name in feature_set_names] if feature_set_names else None
    sets = _feature_sets(db, encoder, loaded, pairs, wanted)
    started = time.perf_counter()
    builders = _builders(db, encoder, sets, pairs)
    query_vectors = text_vectors(db, encoder, pairs["query_text"].tolist())
    seconds = {"sources": time.perf_counter() - started}  # vectors, references, the encoded caption gallery
    features, parts = {}, {}  # parts: the image and caption blocks, each computed once for every set using it
    for name, builder in builders.items():
        started = time.perf_counter()
        features[name] = builder(pairs, query_vectors, parts)
        seconds[name] = time.perf_counter() - started
    return Prepared(loaded, pairs, fold, features, builders, len(feedback), folds, seconds)


def _check_pairs(target: targets.Target, folds: int) -> None:
    pairs = target.pairs
    if len(pairs) < MIN_PAIRS_PER_FOLD * folds:
        raise TrainingError(f"target {target.name}: {len(pairs)} usable pairs, too few for {folds} folds "
                            f"(need at least {MIN_PAIRS_PER_FOLD * folds})")
    groups = pairs["group"].nunique()
    if groups < folds:
        raise TrainingError(f"target {target.name}: pairs cover {groups} photo group(s), fewer than {folds} folds; "
                            "every fold needs photos of its own")
    if pairs["target"].nunique() < 2:
        raise TrainingError(f"target {target.name}: every pair has the same relevance "
                            f"({pairs['target'].iloc[0]:g}); there is nothing to learn")


def fold_of_group(pairs: pd.DataFrame, folds: int) -> dict:
    """GroupKFold over the target's pairs: the held-out fold of every group."""
    splitter = GroupKFold(n_splits=folds)
    groups = pairs["group"].to_numpy()
    result = {}
    for index, (_, held_out) in enumerate(splitter.split(pairs, groups=groups)):
        result.update(dict.fromkeys(groups[held_out], index))
    return result


def _feature_sets(db: Database, encoder: Encoder, target: targets.Target, pairs: pd.DataFrame,
                  wanted: list[FeatureSet] | None) -> list[FeatureSet]:
    photos = pairs["image_id"].unique().tolist()
    has_vectors = len(store.vectors_of(db, encoder.id, photos)) == len(photos)
    has_captions = not model_store.reference_captions(db, photos).empty
    possible = [fs for fs in FEATURE_SETS.values()
                if (has_vectors or not fs.uses_images) and (has_captions or not fs.uses_captions)]
    if wanted is None:
        if not possible:
            raise TrainingError(f"target {target.name}: its photos have neither vectors of {encoder.id} nor "
                                "captions; run `python -m pipeline embed` first")
        return possible
    for fs in wanted:
        if fs not in possible:
            missing = f"vectors of {encoder.id} for every photo (run `python -m pipeline embed`)" \
                if fs.uses_images and not has_vectors else "reference captions"
            raise TrainingError(f"feature set {fs.name!r} needs {missing}; target {target.name} lacks them")
    return wanted


def _builders(db: Database, encoder: Encoder, sets: list[FeatureSet], pairs: pd.DataFrame) -> dict[str, PairFeatures]:
    """What computes each feature set. The photo vectors, their basis, the reference captions and the caption
    gallery are read once and shared by every set that uses them.

    The gallery (what ``gal_*`` features rank a photo against) is the collection the target's judges searched:
    the captions of the photos its pairs cover. Flickr8k's expert and crowd judgments pair test captions with its
    1,000 test photos, so the other 7,000 photos were never candidates; encoding their 35,000 captions took
    about 300 s of a 590 s demo training call (benchmarks/train.py) for features about photos nobody judged."""
    photos = pairs["image_id"].unique().tolist()
    captions, images = any(fs.uses_captions for fs in sets), any(fs.uses_images for fs in sets)

    def encode(texts):
        return text_vectors(db, encoder, texts)

    references = model_store.reference_captions(db, photos) if captions else None
    # caption_features.judged_gallery(db, photos), built from the references already read
    gallery = caption_features.Gallery.build(references, encode) if captions else None
    photo_vectors = store.vectors_of(db, encoder.id, photos) if images else None
    basis = fit_basis(np.stack(list(photo_vectors.values()))) if photo_vectors else None
    return {fs.name: PairFeatures(fs, encode, photo_vectors=photo_vectors if fs.uses_images else None,
                                  references=references if fs.uses_captions else None,
                                  gallery=gallery if fs.uses_captions else None,
                                  basis=basis if fs.uses_images else None)
            for fs in sets}


def _run(db: Database, encoder: Encoder, prepared: Prepared, set_name: str, model: str, baseline_mse: list[float],
         artifacts: Path, stamp: str, threads: int) -> RunSummary:
    started = time.perf_counter()
    X = prepared.features.get(set_name) if set_name != BASELINE_FEATURES else \
        pd.DataFrame({"bias": np.zeros(len(prepared.pairs))})
    fs = FEATURE_SETS.get(set_name)
    zero_shot_score = fs.zero_shot_score if fs else ""
    pairs, fold = prepared.pairs, prepared.folds
    y, groups = pairs["target"].to_numpy(float), pairs["group"].astype(str).to_numpy()
    n_target = len(prepared.target.pairs)
    oof = np.zeros(n_target)
    fold_metrics, fold_params = [], []
    held_out = [np.flatnonzero(fold[:n_target] == index) for index in range(prepared.n_folds)]
    fits = _fit_all(model, X, y, groups, [fold != index for index in range(prepared.n_folds)] + [None],
                    held_out + [None], zero_shot_score, threads)
    for index, (test_rows, (predicted, params, _)) in enumerate(zip(held_out, fits)):
        oof[test_rows] = predicted
        figures = metrics.all_metrics(pairs.iloc[test_rows], oof[test_rows])
        if baseline_mse:
            figures["beats_baseline"] = bool(figures["mse"] < baseline_mse[index])
        fold_metrics.append({"fold": index, **figures})
        fold_params.append(params)
    final, final_params, _ = fits[-1]
    train_seconds = time.perf_counter() - started
    # fits: wall seconds of the fold fits and the final fit together (they overlap); the others add up each
    # fit's own seconds: fold fits, the final fit, and the hyper-parameter search's share of all of them.
    phases = {"fits": train_seconds, "fold_fits": sum(f[2]["fit"] for f in fits[:-1]),
              "final_fit": fits[-1][2]["fit"], "search": sum(f[2]["search"] for f in fits)}
    sample = X.iloc[np.arange(LATENCY_PAIRS) % len(X)]
    timer = time.perf_counter()
    models.predict(final, sample)
    predict_ms = (time.perf_counter() - timer) * 1000
    phases["latency"] = predict_ms / 1000
    timer = time.perf_counter()
    target = prepared.target
    run_id = f"{target.name}/{set_name}/{model}/{stamp}"
    artifact = artifacts / (run_id.replace("/", "__") + ".joblib")
    builder = prepared.builders.get(set_name)
    joblib.dump({"run_id": run_id, "estimator": final, "feature_set": set_name, "columns": list(X.columns),
                 "basis": builder.basis if builder else None, "encoder_id": encoder.id, "text_id": encoder.text_id,
                 "sklearn": sklearn.__version__}, artifact)
    fold_mse = [f["mse"] for f in fold_metrics]
    beats = all(f["beats_baseline"] for f in fold_metrics) if baseline_mse else None
    overall = metrics.all_metrics(target.pairs, oof)
    run = {
        "id": run_id, "model": model, "encoder": encoder.id, "feature_set": set_name,
        "params": {"final": final_params, "per_fold": fold_params, "searched": models.search_space(model),
                   "inner_folds": models.INNER_FOLDS},
        "uses_captions": bool(fs and fs.uses_captions), "uses_images": bool(fs and fs.uses_images),
        "target": target.name, "data_version": target.data_version, "pairs": n_target,
        "feedback_pairs": prepared.feedback_pairs, "folds": len(fold_metrics), "fold_metrics": fold_metrics,
        "metrics": overall, "beats_baseline": beats, "train_seconds": train_seconds, "predict_ms": predict_ms,
        "artifact": str(artifact), "artifact_sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
    }
    oof_frame = target.pairs[["image_id", "query_id"]].assign(fold=fold[:n_target], actual=target.pairs["target"],
                                                              predicted=oof)
    with db.write() as cur:
        model_store.save_run(cur, run, oof_frame)
    phases["save"] = time.perf_counter() - timer
    return RunSummary(run_id, model, set_name, overall, fold_mse, beats, train_seconds, phases)


def _fit_all(model: str, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray, train_rows: list[np.ndarray | None],
             test_rows: list[np.ndarray | None], zero_shot_score: str, threads: int) -> list[tuple]:
    """Fit ``model`` once per entry of ``train_rows`` (a row mask; None: every row), in ``threads`` processes.
    Each result is (predictions of its ``test_rows``, or the fitted estimator where those are None; the chosen
    parameters; the fit's seconds, whole and searching)."""
    jobs = [delayed(models.fit_single_threaded)(
                model, X if rows is None else X[rows], y if rows is None else y[rows],
                groups if rows is None else groups[rows], None if test is None else X.iloc[test], zero_shot_score)
            for rows, test in zip(train_rows, test_rows)]
    # Constant, zero-shot and ridge fit in milliseconds: starting worker processes would cost more than it saves.
    workers = threads if models.is_slow(model) else 1
    return Parallel(n_jobs=min(workers, len(jobs)), backend="loky")(jobs)
