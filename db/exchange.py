"""SQL of the Parquet exchange format (``python -m pipeline export``): what leaves this database, and how.

Trust rule: vectors, labels and relevance rows leave only for photos the `visible_images` view lets through now,
and a vector only when it was computed from the very bytes the cleared decision covers (same sha256). Minors
decisions leave whole: a consumer needs the exclusions to filter its own copy.
COPY ... TO takes the target path as a bound parameter (checked with DuckDB 2.0), so no path is ever quoted
into SQL text; partition columns are fixed names below, never user input. Partition columns are also written
inside each file (WRITE_PARTITION_COLUMNS) so every vectors file is a self-describing shard db/shards.py loads.
"""

from __future__ import annotations

from pathlib import Path

from db.database import Database

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
