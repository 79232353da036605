"""Retrieval evaluation stage: reads `embeddings`, `image_features`, `captions`, `objects`, `detections`; writes
`retrieval_metrics`.

Two protocols on a COCO dataset (default coco-mini), gallery = every readable photo of the dataset (the minors
filter does not apply: no photo is shown, and the protocol ranks all of them):

* ``coco-caption``: every caption is a query whose one relevant photo is its own. Recall@1/5/10, MRR, nDCG@10.
* ``coco-category``: one query per COCO category (its bare name, as a user would type it); relevant = the
  photos labelled with that object. Mean average precision.

Each is also reported on the photos of ``UNSEEN_SPLIT`` alone (protocols ``coco-caption/val2017``,
``coco-category/val2017``: gallery, queries and categories of val2017 photos only): the object detector was
trained on COCO train2017, so only those figures are free of photos it saw in training.

The offline encoder's fitted bridge is learned from captions, so it is cross-fitted: photos with captions are
split into folds; for fold f the bridge is fitted on the other folds only, and fold f's captions are scored
against all photos projected with that bridge. For the category protocol each photo is projected with the
bridge of the fold that held it out. When the encoder fuses detected objects, fold f's object weight is chosen
by an inner cross-fit over the other folds (bridges fitted without fold f and one more), so fold f's captions
choose nothing either. No scored query's photo is ever seen in fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from db import embeddings as store
from db.database import Database
from pipeline.bridge import CaptionFolds, embed_current
from pipeline.embed import text_vectors
from pipeline.encoders.base import Encoder
from pipeline.encoders.offline import Bridge, OfflineEncoder
from pipeline.object_text import (ObjectFusion, data_free_center, fitted_center, fuse, object_mixtures,
                                  photo_objects)
from pipeline.perception import PERCEIVER_ID

CAPTION, CATEGORY = "coco-caption", "coco-category"
DEFAULT_DATASET = "coco-mini"
DEFAULT_FOLDS = 5
UNSEEN_SPLIT = "val2017"


class EvaluationError(RuntimeError):
    pass


@dataclass
class Evaluation:
    encoder: str
    protocol: str
    metrics: dict[str, float]
    details: dict


def caption_metrics(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """One relevant photo per query (column ``relevant[i]`` of row i). Ties count against the query."""
    own = scores[np.arange(len(relevant)), relevant]
    return rank_metrics((scores >= own[:, None]).sum(axis=1))  # 1-based; a photo scoring the same ranks ahead


def rank_metrics(rank: np.ndarray) -> dict[str, float]:
    """Recall@1/5/10, MRR and nDCG@10 from the 1-based rank of each query's one relevant photo."""
    return {
        "recall@1": float(np.mean(rank <= 1)),
        "recall@5": float(np.mean(rank <= 5)),
        "recall@10": float(np.mean(rank <= 10)),
        "mrr": float(np.mean(1.0 / rank)),
        "ndcg@10": float(np.mean(np.where(rank <= 10, 1.0 / np.log2(rank + 1), 0.0))),
    }


