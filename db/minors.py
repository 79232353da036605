"""SQL of the minors filter: decisions, moderator overrides with their audit trail, blocked queries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from db import reads
from db.database import Database

STATUSES = ("excluded", "cleared", "pending_review")


def photos_to_decide(db: Database) -> pd.DataFrame:
    """Every photo with its captions (ids and texts) and whether a moderator already decided it."""
    return db.fetch_df(
        """
        SELECT i.id AS image_id, i.status AS file_status, i.sha256,
               d.root || '/' || i.path AS path,
               coalesce(list(c.id ORDER BY c.id) FILTER (c.id IS NOT NULL), []) AS caption_ids,
               coalesce(list(c.text ORDER BY c.id) FILTER (c.id IS NOT NULL), []) AS caption_texts,
               coalesce(any_value(m.decided_by) = 'moderator', false) AS moderated,
               coalesce(any_value(m.decided_by) = 'moderator'
                        AND any_value(m.sha256) IS DISTINCT FROM i.sha256, false) AS moderated_other_bytes
        FROM images i JOIN datasets d ON d.id = i.dataset
        LEFT JOIN captions c ON c.image_id = i.id
        LEFT JOIN minors_decisions m ON m.image_id = i.id
        GROUP BY i.id, i.status, i.sha256, d.root, i.path
        ORDER BY i.id
        """
    )


def replace_rule_decisions(cur: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str | None, dict]],
                           version: str) -> None:
    """Write rule decisions (image_id, status, sha256, reasons). A moderator's decision is kept as long as the
    photo's bytes are the ones the moderator saw; ``rows`` holds rule decisions for every other photo."""
    now = datetime.now()
    table = pa.table({
        "image_id": pa.array([r[0] for r in rows], pa.string()), "status": pa.array([r[1] for r in rows], pa.string()),
        "sha256": pa.array([r[2] for r in rows], pa.string()),
        "reasons": pa.array([json.dumps(r[3]) for r in rows], pa.string()),
    })
    cur.register("decided", table)
    cur.execute("DELETE FROM minors_decisions WHERE decided_by = 'rule' OR image_id IN (SELECT image_id FROM decided)")
    cur.execute("INSERT INTO minors_decisions SELECT image_id, sha256, status, reasons::JSON, ?, 'rule', NULL, ? "
                "FROM decided", [version, now])
    cur.unregister("decided")


# The moderation queue's filter: statuses, a dataset (a photo id starts with "<dataset>/") and text in the photo id
# or the decision's reasons (the JSON text, case-insensitive); each part NULL when not given.
_QUEUE_WHERE = """
    WHERE list_contains($statuses, m.status)
      AND ($dataset IS NULL OR starts_with(m.image_id, $dataset || '/'))
      AND ($text IS NULL OR contains(lower(m.image_id), lower($text))
           OR contains(lower(CAST(m.reasons AS VARCHAR)), lower($text)))
"""


def _queue_params(statuses: Sequence[str], dataset: str | None, text: str | None) -> dict[str, object]:
    return {"statuses": list(statuses), "dataset": dataset or None, "text": text or None}


def queue_count(db: Database, statuses: Sequence[str], dataset: str | None = None, text: str | None = None) -> int:
    """How many decisions the moderation queue filter matches (see :func:`queue`)."""
    return int(db.fetch_all(f"SELECT count(*) FROM minors_decisions m {_QUEUE_WHERE}",
                            _queue_params(statuses, dataset, text))[0][0])


def queue(db: Database, statuses: Sequence[str], dataset: str | None = None, text: str | None = None,
          limit: int | None = None, offset: int = 0) -> pd.DataFrame:
    """Decisions with these statuses, of ``dataset`` (all when None), whose photo id or reasons contain ``text``
    (any when None), by status and photo id; rows ``offset`` .. ``offset + limit`` (all when ``limit`` is None).
    With the photo's dataset, path and the sha256 of the bytes decided: for the moderator page only.

    The page's photo ids are chosen first (sorting ids only, however deep the page), then their decisions and photos
    are read by key (the ART indexes of the primary keys; MATERIALIZED keeps those lookups from becoming joins over
    every row; db.reads.keyed_in)."""
    ids = [row[0] for row in db.fetch_all(
        f"SELECT m.image_id FROM minors_decisions m {_QUEUE_WHERE} "
        "ORDER BY m.status, m.image_id LIMIT $limit OFFSET $offset",
        {**_queue_params(statuses, dataset, text), "limit": limit, "offset": offset})]
    where, keys = reads.keyed_in(ids)
    return db.fetch_df(
        f"""
        WITH m AS MATERIALIZED (SELECT * FROM minors_decisions WHERE image_id {where}),
             p AS MATERIALIZED (SELECT id, dataset, path FROM images WHERE id {where})
        SELECT m.image_id, m.status, m.reasons, m.rule_set_version, m.decided_by, m.moderator, m.decided_at,
               p.dataset, d.root || '/' || p.path AS path, m.sha256
        FROM m JOIN p ON p.id = m.image_id JOIN datasets d ON d.id = p.dataset
        ORDER BY m.status, m.image_id
        """,
        [*keys, *keys],
    )


