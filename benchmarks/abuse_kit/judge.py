"""How an attempt is judged: the CLI's answer (exit code, error line, no traceback) and the database it leaves.

The database is read with DuckDB directly, never through the project's code, so the same judge measures the old
and the new code. A file left with a WAL by a killed process is read from a copy (DuckDB replays the WAL there).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from abuse_kit.runner import Result

TRACEBACK = "Traceback (most recent call last)"
DATA_TABLES = ("captions", "expert_ratings", "crowd_ratings", "query_pairs", "objects")


class Broke(Exception):
    """The attempt found a hole; the message is the one-line reason."""


@dataclass
class Run:
    id: int
    status: str
    counts: dict
    message: str | None

    def file(self, name: str) -> dict:
        for entry in self.counts.get("files", []):
            if entry["file"] == name:
                return entry
        raise Broke(f"ingest counts have no entry for {name!r} (files: "
                    f"{', '.join(e['file'] for e in self.counts.get('files', []))})")


def first_line(text: str, prefix: str = "") -> str:
    for line in text.splitlines():
        if line.strip() and line.strip().startswith(prefix):
            return line.strip()[:200]
    return ""


def error_line(res: Result) -> str:
    """The CLI's `error: ...` line (argparse's `prog: error: ...` counts too)."""
    for line in res.err.splitlines():
        if line.startswith("error:") or ": error:" in line:
            return line.strip()[:300]
    return ""


def no_crash(res: Result) -> None:
    """Never a hang, a signal, a traceback or the CLI's catch-all for exceptions it did not expect."""
    severe(res)
    if "error: unexpected" in res.err:
        raise Broke("unanticipated exception: " + first_line(res.err, "error: unexpected"))


def severe(res: Result) -> None:
    """Never a hang, a signal or a traceback (checked before the data, so a reason says if data survived)."""
    if res.timed_out:
        raise Broke(f"hung: no answer after {res.seconds:.0f}s (killed)")
    if res.signal is not None:
        raise Broke(f"died from signal {res.signal}")
    if TRACEBACK in res.err or TRACEBACK in res.out:
        raise Broke("traceback: " + [ln for ln in res.err.splitlines() if ln.strip()][-1][:200])


def ok(res: Result, codes: tuple[int, ...] = (0,)) -> None:
    no_crash(res)
    if res.rc not in codes:
        raise Broke(f"exit {res.rc}: {error_line(res) or first_line(res.err) or first_line(res.out)}")


def refused(res: Result, *mentions: str) -> str:
    """Exit 1 or 2 with an error line; when ``mentions`` are given the line must name one of them."""
    no_crash(res)
    if res.rc == 0:
        raise Broke("accepted (exit 0): " + (first_line(res.out) or "no output")[:150])
    if res.rc not in (1, 2):
        raise Broke(f"exit {res.rc}")
    line = error_line(res)
    if not line:
        raise Broke(f"exit {res.rc} without an error line: {first_line(res.err) or first_line(res.out)}")
    if mentions and not any(m.lower() in line.lower() for m in mentions):
        raise Broke(f"error does not name {' / '.join(mentions)}: {line}")
    return line


