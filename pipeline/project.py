"""Project stage: every photo vector of an encoder placed on a 2-D map and given a cluster, for the Explore page.

Why in the pipeline: a page cannot project a million vectors on each visit. The map is fitted on a bounded sample
(db.explore.fitting_sample: a seeded hash of the photo id picks at most ``sample`` vectors), so the fit costs the
same at any catalog size; then every vector is streamed through it in chunks and written in one transaction, so the
page sees the old map or the new one, never half of each. The axes are the sample's two principal components (a
linear map: a chunk lands exactly where a one-shot transform puts it, and a photo keeps its place between chunks);
the clusters come from MiniBatchKMeans on the full vectors, seeded. The map records the vector-set version it was
computed from (db.embeddings.vector_set_version), so the page says when embed has changed the vectors since, and a
rerun on unchanged vectors does nothing. Every vector is mapped, whatever the minors filter decided; the page shows
only visible photos (db/explore.py joins visible_images on the bytes each point was computed from).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from db import embeddings as vector_store, explore as store
from db.database import Database
from pipeline.progress import bar

DEFAULT_SAMPLE = 50_000  # vectors the axes and clusters are fitted on: ~0.2 s (PCA) + a few s (k-means) at 384-d
CHUNK_ROWS = 32_768  # vectors transformed and written at a time
MAX_CLUSTERS = 16  # more colours than a legend can tell apart
METHOD = "pca2+minibatch-kmeans"


class ProjectError(ValueError):
    """The stage cannot map this encoder's vectors (none stored, a vector not finite); nothing was changed."""


@dataclass(frozen=True)
class Projection:
    """The fitted map: centre and two principal axes of the sample, and the k-means clusters of the full vectors."""

    mean: np.ndarray  # (d,)
    axes: np.ndarray  # (d, 2)
    kmeans: MiniBatchKMeans
    explained: float  # share of the sample's variance along the two axes

    def transform(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) float32 map coordinates and (n,) cluster numbers of ``vectors`` (n, d)."""
        vectors = np.asarray(vectors, dtype=np.float64)
        xy = ((vectors - self.mean) @ self.axes).astype(np.float32)
        return xy, self.kmeans.predict(vectors.astype(np.float32))


@dataclass(frozen=True)
class ProjectReport:
    encoder_id: str
    photos: int  # points stored (0 when the map was already current)
    fitted_on: int
    clusters: int
    explained: float
    already_current: bool
    seconds: float


def cluster_count(vectors: int) -> int:
    """sqrt(n/10) clusters, 2 to MAX_CLUSTERS (one for a single vector): ~5 for the 239 COCO-mini photos, 16 at a
    million; enough to see groups, few enough for a legend."""
    if vectors < 2:
        return 1
    return max(2, min(MAX_CLUSTERS, vectors, round(math.sqrt(vectors / 10))))


def fit(sample: np.ndarray, seed: int = 0) -> Projection:
    """The map fitted on ``sample`` (n, d): PCA through the d x d covariance (cheap for any n), each axis' sign
    fixed (largest loading positive) so that the same sample always gives the same picture; k-means seeded."""
    _check_finite(sample, None)
    data = np.asarray(sample, dtype=np.float64)
    mean = data.mean(axis=0)
    centred = data - mean
    values, vectors = np.linalg.eigh(centred.T @ centred)
    order = np.argsort(values)[::-1][:2]
    axes = np.zeros((data.shape[1], 2))
    axes[:, :len(order)] = vectors[:, order]
    axes *= np.where(axes[np.abs(axes).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)
    total = float(values.sum())
    explained = float(values[order].sum() / total) if total > 0 else 0.0
    k = cluster_count(len(data))
    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=min(4096, len(data)))
    kmeans.fit(data.astype(np.float32))
    return Projection(mean, axes, kmeans, explained)


def project(db: Database, encoder_id: str, *, sample: int = DEFAULT_SAMPLE, chunk_rows: int = CHUNK_ROWS,
            seed: int = 0, force: bool = False, quiet: bool = False) -> ProjectReport:
    """Map every vector of ``encoder_id`` (unless the stored map was computed from this very vector set and not
    ``force``). Raises ProjectError when the encoder has no vectors or one is not finite; the stored map is then
    untouched."""
    started = time.perf_counter()
    count, newest = vector_store.vector_set_version(db, encoder_id)
    if not count:
        known = vector_store.encoders_with_vectors(db)["encoder_id"].tolist()
        raise ProjectError(f"no photo vectors of {encoder_id!r} to project; run `python -m pipeline embed` first"
                           + (f" (encoders with vectors: {', '.join(known)})" if known else ""))
    stored = store.map_info(db, encoder_id)
    if stored is not None and stored.version() == (count, newest) and not force:
        return ProjectReport(encoder_id, 0, stored.fitted_on, stored.clusters, stored.explained, True,
                             time.perf_counter() - started)
    sampled, fitting = store.fitting_sample(db, encoder_id, sample, seed)
    _check_finite(fitting, sampled)  # here, to name the photo
    projection = fit(fitting, seed)
    written = 0
    with db.write() as cur, bar(total=count, desc=f"project {encoder_id}", unit="photo", disable=quiet) as progress:
        store.clear_map(cur, encoder_id)
        for image_ids, shas, vectors in store.vector_chunks(db, encoder_id, chunk_rows):
            _check_finite(vectors, image_ids)
            xy, clusters = projection.transform(vectors)
            store.save_points(cur, encoder_id, image_ids, shas, xy, clusters)
            written += len(image_ids)
            progress.update(len(image_ids))
        seconds = time.perf_counter() - started
        store.save_info(cur, store.MapInfo(encoder_id, count, newest, METHOD, len(fitting),
                                           projection.kmeans.n_clusters, seed, projection.explained, seconds,
                                           datetime.now()))
    return ProjectReport(encoder_id, written, len(fitting), projection.kmeans.n_clusters, projection.explained,
                         False, time.perf_counter() - started)


def encoders_to_project(db: Database, encoder_id: str | None) -> list[str]:
    """The one encoder asked for, else every encoder with vectors (newest first); ProjectError when there is none."""
    if encoder_id:
        return [encoder_id]
    found = vector_store.encoders_with_vectors(db)["encoder_id"].tolist()
    if not found:
        raise ProjectError("no photo vectors to project yet; run `python -m pipeline embed` first")
    return found


def _check_finite(vectors: np.ndarray, image_ids: Iterable[str] | None) -> None:
    bad = ~np.isfinite(vectors).all(axis=1) if vectors.size else np.zeros(0, bool)
    if bad.any():
        where = f" (photo {list(image_ids)[int(np.flatnonzero(bad)[0])]})" if image_ids is not None else ""
        raise ProjectError(f"a stored vector is not finite{where}; run `python -m pipeline embed` again for it")
