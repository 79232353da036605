"""Every write of a long-running server (the dashboard) goes through here: journalled first, applied by one thread.

Why: Streamlit serves many sessions from one process and DuckDB allows one writing process. Sessions therefore
never write SQL themselves; they submit a named operation. :meth:`WriteQueue.submit` appends it to a journal file
beside the database and fsyncs before it returns, so from then on a crash, a restart or a pipeline stage holding
the file cannot lose it. One writer thread applies pending operations in submission order, in batches, each batch
in one transaction (a batch that fails is retried one operation at a time, so one bad operation is refused on
its own). Each applied key is recorded in ``applied_writes`` in the same transaction, so replaying the journal
after a crash between commit and journal compaction applies nothing twice. While a pipeline stage holds the
file the writer waits and retries; the page tells the user the write is queued.

Roles are checked where the write is applied, not only on the page that offers it: callers give only the user's
name, each write carries the role the users file gave that user when it was submitted, and the writer applies it
only if that role and the role the users file gives the user *now* both allow the operation (:data:`OP_ROLES`). A user removed or demoted while
their write waits (behind a pipeline stage, say) is refused, and the refusal is recorded in ``applied_writes``.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from db import labels, minors, moderation_queue, users
from db import models as model_store
from db.database import Database, DatabaseError
from db.shared import SharedDatabase
from db.users import UsersError, UsersFile

MAX_BATCH = 200
RETRY_SECONDS = 0.5
KEPT_OUTCOMES = 10_000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Write:
    """One journalled operation: who asked for it, when, and its arguments (JSON-serialisable).

    ``role`` is the user's role in the users file at submit time; None when the file did not list them then, or
    for a line journalled before roles were carried: the role the users file gives at apply time alone decides
    (it is checked for every write anyway, so an old journal line never gets more than its user has now)."""

    key: str
    op: str
    user: str
    submitted: str  # ISO timestamp
    payload: dict = field(default_factory=dict)
    role: str | None = None


@dataclass(frozen=True)
class Outcome:
    state: str  # saved | refused | queued
    message: str = ""


def _label(cur: duckdb.DuckDBPyConnection, write: Write) -> None:
    p = write.payload
    labels.add(cur, user=write.user, query=p["query"], encoder=p["encoder"], flag=labels.Flag(**p["flag"]),
               write_key=write.key, created=datetime.fromisoformat(write.submitted))


def _undo_label(cur: duckdb.DuckDBPyConnection, write: Write) -> None:
    if not labels.undo(cur, write_key=write.payload["write_key"], user=write.user):
        raise ValueError("that flag is gone or is not yours to undo")


def _moderate(cur: duckdb.DuckDBPyConnection, write: Write) -> None:
    p = write.payload
    reason = users.clean_text(p["reason"], what="reason", limit=users.REASON_LIMIT)  # as the page checked it
    minors.moderate(cur, p["image_ids"], p["status"], write.user, reason)


def _claim_next(cur: duckdb.DuckDBPyConnection, write: Write) -> None:
    """The moderator queue's next photo, leased to the user (db/moderation_queue.py claim_next)."""
    skip = write.payload.get("skip", [])
    if not isinstance(skip, list):
        raise ValueError("skip must be a list of photo ids")
    moderation_queue.claim_next(cur, write.user, skip)


def _undo_moderation(cur: duckdb.DuckDBPyConnection, write: Write) -> None:
    moderation_queue.undo(cur, write.user, int(write.payload["audit_id"]))


def _blocked_query(cur: duckdb.DuckDBPyConnection, write: Write) -> None:
    p = write.payload
    minors.log_blocked_query(cur, p["query"], p["matches"], write.user, p["version"])


def _reranker(cur: duckdb.DuckDBPyConnection, write: Write) -> None:
    model_store.set_reranker(cur, write.payload["run_id"], write.user)


OPS: dict[str, Callable[[duckdb.DuckDBPyConnection, Write], None]] = {
    "label": _label, "undo_label": _undo_label, "moderate": _moderate, "blocked_query": _blocked_query,
    "reranker": _reranker, "claim_next": _claim_next, "undo_moderation": _undo_moderation,
}
# The roles that may make each operation; checked by the writer for every write (see the module docstring).
OP_ROLES: dict[str, tuple[str, ...]] = {
    "label": users.ROLES, "undo_label": users.ROLES, "blocked_query": users.ROLES, "moderate": ("moderator",),
    "reranker": ("data",), "claim_next": ("moderator",), "undo_moderation": ("moderator",),
}


