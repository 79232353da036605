"""Read-only queries shared by the CLI and the dashboard."""

from __future__ import annotations

import json

import pandas as pd

from db.database import Database


def datasets_overview(db: Database) -> pd.DataFrame:
    """One row per dataset with its image, caption and rating counts: one GROUP BY pass per table, so each table is
    read once whatever the number of datasets."""
    counted = {"captions": "captions", "expert_ratings": "expert_ratings", "crowd_ratings": "crowd_ratings",
               "relevance": "relevance_pairs", "objects": "object_labels", "rejects": "rejects"}
    joins = "\n".join(f"LEFT JOIN (SELECT dataset, count(*) AS n FROM {table} GROUP BY dataset) {table} "
                      f"ON {table}.dataset = d.id" for table in counted)
    columns = ", ".join(f"coalesce({table}.n, 0) AS {name}" for table, name in counted.items())
    return db.fetch_df(
        f"""
        SELECT d.id AS dataset, d.layout, d.root, d.last_run_id,
               coalesce(i.images, 0) AS images, coalesce(i.images_ok, 0) AS images_ok,
               coalesce(i.images_missing, 0) AS images_missing, coalesce(i.images_corrupt, 0) AS images_corrupt,
               {columns}
        FROM datasets d
        LEFT JOIN (SELECT dataset, count(*) AS images, count(*) FILTER (WHERE status = 'ok') AS images_ok,
                          count(*) FILTER (WHERE status = 'missing') AS images_missing,
                          count(*) FILTER (WHERE status = 'corrupt') AS images_corrupt
                   FROM images GROUP BY dataset) i ON i.dataset = d.id
        {joins}
        ORDER BY d.id
        """
    )


def ingest_runs(db: Database, limit: int = 50) -> pd.DataFrame:
    return db.fetch_df(
        "SELECT id, dataset, layout, status, started, finished, message, source FROM ingest_runs "
        "ORDER BY id DESC LIMIT ?",
        [limit],
    )


def reject_counts(db: Database) -> pd.DataFrame:
    """Rejected lines per dataset, file and reason class: the reason with quoted values shown as "…", numbers
    as N and the trailing (rule) dropped, so 'expert_1 "x" is not an integer' and 'expert_1 "y" is not an
    integer' count together."""
    return db.fetch_df(
        r"""
        SELECT dataset, file,
               regexp_replace(regexp_replace(regexp_replace(reason, '"[^"]*"', '"…"', 'g'),
                                             '(^|\s)[+-]?\d+(\.\d+)?', '\1N', 'g'),
                              '\s*\([^)]*\)$', '') AS reason_class,
               sum(rejected)::BIGINT AS rejected
        FROM (SELECT dataset, file, reason, count(*) AS rejected FROM rejects GROUP BY ALL)
        GROUP BY ALL ORDER BY dataset, file, rejected DESC
        """
    )


def file_counts(db: Database, run_id: int) -> list[dict]:
    """The per-file read / accepted / rejected summary stored with an ingest run."""
    row = db.fetch_all("SELECT counts FROM ingest_runs WHERE id = ?", [run_id])
    return json.loads(row[0][0])["files"] if row and row[0][0] else []


def first_rejects(db: Database, dataset: str, per_file: int = 3) -> list[tuple[str, int | None, str]]:
    """The first ``per_file`` rejects of each file of a dataset: (file, line, reason), for the CLI summary."""
    return db.fetch_all(
        """
        SELECT file, line, reason FROM rejects WHERE dataset = ?
        QUALIFY row_number() OVER (PARTITION BY file ORDER BY line NULLS LAST) <= ?
        ORDER BY file, line NULLS LAST
        """,
        [dataset, per_file],
    )


KEYED_LIMIT = 2_000  # ids per lookup through the indexes; past this many one scan of the table is cheaper


def keyed_in(image_ids: list[str]) -> tuple[str, list]:
    """``IN (?, ?, ...)`` and its parameters for a few photo ids: DuckDB answers a list of constants on an indexed
    column through the index (~0.1 ms per id at a million photos), where ``IN (SELECT unnest(?))`` scans every row
    (~700 ms). A list longer than KEYED_LIMIT is matched in one scan; an empty one matches nothing."""
    if not image_ids:
        return "IN (NULL)", []
    if len(image_ids) > KEYED_LIMIT:
        return "IN (SELECT unnest(?))", [list(image_ids)]
    return f"IN ({', '.join('?' * len(image_ids))})", list(image_ids)


def visible_keyed(image_ids: list[str]) -> tuple[str, list]:
    """WITH-clause items that define ``visible(id, sha256)``: those of ``image_ids`` visible now, and the bytes
    the cleared decision covers, with their parameters (put them first).

    The photos and their decisions are read by key (MATERIALIZED keeps the primary keys' index lookups) and
    judged by photo_visible, the macro visible_images itself is defined with (migration 0007): filtering the view
    by id would scan every photo and decision (~1-2 s at a million photos)."""
    where, params = keyed_in(image_ids)
    return (f"kept_photos AS MATERIALIZED (SELECT id, dataset, path, status, sha256 FROM images WHERE id {where}), "
            f"kept_decisions AS MATERIALIZED (SELECT image_id, status, sha256 FROM minors_decisions "
            f"WHERE image_id {where}), "
            "visible AS (SELECT p.id, p.dataset, p.path, p.sha256 FROM kept_photos p "
            "JOIN kept_decisions m ON m.image_id = p.id WHERE photo_visible(p.status, p.sha256, m.status, m.sha256))",
            [*params, *params])


