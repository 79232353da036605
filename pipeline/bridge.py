"""Bridge stage of the offline encoder: reads captions, cached photo features and the perceiver's detections, writes
`bridges` and re-projects `embeddings` with the fitted bridge and object fusion (no photo is decoded again).

The fitted bridge learns from every captioned, readable photo in the database; the weight of the detected objects
(pipeline/object_text.py) is chosen by a cross-fit over those captions. Retrieval figures come from
`evaluate-retrieval`, which refits per fold so that no scored query's photo was seen in fitting.

Two vector sets come out of the offline encoder: the bridge alone (``offline-<bridge>-<views>``; relevance models
and the re-ranker use it) and bridge + objects (``offline-<bridge>+obj-<fusion>-<views>``), which search uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from db import embeddings as store
from db.database import Database
from pipeline.embed import EmbedReport, embed, text_vectors
from pipeline.encoders import load_encoder
from pipeline.encoders.base import Encoder
from pipeline.encoders.offline import Bridge, OfflineEncoder, fit_bridge
from pipeline.object_text import (ObjectFusion, choose_weight, data_free_center, fitted_center, object_mixtures,
                                  photo_objects)
from pipeline.perception import PERCEIVER_ID
from pipeline.progress import bar

MIN_PHOTOS = 20
DEFAULT_FOLDS = 5
FUSE_CHUNK = 4096


# ------------------------------------------------------------------------------------------------ the encoder
def _current_params(db: Database) -> dict | None:
    params = store.current_bridge(db)
    return json.loads(params) if params else None


def current_offline_encoder(db: Database) -> OfflineEncoder:
    """The offline encoder with the bridge marked current (zero-shot when none was fitted), without objects."""
    params = store.current_bridge(db)
    return load_encoder("offline", bridge=Bridge.from_json(params) if params else None)


def current_fusion(db: Database, perceiver: str = PERCEIVER_ID) -> ObjectFusion:
    """The fitted object fusion when it was fitted on ``perceiver``'s detections; else the zero-shot default (a
    fusion fitted on another perceiver's detections does not carry over: its weight was chosen for those)."""
    objects = (_current_params(db) or {}).get("objects")
    fitted = ObjectFusion.from_json(json.dumps(objects)) if objects else None
    return fitted if fitted is not None and fitted.perceiver == perceiver else ObjectFusion(perceiver)


def current_encoder(db: Database) -> OfflineEncoder:
    """The encoder search uses: the current bridge with the current perceiver's objects fused in."""
    return current_offline_encoder(db).with_objects(current_fusion(db))


def load_for(db: Database, name: str, **options) -> Encoder:
    """Encoder by backend name; the offline one comes with the database's current bridge and object fusion."""
    return current_encoder(db) if name == "offline" else load_encoder(name, **options)


# ---------------------------------------------------------------------------------------------------- embedding
@dataclass
class FusionReport:
    encoder_id: str
    perceiver: str
    fused: int = 0  # vectors made now: new photos, changed bytes, or photos perceived since their last vector
    not_perceived: int = 0  # current vectors without objects, as the perceiver has not seen the photo's bytes
    removed: int = 0