_running_queues: weakref.WeakSet[WriteQueue] = weakref.WeakSet()


@atexit.register
def _stop_at_exit() -> None:
    """Let each writer finish its batch when the process ends; what is still pending stays in the journal."""
    for queue in list(_running_queues):
        queue.close()


def journal_path(db_path: str | Path) -> Path:
    path = Path(db_path)
    return path.with_name(path.name + ".journal.jsonl")


class WriteQueue:
    """Journal plus single writer thread for one database; share one per process (st.cache_resource)."""

    def __init__(self, shared: SharedDatabase, users_file: Path, *, retry_seconds: float = RETRY_SECONDS) -> None:
        """``users_file``: the dashboard's users file (db/users.py ``users_path``), which decides every role."""
        self.shared = shared
        self.users = UsersFile(users_file)
        self.journal = journal_path(shared.path)
        self.retry_seconds = retry_seconds
        # One journal, one owner: a second dashboard process on the same database would interleave and compact
        # the journal under the first one's feet. The lock goes with the process, so a crash frees it.
        self._owner = self.journal.with_name(self.journal.name + ".lock").open("w")
        try:
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._owner.close()
            raise DatabaseError(f"another dashboard process already writes to {shared.path} (it holds "
                                f"{self.journal}); run one dashboard per database") from exc
        self._cond = threading.Condition()
        self._pending: list[Write] = []
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self._stopped = False
        self.unreadable_journal_lines = self._load_journal()
        if self.unreadable_journal_lines:
            log.warning("%s: %d unreadable journal line(s) skipped (a line cut short by a crash)", self.journal,
                        self.unreadable_journal_lines)
        self._thread = threading.Thread(target=self._run, name="studio-writer", daemon=True)
        self._thread.start()
        _running_queues.add(self)

    # ------------------------------------------------------------------------------------------------ callers
    def submit(self, op: str, payload: dict, user: str) -> str:
        return self.submit_many([(op, payload)], user)[0]

    def submit_many(self, ops: Sequence[tuple[str, dict]], user: str) -> list[str]:
        """Journal these operations (one fsync) and queue them; returns their keys. Raises ValueError for an
        unknown operation or a missing user: every write records who made it."""
        if not (user or "").strip():
            raise ValueError("every write records its user: sign in first")
        unknown = sorted({op for op, _ in ops} - OPS.keys())
        if unknown:
            raise ValueError(f"unknown write operation(s): {', '.join(unknown)}")
        user = user.strip()
        now = datetime.now().isoformat()
        role = self._role_now(user)
        writes = [Write(uuid.uuid4().hex, op, user, now, payload, role) for op, payload in ops]
        lines = "".join(json.dumps(asdict(w)) + "\n" for w in writes)
        with self._cond:
            if self._stopped:
                raise DatabaseError("the write queue is closed")
            with self.journal.open("a", encoding="utf-8") as fh:
                fh.write(lines)
                fh.flush()
                os.fsync(fh.fileno())
            self._pending.extend(writes)
            self._cond.notify_all()
        return [w.key for w in writes]

    def submit_and_wait(self, ops: Sequence[tuple[str, dict]], user: str, wait_seconds: float) -> list[Outcome]:
        """Submit, then wait up to ``wait_seconds`` for the outcomes (in the order of ``ops``): what a page does
        when a user clicks. Writes still queued after the wait are safe in the journal."""
        keys = self.submit_many(ops, user)
        outcomes = self.wait(keys, wait_seconds)
        return [outcomes[key] for key in keys]

    def wait(self, keys: Sequence[str], timeout: float) -> dict[str, Outcome]:
        """The outcome of each key after at most ``timeout`` seconds; still pending ones are 'queued'."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if all(k in self._outcomes for k in keys) or time.monotonic() >= deadline:
                    return {k: self._outcomes.get(k, Outcome("queued", "saved as soon as the database is free"))
                            for k in keys}
                self._cond.wait(max(0.0, deadline - time.monotonic()))

    def pending(self, user: str | None = None, op: str | None = None) -> list[Write]:
        with self._cond:
            return [w for w in self._pending if (user is None or w.user == user) and (op is None or w.op == op)]

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is pending; False when the timeout came first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                if time.monotonic() >= deadline:
                    return False
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer after the current batch; pending writes stay in the journal for the next start."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self._owner.close()  # releases the lock

    def _role_now(self, user: str) -> str | None:
        """The user's role in the users file, journalled with their writes; None when it does not list them or
        cannot be read: the role at apply time then decides alone."""
        try:
            return self.users.role_of(user)
        except UsersError:
            return None

    # ------------------------------------------------------------------------------------------------- writer
    def _load_journal(self) -> int:
        """Queue what a previous process journalled but may not have applied; returns unreadable lines (a line
        cut short by a crash mid-append is the only expected one)."""
        if not self.journal.exists():
            return 0
        bad = 0
        for line in self.journal.read_text(encoding="utf-8").splitlines():
            try:
                write = Write(**json.loads(line))
            except (ValueError, TypeError):
                bad += 1
                continue
            if write.op in OPS:
                self._pending.append(write)
            else:
                bad += 1
        return bad

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                batch = self._pending[:MAX_BATCH]
            try:
                known = self.users.load()
            except UsersError as exc:  # nobody's role can be checked: keep the journal until the file is fixed
                log.warning("studio writer: %s; writes wait in the journal", exc)
                time.sleep(self.retry_seconds)
                continue
            try:
                with self.shared.use() as db:
                    outcomes = self._apply(db, batch, known)
            except DatabaseError:  # missing, busy (a pipeline stage) or locked: keep the journal, try again
                time.sleep(self.retry_seconds)
                continue
            except Exception:  # noqa: BLE001 - the writer must outlive any surprise; the journal keeps the writes
                log.exception("studio writer: batch failed; retrying")
                time.sleep(self.retry_seconds)
                continue
            with self._cond:
                self._pending = self._pending[len(batch):]
                self._outcomes.update(outcomes)
                while len(self._outcomes) > KEPT_OUTCOMES:
                    self._outcomes.popitem(last=False)
                self._rewrite_journal()
                self._cond.notify_all()

    def _apply(self, db: Database, batch: list[Write], known: dict[str, dict]) -> dict[str, Outcome]:
        """The batch in one transaction; if that fails, each write in its own, refusing only the bad ones.
        ``known``: the users file now (name -> entry), which every write's role is checked against."""
        try:
            _apply_transaction(db, batch, known)
            return {w.key: Outcome("saved") for w in batch}
        except Exception:  # noqa: BLE001 - whatever failed is found and reported one write at a time below
            pass
        outcomes = {}
        for write in batch:
            try:
                _apply_transaction(db, [write], known)
                outcomes[write.key] = Outcome("saved")
            except Exception as exc:  # noqa: BLE001 - a refused write must not stop the writer thread
                with db.write() as cur:
                    _record(cur, write, f"{type(exc).__name__}: {exc}")
                outcomes[write.key] = Outcome("refused", str(exc))
        return outcomes

    def _rewrite_journal(self) -> None:
        """Atomically replace the journal with what is still pending (called with the lock held)."""
        tmp = self.journal.with_name(self.journal.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(asdict(w)) + "\n" for w in self._pending)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.journal)


