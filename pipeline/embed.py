"""Embed stage: reads `images`, writes `embeddings` (and `image_features`, `text_embeddings` caches).

Only photos without a vector for the current bytes (sha256) are encoded, in batches, each committed on its
own: a killed run keeps the batches it finished and the next run goes on from there. Missing and corrupt photos
are skipped and counted. A photo is read through pipeline/photos.py: bytes whose sha256 is not the one ingested
(and decided on by the minors filter) are reported and skipped, never embedded, and EXIF orientation is applied.
Decoding and resizing run in a loader worker so that they overlap the forward pass; a large JPEG is decoded at
the reduced scale the encoder's views need (``Encoder.draft_side``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from db import embeddings as store
from db.database import Database
from pipeline import photos
from pipeline.encoders.base import Encoder
from pipeline.progress import bar

DEFAULT_BATCH = 32
TEXT_CHUNK = 2048  # texts encoded and stored at a time


@dataclass
class EmbedReport:
    encoder_id: str
    embedded: int = 0
    from_cached_features: int = 0
    already_current: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # photo status -> count (missing, corrupt)
    removed: int = 0
    seconds: float = 0.0


class _Photos(torch.utils.data.Dataset):
    """Reads the decided bytes of one photo per item, upright, and preprocesses them; a failure is returned."""

    def __init__(self, paths: Sequence[str], shas: Sequence[str], encoder: Encoder) -> None:
        self.paths, self.shas, self.encoder = list(paths), list(shas), encoder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            photo = photos.open_verified(self.paths[index], self.shas[index], self.encoder.draft_side)
            return index, self.encoder.preprocess(photo)
        except photos.PhotoUnavailable as exc:
            return index, str(exc)
        except Exception as exc:  # noqa: BLE001 - any preprocessing failure is that photo's problem only
            return index, f"cannot preprocess: {exc}"


def _single_threaded(_: int) -> None:
    """Loader workers decode with one thread; the cores' threads belong to the forward pass."""
    torch.set_num_threads(1)


def _collate(items):
    good = [(i, x) for i, x in items if not isinstance(x, str)]
    bad = [(i, x) for i, x in items if isinstance(x, str)]
    batch = torch.utils.data.default_collate([x for _, x in good]) if good else None
    return [i for i, _ in good], batch, bad


def embed(db: Database, encoder: Encoder, *, batch_size: int = DEFAULT_BATCH, workers: int = 1,
          quiet: bool = False) -> EmbedReport:
    started = time.perf_counter()
    report = EmbedReport(encoder.id, skipped=store.unreadable_photo_counts(db))
    todo = store.photos_to_embed(db, encoder.id, encoder.feature_id)
    caches_features = encoder.feature_id != encoder.id
    with bar(total=len(todo), desc=f"embed {encoder.id}", unit="photo", disable=quiet) as progress:
        if caches_features and todo["has_features"].any():
            report.from_cached_features = _project_cached(db, encoder, todo[todo["has_features"]], progress)
            todo = todo[~todo["has_features"]]
        _encode_photos(db, encoder, todo, batch_size, workers, report, progress, caches_features)
    with db.write() as cur:
        report.removed = store.delete_orphan_vectors(cur, encoder.id)
    report.already_current = store.embedded_count(db, encoder.id) - report.embedded - report.from_cached_features
    report.seconds = time.perf_counter() - started
    return report


def _project_cached(db: Database, encoder: Encoder, rows: pd.DataFrame, progress: tqdm) -> int:
    done = 0
    for start in range(0, len(rows), 4096):
        chunk = rows.iloc[start : start + 4096]
        ids, features = store.cached_features(db, encoder.feature_id, chunk["image_id"].tolist())
        shas = chunk.set_index("image_id").loc[ids, "sha256"].tolist()
        with db.write() as cur:
            store.save_photo_vectors(cur, encoder.id, None, ids, shas, encoder.project(features))
        done += len(ids)
        progress.update(len(chunk))
    return done


def _encode_photos(db: Database, encoder: Encoder, rows: pd.DataFrame, batch_size: int, workers: int,
                   report: EmbedReport, progress: tqdm, caches_features: bool) -> None:
    if rows.empty:
        return
    loader = torch.utils.data.DataLoader(
        _Photos(rows["path"].tolist(), rows["sha256"].tolist(), encoder), batch_size=batch_size, num_workers=workers,
        collate_fn=_collate, prefetch_factor=4 if workers else None,
        worker_init_fn=_single_threaded,
    )
    ids, shas = rows["image_id"].tolist(), rows["sha256"].tolist()
    for indexes, batch, failures in loader:
        report.failed.extend((ids[i], reason) for i, reason in failures)
        if indexes:
            features = encoder.extract(batch)
            with db.write() as cur:
                store.save_photo_vectors(
                    cur, encoder.id, encoder.feature_id if caches_features else None,
                    [ids[i] for i in indexes], [shas[i] for i in indexes], encoder.project(features),
                    features if caches_features else None,
                )
            report.embedded += len(indexes)
        progress.update(len(indexes) + len(failures))


def text_vectors(db: Database, encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """Vectors of ``texts`` through the `text_embeddings` cache (new ones are stored unless read-only).

    New texts are encoded shortest first (batches of similar length pad least) in chunks, each stored as it is
    done: 40,000 Flickr8k captions take minutes, show a progress bar, and a killed run keeps the chunks it
    finished."""
    shas = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    known = store.cached_texts(db, encoder.text_id, sorted(set(shas)))
    missing = sorted({(s, t) for s, t in zip(shas, texts) if s not in known}, key=lambda item: (len(item[1]), item))
    with bar(total=len(missing), desc=f"encode texts {encoder.text_id}", unit="text",
             disable=None if len(missing) > TEXT_CHUNK else True) as progress:
        for start in range(0, len(missing), TEXT_CHUNK):
            chunk = missing[start : start + TEXT_CHUNK]
            fresh = encoder.encode_texts([t for _, t in chunk])
            broken = np.flatnonzero(~np.isfinite(fresh).all(axis=1))
            if len(broken):
                raise ValueError(f"encoder {encoder.text_id} returned NaN or infinite vectors for {len(broken)} "
                                 f"text(s) (first: {chunk[int(broken[0])][1][:60]!r})")
            known.update(zip([s for s, _ in chunk], fresh))
            if not db.read_only:
                with db.write() as cur:
                    store.save_texts(cur, encoder.text_id, [s for s, _ in chunk], [t for _, t in chunk], fresh)
            progress.update(len(chunk))
    return np.stack([known[s] for s in shas]) if texts else np.zeros((0, encoder.dim), np.float32)