def decided_datasets(db: Database) -> list[str]:
    """Datasets with photos, whose photos the minors filter decides: the queue's dataset choices."""
    return [row[0] for row in db.fetch_all("SELECT id FROM datasets ORDER BY id")]


def status_counts(db: Database) -> dict[str, int]:
    return {s: int(n) for s, n in db.fetch_all("SELECT status, count(*) FROM minors_decisions GROUP BY 1")}


def moderate(cur: duckdb.DuckDBPyConnection, image_ids: Sequence[str], new_status: str, moderator: str,
             reason: str) -> int:
    """Set the status of these photos as a moderator decision, with one audit row each; a decided photo's queue
    lease ends (db/moderation_queue.py). Returns rows changed."""
    now = datetime.now()
    cur.register("chosen", pa.table({"image_id": pa.array(list(image_ids), pa.string())}))
    next_id = cur.execute("SELECT coalesce(max(id), 0) FROM moderation_audit").fetchone()[0]
    cur.execute(
        """
        INSERT INTO moderation_audit
        SELECT ? + row_number() OVER (ORDER BY c.image_id), c.image_id, ?, ?, m.status, ?, ?
        FROM chosen c LEFT JOIN minors_decisions m USING (image_id)
        """,
        [next_id, moderator, now, new_status, reason],
    )
    cur.execute("DELETE FROM moderation_leases WHERE image_id IN (SELECT image_id FROM chosen)")
    # The rule's evidence stays beside every later decision, one level down however often moderators decide
    # (a rule decision's reasons are the evidence; a moderator decision carries it on; 'previous' is the
    # nesting that moderator decisions made before this migration used).
    cur.execute(
        """
        INSERT OR REPLACE INTO minors_decisions
        SELECT c.image_id, i.sha256, ?,
               json_object('moderator_reason', ?, 'rule_evidence',
                           CASE WHEN m.decided_by = 'rule' THEN m.reasons
                                ELSE coalesce(m.reasons -> '$.rule_evidence', m.reasons -> '$.previous') END),
               coalesce(m.rule_set_version, 'none'), 'moderator', ?, ?
        FROM chosen c JOIN images i ON i.id = c.image_id LEFT JOIN minors_decisions m USING (image_id)
        """,
        [new_status, reason, moderator, now],
    )
    cur.unregister("chosen")
    return len(image_ids)


def existing_images(db: Database, image_ids: Sequence[str]) -> set[str]:
    return {r[0] for r in db.fetch_all("SELECT id FROM images WHERE id IN (SELECT unnest(?))", [list(image_ids)])}


def audit_trail(db: Database, image_id: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Moderator decisions, oldest first, of one photo (all when None); the newest ``limit`` only when given
    (still oldest first)."""
    return db.fetch_df(
        "SELECT * FROM (SELECT a.id, image_id, moderator, changed_at, old_status, new_status, reason, "
        "u.audit_id AS undoes FROM moderation_audit a LEFT JOIN moderation_undos u ON u.undo_id = a.id "
        "WHERE $image_id IS NULL OR image_id = $image_id ORDER BY a.id DESC LIMIT $limit) ORDER BY id",
        {"image_id": image_id, "limit": limit},
    )


def audit_count(db: Database) -> int:
    return int(db.fetch_all("SELECT count(*) FROM moderation_audit")[0][0])


def log_blocked_query(cur: duckdb.DuckDBPyConnection, query: str, matches: list[dict], user: str | None,
                      version: str) -> None:
    next_id = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM blocked_queries").fetchone()[0]
    cur.execute("INSERT INTO blocked_queries VALUES (?, ?, ?, ?, ?, ?)",
                [next_id, datetime.now(), query, json.dumps(matches), user, version])


def blocked_queries(db: Database, limit: int = 100) -> tuple[int, pd.DataFrame]:
    """How many searches the legal block refused, and the newest ``limit`` of them with the words that fired:
    for moderators, who see what people look for."""
    total = int(db.fetch_all("SELECT count(*) FROM blocked_queries")[0][0])
    newest = db.fetch_df(
        """
        SELECT logged_at, user_name, query,
               array_to_string(list_distinct(CAST(json_extract_string(matches, '$[*].text') AS VARCHAR[])), ', ')
                   AS matched_words,
               rule_set_version
        FROM blocked_queries ORDER BY id DESC LIMIT ?
        """,
        [limit],
    )
    return total, newest
