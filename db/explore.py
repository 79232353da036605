"""SQL of the embedding map (pipeline/project.py writes it, the Explore page reads it) and of the page's tables of
the labels reviewers collected so far.

The project stage maps every vector of an encoder; every read the page makes joins `visible_images` on the bytes the
vector was computed from, so only photos visible now (cleared, bytes unchanged) are ever drawn or described."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from db import reads
from db.database import Database
from db.embeddings import arrow_to_vectors

NO_LABEL = "(no label)"


@dataclass(frozen=True)
class MapInfo:
    """What an encoder's stored map was computed from (one photo_maps row)."""

    encoder_id: str
    vectors: int
    vectors_newest: datetime | None
    method: str
    fitted_on: int
    clusters: int
    seed: int
    explained: float
    seconds: float
    created: datetime

    def version(self) -> tuple[int, datetime | None]:
        """The vector-set version (db.embeddings.vector_set_version) the map was computed from."""
        return self.vectors, self.vectors_newest


# ----------------------------------------------------------------------------------------------- the stage
def fitting_sample(db: Database, encoder_id: str, rows: int, seed: int) -> tuple[list[str], np.ndarray]:
    """At most ``rows`` vectors of ``encoder_id``, chosen by a seeded hash of the photo id: the same photos for the
    same set of vectors and seed, whatever the order DuckDB reads them in, and one pass over the table with only
    ``rows`` vectors kept (a top-N), so the fit stays bounded at any catalog size."""
    with db.cursor() as cur:
        table = cur.sql("SELECT image_id, vector FROM embeddings WHERE encoder_id = ? "
                        "ORDER BY hash(image_id, ?), image_id LIMIT ?",
                        params=[encoder_id, seed, rows]).to_arrow_table()
    return table.column("image_id").to_pylist(), arrow_to_vectors(table.column("vector"))


def vector_chunks(db: Database, encoder_id: str, rows: int) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
    """Every vector of ``encoder_id`` with the photo bytes it was computed from (id, sha256, vector), in id order,
    ``rows`` at a time: db.embeddings.vector_chunks plus the sha256 the map keeps for the page's visibility join."""
    with db.cursor() as cur:
        relation = cur.sql("SELECT image_id, sha256, vector FROM embeddings WHERE encoder_id = ? ORDER BY image_id",
                           params=[encoder_id])
        for batch in relation.to_arrow_reader(rows):
            yield (batch.column("image_id").to_pylist(), batch.column("sha256").to_pylist(),
                   arrow_to_vectors(batch.column("vector")))


def clear_map(cur: duckdb.DuckDBPyConnection, encoder_id: str) -> None:
    cur.execute("DELETE FROM photo_map WHERE encoder_id = ?", [encoder_id])


def save_points(cur: duckdb.DuckDBPyConnection, encoder_id: str, image_ids: Sequence[str], shas: Sequence[str],
                xy: np.ndarray, clusters: np.ndarray) -> None:
    """Insert one chunk of map points (the stage clears the encoder's map first, in the same transaction)."""
    cur.register("points", pa.table({
        "image_id": pa.array(list(image_ids), pa.string()), "sha256": pa.array(list(shas), pa.string()),
        "x": pa.array(xy[:, 0], pa.float32()), "y": pa.array(xy[:, 1], pa.float32()),
        "cluster": pa.array(clusters.astype(np.int16), pa.int16())}))
    cur.execute("INSERT INTO photo_map SELECT ?, image_id, sha256, x, y, cluster FROM points", [encoder_id])
    cur.unregister("points")


def save_info(cur: duckdb.DuckDBPyConnection, info: MapInfo) -> None:
    cur.execute("INSERT OR REPLACE INTO photo_maps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [info.encoder_id, info.vectors, info.vectors_newest, info.method, info.fitted_on, info.clusters,
                 info.seed, info.explained, info.seconds, info.created])


# ------------------------------------------------------------------------------------------------ the page
def map_infos(db: Database) -> list[MapInfo]:
    """Every stored map, that of the most recently embedded vectors first (as Live search lists its encoders: after
    the demo, the fitted bridge's)."""
    rows = db.fetch_all("SELECT encoder_id, vectors, vectors_newest, method, fitted_on, clusters, seed, explained, "
                        "seconds, created FROM photo_maps ORDER BY vectors_newest DESC NULLS LAST, encoder_id")
    return [MapInfo(*row) for row in rows]


