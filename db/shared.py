"""One process-wide Database for a long-running server (the dashboard), opened on demand and let go when idle.

Why: DuckDB lets one process hold a file read-write, and while it does no other process can open it at all. The
dashboard must not keep the pipeline out for as long as it runs, so it holds the file only while some session
(or the write queue) is using it, plus a short linger so a burst of page runs shares one open (~20 ms each).

A pipeline stage announces itself before it opens the file: it holds an exclusive OS lock on
``<db>.pipeline.lock`` (the kernel releases it when the process ends, however it ends) and writes the claim file
``<db>.pipeline`` (pid, stage, start) beside the database. While the lock is held, :meth:`SharedDatabase.use` refuses new uses with
:class:`DatabaseBusy` and closes the file as soon as the last current user is done, so the stage gets in within
milliseconds; it waits for that (bounded) with ``Database(..., wait_seconds=...)``. Nobody ever waits on a lock
the other side holds while waiting itself, so there is no deadlock: the dashboard fails fast (and queues its
writes, see db/write_queue.py) and the pipeline waits a bounded time for in-flight page reads.

A long run holding the claim for minutes (the demo's background stages, pipeline/demo_runner.py) publishes a
copy of the database between its stages (:func:`publish_snapshot`); page reads go to that copy, read-only, until
the claim ends, so pages answer with what the finished stages stored. Writes never go there.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pandas as pd

from db.database import Database, DatabaseError, ReadCursor, ReadOnlyDatabase

LINGER_SECONDS = 2.0
SNAPSHOT_SUFFIX = ".snapshot"


class DatabaseMissing(DatabaseError):
    """There is no database file yet; the message names the command that builds it."""


class DatabaseBusy(DatabaseError):
    """Another process (a pipeline stage) holds the database; try again when it has finished."""


def claim_path(db_path: str | Path) -> Path:
    path = Path(db_path)
    return path.with_name(path.name + ".pipeline")


def claim_lock_path(db_path: str | Path) -> Path:
    path = Path(db_path)
    return path.with_name(path.name + ".pipeline.lock")


class ClaimUnavailable(DatabaseError):
    """Another pipeline stage holds the claim on this database, or the claim cannot be written."""


def running_claim(db_path: str | Path) -> dict | None:
    """The live pipeline claim on this database, if any.

    Liveness is the OS lock on ``<db>.pipeline.lock``, never a process id: the kernel drops the lock when the
    stage's process ends, however it ends, so a stale claim (a killed stage, a pid since reused by another
    process) never locks the dashboard out. The claim file only says which stage it is."""
    try:
        fd = os.open(claim_lock_path(db_path), os.O_RDONLY)
    except OSError:
        return None  # no stage has ever run here (or the lock file is unreadable: nothing to wait for)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _claim_details(db_path)
    finally:
        os.close(fd)  # also releases the shared lock taken when no stage runs
    return None


def _claim_details(db_path: str | Path) -> dict:
    try:
        claim = json.loads(claim_path(db_path).read_text(encoding="utf-8"))
        if isinstance(claim, dict):
            return claim
    except (OSError, ValueError):
        pass
    return {"stage": "(starting)", "pid": None, "started": None}  # locked, details not written yet


@contextmanager
def pipeline_claim(db_path: str | Path, stage: str, *, wait_seconds: float = 0.0,
                   optional: bool = False) -> Iterator[bool]:
    """Announce a pipeline stage on this database for as long as the block runs (see the module docstring).

    Takes an exclusive OS lock (one stage at a time; a second one waits up to ``wait_seconds``, then gets a
    ClaimUnavailable naming the running stage) and writes the claim file atomically (a temporary file renamed
    over it). Yields True when the claim is held. With ``optional`` (stages that only read), storage where the
    claim cannot be written (read-only) yields False instead of failing: the stage then opens the file
    read-only and the dashboard is not told to let go."""
    lock = claim_lock_path(db_path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if optional:
            yield False
            return
        raise ClaimUnavailable(f"{lock}: cannot write the pipeline claim ({exc.strerror or exc}); the database "
                               "folder must be writable for this stage") from exc
    try:
        _lock_within(fd, db_path, wait_seconds)
        try:
            _write_claim(db_path, stage)
        except OSError as exc:  # a full disk, say
            if not optional:
                raise ClaimUnavailable(f"{claim_path(db_path)}: cannot write the pipeline claim "
                                       f"({exc.strerror or exc})") from exc
            yield False
            return
        try:
            yield True
        finally:
            try:
                claim_path(db_path).unlink()
            except OSError:
                pass
    finally:
        os.close(fd)  # releases the lock


def _lock_within(fd: int, db_path: str | Path, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                claim = _claim_details(db_path)
                raise ClaimUnavailable(
                    f"{db_path}: the pipeline stage `{claim.get('stage')}` (pid {claim.get('pid')}, started "
                    f"{claim.get('started')}) is running on this database; wait for it to finish") from None
            time.sleep(0.1)


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file renamed over it): a reader in another
    process never sees half a file (the claim, the demo runner's status)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _write_claim(db_path: str | Path, stage: str) -> None:
    write_whole(claim_path(db_path),
                json.dumps({"pid": os.getpid(), "stage": stage, "started": datetime.now().isoformat()}))


def update_claim(db_path: str | Path, stage: str) -> None:
    """Rename the stage in the claim this process holds (the demo runner moving to its next stage)."""
    _write_claim(db_path, stage)


def snapshot_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}{SNAPSHOT_SUFFIX}")


def publish_snapshot(db_path: str | Path) -> None:
    """Copy the closed database to ``<db>.snapshot`` for pages to read while a long run holds the claim.

    Called by the claim holder between stages, when no connection has the file open (DuckDB checkpoints on
    close, so the file alone is the whole database). The copy is renamed into place: a page that opened the
    previous snapshot keeps reading that one, a new open gets the new one."""
    target = snapshot_path(db_path)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(db_path, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_snapshot(db_path: str | Path) -> None:
    snapshot_path(db_path).unlink(missing_ok=True)


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
    def use(self, *, snapshot_ok: bool = False) -> Iterator[Database]:
        """The open database for the duration of the block; DatabaseMissing / DatabaseBusy when it cannot be had.

        With ``snapshot_ok`` (reads only), while a stage holds the claim the block gets the snapshot it published
        (:func:`publish_snapshot`), read-only, instead of DatabaseBusy."""
        with self._lock:
            claim = running_claim(self.path)
            if claim is None:
                db = self._acquire_locked()
            else:
                self._close_if_idle_locked()
                snapshot = snapshot_path(self.path)
                if not (snapshot_ok and snapshot.exists()):
                    raise DatabaseBusy(busy_message(claim))
        if claim is not None:
            with self._open_snapshot(snapshot, claim) as snapshot_db:
                yield snapshot_db
            return
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

    def _acquire_locked(self) -> Database:
        """The shared connection, opened if need be, with one more user (the caller holds ``_lock``)."""
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
        return self._db

    @staticmethod
    @contextmanager
    def _open_snapshot(snapshot: Path, claim: dict) -> Iterator[Database]:
        """A read-only connection of its own per block: opening the small file takes milliseconds, and a run
        replacing it never disturbs a block that is reading the previous one."""
        try:
            db = Database(snapshot, read_only=True)
        except DatabaseError as exc:  # replaced or removed between the check and the open
            raise DatabaseBusy(busy_message(claim)) from exc
        try:
            yield db
        finally:
            db.close()

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
    """The reads of :class:`Database` over a SharedDatabase, holding the file only for each call; read-only.
    While a long run holds the claim, reads go to the snapshot it published (see :meth:`SharedDatabase.use`).

    For long-lived objects cached across page runs (a search index, a re-ranker): they keep this instead of a
    Database, so caching them never keeps a pipeline stage out. A call made while a stage holds the file raises
    DatabaseBusy. There is no ``write``: every write of the dashboard is an operation for its write queue."""

    read_only = True

    def __init__(self, shared: SharedDatabase) -> None:
        self.shared = shared
        self.path = shared.path

    def fetch_all(self, sql: str, params: list | dict | None = None) -> list[tuple]:
        with self.shared.use(snapshot_ok=True) as db:
            return ReadOnlyDatabase(db).fetch_all(sql, params)

    def fetch_df(self, sql: str, params: list | dict | None = None) -> pd.DataFrame:
        with self.shared.use(snapshot_ok=True) as db:
            return ReadOnlyDatabase(db).fetch_df(sql, params)

    @contextmanager
    def cursor(self) -> Iterator[ReadCursor]:
        with self.shared.use(snapshot_ok=True) as db, ReadOnlyDatabase(db).cursor() as cur:
            yield cur
