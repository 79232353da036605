"""SQL of reviewers' labels: verdicts on search results, the reviewer's recent flags, undo and export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from db.database import Database

VERDICTS = ("relevant", "not_relevant", "offensive")
EXPORT_COLUMNS = ("id", "user_name", "created", "query", "image_id", "encoder", "rank", "score", "verdict", "comment")


@dataclass(frozen=True)
class Flag:
    """One reviewer verdict on one result of a query."""

    image_id: str
    rank: int
    score: float | None
    verdict: str
    comment: str | None = None


def check(flag: Flag) -> None:
    if flag.verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {flag.verdict!r}")


def add(cur: duckdb.DuckDBPyConnection, *, user: str, query: str, encoder: str, flag: Flag,
        write_key: str | None = None, created: datetime | None = None) -> int:
    """Store one verdict (who, when, query, image, encoder, rank, score, verdict, comment); returns its id."""
    check(flag)
    return cur.execute(
        "INSERT INTO labels (id, user_name, created, query, image_id, encoder, rank, score, verdict, comment, "
        "write_key) VALUES (nextval('labels_id'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [user, created or datetime.now(), query, flag.image_id, encoder, flag.rank, flag.score, flag.verdict,
         (flag.comment or "").strip() or None, write_key],
    ).fetchone()[0]


def undo(cur: duckdb.DuckDBPyConnection, *, write_key: str, user: str) -> int:
    """Remove the label made by this write, if it is this user's own; returns the rows removed (0 or 1)."""
    return len(cur.execute("DELETE FROM labels WHERE write_key = ? AND user_name = ? RETURNING id",
                           [write_key, user]).fetchall())


def recent(db: Database, user: str, limit: int = 20) -> pd.DataFrame:
    """The user's newest labels, newest first, with the write key undo needs."""
    return db.fetch_df("SELECT id, created, query, image_id, encoder, rank, score, verdict, comment, write_key "
                       "FROM labels WHERE user_name = ? ORDER BY created DESC, id DESC LIMIT ?", [user, limit])


def export(db: Database) -> pd.DataFrame:
    """Every label, oldest first, for CSV and Parquet export."""
    return db.fetch_df(f"SELECT {', '.join(EXPORT_COLUMNS)} FROM labels ORDER BY id")


def count(db: Database) -> int:
    return int(db.fetch_all("SELECT count(*) FROM labels")[0][0])


def verdict_counts(db: Database, dataset: str | None = None) -> pd.DataFrame:
    """Labels per verdict and per photo dataset (labels on photos that are not visible are counted, not shown), of
    ``dataset`` only when given. A photo id starts with its dataset ("<dataset>/<name>"), so the labels are matched
    to the few datasets by prefix rather than joined to every photo; a prefix naming no dataset is
    "(unknown photo)"."""
    return db.fetch_df(
        """
        SELECT coalesce(d.id, '(unknown photo)') AS dataset, l.verdict, count(*) AS labels
        FROM labels l LEFT JOIN datasets d ON starts_with(l.image_id, d.id || '/')
        WHERE $dataset IS NULL OR starts_with(l.image_id, $dataset || '/')
        GROUP BY ALL ORDER BY ALL
        """,
        {"dataset": dataset},
    )


def verdicts_on(db: Database, user: str, query: str, image_ids: list[str]) -> pd.DataFrame:
    """The user's stored verdicts on these results of ``query``, newest first (image_id, verdict, write_key):
    what each result card shows as its current flag once queued writes and undos are laid over them."""
    if not image_ids:
        return pd.DataFrame(columns=["image_id", "verdict", "write_key"])
    return db.fetch_df("SELECT image_id, verdict, write_key FROM labels WHERE user_name = ? AND query = ? "
                       "AND image_id IN (SELECT unnest(?)) ORDER BY created DESC, id DESC",
                       [user, query, list(image_ids)])


def scored_verdicts(db: Database, encoder: str) -> pd.DataFrame:
    """(score, relevant) of every reviewer's latest relevant / not-relevant verdict per query and photo made on
    results of ``encoder`` with a score: what the relevance marker on Live search is fitted on. Offensive says
    nothing about relevance and is left out; a reviewer who changed a flag counts once, with the new verdict."""
    return db.fetch_df(
        """
        SELECT score, verdict = 'relevant' AS relevant FROM labels
        WHERE encoder = ? AND score IS NOT NULL AND isfinite(score)
        QUALIFY row_number() OVER (PARTITION BY user_name, query, image_id ORDER BY created DESC, id DESC) = 1
            AND verdict IN ('relevant', 'not_relevant')
        """,
        [encoder],
    )


def on_photo(db: Database, image_id: str, limit: int = 50) -> pd.DataFrame:
    """The newest labels any reviewer gave one photo (who, when, query, verdict, comment), for its full-size view."""
    return db.fetch_df("SELECT created, user_name, query, verdict, comment FROM labels WHERE image_id = ? "
                       "ORDER BY created DESC, id DESC LIMIT ?", [image_id, limit])


def version(db: Database) -> tuple:
    """(labels, newest id): changes when a label is added or undone, so a marker fitted on labels is refitted."""
    return tuple(db.fetch_all("SELECT count(*), max(id) FROM labels")[0])