def map_info(db: Database, encoder_id: str) -> MapInfo | None:
    return next((info for info in map_infos(db) if info.encoder_id == encoder_id), None)


def visibility_version(db: Database) -> tuple:
    """Changes whenever the set of visible photos may: a decision made or replaced (stamped now), an ingest run.
    Aggregates DuckDB answers from row-group statistics (milliseconds at a million photos), to key cached reads."""
    return db.fetch_all("SELECT (SELECT count(*) FROM minors_decisions), (SELECT max(decided_at) FROM "
                        "minors_decisions), (SELECT max(id) FROM ingest_runs)")[0]


def visible_points(db: Database, encoder_id: str, limit: int) -> tuple[int, pd.DataFrame]:
    """(how many visible photos the map holds, at most ``limit`` of them: image_id, dataset, x, y, cluster). A photo
    is drawn only while visible_images lets it through with the very bytes its point was computed from. The drawn
    ones are a seeded-hash sample, the same on every run, so points do not jump between page runs; one pass of the
    join gives both (the total as a window count)."""
    points = db.fetch_df(
        "SELECT m.image_id, v.dataset, m.x, m.y, m.cluster, count(*) OVER () AS total "
        "FROM photo_map m JOIN visible_images v ON v.id = m.image_id AND v.sha256 = m.sha256 "
        "WHERE m.encoder_id = ? ORDER BY hash(m.image_id), m.image_id LIMIT ?", [encoder_id, limit])
    total = int(points["total"].iloc[0]) if len(points) else 0
    return total, points.drop(columns="total")


def verdicts_of(db: Database, image_ids: list[str]) -> dict[str, str]:
    """Each photo's latest reviewer verdict (any query, any encoder); photos never labelled are absent."""
    where, keys = reads.keyed_in(image_ids)
    return dict(db.fetch_all(f"SELECT image_id, arg_max(verdict, id) FROM labels WHERE image_id {where} "
                             "GROUP BY image_id", keys))


def objects_of(db: Database, image_ids: list[str]) -> dict[str, str]:
    """Each photo's main COCO object from its dataset's annotations (most instances, then name); photos without
    annotations are absent."""
    where, keys = reads.keyed_in(image_ids)
    return dict(db.fetch_all(f"SELECT image_id, arg_max(category, (n_instances, category)) FROM objects "
                             f"WHERE image_id {where} GROUP BY image_id", keys))


def detected_of(db: Database, image_ids: list[str], perceiver: str, min_score: float) -> dict[str, str]:
    """Each photo's main detected COCO-80 object in its current bytes (most boxes from ``min_score``, then the best
    score): the object label of photos whose dataset has no annotations. Photos with none are absent."""
    where, keys = reads.keyed_in(image_ids)
    return dict(db.fetch_all(
        f"""
        SELECT image_id, arg_max(label, (boxes, best, label)) FROM (
            SELECT d.image_id, d.label, count(*) AS boxes, max(d.score) AS best
            FROM detections d JOIN images i ON i.id = d.image_id AND i.sha256 = d.sha256
            WHERE d.image_id {where} AND d.perceiver = ? AND d.kind = 'object' AND d.score >= ?
            GROUP BY ALL)
        GROUP BY image_id
        """, [*keys, perceiver, min_score]))


def labels_by(db: Database, column: str, limit: int) -> pd.DataFrame:
    """Labels per ``column`` (user_name, verdict or query) and verdict, the largest groups first; labels of photos
    that are not visible are counted, never shown."""
    if column not in ("user_name", "verdict", "query"):
        raise ValueError(f"labels cannot be grouped by {column!r}")
    return db.fetch_df(
        f"""
        WITH totals AS (SELECT {column} AS key, count(*) AS total FROM labels GROUP BY ALL
                        ORDER BY total DESC, key LIMIT ?)
        SELECT l.{column} AS key, l.verdict, count(*) AS labels, any_value(t.total) AS total
        FROM labels l JOIN totals t ON t.key = l.{column}
        GROUP BY ALL ORDER BY total DESC, key, verdict
        """,
        [limit],
    )


def label_totals(db: Database) -> tuple[int, int, int]:
    """(labels, reviewers, queries) collected so far."""
    row = db.fetch_all("SELECT count(*), count(DISTINCT user_name), count(DISTINCT query) FROM labels")[0]
    return int(row[0]), int(row[1]), int(row[2])