def embed_current(db: Database, encoder: Encoder, *, batch_size: int = 32, workers: int = 1,
                  quiet: bool = False) -> tuple[EmbedReport, FusionReport | None]:
    """Embed with any encoder; one that fuses objects first embeds (and caches features) with its bridge alone,
    then adds the objects to cached features: photos not perceived yet get the bridge vector alone, and are
    re-projected by the first run after they are perceived."""
    if not isinstance(encoder, OfflineEncoder) or encoder.objects is None:
        return embed(db, encoder, batch_size=batch_size, workers=workers, quiet=quiet), None
    report = embed(db, encoder.with_objects(None), batch_size=batch_size, workers=workers, quiet=quiet)
    perceiver = encoder.objects.perceiver
    fusion = FusionReport(encoder.id, perceiver)
    todo = store.photos_to_fuse(db, encoder.id, encoder.feature_id, perceiver)
    with bar(total=len(todo), desc=f"objects {encoder.id}", unit="photo", disable=quiet) as progress:
        for start in range(0, len(todo), FUSE_CHUNK):
            chunk = todo.iloc[start : start + FUSE_CHUNK]
            ids, features = store.cached_features(db, encoder.feature_id, chunk["image_id"].tolist())
            shas = chunk.set_index("image_id").loc[ids, "sha256"].tolist()
            vectors = encoder.project_photos(features, photo_objects(db, perceiver, ids))
            with db.write() as cur:
                store.save_photo_vectors(cur, encoder.id, None, ids, shas, vectors)
            fusion.fused += len(ids)
            progress.update(len(chunk))
    with db.write() as cur:
        fusion.removed = store.delete_orphan_vectors(cur, encoder.id)
    fusion.not_perceived = store.vectors_not_perceived(db, encoder.id, perceiver)
    return report, fusion


# ------------------------------------------------------------------------------------------------------ fitting
def _folds(photo_ids: list[str], folds: int, seed: int = 0) -> list[set[str]]:
    order = np.random.default_rng(seed).permutation(len(photo_ids))
    return [{photo_ids[i] for i in part} for part in np.array_split(order, folds)]


class CaptionFolds:
    """Captioned photos split into folds by photo, and bridges fitted on the captions outside given folds.

    ``photo_ids``/``features`` are the gallery (it may hold uncaptioned photos too); ``caption_photo[i]`` is the id
    of caption i's photo and ``queries[i]`` its vector. Fits are kept, since the object weight's inner cross-fit
    needs the fit without folds {f, g} for every pair."""

    def __init__(self, encoder: OfflineEncoder, photo_ids: list[str], features: np.ndarray,
                 caption_photo: np.ndarray, queries: np.ndarray, folds: int) -> None:
        self.encoder, self.photo_ids, self.features = encoder, photo_ids, features
        self.caption_photo, self.queries = caption_photo, queries
        self.row = {p: i for i, p in enumerate(photo_ids)}
        self.target = np.array([self.row[p] for p in caption_photo], dtype=np.int64)
        self.captioned = sorted(set(caption_photo))
        self.folds = _folds(self.captioned, folds)
        self._vectors: dict[frozenset[int], np.ndarray] = {}

    def held_out(self, excluded: frozenset[int]) -> set[str]:
        return set().union(*(self.folds[f] for f in excluded))

    def scored(self, fold: int) -> np.ndarray:
        """Which captions belong to photos of ``fold``."""
        return np.isin(self.caption_photo, list(self.folds[fold]))

    def fitted_rows(self, excluded: frozenset[int]) -> list[int]:
        held = self.held_out(excluded)
        return [self.row[p] for p in self.captioned if p not in held]

    def bridge_vectors(self, excluded: frozenset[int]) -> np.ndarray:
        """Gallery vectors through a bridge fitted on the captions of photos outside the ``excluded`` folds."""
        if excluded not in self._vectors:
            rows = self.fitted_rows(excluded)
            local = {self.photo_ids[r]: i for i, r in enumerate(rows)}
            train = np.isin(self.caption_photo, list(local))
            bridge = fit_bridge(self.features[rows], self.encoder.class_embeddings, self.queries[train],
                                np.array([local[p] for p in self.caption_photo[train]], dtype=np.int64),
                                base=Bridge(self.encoder.bridge.temperature, self.encoder.bridge.top_k))
            self._vectors[excluded] = bridge.apply(self.features, self.encoder.class_embeddings)
        return self._vectors[excluded]

    def object_weight(self, outer: frozenset[int], mixtures: np.ndarray, has: np.ndarray,
                      default_center: np.ndarray) -> tuple[float, dict[str, float]]:
        """The object weight chosen by cross-fit over the folds not in ``outer`` (their captions only)."""
        fits = []
        for fold in range(len(self.folds)):
            if fold in outer:
                continue
            excluded = outer | {fold}
            rows = self.fitted_rows(excluded)
            fits.append((self.bridge_vectors(excluded), fitted_center(mixtures[rows], has[rows]), self.scored(fold)))
        return choose_weight(fits, mixtures, has, self.queries, self.target, default_center)


