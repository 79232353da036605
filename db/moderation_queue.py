"""SQL of the moderator queue (Minors review, "To decide"): one photo at a time, oldest decision first, each photo
leased to one moderator at a time; undo of a moderator's last decision; decisions made today.

"To decide" is a pending_review decision whose photo a moderator can look at: the image row is ``ok`` with a path,
and its bytes are the ones the decision covers. Every other pending photo waits for its file (Flickr8k's judged
photos arrive without images; a corrupt file; a file replaced since the filter decided it, which the next
``filter`` decides again): a moderator cannot judge what they cannot see, so those are listed, not queued.

Leases (migration 0009) are written only by the write queue's one writer thread (ops ``claim_next`` and
``undo_moderation``), so two claims never race: each sees the other's lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from db import minors, reads
from db.database import Database

LEASE_MINUTES = 10
SKIP_LIMIT = 1000  # skipped ids a claim carries (a session's skips; more is not a queue any more)
FIRST_CHUNK = 100  # pending decisions looked at first when finding the next photo (x4 per round, up to KEYED_LIMIT)

# A pending decision a moderator can decide now: the photo readable and its bytes the decided ones (m: the
# decision, i: its image row).
_READY = "i.status = 'ok' AND i.path IS NOT NULL AND i.sha256 IS NOT NULL AND m.sha256 = i.sha256"
_PENDING = """
    FROM (SELECT image_id, sha256, decided_at FROM minors_decisions WHERE status = 'pending_review') m
    JOIN images i ON i.id = m.image_id