def visible_photo_files(db: Database, image_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(file path, sha256 the cleared decision covers) of these photos; photos that are not visible are absent.
    Pages show a photo only through pipeline.photos, which refuses bytes with another sha256. Read by key
    (:func:`visible_keyed`)."""
    if not image_ids:
        return {}
    visible, params = visible_keyed(list(image_ids))
    rows = db.fetch_all(f"WITH {visible} SELECT v.id, d.root || '/' || v.path, v.sha256 FROM visible v "
                        "JOIN datasets d ON d.id = v.dataset", params)
    return {image_id: (path, sha256) for image_id, path, sha256 in rows}


def _rejects_filter(dataset: str | None, file: str | None, reason_contains: str | None) -> tuple[str, list]:
    return ("WHERE (? IS NULL OR dataset = ?) AND (? IS NULL OR file = ?) "
            "AND (? IS NULL OR contains(lower(reason), lower(?)) OR contains(lower(raw), lower(?)))",
            [dataset, dataset, file, file, reason_contains, reason_contains, reason_contains])


def rejects(db: Database, *, dataset: str | None = None, file: str | None = None, reason_contains: str | None = None,
            limit: int = 100, offset: int = 0) -> tuple[int, pd.DataFrame]:
    """One page of rejected lines (dataset, file, line, reason, raw text) matching the filters, and how many match
    in all. ``reason_contains`` matches the reason or the raw text, case-insensitively."""
    where, params = _rejects_filter(dataset or None, file or None, reason_contains or None)
    total = int(db.fetch_all(f"SELECT count(*) FROM rejects {where}", params)[0][0])
    page = db.fetch_df(f"SELECT run_id, dataset, file, line, reason, raw FROM rejects {where} "
                       "ORDER BY dataset, file, line NULLS LAST LIMIT ? OFFSET ?", [*params, limit, offset])
    return total, page


def reject_files(db: Database) -> pd.DataFrame:
    """(dataset, file) pairs that have rejects, for the browser's filters."""
    return db.fetch_df("SELECT DISTINCT dataset, file FROM rejects ORDER BY dataset, file")


def visible_captions_of(db: Database, image_ids: list[str]) -> dict[str, list[str]]:
    """Captions of these photos, for result cards; photos that are not visible are absent. Read by key."""
    if not image_ids:
        return {}
    visible, params = visible_keyed(list(image_ids))
    where, keys = keyed_in(list(image_ids))
    return dict(db.fetch_all(
        f"WITH {visible}, c AS MATERIALIZED (SELECT id, image_id, text FROM captions WHERE image_id {where}) "
        "SELECT c.image_id, list(c.text ORDER BY c.id) FROM c JOIN visible v ON v.id = c.image_id "
        "GROUP BY c.image_id", [*params, *keys]))


def visible_vector_count(db: Database, encoder_id: str, perceiver: str = "", labels: list[str] | None = None,
                         min_score: float = 0.0) -> int:
    """How many visible photos have a vector of ``encoder_id`` made from their visible bytes and, with ``labels``,
    show every one of them (a detection of ``perceiver`` from ``min_score`` in those bytes): all a search with no
    score cut-off can return. One join over the view (the caller caches it per version of the data)."""
    chosen = sorted(set(labels or ()))
    sql = ("SELECT v.id FROM visible_images v JOIN embeddings e ON e.image_id = v.id AND e.sha256 = v.sha256 "
           "AND e.encoder_id = ?")
    params: list = [encoder_id]
    if chosen:
        sql += (" JOIN detections d ON d.image_id = v.id AND d.sha256 = v.sha256 AND d.perceiver = ? "
                "AND d.kind = 'object' AND d.score >= ? AND d.label IN (SELECT unnest(?)) "
                "GROUP BY v.id HAVING count(DISTINCT d.label) = ?")
        params += [perceiver, min_score, chosen, len(chosen)]
    return int(db.fetch_all(f"SELECT count(*) FROM ({sql})", params)[0][0])


def minors_decision(db: Database, image_id: str) -> dict | None:
    """The minors decision on one photo (status, reasons, rule set, who and when), for moderators' eyes only:
    pages call it for a moderator and never show it to another role."""
    rows = db.fetch_all("SELECT status, reasons, rule_set_version, decided_by, moderator, decided_at "
                        "FROM minors_decisions WHERE image_id = ?", [image_id])
    if not rows:
        return None
    status, reasons, rule_set, decided_by, moderator, decided_at = rows[0]
    return {"status": status, "reasons": json.loads(reasons) if isinstance(reasons, str) else reasons,
            "rule_set_version": rule_set, "decided_by": decided_by, "moderator": moderator,
            "decided_at": decided_at}
