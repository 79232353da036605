"""The one class that owns the DuckDB file.

Reads and writes are separated (as in datasette): reads run on their own cursor and never take the write lock;
every write goes through :meth:`Database.write`, which serialises writers of this process with a lock and wraps
them in a single transaction, so a failure or a killed process leaves the database exactly as it was.
DuckDB allows one read-write process per file; a second process may only open it read-only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

MIGRATIONS_PACKAGE = "db.migrations"


class DatabaseError(RuntimeError):
    """A database problem explained in words a user can act on."""


class ReadOnlyError(DatabaseError):
    """A write was attempted through a read-only view (a dashboard page or cached object)."""


# Statement kinds a read-only view lets through: queries, and EXPLAIN of them. Everything else (INSERT, UPDATE,
# DELETE, CREATE, COPY, ATTACH, SET, PRAGMA, transactions...) is refused before it reaches DuckDB.
READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


def check_read_only(sql: str) -> None:
    """ReadOnlyError unless every statement in ``sql`` only reads."""
    try:
        kinds = {statement.type for statement in duckdb.extract_statements(sql)}
    except duckdb.Error as exc:
        raise ReadOnlyError(f"not a valid query: {exc}") from exc
    writes = kinds - READ_STATEMENTS
    if writes:
        raise ReadOnlyError(f"read-only view: {', '.join(sorted(k.name for k in writes))} refused; the dashboard "
                            "writes only through its write queue (db/write_queue.py)")


def _migration_scripts() -> list[tuple[int, str, str]]:
    """(version, file name, sql) of every migration shipped in db/migrations, in version order."""
    scripts = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        name = entry.name
        if name.endswith(".sql"):
            scripts.append((int(name.split("_", 1)[0]), name, entry.read_text(encoding="utf-8")))
    return sorted(scripts)


class Database:
    """A DuckDB database with versioned schema, read helpers and serialised transactional writes."""

    def __init__(self, path: str | Path, *, read_only: bool = False, wait_seconds: float = 0.0) -> None:
        """``wait_seconds``: how long to keep retrying while another process holds the file (the dashboard holds
        it for milliseconds at a time and lets go when a pipeline stage claims it, see db/shared.py)."""
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise DatabaseError(f"{self.path}: no database yet; run `python -m pipeline ingest` first")
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                self._conn = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.Error as exc:
                locked = "lock" in str(exc).lower()
                if locked and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                advice = " DuckDB allows one writing process per file: wait for or stop the other process." \
                    if locked else ""
                raise DatabaseError(f"{self.path}: cannot open ({exc}).{advice}") from exc
        self._write_lock = threading.Lock()
        if not read_only:
            self._migrate()

    # ----------------------------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def schema_version(self) -> int:
        rows = self.fetch_all("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(rows[0][0])

    def _migrate(self) -> None:
        """Apply every migration newer than the stored version, each in its own transaction."""
        with self._write_lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied TIMESTAMP NOT NULL)"
            )
            applied = {row[0] for row in self._conn.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, name, sql in _migration_scripts():
                if version in applied:
                    continue
                self._conn.execute("BEGIN TRANSACTION")
                try:
                    self._conn.execute(sql)
                    self._conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, current_timestamp)", [version, name]
                    )
                    self._conn.execute("COMMIT")
                except Exception:
                    self._conn.execute("ROLLBACK")
                    raise

    # --------------------------------------------------------------------------------------------------- reads
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of the shared connection; give each thread its own (see tests/test_database.py)."""
        return self._conn.cursor()

    def fetch_all(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.cursor() as cur:
            return cur.execute(sql, params or []).fetchall()

    def fetch_df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with self.cursor() as cur:
            return cur.execute(sql, params or []).df()

    # -------------------------------------------------------------------------------------------------- writes
    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One serialised transaction: commits when the block ends, rolls back on any exception."""
        if self.read_only:
            raise DatabaseError(f"{self.path} is open read-only")
        with self._write_lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                cur.close()
                raise
            cur.execute("COMMIT")
            cur.close()


class ReadCursor:
    """A cursor that runs only reading statements (see :func:`check_read_only`); registering Arrow tables as
    views of this cursor is allowed, as reads join them."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: list | dict | None = None) -> ReadCursor:
        check_read_only(sql)
        self._cursor.execute(sql, params or [])
        return self

    def sql(self, sql: str, params: list | dict | None = None) -> duckdb.DuckDBPyRelation:
        check_read_only(sql)
        return self._cursor.sql(sql, params=params)

    def register(self, name: str, data: object) -> None:
        self._cursor.register(name, data)

    def unregister(self, name: str) -> None:
        self._cursor.unregister(name)

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall()

    def df(self) -> pd.DataFrame:
        return self._cursor.df()

    def close(self) -> None:
        self._cursor.close()

    def __enter__(self) -> ReadCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ReadOnlyDatabase:
    """The reads of a :class:`Database` and nothing else: what the dashboard's pages and cached objects get.

    Why: the dashboard's one connection is read-write (DuckDB allows one configuration per file and process), so
    read-only must be enforced above it. Every statement is checked before it runs, and there is no ``write``:
    a page's writes are operations for the journalled write queue, applied by its one writer thread."""

    read_only = True

    def __init__(self, db: Database) -> None:
        self._db = db
        self.path = db.path

    def fetch_all(self, sql: str, params: list | dict | None = None) -> list[tuple[Any, ...]]:
        check_read_only(sql)
        return self._db.fetch_all(sql, params)

    def fetch_df(self, sql: str, params: list | dict | None = None) -> pd.DataFrame:
        check_read_only(sql)
        return self._db.fetch_df(sql, params)

    def cursor(self) -> ReadCursor:
        return ReadCursor(self._db.cursor())

    def write(self) -> None:
        raise ReadOnlyError(f"{self.path}: this view is read-only; submit the write to the write queue")
