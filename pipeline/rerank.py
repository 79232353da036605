"""Re-ranking: a registered relevance model re-orders the encoder's top candidates of a search.

:class:`Reranker` loads a run's model file (checked against the sha256 registered in `model_runs`) and scores
(photo, query) pairs with the same features it was trained on: photo vectors of the run's encoder from
`embeddings`, text vectors of the searching encoder (which must share the run's text side), and for caption
feature sets the candidates' reference captions compared against every visible captioned photo.

:func:`evaluate` measures whether re-ranking helps COCO caption retrieval without letting the model see the
photos it ranks: the run's model configuration is refitted per fold (the category-pairs folds), and each fold's
captions are searched among that fold's photos only, first by the encoder's cosine, then re-ranked. Both
Recall@1 figures come from the same queries and the same galleries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from db import embeddings as store
from db import models as model_store
from db.database import Database
from pipeline import caption_features, models, targets
from pipeline.embed import text_vectors
from pipeline.encoders.base import Encoder
from pipeline.evaluate_retrieval import rank_metrics
from pipeline.features import FEATURE_SETS, PairFeatures, fit_basis
from pipeline.train import fold_of_group

DEPTH = 100
PROTOCOL = "coco-caption-heldout-fold"


class RerankError(RuntimeError):
    """The chosen run cannot re-rank; the message says why and what to do."""


def load_artifact(run: dict) -> dict:
    path = Path(run["artifact"])
    if not path.is_file():
        raise RerankError(f"model file of run {run['id']} is missing ({path}); train it again")
    if hashlib.sha256(path.read_bytes()).hexdigest() != run["artifact_sha256"]:
        raise RerankError(f"model file {path} does not match the sha256 registered for run {run['id']}; "
                          "it was changed after training: train again")
    return joblib.load(path)


class Reranker:
    """Scores search candidates with one run's model. Shared by sessions: after construction it only reads."""

    def __init__(self, db: Database, run_id: str, encoder: Encoder) -> None:
        run = model_store.run(db, run_id)
        if run is None:
            raise RerankError(f"no model run {run_id!r}; see `python -m pipeline models`")
        if run["model"] == models.CONSTANT:
            raise RerankError("the constant baseline gives every photo the same score; choose another run")
        self.artifact = load_artifact(run)
        if self.artifact["text_id"] != encoder.text_id:
            raise RerankError(f"run {run_id} was trained on text vectors of {self.artifact['text_id']}, but search "
                              f"uses {encoder.text_id}; choose a run trained with this encoder")
        self.db = db
        self.feature_set = FEATURE_SETS[self.artifact["feature_set"]]
        # Queries are encoded directly (no cache write per search); the gallery's captions once, through the cache.
        self.encode = encoder.encode_texts
        self.gallery = caption_features.visible_gallery(db, lambda texts: text_vectors(db, encoder, texts)) \
            if self.feature_set.uses_captions else None

    def scores(self, query: str, image_ids: Sequence[str], query_vector: np.ndarray | None = None) -> np.ndarray:
        """Model relevance (0..1) of each candidate photo for ``query`` (whose vector search already has)."""
        fs, ids = self.feature_set, list(image_ids)
        features = PairFeatures(
            fs, self.encode,
            photo_vectors=store.vectors_of(self.db, self.artifact["encoder_id"], ids) if fs.uses_images else None,
            references=model_store.reference_captions(self.db, ids) if fs.uses_captions else None,
            gallery=self.gallery, basis=self.artifact["basis"],
        )
        pairs = pd.DataFrame({"image_id": ids, "query_id": "", "query_text": query})
        vectors = None if query_vector is None else np.repeat(query_vector[None, :], len(ids), axis=0)
        return models.predict(self.artifact["estimator"], features(pairs, vectors)[self.artifact["columns"]])


@dataclass
class RerankEvaluation:
    run_id: str
    queries: int
    mean_gallery: float
    before: dict[str, float]
    after: dict[str, float]


