"""Read-only queries shared by the CLI and the dashboard."""

from __future__ import annotations

import json

import pandas as pd

from db.database import Database


def datasets_overview(db: Database) -> pd.DataFrame:
    """One row per dataset with its image, caption and rating counts."""
    return db.fetch_df(
        """
        SELECT d.id AS dataset, d.layout, d.root, d.last_run_id,
               (SELECT count(*) FROM images i WHERE i.dataset = d.id) AS images,
               (SELECT count(*) FROM images i WHERE i.dataset = d.id AND i.status = 'ok') AS images_ok,
               (SELECT count(*) FROM images i WHERE i.dataset = d.id AND i.status = 'missing') AS images_missing,
               (SELECT count(*) FROM images i WHERE i.dataset = d.id AND i.status = 'corrupt') AS images_corrupt,
               (SELECT count(*) FROM captions c WHERE c.dataset = d.id) AS captions,
               (SELECT count(*) FROM expert_ratings e WHERE e.dataset = d.id) AS expert_ratings,
               (SELECT count(*) FROM crowd_ratings c WHERE c.dataset = d.id) AS crowd_ratings,
               (SELECT count(*) FROM relevance r WHERE r.dataset = d.id) AS relevance_pairs,
               (SELECT count(*) FROM objects o WHERE o.dataset = d.id) AS object_labels,
               (SELECT count(*) FROM rejects r WHERE r.dataset = d.id) AS rejects
        FROM datasets d ORDER BY d.id
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
               count(*) AS rejected
        FROM rejects GROUP BY ALL ORDER BY dataset, file, rejected DESC
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


def visible_photo_files(db: Database, image_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(file path, sha256 the cleared decision covers) of these photos; photos that are not visible are absent.
    Pages show a photo only through pipeline.photos, which refuses bytes with another sha256."""
    rows = db.fetch_all(
        "SELECT v.id, d.root || '/' || v.path, v.sha256 FROM visible_images v JOIN datasets d ON d.id = v.dataset "
        "WHERE v.id IN (SELECT unnest(?))",
        [list(image_ids)],
    )
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
    """Captions of these photos, for result cards; photos that are not visible are absent."""
    return dict(db.fetch_all(
        "SELECT c.image_id, list(c.text ORDER BY c.id) FROM captions c JOIN visible_images v ON v.id = c.image_id "
        "WHERE list_contains(?, c.image_id) GROUP BY c.image_id", [list(image_ids)]))
