"""Ingest runner: reader -> image scan -> validation -> tables, for one dataset, in one transaction.

Atomic: everything a run writes (rows, rejects, the run record) commits together or not at all, so a run that
fails or is killed leaves the database as it was. Idempotent: a dataset whose files (see :func:`fingerprint`) and
validation rules are unchanged since its last successful run is skipped; ``force`` re-ingests it, replacing only
that dataset's rows with identical ones.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from db.database import Database
from db.ingest import FileCount, IngestTransaction, last_fingerprint, record_failed_run
from pipeline import relevance
from pipeline.dataset_files import shown
from pipeline.images import PHOTO_SUFFIXES, scan_images
from pipeline.readers import Reader

# Bump when validation rules or reader behaviour change: unchanged data is then re-ingested under the new rules.
RULES_VERSION = 2
# A dataset name starts every id of the dataset (`<dataset>/<image>`): no separators, no `..`, no spaces.
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Test hook: path of a marker file; the run writes it just before COMMIT and waits, so a test can kill it there.
PAUSE_BEFORE_COMMIT_ENV = "STUDIO_PAUSE_BEFORE_COMMIT"


class IngestError(RuntimeError):
    pass


class InvalidDatasetName(ValueError):
    """A --name or dataset folder name that cannot be a dataset id; nothing was written."""


def check_dataset_name(name: str, *, origin: str = "--name") -> str:
    """``name`` when it is a valid dataset name, else :class:`InvalidDatasetName` saying what is allowed."""
    if DATASET_NAME.fullmatch(name):
        return name
    raise InvalidDatasetName(
        f"{origin} {shown(name)!r} is not a valid dataset name: use 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit" + ("" if origin == "--name" else " (or give one with --name)")
    )


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
    """What every entry under ``root`` is, plus the rules version: equal fingerprints mean unchanged data.

    Size and mtime alone are not enough: ``cp -p``, ``rsync -t`` and a restored backup put other bytes under the
    same name, size and mtime. So each photo also contributes its inode number and ctime: the kernel sets ctime
    on every write, rename, link or utime() and no tool can set it back, and a replaced file usually gets a new
    inode too. (A false alarm - chmod, chown, a copy of the folder - costs one re-ingest, never a wrong skip.)
    Photos are not hashed here: a catalogue of a million photos would re-read hundreds of GB on every run just
    to learn it is unchanged, while a stat is microseconds. Every other file (annotation text and JSON: a few
    MB to a few GB even for a million photos, which any real ingest reads in full anyway) is hashed, so its
    contents count even on file systems whose ctime is not kept (FAT, some network mounts); for photos there,
    the sha256 recorded at ingest is still checked wherever the bytes are used (pipeline/photos.py).

    The walk never follows a symlink: a link contributes its target text, so a link turned to point elsewhere
    is a change, and a link to ``/`` or a dangling one costs nothing here (the readers refuse it, per file).
    """
    digest = hashlib.sha256(f"rules={RULES_VERSION}".encode())

    def failed(exc: OSError) -> None:  # an unreadable folder is part of the state, not a reason to stop
        digest.update(f"error\0{exc.filename}\0{exc.strerror}\n".encode("utf-8", "surrogateescape"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=failed):  # followlinks=False: never leaves root
        dirnames.sort()
        links = [name for name in dirnames if os.path.islink(os.path.join(dirpath, name))]
        for name in sorted(filenames + links):
            path = Path(dirpath, name)
            entry = f"{path.relative_to(root).as_posix()}\0{_entry_state(path)}\n"
            digest.update(entry.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _entry_state(path: Path) -> str:
    """One entry's part of the fingerprint; never raises (a file may vanish or be unreadable mid-walk)."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            return f"link\0{os.readlink(path)}"
        state = f"{info.st_mode:o}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ctime_ns}\0{info.st_ino}"
        if stat.S_ISREG(info.st_mode) and path.suffix.lower() not in PHOTO_SUFFIXES:
            with open(path, "rb") as file:
                state += "\0" + hashlib.file_digest(file, "sha256").hexdigest()
        return state
    except OSError as exc:
        return f"error\0{exc.strerror}"


def ingest_dataset(
    db: Database, root: Path, reader: Reader, *, name: str | None = None, force: bool = False, quiet: bool = False
) -> IngestResult:
    """Ingest one dataset folder; raises :class:`IngestError` (after logging a failed run) on any failure, and
    :class:`InvalidDatasetName` (writing nothing) when the name cannot be a dataset id."""
    dataset = check_dataset_name(name) if name is not None else check_dataset_name(root.name, origin="folder name")
    result = IngestResult(dataset, reader.LAYOUT, root, None)
    started_clock, started = time.perf_counter(), datetime.now()
    try:
        current = fingerprint(root)
        with db.cursor() as cur:
            previous = last_fingerprint(cur, dataset)
        if previous and previous[0] == current and not force:
            result.previous_run_id = previous[1]
            return result
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