def evaluate(db: Database, encoder: Encoder, run_id: str, *, depth: int = DEPTH, threads: int = 2) -> RerankEvaluation:
    """Recall@K before and after re-ranking with per-fold refits of ``run_id``'s model (see module docstring)."""
    run = model_store.run(db, run_id)
    if run is None:
        raise RerankError(f"no model run {run_id!r}; see `python -m pipeline models`")
    dataset, kind = run["target"].rsplit("/", 1)
    if kind != targets.CATEGORY_PAIRS:
        raise RerankError(f"re-ranking is measured on COCO caption search: choose a run trained on a "
                          f"'{targets.CATEGORY_PAIRS}' target (run {run_id} was trained on {run['target']})")
    if run["model"] == models.CONSTANT:
        raise RerankError("the constant baseline cannot re-rank")
    fs = FEATURE_SETS[run["feature_set"]]
    target = targets.load(db, kind, dataset, folds=int(run["folds"]))
    group_fold = fold_of_group(target.pairs, int(run["folds"]))
    photo_fold = {p: group_fold[g] for p, g in zip(target.pairs["image_id"], target.pairs["group"])}
    captions = store.captions_of_readable_photos(db, dataset)
    captions = captions[captions["image_id"].isin(photo_fold)].reset_index(drop=True)
    photo_ids, vectors = store.dataset_vectors(db, encoder.id, dataset)
    row_of = {p: i for i, p in enumerate(photo_ids)}
    encode = lambda texts: text_vectors(db, encoder, texts)  # noqa: E731 - one short adapter
    features = PairFeatures(
        fs, encode, photo_vectors=dict(zip(photo_ids, vectors)) if fs.uses_images else None,
        references=model_store.reference_captions(db, photo_ids) if fs.uses_captions else None,
        gallery=caption_features.judged_gallery(db, target.pairs["image_id"].unique().tolist(), encode)
        if fs.uses_captions else None,
        basis=fit_basis(vectors) if fs.uses_images else None,
    )
    train_X = features(target.pairs)
    y, groups = target.pairs["target"].to_numpy(float), target.pairs["group"].astype(str).to_numpy()
    pair_fold = target.pairs["group"].map(group_fold).to_numpy()
    query_vectors = encode(captions["text"].tolist())
    ranks_before, ranks_after, galleries = [], [], []
    for fold in sorted(set(photo_fold.values())):
        estimator, _ = models.fit(run["model"], train_X[pair_fold != fold], y[pair_fold != fold],
                                  groups[pair_fold != fold], zero_shot_score=fs.zero_shot_score, threads=threads)
        gallery = [p for p in photo_ids if photo_fold.get(p) == fold]
        galleries.append(len(gallery))
        gallery_vectors = vectors[[row_of[p] for p in gallery]]
        for i in np.flatnonzero(captions["image_id"].map(photo_fold).to_numpy() == fold):
            cosine = gallery_vectors @ query_vectors[i]
            candidates = np.argsort(-cosine, kind="stable")[:depth]
            own = gallery.index(captions.at[i, "image_id"])
            ranks_before.append(int((cosine >= cosine[own]).sum()))
            pairs = pd.DataFrame({"image_id": [gallery[c] for c in candidates], "query_id": captions.at[i, "caption_id"],
                                  "query_text": captions.at[i, "text"]})
            scores = models.predict(estimator, features(pairs)[list(train_X.columns)])
            position = np.flatnonzero(candidates == own)
            ranks_after.append(int((scores >= scores[position[0]]).sum()) if len(position) else ranks_before[-1])
    before, after = rank_metrics(np.array(ranks_before)), rank_metrics(np.array(ranks_after))
    result = RerankEvaluation(run_id, len(ranks_before), float(np.mean(galleries)), before, after)
    details = {"dataset": dataset, "queries": result.queries, "mean_gallery_photos": result.mean_gallery,
               "depth": depth, "gallery": "held-out fold photos only", "model_refitted_per_fold": True}
    version = store.data_version(db, dataset)
    with db.write() as cur:
        store.save_metrics(cur, encoder.id, PROTOCOL, before, version, details)
        store.save_metrics(cur, f"{encoder.id} + rerank {run_id}", PROTOCOL, after, version, details)
    return result