"""
_ORDER = "ORDER BY m.decided_at, m.image_id"
Connection = Database | duckdb.DuckDBPyConnection  # a page's read-only view too (anything with fetch_all)


def _rows(conn: Connection, sql: str, params: list) -> list[tuple]:
    """Rows of a query on a page's database (fetch_all) or the writer's cursor."""
    if isinstance(conn, duckdb.DuckDBPyConnection):
        return conn.execute(sql, params).fetchall()
    return conn.fetch_all(sql, params)


def counts(db: Database) -> tuple[int, int]:
    """(to decide, waiting for the file), without comparing every pending decision's bytes with its photo's (a join
    reading every photo's sha256: ~0.45 s at a million photos on a busy machine, the page's slowest read).

    A photo without a usable file is found from the photo side (few rows). Bytes can differ from the decided ones
    only for a decision older than its dataset's latest ingest run, since only ingest writes `images` and it holds
    the pipeline claim, so no decision is made meanwhile (both times are this machine's local clock): only those
    decisions are compared, by key."""
    pending, unusable = db.fetch_all(
        """
        SELECT (SELECT count(*) FROM minors_decisions WHERE status = 'pending_review'),
               (SELECT count(*) FROM minors_decisions m
                JOIN (SELECT id FROM images WHERE status <> 'ok' OR path IS NULL OR sha256 IS NULL) i
                  ON i.id = m.image_id WHERE m.status = 'pending_review')
        """)[0]
    older = [r[0] for r in db.fetch_all(
        """
        SELECT m.image_id FROM minors_decisions m
        JOIN (SELECT dataset, max(started) AS started FROM ingest_runs GROUP BY dataset) r
          ON r.dataset = split_part(m.image_id, '/', 1)
        WHERE m.status = 'pending_review' AND m.decided_at <= r.started
        """)]
    changed = f"i.status = 'ok' AND i.path IS NOT NULL AND i.sha256 IS NOT NULL AND NOT ({_READY})"
    if len(older) > reads.KEYED_LIMIT:  # a re-ingest since the filter ran: compare them all
        replaced = db.fetch_all(f"SELECT count(*) {_PENDING} WHERE {changed}")[0][0]
    else:
        where, keys = reads.keyed_in(older)
        replaced = db.fetch_all(
            f"""
            WITH m AS MATERIALIZED (SELECT image_id, sha256 FROM minors_decisions WHERE image_id {where}),
                 i AS MATERIALIZED (SELECT id, status, path, sha256 FROM images WHERE id {where})
            SELECT count(*) FROM m JOIN i ON i.id = m.image_id WHERE {changed}
            """, [*keys, *keys])[0][0]
    waiting = int(unusable) + int(replaced)
    return int(pending) - waiting, waiting


def to_decide(conn: Connection, limit: int | None = None, excluded: Sequence[str] = ()) -> list[str]:
    """Photo ids to decide, in queue order (oldest decision first, then photo id), but ``excluded``: one join over
    every pending decision (see :func:`_first_ready` for the next one alone)."""
    return [r[0] for r in _rows(conn, f"SELECT m.image_id {_PENDING} WHERE {_READY} "
                                      f"AND NOT list_contains(?, m.image_id) {_ORDER} LIMIT ?",
                                [list(excluded), limit])]


def _ready_among(conn: Connection, image_ids: list[str]) -> set[str]:
    """Those of ``image_ids`` that are to decide, read by key (db.reads.keyed_in: a join would scan every photo)."""
    where, keys = reads.keyed_in(image_ids)
    return {r[0] for r in _rows(conn, f"""
        WITH m AS MATERIALIZED (SELECT image_id, status, sha256 FROM minors_decisions WHERE image_id {where}),
             i AS MATERIALIZED (SELECT id, status, path, sha256 FROM images WHERE id {where})
        SELECT m.image_id FROM m JOIN i ON i.id = m.image_id WHERE m.status = 'pending_review' AND {_READY}
        """, [*keys, *keys])}


def _first_ready(conn: Connection, excluded: set[str]) -> str | None:
    """The oldest photo to decide that is not in ``excluded``. The pending decisions are read in order a chunk at a
    time (a sort of the pending ones only) and their photos looked up by key, so the next photo costs milliseconds
    at a million photos; past a few thousand pending photos without a file, one join over all of them."""
    size, offset = FIRST_CHUNK, 0
    while size <= reads.KEYED_LIMIT:
        ids = [r[0] for r in _rows(conn, "SELECT image_id FROM minors_decisions WHERE status = 'pending_review' "
                                         "ORDER BY decided_at, image_id LIMIT ? OFFSET ?", [size, offset])]
        candidates = [i for i in ids if i not in excluded]
        ready = _ready_among(conn, candidates)
        found = next((i for i in candidates if i in ready), None)
        if found is not None or len(ids) < size:
            return found
        offset, size = offset + size, size * 4
    rest = to_decide(conn, 1, sorted(excluded))
    return rest[0] if rest else None


def waiting(db: Database, limit: int = 200) -> pd.DataFrame:
    """Pending photos a moderator cannot see yet, oldest first, each with what is missing and where the file is
    expected."""
    return db.fetch_df(
        f"""
        SELECT m.image_id, i.dataset,
               CASE WHEN i.path IS NULL THEN NULL ELSE d.root || '/' || i.path END AS expected_path,
               CASE WHEN i.path IS NULL THEN 'no file is known: the data names this photo without its file'
                    WHEN i.status = 'missing' THEN 'the file is missing (' || coalesce(i.status_reason, 'not found')
                                                   || ')'
                    WHEN i.status = 'corrupt' THEN 'the file is unreadable: ' || coalesce(i.status_reason, 'corrupt')
                    ELSE 'the file changed since the filter decided it: run `python -m pipeline filter`' END
                   AS what_is_missing,
               m.decided_at
        {_PENDING} JOIN datasets d ON d.id = i.dataset WHERE NOT ({_READY}) {_ORDER} LIMIT ?
        """,
        [limit],
    )


def my_lease(conn: Connection, moderator: str, now: datetime | None = None) -> tuple[str, datetime] | None:
    """(photo, expiry) of the lease ``moderator`` holds now, while that photo is still to decide."""
    held = _rows(conn, "SELECT image_id, expires_at FROM moderation_leases WHERE moderator = ? AND expires_at > ?",
                 [moderator, now or datetime.now()])
    ready = _ready_among(conn, [image_id for image_id, _ in held])
    return next((lease for lease in held if lease[0] in ready), None)


def lease_of(db: Database, moderator: str, now: datetime | None = None) -> str | None:
    """The photo leased to ``moderator`` now, while it still is to decide."""
    lease = my_lease(db, moderator, now)
    return lease[0] if lease else None


def leases(conn: Connection, now: datetime | None = None) -> dict[str, str]:
    """Photo id -> moderator of every lease in force."""
    return dict(_rows(conn, "SELECT image_id, moderator FROM moderation_leases WHERE expires_at > ?",
                      [now or datetime.now()]))


def has_next(db: Database, moderator: str, skip: Sequence[str], now: datetime | None = None) -> bool:
    """Whether ``moderator`` could claim a photo: one to decide, not leased to anyone else now, not skipped."""
    others = {image_id for image_id, who in leases(db, now).items() if who != moderator}
    return _first_ready(db, others | set(skip)) is not None


def claim_next(cur: duckdb.DuckDBPyConnection, moderator: str, skip: Sequence[str] = (),
               now: datetime | None = None, minutes: float = LEASE_MINUTES) -> str | None:
    """Lease the next photo to ``moderator`` and return it: their current lease (renewed) while that photo is still
    to decide and not in ``skip``, else the oldest photo to decide that nobody else holds and they did not skip.
    None when there is none (their old lease is dropped). Run by the writer thread only, in its transaction."""
    now = now or datetime.now()
    skip = [str(s) for s in skip][-SKIP_LIMIT:]  # the newest skips
    expires = now + timedelta(minutes=minutes)
    cur.execute("DELETE FROM moderation_leases WHERE expires_at <= ?", [now])
    kept = my_lease(cur, moderator, now)
    if kept is not None and kept[0] not in skip:
        cur.execute("UPDATE moderation_leases SET expires_at = ? WHERE image_id = ?", [expires, kept[0]])
        return kept[0]
    cur.execute("DELETE FROM moderation_leases WHERE moderator = ?", [moderator])
    found = _first_ready(cur, set(leases(cur, now)) | set(skip))
    if found is not None:
        cur.execute("INSERT INTO moderation_leases VALUES (?, ?, ?, ?)", [found, moderator, now, expires])
    return found


def decision(db: Database, image_id: str) -> pd.DataFrame:
    """One photo's decision with its dataset, path and decided sha256 (the columns of db.minors.queue), by key."""
    return db.fetch_df(
        """
        WITH m AS MATERIALIZED (SELECT * FROM minors_decisions WHERE image_id = ?),
             p AS MATERIALIZED (SELECT id, dataset, path FROM images WHERE id = ?)
        SELECT m.image_id, m.status, m.reasons, m.rule_set_version, m.decided_by, m.moderator, m.decided_at,
               p.dataset, d.root || '/' || p.path AS path, m.sha256
        FROM m JOIN p ON p.id = m.image_id JOIN datasets d ON d.id = p.dataset
        """,
        [image_id, image_id],
    )


# (audit id, photo, old status, new status, reason) of a moderator's newest decision not undone yet, nor an undo
# itself: what Undo reverts.
_NOT_UNDO_NOR_UNDONE = """
    id NOT IN (SELECT undo_id FROM moderation_undos) AND id NOT IN (SELECT audit_id FROM moderation_undos)
"""
_UNDOABLE = f"""
    SELECT id, image_id, old_status, new_status, reason FROM moderation_audit
    WHERE moderator = ? AND {_NOT_UNDO_NOR_UNDONE} ORDER BY id DESC LIMIT 1
"""


def last_decision(db: Database, moderator: str) -> dict | None:
    """What Undo would revert for ``moderator`` (see :func:`undo`), for the page to name it."""
    rows = db.fetch_all(_UNDOABLE, [moderator])
    if not rows:
        return None
    audit_id, image_id, old_status, new_status, reason = rows[0]
    return {"audit_id": audit_id, "image_id": image_id, "old_status": old_status, "new_status": new_status,
            "reason": reason}


def undo(cur: duckdb.DuckDBPyConnection, moderator: str, audit_id: int, now: datetime | None = None) -> str:
    """Revert ``moderator``'s decision ``audit_id`` (it must be their newest one not undone): the photo gets its
    previous status back, as a decision of theirs, with an audit row of its own that names the one it undoes; when
    that status puts it back in the queue, the photo is leased to them, so it is the one they see next. ValueError
    when it is not theirs to undo or somebody decided the photo since."""
    rows = cur.execute(_UNDOABLE, [moderator]).fetchall()
    if not rows or rows[0][0] != audit_id:
        raise ValueError("that decision is not your latest one (already undone, or not yours)")
    _, image_id, old_status, new_status, reason = rows[0]
    newest, status = cur.execute(
        "SELECT (SELECT max(id) FROM moderation_audit WHERE image_id = ?), "
        "(SELECT status FROM minors_decisions WHERE image_id = ?)", [image_id, image_id]).fetchall()[0]
    if newest != audit_id or status != new_status or old_status is None:
        raise ValueError(f"{image_id} was decided again since (now {status}): decide it again under \"All decisions\"")
    minors.moderate(cur, [image_id], old_status, moderator, f"undo: {reason}"[:500])
    cur.execute("INSERT INTO moderation_undos SELECT max(id), ? FROM moderation_audit", [audit_id])
    now = now or datetime.now()
    cur.execute("DELETE FROM moderation_leases WHERE moderator = ?", [moderator])
    if _ready_among(cur, [image_id]):
        cur.execute("INSERT INTO moderation_leases VALUES (?, ?, ?, ?)",
                    [image_id, moderator, now, now + timedelta(minutes=LEASE_MINUTES)])
    return image_id


def decided_today(db: Database, now: datetime | None = None) -> dict[str, int]:
    """Moderator -> decisions since midnight (local time, as the audit trail stores it), most first; an undo and
    the decision it reverts count for neither."""
    start = (now or datetime.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    return dict(db.fetch_all(
        f"SELECT moderator, count(*) FROM moderation_audit WHERE changed_at >= ? AND {_NOT_UNDO_NOR_UNDONE} "
        "GROUP BY moderator ORDER BY count(*) DESC, moderator", [start]))
