"""One process-wide Database for a long-running server (the dashboard), opened on demand and let go when idle.

Why: DuckDB lets one process hold a file read-write, and while it does no other process can open it at all. The
dashboard must not keep the pipeline out for as long as it runs, so it holds the file only while some session
(or the write queue) is using it, plus a short linger so a burst of page runs shares one open (~20 ms each).

A pipeline stage announces itself with a claim file beside the database (``<db>.pipeline``: pid, stage, start)
before it opens the file. While a live claim exists, :meth:`SharedDatabase.use` refuses new uses with
:class:`DatabaseBusy` and closes the file as soon as the last current user is done, so the stage gets in within
milliseconds; it waits for that (bounded) with ``Database(..., wait_seconds=...)``. Nobody ever waits on a lock
the other side holds while waiting itself, so there is no deadlock: the dashboard fails fast (and queues its
writes, see db/write_queue.py) and the pipeline waits a bounded time for in-flight page reads.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from db.database import Database, DatabaseError

LINGER_SECONDS = 2.0


class DatabaseMissing(DatabaseError):
    """There is no database file yet; the message names the command that builds it."""


class DatabaseBusy(DatabaseError):
    """Another process (a pipeline stage) holds the database; try again when it has finished."""


def claim_path(db_path: str | Path) -> Path:
    path = Path(db_path)
    return path.with_name(path.name + ".pipeline")


def running_claim(db_path: str | Path) -> dict | None:
    """The live pipeline claim on this database, if any. A claim left by a killed process (its pid is gone) or an
    unreadable one is ignored: it must never lock the dashboard out forever."""
    try:
        claim = json.loads(claim_path(db_path).read_text(encoding="utf-8"))
        os.kill(int(claim["pid"]), 0)
    except PermissionError:  # alive, but another user's process
        return claim
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return claim


@contextmanager
def pipeline_claim(db_path: str | Path, stage: str) -> Iterator[None]:
    """Announce a pipeline stage on this database for as long as the block runs (see the module docstring)."""
    path = claim_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "stage": stage, "started": datetime.now().isoformat()}),
                    encoding="utf-8")
    try:
        yield
    finally:
        try:
            claim = json.loads(path.read_text(encoding="utf-8"))
            if claim.get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def busy_message(claim: dict) -> str:
    return (f"The pipeline stage `{claim.get('stage')}` (pid {claim.get('pid')}, started {claim.get('started')}) is "
            "writing the studio database. Pages read again when it has finished; flags and decisions made now are "
            "queued and saved then.")


_open_instances: weakref.WeakSet[SharedDatabase] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """Close idle shared databases when the process ends (the server stops), so DuckDB checkpoints its WAL."""
    for shared in list(_open_instances):
        shared.close()


class SharedDatabase:
    """Hands out one read-write :class:`Database` to many threads; closes it when nobody has used it for a while.

    Threads share the connection, each through its own cursor (``Database.fetch_*`` take a fresh cursor per
    call; tests/test_database.py pins down that cursors of one connection may run queries at the same time)."""

    def __init__(self, path: str | Path, *, linger_seconds: float = LINGER_SECONDS) -> None:
        self.path = Path(path)
        self.linger_seconds = linger_seconds
        self._db: Database | None = None
        self._users = 0
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        _open_instances.add(self)

    @contextmanager
    def use(self) -> Iterator[Database]:
        """The open database for the duration of the block; DatabaseMissing / DatabaseBusy when it cannot be had."""
        with self._lock:
            claim = running_claim(self.path)
            if claim is not None:
                self._close_if_idle_locked()
                raise DatabaseBusy(busy_message(claim))
            if self._db is None:
                if not self.path.exists():
                    raise DatabaseMissing(f"No database at `{self.path}` yet.")
                try:
                    self._db = Database(self.path)
                except DatabaseError as exc:
                    if "lock" in str(exc).lower():
                        raise DatabaseBusy(f"Another process holds `{self.path}` ({exc}).") from exc
                    raise
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._users += 1
            db = self._db
        try:
            yield db
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    if running_claim(self.path) is not None or self.linger_seconds <= 0:
                        self._close_if_idle_locked()
                    else:
                        self._timer = threading.Timer(self.linger_seconds, self._close_if_idle)
                        self._timer.daemon = True
                        self._timer.start()

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        """Close now if idle (tests, shutdown); a use in progress keeps it open until it ends."""
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        with self._lock:
            self._close_if_idle_locked()

    def _close_if_idle_locked(self) -> None:
        if self._users == 0 and self._db is not None:
            self._db.close()
            self._db = None


class LeasedDatabase:
    """The read/write interface of :class:`Database` over a SharedDatabase, holding the file only for each call.

    For long-lived objects cached across page runs (a search index, a re-ranker): they keep this instead of a
    Database, so caching them never keeps a pipeline stage out. A call made while a stage holds the file raises
    DatabaseBusy."""

    def __init__(self, shared: SharedDatabase) -> None:
        self.shared = shared
        self.path = shared.path
        self.read_only = False

    def fetch_all(self, sql: str, params: list | dict | None = None) -> list[tuple]:
        with self.shared.use() as db:
            return db.fetch_all(sql, params)

    def fetch_df(self, sql: str, params: list | dict | None = None) -> pd.DataFrame:
        with self.shared.use() as db:
            return db.fetch_df(sql, params)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.shared.use() as db, db.cursor() as cur:
            yield cur

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.shared.use() as db, db.write() as cur:
            yield cur
