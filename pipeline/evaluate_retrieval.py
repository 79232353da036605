"""Retrieval evaluation stage: reads `embeddings`, `image_features`, `captions`, `objects`; writes
`retrieval_metrics`.

Two protocols on a COCO dataset (default coco-mini), gallery = every readable photo of the dataset (the minors
filter does not apply: no photo is shown, and the protocol ranks all of them):

* ``coco-caption``: every caption is a query whose one relevant photo is its own. Recall@1/5/10, MRR, nDCG@10.
* ``coco-category``: one query per COCO category (its bare name, as a user would type it); relevant = the
  photos labelled with that object. Mean average precision.

The offline encoder's fitted bridge is learned from captions, so it is cross-fitted: photos with captions are
split into folds; for fold f the bridge is fitted on the other folds only, and fold f's captions are scored
against all photos projected with that bridge. For the category protocol each photo is projected with the
bridge of the fold that held it out. No scored query's photo is ever seen in fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from db import embeddings as store
from db.database import Database
from pipeline.embed import embed, text_vectors
from pipeline.encoders.base import Encoder
from pipeline.encoders.offline import Bridge, OfflineEncoder, fit_bridge

CAPTION, CATEGORY = "coco-caption", "coco-category"
DEFAULT_DATASET = "coco-mini"
DEFAULT_FOLDS = 5


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


def _folds(photo_ids: list[str], folds: int, seed: int = 0) -> list[set[str]]:
    order = np.random.default_rng(seed).permutation(len(photo_ids))
    return [{photo_ids[i] for i in part} for part in np.array_split(order, folds)]


def evaluate(db: Database, encoder: Encoder, *, dataset: str = DEFAULT_DATASET, folds: int = DEFAULT_FOLDS,
             cross_fit: bool = False, quiet: bool = False) -> list[Evaluation]:
    """Both protocols for one encoder; ``cross_fit`` (offline encoder only) refits the bridge per fold."""
    captions = store.captions_of_readable_photos(db, dataset)
    if captions.empty:
        raise EvaluationError(f"no captioned readable photos in dataset {dataset!r}; ingest it first")
    embed(db, encoder, quiet=quiet)
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
    base = {"dataset": dataset, "photos": len(photo_ids), "data_version": version}

    if cross_fit:
        if not isinstance(encoder, OfflineEncoder):
            raise EvaluationError("cross-fitting applies to the offline encoder's bridge only")
        name = f"{encoder.id.replace(encoder.bridge.id, 'fit')} ({folds}-fold cross-fit)"
        caption_scores, gallery = _cross_fit(db, encoder, photo_ids, captions, queries, target, folds)
        split = {"cross_fit_folds": folds, "fold_by": "photo", "fitted_on": "captions of the other folds"}
    else:
        name, gallery = encoder.id, vectors
        caption_scores = queries @ gallery.T
        split = {"learned_from_this_data": False}
    results = [
        Evaluation(name, CAPTION, caption_metrics(caption_scores, target),
                   {**base, **split, "queries": len(target)}),
    ]
    if categories:
        results.append(Evaluation(name, CATEGORY, {"map": mean_average_precision(category_queries @ gallery.T, relevant)},
                                  {**base, **split, "queries": len(categories)}))
    with db.write() as cur:
        for result in results:
            store.save_metrics(cur, result.encoder, result.protocol, result.metrics, version, result.details)
    return results


def _cross_fit(db: Database, encoder: OfflineEncoder, photo_ids: list[str], captions, queries: np.ndarray,
               target: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """Caption scores with per-fold bridges, and the out-of-fold gallery (each photo by its held-out bridge)."""
    ids, features = store.cached_features(db, encoder.feature_id, photo_ids)
    if ids != photo_ids:
        raise EvaluationError("cached features are missing for some photos; run `python -m pipeline embed`")
    row = {p: i for i, p in enumerate(photo_ids)}
    captioned = sorted(set(captions["image_id"]))
    caption_photo = captions["image_id"].to_numpy()
    scores = np.zeros((len(target), len(photo_ids)), dtype=np.float32)
    out_of_fold = np.zeros((len(photo_ids), encoder.dim), dtype=np.float32)
    for held_out in _folds(captioned, folds):
        train_photos = [p for p in captioned if p not in held_out]
        train_rows = {p: i for i, p in enumerate(train_photos)}
        train_captions = np.array([p in train_rows for p in caption_photo])
        bridge = fit_bridge(features[[row[p] for p in train_photos]], encoder.class_embeddings,
                            queries[train_captions], np.array([train_rows[p] for p in caption_photo[train_captions]]),
                            base=Bridge(encoder.bridge.temperature, encoder.bridge.top_k))
        gallery = bridge.apply(features, encoder.class_embeddings)
        scored = np.array([p in held_out for p in caption_photo])
        scores[scored] = queries[scored] @ gallery.T
        fold_rows = [i for i, p in enumerate(photo_ids) if p in held_out or p not in captioned]
        out_of_fold[fold_rows] = gallery[fold_rows]  # uncaptioned photos: never fitted on, any fold will do
    return scores, out_of_fold