def mean_average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """``relevant``: boolean (queries, photos). Average precision per query, then the mean."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    cumulative = np.cumsum(hits, axis=1)
    precision = cumulative / np.arange(1, scores.shape[1] + 1)
    return float(np.mean((precision * hits).sum(axis=1) / np.maximum(hits.sum(axis=1), 1)))


def evaluate(db: Database, encoder: Encoder, *, dataset: str = DEFAULT_DATASET, folds: int = DEFAULT_FOLDS,
             cross_fit: bool = False, quiet: bool = False) -> list[Evaluation]:
    """Both protocols for one encoder, on all photos and on UNSEEN_SPLIT photos alone; ``cross_fit`` (offline
    encoder only) refits the bridge (and chooses the object weight) per fold."""
    captions = store.captions_of_readable_photos(db, dataset)
    if captions.empty:
        raise EvaluationError(f"no captioned readable photos in dataset {dataset!r}; ingest it first")
    embed_current(db, encoder, quiet=quiet)
    photo_ids, vectors = store.dataset_vectors(db, encoder.id, dataset)
    row = {p: i for i, p in enumerate(photo_ids)}
    captions = captions[captions["image_id"].isin(row)]
    queries = text_vectors(db, encoder, captions["text"].tolist())
    target = np.array([row[p] for p in captions["image_id"]])
    objects = store.objects_of_readable_photos(db, dataset)
    categories = sorted(set(objects["category"]))
    relevant = np.zeros((len(categories), len(photo_ids)), dtype=bool)
    for category, photo in zip(objects["category"], objects["image_id"]):
        if photo in row:
            relevant[categories.index(category), row[photo]] = True
    category_queries = text_vectors(db, encoder, categories)
    version = store.data_version(db, dataset)
    base = {"dataset": dataset, "data_version": version}

    if cross_fit:
        if not isinstance(encoder, OfflineEncoder):
            raise EvaluationError("cross-fitting applies to the offline encoder's bridge only")
        name = cross_fit_name(encoder, folds)
        caption_scores, gallery, split = _cross_fit(db, encoder, photo_ids, captions["image_id"].to_numpy(),
                                                    queries, folds)
    else:
        name, gallery = encoder.id, vectors
        caption_scores = queries @ gallery.T
        split = {"learned_from_this_data": False}
    if isinstance(encoder, OfflineEncoder) and encoder.objects is not None:
        seen = photo_objects(db, encoder.objects.perceiver, photo_ids)
        split = {**split, "perceiver": encoder.objects.perceiver, "photos_perceived": sum(p.perceived for p in seen)}
    splits = store.photo_splits(db, dataset)
    subsets = [(CAPTION, CATEGORY, "all photos", np.ones(len(photo_ids), dtype=bool))]
    unseen = np.array([splits.get(p) == UNSEEN_SPLIT for p in photo_ids])
    if unseen.any() and not unseen.all():
        subsets.append((f"{CAPTION}/{UNSEEN_SPLIT}", f"{CATEGORY}/{UNSEEN_SPLIT}",
                        f"{UNSEEN_SPLIT} photos only (gallery, queries and categories)", unseen))
    results = []
    for caption_protocol, category_protocol, photos, keep in subsets:
        details = {**base, **split, "split": photos, "photos": int(keep.sum())}
        remap = np.cumsum(keep) - 1
        asked = keep[target]
        results.append(Evaluation(name, caption_protocol,
                                  caption_metrics(caption_scores[asked][:, keep], remap[target[asked]]),
                                  {**details, "queries": int(asked.sum())}))
        present = relevant[:, keep].any(axis=1)
        if present.any():
            scores = (category_queries[present] @ gallery[keep].T)
            results.append(Evaluation(name, category_protocol,
                                      {"map": mean_average_precision(scores, relevant[present][:, keep])},
                                      {**details, "queries": int(present.sum())}))
    with db.write() as cur:
        for result in results:
            store.save_metrics(cur, result.encoder, result.protocol, result.metrics, version, result.details)
    return results


def evaluate_offline(db: Database, encoder: OfflineEncoder, *, dataset: str = DEFAULT_DATASET,
                     folds: int = DEFAULT_FOLDS, quiet: bool = False) -> list[Evaluation]:
    """The offline encoder four ways: zero-shot and cross-fitted, each with the bridge alone and with the current
    perceiver's objects (zero-shot: the default weight; cross-fitted: the weight chosen per fold)."""
    plain = encoder.with_bridge(Bridge()).with_objects(None)
    fused = plain.with_objects(ObjectFusion(PERCEIVER_ID))
    results = []
    for cross_fit in (False, True):
        for one in (plain, fused):
            results += evaluate(db, one, dataset=dataset, folds=folds, cross_fit=cross_fit, quiet=quiet)
    return results


def cross_fit_name(encoder: OfflineEncoder, folds: int) -> str:
    """'offline-fit-<views> (5-fold cross-fit)', with '+objects' when detected objects are fused."""
    if encoder.objects is None:
        return f"offline-fit-{encoder.views_id} ({folds}-fold cross-fit)"
    return f"offline-fit+objects-{encoder.views_id} ({folds}-fold cross-fit, object weight by inner cross-fit)"


def _cross_fit(db: Database, encoder: OfflineEncoder, photo_ids: list[str], caption_photo: np.ndarray,
               queries: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Caption scores with per-fold bridges (and object weights), the out-of-fold gallery (each photo by its
    held-out fold's bridge; uncaptioned photos were never fitted on, any fold will do), and how it was split."""
    ids, features = store.cached_features(db, encoder.feature_id, photo_ids)
    if ids != photo_ids:
        raise EvaluationError("cached features are missing for some photos; run `python -m pipeline embed`")
    split = CaptionFolds(encoder, photo_ids, features, caption_photo, queries, folds)
    if encoder.objects is not None:
        mixtures, has = object_mixtures(photo_objects(db, encoder.objects.perceiver, photo_ids), encoder.phrases,
                                        encoder.dim)
        default_center = data_free_center(encoder.phrases)
    captioned = set(split.captioned)
    scores = np.zeros((len(queries), len(photo_ids)), dtype=np.float32)
    out_of_fold = np.zeros((len(photo_ids), encoder.dim), dtype=np.float32)
    weights = []
    for fold in range(folds):
        outer = frozenset({fold})
        gallery = split.bridge_vectors(outer)
        if encoder.objects is not None:
            weight, _ = split.object_weight(outer, mixtures, has, default_center)
            rows = split.fitted_rows(outer)
            center = fitted_center(mixtures[rows], has[rows])
            gallery = fuse(gallery, mixtures, has, weight, default_center if center is None else center)
            weights.append(weight)
        scored = split.scored(fold)
        scores[scored] = queries[scored] @ gallery.T
        held = split.held_out(outer)
        fold_rows = [i for i, p in enumerate(photo_ids) if p in held or p not in captioned]
        out_of_fold[fold_rows] = gallery[fold_rows]
    details = {"cross_fit_folds": folds, "fold_by": "photo", "fitted_on": "captions of the other folds"}
    if weights:
        details |= {"object_weights": weights, "photos_with_objects": int(has.sum())}
    return scores, out_of_fold, details