def _apply_transaction(db: Database, writes: list[Write], known: dict[str, dict]) -> None:
    with db.write() as cur:
        done = _already_applied(cur, [w.key for w in writes])
        for write in writes:
            if write.key not in done:
                _check_role(write, known)
                OPS[write.op](cur, write)
                _record(cur, write, None)


def _check_role(write: Write, known: dict[str, dict]) -> None:
    """PermissionError unless the user is in the users file now and both their role now and their role when
    they submitted (when recorded) may make this operation."""
    allowed = OP_ROLES[write.op]
    entry = known.get(write.user)
    if entry is None:
        raise PermissionError(f"{write.user} is not in the users file (removed?)")
    if entry["role"] not in allowed:
        raise PermissionError(f"{write.user} is {entry['role']} now; {write.op} needs the role "
                              f"{' or '.join(allowed)}")
    if write.role is not None and write.role not in allowed:
        raise PermissionError(f"{write.user} was {write.role} when this {write.op} was submitted; it needs the role "
                              f"{' or '.join(allowed)}")


def _already_applied(cur: duckdb.DuckDBPyConnection, keys: list[str]) -> set[str]:
    return {r[0] for r in cur.execute("SELECT key FROM applied_writes WHERE list_contains(?, key)", [keys]).fetchall()}


def _record(cur: duckdb.DuckDBPyConnection, write: Write, error: str | None) -> None:
    cur.execute("INSERT OR REPLACE INTO applied_writes VALUES (?, ?, ?, ?, ?, ?)",
                [write.key, write.op, write.user, datetime.fromisoformat(write.submitted), datetime.now(), error])
