"""The Database class: migrations, transactions, threads and the one-writer-process rule."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from db.database import Database, DatabaseError, _migration_scripts

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with Database(path) as db:
        version = db.schema_version()
    with Database(path) as db:
        assert db.schema_version() == version == max(v for v, _, _ in _migration_scripts())
        assert db.fetch_all("SELECT count(*) FROM schema_migrations")[0][0] == len(_migration_scripts())


def test_write_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        with db.write() as cur:
            cur.execute("INSERT INTO settings VALUES ('k', '1')")
            raise RuntimeError("boom")
    assert db.fetch_all("SELECT count(*) FROM settings") == [(0,)]


def test_read_only_refuses_writes_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no database yet"):
        Database(tmp_path / "absent.duckdb", read_only=True)
    Database(tmp_path / "x.duckdb").close()
    with Database(tmp_path / "x.duckdb", read_only=True) as db:
        with pytest.raises(DatabaseError, match="read-only"):
            with db.write():
                pass


def test_threads_with_own_cursors_read_while_writers_are_serialised(db: Database) -> None:
    """Pins down DuckDB's behaviour: one connection, a cursor per thread, reads concurrent with writes."""
    writers, per_writer, errors = 8, 25, []

    def write(worker: int) -> None:
        try:
            for i in range(per_writer):
                with db.write() as cur:
                    cur.execute("INSERT INTO settings VALUES (?, ?)", [f"w{worker}-{i}", str(i)])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(100):
                count = db.fetch_all("SELECT count(*) FROM settings")[0][0]
                assert 0 <= count <= writers * per_writer
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    threads += [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.fetch_all("SELECT count(*) FROM settings") == [(writers * per_writer,)]


def test_second_writing_process_gets_a_clear_error(db: Database) -> None:
    code = ("import sys; sys.path.insert(0, '.');"
            "from db.database import Database, DatabaseError\n"
            f"try:\n    Database({str(db.path)!r})\nexcept DatabaseError as e:\n    print(e); sys.exit(3)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "one writing process" in proc.stdout


def test_cursors_of_one_connection_run_queries_at_the_same_time(db: Database) -> None:
    """Settles what DuckDB's docs leave open: cursors of one connection, one per thread, may execute queries at
    the same moment (their run intervals overlap) and each gets its own correct answer. The dashboard's
    SharedDatabase relies on this; it never shares one cursor between threads."""
    threads, intervals, answers, errors = 4, [], {}, []
    barrier = threading.Barrier(threads)

    def run(worker: int) -> None:
        try:
            with db.cursor() as cur:
                barrier.wait()
                started = time.perf_counter()
                total = cur.execute("SELECT sum(i * ?) FROM range(30000000) t(i)", [worker + 1]).fetchone()[0]
                intervals.append((started, time.perf_counter()))
                answers[worker] = total
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == []
    n = 30_000_000
    assert answers == {w: (w + 1) * n * (n - 1) // 2 for w in range(threads)}
    intervals.sort()
    assert any(later[0] < earlier[1] for earlier, later in zip(intervals, intervals[1:])), intervals
