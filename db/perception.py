"""SQL of the perceive stage: which photos still need perceiving, saving what the detectors saw, reading it back.

Readers only ever get rows whose sha256 is the photo's current one: a file replaced after it was perceived has no
perception until the stage runs again (and the minors filter then keeps it pending: fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from db import reads
from db.database import Database

DETECTION_COLUMNS = ("model_id", "kind", "label", "score", "x0", "y0", "x1", "y1", "size_px", "age", "age_model")


def photos_to_perceive(db: Database, perceiver: str) -> pd.DataFrame:
    """Readable photos whose current bytes have no result of ``perceiver`` yet, with their absolute path and
    upright size."""
    return db.fetch_df(
        """
        SELECT i.id AS image_id, d.root || '/' || i.path AS path, i.sha256, i.width, i.height
        FROM images i JOIN datasets d ON d.id = i.dataset
        LEFT JOIN perceived_photos p ON p.image_id = i.id AND p.perceiver = ? AND p.sha256 = i.sha256
        WHERE i.status = 'ok' AND p.image_id IS NULL
        ORDER BY i.id
        """,
        [perceiver],
    )


def save_perceived(cur: duckdb.DuckDBPyConnection, perceiver: str, photos: pd.DataFrame,
                   detections: pd.DataFrame) -> None:
    """Replace ``perceiver``'s results for these photos: ``photos`` has image_id, sha256, width, height, objects,
    faces, seconds; ``detections`` has image_id, sha256 and DETECTION_COLUMNS (rows of photos in ``photos`` only)."""
    ids = pa.table({"image_id": pa.array(photos["image_id"].tolist(), pa.string())})
    cur.register("done_ids", ids)
    cur.execute("DELETE FROM detections WHERE perceiver = ? AND image_id IN (SELECT image_id FROM done_ids)",
                [perceiver])
    cur.execute("DELETE FROM perceived_photos WHERE perceiver = ? AND image_id IN (SELECT image_id FROM done_ids)",
                [perceiver])
    cur.unregister("done_ids")
    cur.register("done", photos[["image_id", "sha256", "width", "height", "objects", "faces", "seconds"]])
    cur.execute("INSERT INTO perceived_photos SELECT image_id, ?, sha256, width, height, objects, faces, seconds, ? "
                "FROM done", [perceiver, datetime.now()])
    cur.unregister("done")
    if len(detections):
        cur.register("found", detections[["image_id", "sha256", *DETECTION_COLUMNS]])
        cur.execute("INSERT INTO detections SELECT image_id, ?, sha256, " + ", ".join(DETECTION_COLUMNS) +
                    " FROM found", [perceiver])
        cur.unregister("found")


def delete_orphans(cur: duckdb.DuckDBPyConnection) -> int:
    """Results of photos no longer readable (removed, or corrupt after a re-ingest)."""
    cur.execute("DELETE FROM detections WHERE image_id NOT IN (SELECT id FROM images WHERE status = 'ok')")
    return int(cur.execute("DELETE FROM perceived_photos WHERE image_id NOT IN "
                           "(SELECT id FROM images WHERE status = 'ok')").fetchone()[0])


def _current(table: str, perceiver: str, image_ids: Sequence[str] | None) -> tuple[str, list]:
    """``WITH p AS (...), i AS (...)``: ``perceiver``'s rows of ``table`` and the photos (id, sha256), of every
    photo or only of ``image_ids``, read by key then (db.reads.keyed_in: a page asks for a few photos of a million).
    Join them on p.sha256 = i.sha256 for the current bytes only."""
    if image_ids is None:
        return (f"WITH p AS (SELECT * FROM {table} WHERE perceiver = ?), i AS (SELECT id, sha256 FROM images)",
                [perceiver])
    where, keys = reads.keyed_in(list(image_ids))
    return (f"WITH p0 AS MATERIALIZED (SELECT * FROM {table} WHERE image_id {where}), "
            "p AS (SELECT * FROM p0 WHERE perceiver = ?), "
            f"i AS MATERIALIZED (SELECT id, sha256 FROM images WHERE id {where})", [*keys, perceiver, *keys])


def perceived_of(db: Database, perceiver: str, image_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Photos whose current bytes ``perceiver`` saw (every photo, or ``image_ids``), with width, height, counts."""
    rows, params = _current("perceived_photos", perceiver, image_ids)
    return db.fetch_df(
        f"{rows} SELECT p.image_id, p.sha256, p.width, p.height, p.objects, p.faces, p.seconds FROM p "
        "JOIN i ON i.id = p.image_id AND i.sha256 = p.sha256 ORDER BY p.image_id", params)


def perceived_ids(db: Database, perceiver: str, image_ids: Sequence[str] | None = None) -> set[str]:
    return set(perceived_of(db, perceiver, image_ids)["image_id"])


def perceived_count(db: Database, perceiver: str) -> int:
    """Photos whose current bytes ``perceiver`` saw: a count, not a read of every row (a catalogue has millions)."""
    return int(db.fetch_all("SELECT count(*) FROM perceived_photos p JOIN images i ON i.id = p.image_id "
                            "AND i.sha256 = p.sha256 WHERE p.perceiver = ?", [perceiver])[0][0])


def detections_of(db: Database, perceiver: str, image_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Every detection ``perceiver`` made on the current bytes of the photos (all, or ``image_ids``)."""
    rows, params = _current("detections", perceiver, image_ids)
    return db.fetch_df(
        f"{rows} SELECT p.image_id, " + ", ".join(f"p.{c}" for c in DETECTION_COLUMNS) + " FROM p "
        "JOIN i ON i.id = p.image_id AND i.sha256 = p.sha256 ORDER BY p.image_id, p.kind, p.score DESC", params)
