"""Bridge stage of the offline encoder: reads captions and cached photo features, writes `bridges` and
re-projects `embeddings` with the fitted bridge (no photo is decoded again).

The fitted bridge learns from every captioned, readable photo in the database. Retrieval figures for it come from
`evaluate-retrieval`, which refits per fold so that no scored query's photo was seen in fitting.
"""

from __future__ import annotations

import numpy as np

from db import embeddings as store
from db.database import Database
from pipeline.embed import EmbedReport, embed, text_vectors
from pipeline.encoders import load_encoder
from pipeline.encoders.base import Encoder
from pipeline.encoders.offline import Bridge, OfflineEncoder, fit_bridge

MIN_PHOTOS = 20


def current_offline_encoder(db: Database) -> OfflineEncoder:
    """The offline encoder with the bridge marked current (zero-shot when none was fitted)."""
    params = store.current_bridge(db)
    return load_encoder("offline", bridge=Bridge.from_json(params) if params else None)


def load_for(db: Database, name: str, **options) -> Encoder:
    """Encoder by backend name; the offline one comes with the database's current bridge."""
    return current_offline_encoder(db) if name == "offline" else load_encoder(name, **options)


def training_pairs(db: Database, encoder: OfflineEncoder, dataset: str | None = None):
    """(photo ids, photo features, caption vectors, caption -> photo row) for captioned photos with features."""
    captions = store.captions_with_features(db, encoder.feature_id, dataset)
    photo_ids = sorted(set(captions["image_id"]))
    ids, features = store.cached_features(db, encoder.feature_id, photo_ids)
    row = {image_id: i for i, image_id in enumerate(ids)}
    captions = captions[captions["image_id"].isin(row)]
    vectors = text_vectors(db, encoder, captions["text"].tolist())
    return ids, features, vectors, np.array([row[i] for i in captions["image_id"]], dtype=np.int64)


def fit(db: Database, *, dataset: str | None = None, quiet: bool = False) -> tuple[Bridge, EmbedReport]:
    """Cache features of all photos, fit the bridge on the captioned ones, make it current, re-project."""
    encoder = current_offline_encoder(db).with_bridge(Bridge())
    embed(db, encoder, quiet=quiet)  # features of every readable photo, cached
    ids, features, captions, caption_photo = training_pairs(db, encoder, dataset)
    if len(ids) < MIN_PHOTOS:
        raise ValueError(f"fitting the bridge needs at least {MIN_PHOTOS} captioned photos with files; "
                         f"found {len(ids)}. Ingest a dataset with photos and captions (e.g. COCO) first.")
    bridge = fit_bridge(features, encoder.class_embeddings, captions, caption_photo)
    with db.write() as cur:
        store.save_bridge(cur, bridge.id, bridge.to_json())
    return bridge, embed(db, encoder.with_bridge(bridge), quiet=quiet)
