"""SQL of the Parquet exchange format (``python -m pipeline export``): what leaves this database, and how.

Trust rule: vectors, labels and relevance rows leave only for photos the `visible_images` view lets through now,
and a vector only when it was computed from the very bytes the cleared decision covers (same sha256). Minors
decisions leave whole: a consumer needs the exclusions to filter its own copy.
COPY ... TO takes the target path as a bound parameter (checked with DuckDB 2.0), so no path is ever quoted
into SQL text; partition columns are fixed names below, never user input. Partition columns are also written
inside each file (WRITE_PARTITION_COLUMNS) so every vectors file is a self-describing shard db/shards.py loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from db.database import Database

IMPORT_DATASET = "(exchange import)"  # the dataset column of an import's ingest run and rejects

VISIBLE_VECTORS = ("SELECT e.encoder_id, e.image_id, e.sha256, e.vector FROM embeddings e "
                   "JOIN visible_images v ON v.id = e.image_id AND v.sha256 = e.sha256")
VISIBLE_LABELS = ("SELECT l.id, l.user_name, l.created, l.query, l.image_id, l.encoder, l.rank, l.score, l.verdict, "
                  "l.comment, l.write_key FROM labels l JOIN visible_images v ON v.id = l.image_id")
DECISIONS = ("SELECT image_id, sha256, status, CAST(reasons AS VARCHAR) AS reasons, rule_set_version, decided_by, "
             "moderator, decided_at FROM minors_decisions")
VISIBLE_RELEVANCE = ("SELECT r.dataset, r.image_id, r.query_id, r.expert_score, r.crowd_share, r.n_crowd_votes, "
                     "r.relevance, r.formula FROM relevance r JOIN visible_images v ON v.id = r.image_id")

# table name in the export -> (query, Hive partition column or None)
TABLES: dict[str, tuple[str, str | None]] = {
    "vectors": (VISIBLE_VECTORS, "encoder_id"),
    "labels": (VISIBLE_LABELS, None),
    "minors_decisions": (DECISIONS, "status"),
    "relevance": (VISIBLE_RELEVANCE, "dataset"),
}


def export_table(db: Database, table: str, folder: Path) -> int:
    """Write ``table`` as Parquet under ``folder/table`` (Hive partitions where it has a partition column);
    returns the rows written. An empty table still gets its folder, so readers find every table."""
    query, partition = TABLES[table]
    target = folder / table
    target.mkdir(parents=True, exist_ok=True)
    with db.cursor() as cur:
        rows = int(cur.execute(f"SELECT count(*) FROM ({query})").fetchone()[0])
        if rows == 0:
            return 0
        if partition is None:
            cur.execute(f"COPY ({query}) TO ? (FORMAT parquet)", [str(target / "data_0.parquet")])
        else:
            cur.execute(f"COPY ({query}) TO ? (FORMAT parquet, PARTITION_BY ({partition}), "
                        "WRITE_PARTITION_COLUMNS true, OVERWRITE_OR_IGNORE)",
                        [str(target)])
    return rows


def encoder_dims(db: Database) -> dict[str, dict[str, int]]:
    """Per encoder of the exported (visible) vectors: its dimension and how many vectors leave."""
    rows = db.fetch_all(f"SELECT encoder_id, max(len(vector)), count(*) FROM ({VISIBLE_VECTORS}) GROUP BY 1 ORDER BY 1")
    return {encoder: {"dims": int(dims), "vectors": int(n)} for encoder, dims, n in rows}


# ------------------------------------------------------------------------------------------------------ import
# Reading an export back (``python -m pipeline ingest --data DIR``). Each query reads one Parquet file, named by a
# bound parameter; rows are numbered by DuckDB's file_row_number (0-based) for the rejects.
def start_import_run(cur: duckdb.DuckDBPyConnection, source: str, layout: str) -> int:
    """An ingest_runs row for an import, finished by :func:`finish_import_run`; rejects point at its id."""
    run_id = int(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM ingest_runs").fetchone()[0])
    cur.execute("INSERT INTO ingest_runs VALUES (?, ?, ?, ?, now(), NULL, NULL, 'ok', NULL)",
                [run_id, IMPORT_DATASET, source, layout])
    return run_id


def finish_import_run(cur: duckdb.DuckDBPyConnection, run_id: int, counts: dict,
                      rejects: list[tuple[str, int | None, str | None, str]]) -> None:
    """Counts and rejects (file, 1-based row or None, the row's key, reason) of an import run."""
    cur.execute("UPDATE ingest_runs SET finished = now(), counts = ? WHERE id = ?", [json.dumps(counts), run_id])
    if rejects:
        cur.executemany("INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
                        [[run_id, IMPORT_DATASET, file, row, key, reason] for file, row, key, reason in rejects])


def vector_rows_without_photo(db: Database, file: str) -> list[tuple[int, str, str]]:
    """(1-based row, image id, reason) of an exported vectors file's rows this database cannot take: no such
    photo, or a photo whose bytes here are not the ones the vector was made from."""
    rows = db.fetch_all(
        "SELECT s.file_row_number + 1, s.image_id, CASE WHEN i.id IS NULL THEN 'no such photo in this database' "
        "WHEN i.status <> 'ok' THEN 'the photo is ' || i.status || ' here' "
        "ELSE 'the photo''s bytes here differ from the vector''s (sha256)' END "
        "FROM read_parquet(?, file_row_number = true) s LEFT JOIN images i ON i.id = s.image_id "
        "WHERE i.id IS NULL OR i.status <> 'ok' OR i.sha256 IS DISTINCT FROM s.sha256 ORDER BY 1", [file])
    return [(int(row), str(image_id), reason) for row, image_id, reason in rows]


def import_labels(cur: duckdb.DuckDBPyConnection, file: str) -> tuple[int, list[tuple[int, str]]]:
    """Reviewers' labels of photos this database has, each once: a label already here (same reviewer, time,
    query, photo, encoder and verdict) is left alone, so importing twice adds nothing. Returns (inserted,
    [(1-based row, image id)] of labels whose photo is not here)."""
    unknown = cur.execute(
        "SELECT s.file_row_number + 1, s.image_id FROM read_parquet(?, file_row_number = true) s "
        "WHERE s.image_id NOT IN (SELECT id FROM images) ORDER BY 1", [file]).fetchall()
    inserted = cur.execute(
        """INSERT INTO labels
           SELECT nextval('labels_id'), s.user_name, s.created, s.query, s.image_id, s.encoder, s.rank, s.score,
                  s.verdict, s.comment, NULL  -- write_key: the source's queue key means nothing here
           FROM read_parquet(?) s JOIN images i ON i.id = s.image_id
           WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.user_name = s.user_name AND l.created = s.created
                             AND l.query = s.query AND l.image_id = s.image_id AND l.encoder = s.encoder
                             AND l.verdict = s.verdict)""", [file]).fetchone()[0]
    return int(inserted), [(int(row), str(image_id)) for row, image_id in unknown]


def import_relevance(cur: duckdb.DuckDBPyConnection, file: str) -> tuple[int, list[tuple[int, str, str]]]:
    """Relevance pairs of photos this database has and has no relevance for yet (pairs computed here from this
    database's ratings are never overwritten). Returns (inserted, [(1-based row, image id, reason)] not taken)."""
    refused = cur.execute(
        "SELECT s.file_row_number + 1, s.image_id, CASE WHEN i.id IS NULL THEN 'no such photo in this database' "
        "ELSE 'this database has its own relevance for the pair' END "
        "FROM read_parquet(?, file_row_number = true) s LEFT JOIN images i ON i.id = s.image_id "
        "LEFT JOIN relevance r ON r.dataset = s.dataset AND r.image_id = s.image_id AND r.query_id = s.query_id "
        "WHERE i.id IS NULL OR (r.image_id IS NOT NULL AND (r.relevance IS DISTINCT FROM s.relevance "
        "OR r.formula IS DISTINCT FROM s.formula)) ORDER BY 1", [file]).fetchall()
    inserted = cur.execute(
        """INSERT INTO relevance
           SELECT s.dataset, s.image_id, s.query_id, s.expert_score, s.crowd_share, s.n_crowd_votes, s.relevance,
                  s.formula
           FROM read_parquet(?) s JOIN images i ON i.id = s.image_id
           WHERE NOT EXISTS (SELECT 1 FROM relevance r WHERE r.dataset = s.dataset AND r.image_id = s.image_id
                             AND r.query_id = s.query_id)""", [file]).fetchone()[0]
    return int(inserted), [(int(row), str(image_id), reason) for row, image_id, reason in refused]


def exclusions_to_apply(db: Database, file: str) -> tuple[list[str], int]:
    """Photos an exported decision excludes that this database has with the same bytes and does not exclude yet
    (an import only ever makes this database stricter), and how many 'cleared' decisions the file holds (never
    applied: this studio's filter and moderators clear photos)."""
    rows = db.fetch_all(
        "SELECT s.image_id FROM read_parquet(?) s JOIN images i ON i.id = s.image_id AND i.sha256 = s.sha256 "
        "LEFT JOIN minors_decisions m ON m.image_id = i.id "
        "WHERE s.status = 'excluded' AND (m.image_id IS NULL OR m.status <> 'excluded' "
        "OR m.sha256 IS DISTINCT FROM i.sha256) ORDER BY 1", [file])
    cleared = db.fetch_all("SELECT count(*) FROM read_parquet(?) WHERE status = 'cleared'", [file])[0][0]
    return [row[0] for row in rows], int(cleared)