# ------------------------------------------------------------------------------------------------- database
_OPEN: dict[Path, tuple[duckdb.DuckDBPyConnection, tempfile.TemporaryDirectory | None]] = {}


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Rows of ``sql`` on the database file; the file is never written (a WAL is replayed on a copy).

    The connection stays open until :func:`release` (opening one costs ~0.1 s); the runner releases every
    connection before it starts a CLI run, since an open one would keep the stage out of the file."""
    db = Path(db)
    if db not in _OPEN:
        if not db.exists():
            raise Broke(f"no database file at {db}")
        wal = db.with_name(db.name + ".wal")
        holder, target = None, db
        if wal.exists():
            holder = tempfile.TemporaryDirectory()
            target = Path(holder.name) / db.name
            shutil.copy2(db, target)
            shutil.copy2(wal, Path(holder.name) / wal.name)
        try:
            conn = duckdb.connect(str(target), read_only=holder is None)
        except duckdb.Error as exc:
            if holder:
                holder.cleanup()
            raise Broke(f"database does not open: {str(exc).splitlines()[0][:150]}") from exc
        _OPEN[db] = (conn, holder)
    return _OPEN[db][0].execute(sql, params or []).fetchall()


def release() -> None:
    """Close every connection :func:`query` opened."""
    for conn, holder in _OPEN.values():
        conn.close()
        if holder:
            holder.cleanup()
    _OPEN.clear()


def tables(db: Path) -> list[str]:
    return [r[0] for r in query(db, "SELECT table_name FROM information_schema.tables "
                                    "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY 1")]


def table_counts(db: Path, skip: tuple[str, ...] = ("ingest_runs", "schema_migrations")) -> dict[str, int]:
    names = [t for t in tables(db) if t not in skip]
    if not names:
        return {}
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM \"{t}\"" for t in names)
    return dict(query(db, sql))


def dataset_counts(db: Path, dataset: str) -> dict[str, int]:
    """Rows of one dataset per data table, and its images per status."""
    counts = {t: query(db, f"SELECT count(*) FROM {t} WHERE dataset = ?", [dataset])[0][0] for t in DATA_TABLES}
    for status, n in query(db, "SELECT status, count(*) FROM images WHERE dataset = ? GROUP BY 1", [dataset]):
        counts[f"images_{status}"] = n
    return counts


def last_run(db: Path, dataset: str) -> Run | None:
    rows = query(db, "SELECT id, status, counts, message FROM ingest_runs WHERE dataset = ? ORDER BY id DESC LIMIT 1",
                 [dataset])
    if not rows:
        return None
    run_id, status, counts, message = rows[0]
    return Run(run_id, status, json.loads(counts) if counts else {}, message)


def rejects(db: Path, dataset: str, file: str | None = None) -> list[tuple[str, int | None, str | None, str]]:
    rows = query(db, "SELECT file, line, raw, reason FROM rejects WHERE dataset = ? ORDER BY file, line",
                 [dataset])
    return [r for r in rows if file is None or r[0] == file]


def ingested(res: Result, db: Path, dataset: str) -> Run:
    """The ingest finished without a crash and left an ``ok`` run whose every file is accounted for."""
    no_crash(res)
    run = last_run(db, dataset)
    if run is None:
        raise Broke(f"no ingest run recorded for {dataset} (exit {res.rc}: {error_line(res)})")
    if run.status != "ok":
        raise Broke(f"the whole dataset was refused: {(run.message or '')[:160]}")
    if res.rc != 0:
        raise Broke(f"exit {res.rc}: {error_line(res)}")
    accounted(db, dataset, run)
    return run


def accounted(db: Path, dataset: str, run: Run) -> None:
    """read == accepted + rejected for every file, and the rejects table holds exactly the rejected lines."""
    stored = {}
    for file, n in query(db, "SELECT file, count(*) FROM rejects WHERE dataset = ? AND run_id = ? GROUP BY 1",
                         [dataset, run.id]):
        stored[file] = n
    for entry in run.counts.get("files", []):
        if entry["read"] != entry["accepted"] + entry["rejected"]:
            raise Broke(f"{entry['file']}: read {entry['read']} != accepted {entry['accepted']} + rejected "
                        f"{entry['rejected']}")
        folder = entry["file"].endswith("/")
        held = sum(n for f, n in stored.items() if f.startswith(entry["file"])) if folder else \
            stored.get(entry["file"], 0)
        if not folder and held != entry["rejected"]:
            raise Broke(f"{entry['file']}: {entry['rejected']} rejected but {held} rows in rejects")


def consistent(db: Path) -> None:
    """Every dataset's rows belong to exactly one ok run: its datasets row, its rejects and its counts agree."""
    for (dataset,) in query(db, "SELECT DISTINCT dataset FROM images UNION SELECT id FROM datasets"):
        runs = query(db, "SELECT id FROM ingest_runs WHERE dataset = ? AND status = 'ok' ORDER BY id DESC LIMIT 1",
                     [dataset])
        pointed = query(db, "SELECT last_run_id FROM datasets WHERE id = ?", [dataset])
        if not runs or not pointed or pointed[0][0] != runs[0][0]:
            raise Broke(f"{dataset}: rows without a matching ok ingest run (datasets row {pointed}, runs {runs})")
        run = last_run_ok(db, dataset)
        stray = query(db, "SELECT DISTINCT run_id FROM rejects WHERE dataset = ? AND run_id <> ?", [dataset, run.id])
        if stray:
            raise Broke(f"{dataset}: rejects from runs {stray} beside the current run {run.id}")
        now = dataset_counts(db, dataset)
        for table in DATA_TABLES:
            recorded = run.counts.get("tables", {}).get(table)
            if recorded is not None and recorded != now[table]:
                raise Broke(f"{dataset}.{table}: {now[table]} rows, the run recorded {recorded}: half-written")


def last_run_ok(db: Path, dataset: str) -> Run:
    run_id, counts = query(db, "SELECT id, counts FROM ingest_runs WHERE dataset = ? AND status = 'ok' "
                               "ORDER BY id DESC LIMIT 1", [dataset])[0]
    return Run(run_id, "ok", json.loads(counts) if counts else {}, None)
