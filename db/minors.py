"""SQL of the minors filter: decisions, moderator overrides with their audit trail, blocked queries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

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


def decisions(db: Database, statuses: Sequence[str] = STATUSES) -> pd.DataFrame:
    """Decisions with the photo's dataset, path and the sha256 of the bytes decided: for the moderator page only."""
    return db.fetch_df(
        """
        SELECT m.image_id, m.status, m.reasons, m.rule_set_version, m.decided_by, m.moderator, m.decided_at,
               i.dataset, d.root || '/' || i.path AS path, m.sha256
        FROM minors_decisions m JOIN images i ON i.id = m.image_id JOIN datasets d ON d.id = i.dataset
        WHERE list_contains(?, m.status) ORDER BY m.status, m.image_id
        """,
        [list(statuses)],
    )


def status_counts(db: Database) -> dict[str, int]:
    return {s: int(n) for s, n in db.fetch_all("SELECT status, count(*) FROM minors_decisions GROUP BY 1")}


def moderate(cur: duckdb.DuckDBPyConnection, image_ids: Sequence[str], new_status: str, moderator: str,
             reason: str) -> int:
    """Set the status of these photos as a moderator decision, with one audit row each. Returns rows changed."""
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


def audit_trail(db: Database, image_id: str | None = None) -> pd.DataFrame:
    return db.fetch_df(
        "SELECT id, image_id, moderator, changed_at, old_status, new_status, reason FROM moderation_audit "
        "WHERE ? IS NULL OR image_id = ? ORDER BY id",
        [image_id, image_id],
    )


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
