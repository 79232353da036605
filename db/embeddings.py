"""SQL of the embed, bridge, search and evaluation stages: vectors, cached features and texts, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from db import reads
from db.database import Database


def vectors_to_arrow(vectors: np.ndarray) -> pa.Array:
    """(n, d) float32 -> Arrow list<float> without a Python object per value."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]).cast(pa.list_(pa.float32()))


def arrow_to_vectors(column: pa.ChunkedArray | pa.Array, dim: int | None = None) -> np.ndarray:
    """Arrow list<float> column -> (n, d) float32; all rows must have the same length."""
    if len(column) == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)
    lengths = pc.list_value_length(column)
    dim = int(pc.min(lengths).as_py())
    if dim != int(pc.max(lengths).as_py()):
        raise ValueError("vectors of different lengths in one encoder")
    flat = pc.list_flatten(column)
    return np.array(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)  # writable copy


# ------------------------------------------------------------------------------------------------------ embed
def photos_to_embed(db: Database, encoder_id: str, feature_id: str) -> pd.DataFrame:
    """Readable photos whose vector for ``encoder_id`` is absent or stale (photo bytes changed), with the
    absolute path and whether cached features for the current bytes exist."""
    return db.fetch_df(
        """
        SELECT i.id AS image_id, d.root || '/' || i.path AS path, i.sha256,
               f.image_id IS NOT NULL AS has_features
        FROM images i JOIN datasets d ON d.id = i.dataset
        LEFT JOIN embeddings e ON e.image_id = i.id AND e.encoder_id = ? AND e.sha256 = i.sha256
        LEFT JOIN image_features f ON f.image_id = i.id AND f.feature_id = ? AND f.sha256 = i.sha256
        WHERE i.status = 'ok' AND e.image_id IS NULL
        ORDER BY i.id
        """,
        [encoder_id, feature_id],
    )


def unreadable_photo_counts(db: Database) -> dict[str, int]:
    rows = db.fetch_all("SELECT status, count(*) FROM images WHERE status <> 'ok' GROUP BY status")
    return {status: int(n) for status, n in rows}


def _vectors_for(db: Database, key: str, keys: Sequence[str], sql: str, params: list) -> tuple[list[str], np.ndarray]:
    """Run ``sql``, which joins the table ``wanted(<key>)`` of ``keys`` and selects (key, vector)."""
    with db.cursor() as cur:
        cur.register("wanted", pa.table({key: pa.array(list(keys), pa.string())}))
        table = cur.sql(sql, params=params).to_arrow_table()
    return table.column(0).to_pylist(), arrow_to_vectors(table.column(1))


