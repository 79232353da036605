"""Ingest runner: reader -> image scan -> validation -> tables, for one dataset, in one transaction.

Atomic: everything a run writes (rows, rejects, the run record) commits together or not at all, so a run that
fails or is killed leaves the database as it was. Idempotent: a dataset whose files (names, sizes, mtimes) and
validation rules are unchanged since its last successful run is skipped; ``force`` re-ingests it, replacing only
that dataset's rows with identical ones.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from db.database import Database
from db.ingest import FileCount, IngestTransaction, last_fingerprint, record_failed_run
from pipeline import relevance
from pipeline.images import scan_images
from pipeline.readers import Reader

# Bump when validation rules or reader behaviour change: unchanged data is then re-ingested under the new rules.
RULES_VERSION = 1
# Test hook: path of a marker file; the run writes it just before COMMIT and waits, so a test can kill it there.
PAUSE_BEFORE_COMMIT_ENV = "STUDIO_PAUSE_BEFORE_COMMIT"


class IngestError(RuntimeError):
    pass


@dataclass
class IngestResult:
    dataset: str
    layout: str
    source: Path
    run_id: int | None  # None when skipped as unchanged
    previous_run_id: int | None = None
    files: list[FileCount] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def skipped(self) -> bool:
        return self.run_id is None


def fingerprint(root: Path) -> str:
    """Names, sizes and modification times of every file under ``root``, plus the rules version."""
    digest = hashlib.sha256(f"rules={RULES_VERSION}".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            stat = path.stat()
            digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def ingest_dataset(
    db: Database, root: Path, reader: Reader, *, name: str | None = None, force: bool = False, quiet: bool = False
) -> IngestResult:
    """Ingest one dataset folder; raises :class:`IngestError` (after logging a failed run) on any failure."""
    dataset = name or root.name
    result = IngestResult(dataset, reader.LAYOUT, root, None)
    current = fingerprint(root)
    with db.cursor() as cur:
        previous = last_fingerprint(cur, dataset)
    if previous and previous[0] == current and not force:
        result.previous_run_id = previous[1]
        return result
    started_clock, started = time.perf_counter(), datetime.now()
    try:
        plan = reader.read(root)
        scans = scan_images(root, plan.image_files, quiet=quiet)
        with db.write() as cur:
            tx = IngestTransaction(cur, dataset, plan.image_pattern, plan.image_rule)
            for staged in tqdm(plan.staged, desc=f"validate {dataset}", unit="file", disable=quiet):
                tx.check_rows(staged)
            tx.add_scans(scans)
            result.files = tx.finish()
            relevance.apply(cur, dataset)
            result.tables = tx.table_counts()
            counts = {"files": [f.as_dict() for f in result.files], "tables": result.tables}
            tx.record_run(source=str(root), layout=reader.LAYOUT, fingerprint=current, started=started, counts=counts)
            result.run_id = tx.run_id
            _pause_for_tests()
    except Exception as exc:  # noqa: BLE001 - any failure becomes a logged, rolled-back run
        message = f"{type(exc).__name__}: {exc}"
        with db.write() as cur:
            run_id = record_failed_run(cur, dataset, str(root), reader.LAYOUT, started, message)
        raise IngestError(f"{dataset}: ingest run {run_id} failed and was rolled back; nothing changed. {message}") from exc
    result.seconds = time.perf_counter() - started_clock
    return result


def _pause_for_tests() -> None:
    marker = os.environ.get(PAUSE_BEFORE_COMMIT_ENV)
    if marker:
        Path(marker).write_text("paused before commit\n")
        time.sleep(600)