def training_pairs(db: Database, encoder: OfflineEncoder, dataset: str | None = None):
    """(photo ids, photo features, caption vectors, caption -> photo row) for captioned photos with features."""
    captions = store.captions_with_features(db, encoder.feature_id, dataset)
    photo_ids = sorted(set(captions["image_id"]))
    ids, features = store.cached_features(db, encoder.feature_id, photo_ids)
    row = {image_id: i for i, image_id in enumerate(ids)}
    captions = captions[captions["image_id"].isin(row)]
    vectors = text_vectors(db, encoder, captions["text"].tolist())
    return ids, features, vectors, np.array([row[i] for i in captions["image_id"]], dtype=np.int64)


@dataclass
class Fitted:
    bridge: Bridge
    objects: ObjectFusion
    report: EmbedReport  # the bridge-alone vectors, re-projected
    fused: FusionReport


def fit_objects(db: Database, encoder: OfflineEncoder, ids: list[str], features: np.ndarray, captions: np.ndarray,
                caption_photo: np.ndarray, folds: int = DEFAULT_FOLDS, perceiver: str = PERCEIVER_ID) -> ObjectFusion:
    """The object weight by ``folds``-fold cross-fit over the captions (gallery: the captioned photos), and the
    centre of the object mixtures of all of them. Without any perceived photo: the zero-shot default."""
    mixtures, has = object_mixtures(photo_objects(db, perceiver, ids), encoder.phrases, encoder.dim)
    if not has.any():
        return ObjectFusion(perceiver, chosen_by={"not_chosen": "no captioned photo has objects of this perceiver"})
    split = CaptionFolds(encoder, ids, features, np.asarray(ids)[caption_photo], captions, folds)
    weight, table = split.object_weight(frozenset(), mixtures, has, data_free_center(encoder.phrases))
    chosen_by = {"cross_fit_folds": folds, "mean_mrr_by_weight": table, "photos": len(ids),
                 "photos_with_objects": int(has.sum()), "captions": int(len(captions))}
    return ObjectFusion(perceiver, weight, fitted_center(mixtures, has), chosen_by)


def fit(db: Database, *, dataset: str | None = None, folds: int = DEFAULT_FOLDS, quiet: bool = False) -> Fitted:
    """Cache features of all photos, fit the bridge and the object weight on the captioned ones, make both current,
    re-project."""
    encoder = current_offline_encoder(db).with_bridge(Bridge())
    embed(db, encoder, quiet=quiet)  # features of every readable photo, cached
    ids, features, captions, caption_photo = training_pairs(db, encoder, dataset)
    if len(ids) < MIN_PHOTOS:
        raise ValueError(f"fitting the bridge needs at least {MIN_PHOTOS} captioned photos with files; "
                         f"found {len(ids)}. Ingest a dataset with photos and captions (e.g. COCO) first.")
    bridge = fit_bridge(features, encoder.class_embeddings, captions, caption_photo)
    objects = fit_objects(db, encoder, ids, features, captions, caption_photo, folds)
    params = {**json.loads(bridge.to_json()), "objects": json.loads(objects.to_json())}
    with db.write() as cur:
        store.save_bridge(cur, f"{bridge.id}+{objects.id}", json.dumps(params))
    report, fused = embed_current(db, encoder.with_bridge(bridge).with_objects(objects), quiet=quiet)
    return Fitted(bridge, objects, report, fused)