def cached_features(db: Database, feature_id: str, image_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Cached features of the given photos (current bytes only), in id order."""
    return _vectors_for(
        db, "image_id", image_ids,
        "SELECT f.image_id, f.features FROM image_features f JOIN wanted USING (image_id) "
        "JOIN images i ON i.id = f.image_id AND i.sha256 = f.sha256 WHERE f.feature_id = ? ORDER BY f.image_id",
        [feature_id],
    )


def save_photo_vectors(
    cur: duckdb.DuckDBPyConnection, encoder_id: str, feature_id: str | None, image_ids: Sequence[str],
    shas: Sequence[str], vectors: np.ndarray, features: np.ndarray | None = None,
) -> None:
    """Upsert one batch of vectors (and the features they came from, when the encoder caches them)."""
    batch = pa.table({"image_id": pa.array(list(image_ids), pa.string()), "sha256": pa.array(list(shas), pa.string()),
                      "vector": vectors_to_arrow(vectors)})
    cur.register("batch", batch)
    cur.execute("INSERT OR REPLACE INTO embeddings SELECT image_id, ?, sha256, vector, ? FROM batch",
                [encoder_id, datetime.now()])
    cur.unregister("batch")
    if features is not None:
        save_features(cur, feature_id, image_ids, shas, features)


def save_features(cur: duckdb.DuckDBPyConnection, feature_id: str, image_ids: Sequence[str], shas: Sequence[str],
                  features: np.ndarray) -> None:
    """Upsert what a costly network (or detector) returned for these photos' current bytes."""
    cur.register("computed", pa.table({"image_id": pa.array(list(image_ids), pa.string()),
                                       "sha256": pa.array(list(shas), pa.string()),
                                       "features": vectors_to_arrow(features)}))
    cur.execute("INSERT OR REPLACE INTO image_features SELECT image_id, ?, sha256, features FROM computed",
                [feature_id])
    cur.unregister("computed")


def delete_orphan_vectors(cur: duckdb.DuckDBPyConnection, encoder_id: str) -> int:
    """Vectors of photos no longer readable (removed, or corrupt after a re-ingest)."""
    return int(cur.execute(
        "DELETE FROM embeddings WHERE encoder_id = ? AND image_id NOT IN (SELECT id FROM images WHERE status = 'ok')",
        [encoder_id],
    ).fetchone()[0])


def embedded_count(db: Database, encoder_id: str) -> int:
    return int(db.fetch_all("SELECT count(*) FROM embeddings WHERE encoder_id = ?", [encoder_id])[0][0])


# ------------------------------------------------------------------------------------------------------ texts
def cached_texts(db: Database, encoder_id: str, shas: Sequence[str]) -> dict[str, np.ndarray]:
    return dict(zip(*_vectors_for(
        db, "text_sha256", shas,
        "SELECT t.text_sha256, t.vector FROM text_embeddings t JOIN wanted USING (text_sha256) WHERE t.encoder_id = ?",
        [encoder_id],
    )))


def save_texts(cur: duckdb.DuckDBPyConnection, encoder_id: str, shas: Sequence[str], texts: Sequence[str],
               vectors: np.ndarray) -> None:
    cur.register("texts", pa.table({"text_sha256": pa.array(list(shas), pa.string()),
                                    "text": pa.array(list(texts), pa.string()), "vector": vectors_to_arrow(vectors)}))
    cur.execute("INSERT OR REPLACE INTO text_embeddings SELECT ?, text_sha256, text, vector FROM texts", [encoder_id])
    cur.unregister("texts")


# ----------------------------------------------------------------------------------------------------- search
# A vector is searchable only when it was computed from the bytes the cleared decision covers.
_VISIBLE_VECTORS = (
    "SELECT e.image_id, e.vector FROM embeddings e JOIN visible_images v ON v.id = e.image_id AND v.sha256 = e.sha256 "
    "WHERE e.encoder_id = ? ORDER BY e.image_id"
)


def visible_vectors(db: Database, encoder_id: str) -> tuple[list[str], np.ndarray]:
    """Every vector of ``encoder_id`` whose photo the `visible_images` view lets through."""
    with db.cursor() as cur:
        table = cur.sql(_VISIBLE_VECTORS, params=[encoder_id]).to_arrow_table()
    return table.column("image_id").to_pylist(), arrow_to_vectors(table.column("vector"))


def visible_vector_count(db: Database, encoder_id: str) -> int:
    return int(db.fetch_all("SELECT count(*) FROM embeddings e JOIN visible_images v ON v.id = e.image_id "
                            "AND v.sha256 = e.sha256 WHERE e.encoder_id = ?", [encoder_id])[0][0])


def vector_chunks(db: Database, encoder_id: str, rows: int = 32_768,
                  created_after: datetime | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
    """Every vector of ``encoder_id`` (only those stored after ``created_after``, for an index brought up to
    date), whatever the minors filter decided and whether its photo's bytes changed since (the search index;
    visibility and current bytes are checked per answer, :func:`visible_subset`), in id order, streamed ``rows``
    at a time (a million never sit in memory)."""
    with db.cursor() as cur:
        relation = cur.sql("SELECT image_id, vector FROM embeddings WHERE encoder_id = ? "
                           "AND (CAST(? AS TIMESTAMP) IS NULL OR created > ?) ORDER BY image_id",
                           params=[encoder_id, created_after, created_after])
        for batch in relation.to_arrow_reader(rows):
            yield batch.column("image_id").to_pylist(), arrow_to_vectors(batch.column("vector"))


def vector_set_version(db: Database, encoder_id: str) -> tuple[int, datetime | None]:
    """(vectors, newest ``created``) of an encoder: changes exactly when its set of vectors does, so it keys the
    search index (pipeline/search.py). A delete lowers the count; an insert or a replacement is stamped now()
    (:func:`save_photo_vectors`), after every stored row, and moves the newest time. Moderation, labels and
    re-ingests leave it alone. Two column aggregates DuckDB answers from its row-group statistics: ~2 ms at a
    million rows, where a hash over (image_id, sha256) took ~400 ms (benchmarks/dashboard_scale.py)."""
    count, newest = db.fetch_all("SELECT count(*), max(created) FROM embeddings WHERE encoder_id = ?",
                                 [encoder_id])[0]
    return int(count), newest


def vector_dim(db: Database, encoder_id: str) -> int | None:
    """Length of the encoder's stored vectors (all are equal: db/shards.py and the stages refuse others)."""
    found = db.fetch_all("SELECT len(vector) FROM embeddings WHERE encoder_id = ? LIMIT 1", [encoder_id])
    return int(found[0][0]) if found else None


def encoders_with_vectors(db: Database) -> pd.DataFrame:
    return db.fetch_df("SELECT encoder_id, count(*) AS photos, max(created) AS updated FROM embeddings "
                       "GROUP BY encoder_id ORDER BY updated DESC")


# ---------------------------------------------------------------------------------------------------- bridges
def current_bridge(db: Database) -> str | None:
    rows = db.fetch_all("SELECT params FROM bridges WHERE current ORDER BY created DESC LIMIT 1")
    return rows[0][0] if rows else None


def save_bridge(cur: duckdb.DuckDBPyConnection, bridge_id: str, params_json: str) -> None:
    cur.execute("UPDATE bridges SET current = false WHERE current")
    cur.execute("INSERT OR REPLACE INTO bridges VALUES (?, ?, ?, true)", [bridge_id, params_json, datetime.now()])


# ----------------------------------------------------------------------------------------------- evaluation
# Measurement and fitting read every readable photo, whatever the minors filter decided: they show no photo to
# anyone, and the evaluation protocol ranks all of a dataset's photos.
def dataset_vectors(db: Database, encoder_id: str, dataset: str) -> tuple[list[str], np.ndarray]:
    with db.cursor() as cur:
        table = cur.sql(
            "SELECT e.image_id, e.vector FROM embeddings e JOIN images i ON i.id = e.image_id "
            "WHERE e.encoder_id = ? AND i.dataset = ? AND i.status = 'ok' AND e.sha256 = i.sha256 ORDER BY e.image_id",
            params=[encoder_id, dataset],
        ).to_arrow_table()
    return table.column("image_id").to_pylist(), arrow_to_vectors(table.column("vector"))


def captions_of_readable_photos(db: Database, dataset: str) -> pd.DataFrame:
    return db.fetch_df(
        "SELECT c.id AS caption_id, c.image_id, c.text FROM captions c JOIN images i ON i.id = c.image_id "
        "WHERE c.dataset = ? AND i.status = 'ok' ORDER BY c.id",
        [dataset],
    )


def objects_of_readable_photos(db: Database, dataset: str) -> pd.DataFrame:
    return db.fetch_df(
        "SELECT o.image_id, o.category FROM objects o JOIN images i ON i.id = o.image_id "
        "WHERE o.dataset = ? AND i.status = 'ok' ORDER BY o.category, o.image_id",
        [dataset],
    )


def data_version(db: Database, dataset: str) -> str:
    rows = db.fetch_all("SELECT last_run_id FROM datasets WHERE id = ?", [dataset])
    return f"{dataset}@ingest-run-{rows[0][0]}" if rows else f"{dataset}@none"


def save_metrics(cur: duckdb.DuckDBPyConnection, encoder: str, protocol: str, metrics: dict[str, float],
                 version: str, details: dict) -> None:
    """Replace the figures of (encoder, protocol, data version) with these."""
    cur.execute("DELETE FROM retrieval_metrics WHERE encoder = ? AND protocol = ? AND data_version = ?",
                [encoder, protocol, version])
    now = datetime.now()
    cur.executemany(
        "INSERT INTO retrieval_metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
        [[encoder, protocol, name, float(value), version, now, json.dumps(details)] for name, value in metrics.items()],
    )


def retrieval_metrics(db: Database) -> pd.DataFrame:
    return db.fetch_df("SELECT encoder, protocol, metric, value, data_version, created, details "
                       "FROM retrieval_metrics ORDER BY protocol, encoder, metric")


def captions_with_features(db: Database, feature_id: str, dataset: str | None) -> pd.DataFrame:
    """Captions of readable photos whose features (for their current bytes) are cached."""
    return db.fetch_df(
        """
        SELECT c.image_id, c.text FROM captions c
        JOIN images i ON i.id = c.image_id AND i.status = 'ok'
        JOIN image_features f ON f.image_id = c.image_id AND f.feature_id = ? AND f.sha256 = i.sha256
        WHERE ? IS NULL OR c.dataset = ?
        ORDER BY c.id
        """,
        [feature_id, dataset, dataset],
    )


def visible_subset(db: Database, image_ids: Sequence[str], encoder_id: str | None = None) -> set[str]:
    """Which of these photos the `visible_images` rule lets through right now; with ``encoder_id``, only those
    whose vector of that encoder was computed from the very bytes it lets through. Read by key
    (db.reads.visible_keyed): a search checks a few hundred candidates per answer."""
    return visible_showing(db, "", image_ids, (), 0.0, encoder_id)


def visible_with_vectors(db: Database, encoder_id: str, limit: int) -> list[str] | None:
    """Every visible photo whose vector of ``encoder_id`` matches its visible bytes, or None when more than
    ``limit`` (few enough to score one by one)."""
    rows = db.fetch_all("SELECT v.id FROM visible_images v JOIN embeddings e ON e.image_id = v.id "
                        "AND e.sha256 = v.sha256 WHERE e.encoder_id = ? LIMIT ?", [encoder_id, limit + 1])
    return None if len(rows) > limit else [row[0] for row in rows]


def vectors_of(db: Database, encoder_id: str, image_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Current vectors (matching the photo's bytes) of these photos, whatever the minors filter decided."""
    return dict(zip(*_vectors_for(
        db, "image_id", image_ids,
        "SELECT e.image_id, e.vector FROM embeddings e JOIN wanted USING (image_id) "
        "JOIN images i ON i.id = e.image_id AND i.sha256 = e.sha256 WHERE e.encoder_id = ?",
        [encoder_id],
    )))


# ----------------------------------------------------------------------------------------------------- objects
# Object-aware vectors of the offline encoder (pipeline/object_text.py) read detections of the current perceiver,
# for the photo's current bytes only.
def photos_to_fuse(db: Database, encoder_id: str, feature_id: str, perceiver: str) -> pd.DataFrame:
    """Readable photos with cached features whose object-aware vector is absent, stale (bytes changed), or was made
    before the photo was perceived (it then lacked the objects); with whether the photo is perceived now."""
    return db.fetch_df(
        """
        SELECT i.id AS image_id, i.sha256, p.image_id IS NOT NULL AS perceived
        FROM images i
        JOIN image_features f ON f.image_id = i.id AND f.feature_id = ? AND f.sha256 = i.sha256
        LEFT JOIN perceived_photos p ON p.image_id = i.id AND p.perceiver = ? AND p.sha256 = i.sha256
        LEFT JOIN embeddings e ON e.image_id = i.id AND e.encoder_id = ? AND e.sha256 = i.sha256
        WHERE i.status = 'ok' AND (e.image_id IS NULL OR p.created > e.created)
        ORDER BY i.id
        """,
        [feature_id, perceiver, encoder_id],
    )


def vectors_not_perceived(db: Database, encoder_id: str, perceiver: str) -> int:
    """Current vectors of ``encoder_id`` whose photo's current bytes ``perceiver`` has not seen."""
    return int(db.fetch_all(
        "SELECT count(*) FROM embeddings e JOIN images i ON i.id = e.image_id AND i.sha256 = e.sha256 "
        "LEFT JOIN perceived_photos p ON p.image_id = i.id AND p.perceiver = ? AND p.sha256 = i.sha256 "
        "WHERE e.encoder_id = ? AND p.image_id IS NULL", [perceiver, encoder_id])[0][0])


def objects_on_visible_photos(db: Database, perceiver: str, min_score: float) -> pd.DataFrame:
    """COCO labels detected (from ``min_score``) in visible photos' current bytes: label, photos; most photos first."""
    return db.fetch_df(
        "SELECT d.label, count(DISTINCT d.image_id) AS photos FROM detections d "
        "JOIN visible_images v ON v.id = d.image_id AND v.sha256 = d.sha256 "
        "WHERE d.perceiver = ? AND d.kind = 'object' AND d.score >= ? GROUP BY d.label ORDER BY photos DESC, d.label",
        [perceiver, min_score],
    )


def objects_version(db: Database) -> tuple:
    """Changes whenever :func:`objects_on_visible_photos` may: a decision made or replaced (stamped now), an ingest
    run, a perception run. Aggregates DuckDB answers from row-group statistics, ~10 ms at a million photos, where
    the counts themselves join millions of rows (seconds)."""
    return db.fetch_all(
        "SELECT (SELECT count(*) FROM minors_decisions), (SELECT max(decided_at) FROM minors_decisions), "
        "(SELECT max(id) FROM ingest_runs), (SELECT count(*) FROM detections), "
        "(SELECT max(created) FROM perceived_photos)")[0]


def visible_showing(db: Database, perceiver: str, image_ids: Sequence[str], labels: Sequence[str],
                    min_score: float, encoder_id: str | None = None) -> set[str]:
    """Which of these photos are visible now and show every one of ``labels`` (a detection of ``perceiver`` from
    ``min_score`` in their current bytes); with ``encoder_id``, only those whose vector matches those bytes.
    Photos, decisions, vectors and detections are read by key (db.reads.visible_keyed, keyed_in)."""
    ids = list(image_ids)
    if not ids:
        return set()
    visible, params = reads.visible_keyed(ids)
    where, keys = reads.keyed_in(ids)
    ctes, joins, tail, extra = [visible], [], "", []
    if encoder_id:
        ctes.append(f"e AS MATERIALIZED (SELECT image_id, encoder_id, sha256 FROM embeddings WHERE image_id {where})")
        joins.append("JOIN e ON e.image_id = v.id AND e.sha256 = v.sha256 AND e.encoder_id = ?")
        params, extra = [*params, *keys], [encoder_id]
    if labels:
        ctes.append(f"d AS MATERIALIZED (SELECT image_id, perceiver, sha256, kind, label, score FROM detections "
                    f"WHERE image_id {where})")
        joins.append("JOIN d ON d.image_id = v.id AND d.sha256 = v.sha256 AND d.perceiver = ? AND d.kind = 'object' "
                     "AND d.score >= ? AND d.label IN (SELECT unnest(?))")
        params, extra = [*params, *keys], [*extra, perceiver, min_score, list(labels)]
        tail = "GROUP BY v.id HAVING count(DISTINCT d.label) = ?"
        extra.append(len(set(labels)))
    sql = f"WITH {', '.join(ctes)} SELECT v.id FROM visible v {' '.join(joins)} {tail}"
    return {row[0] for row in db.fetch_all(sql, [*params, *extra])}


def visible_showing_all(db: Database, perceiver: str, labels: Sequence[str], min_score: float,
                        limit: int) -> list[str] | None:
    """Every visible photo showing all of ``labels`` (as :func:`visible_showing`), or None when more than ``limit``."""
    rows = db.fetch_all(
        "SELECT v.id FROM visible_images v JOIN detections d ON d.image_id = v.id AND d.sha256 = v.sha256 "
        "WHERE d.perceiver = ? AND d.kind = 'object' AND d.score >= ? AND d.label IN (SELECT unnest(?)) "
        "GROUP BY v.id HAVING count(DISTINCT d.label) = ? LIMIT ?",
        [perceiver, min_score, list(labels), len(set(labels)), limit + 1])
    return None if len(rows) > limit else [row[0] for row in rows]


def photo_splits(db: Database, dataset: str) -> dict[str, str | None]:
    """image id -> split (e.g. COCO's train2017 / val2017) of a dataset's readable photos."""
    return dict(db.fetch_all("SELECT id, split FROM images WHERE dataset = ? AND status = 'ok'", [dataset]))
