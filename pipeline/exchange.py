"""Export this database as partitioned Parquet (Hive style) that DuckDB, Spark and Ray read directly, and read
such an export back (:func:`ingest_export`, what `ingest --data DIR` does with an export folder).

The export is written to a hidden temporary folder next to the target and renamed into place only when every
table and the manifest are written: a killed export leaves at most a ``.DIR.partial-*`` folder, never a DIR
that looks whole. A non-empty DIR is refused unless ``force`` (then it is replaced by the finished export).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from db import exchange
from db.database import Database
from db.shards import load_vector_files
from pipeline.minors import moderation
from pipeline.progress import bar

FORMAT_NAME = "studio-exchange"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ExportError(ValueError):
    """An export that cannot start (e.g. the target is not empty); nothing was written. A ValueError so the CLI
    reports it as a usage error (exit 2) without a new entry in its error list."""


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    counts: dict[str, int]
    encoders: dict[str, dict[str, int]]


def export(db: Database, target: Path, *, force: bool = False, quiet: bool = False) -> ExportResult:
    """Write every exchange table and manifest.json to ``target``; see the module docstring for atomicity."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise ExportError(f"{target}: not empty; choose an empty folder or pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        counts = {}
        for table in bar(list(exchange.TABLES), desc="export", unit="table", disable=quiet):
            counts[table] = exchange.export_table(db, table, work)
        encoders = exchange.encoder_dims(db)
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "counts": counts, "encoders": encoders,
                    "partitions": {t: p for t, (_, p) in exchange.TABLES.items()}}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportResult(target, counts, encoders)



# ------------------------------------------------------------------------------------------------------ import
IMPORT_MODERATOR = "exchange-import"


@dataclass
class ImportResult:
    """What ``ingest`` of an export did; ``rejects`` are (file, 1-based row or None, key, reason)."""

    folder: Path
    run_id: int
    vectors: int = 0
    vectors_already_stored: int = 0
    labels: int = 0
    relevance: int = 0
    excluded: int = 0
    cleared_not_applied: int = 0
    rejects: list[tuple[str, int | None, str | None, str]] = field(default_factory=list)


def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds an export (its manifest names the format), so ingest reads it as one."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def _manifest(folder: Path) -> dict:
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("version") != FORMAT_VERSION:
        raise ExportError(f"{folder / MANIFEST}: format version {manifest.get('version')!r}; this studio reads "
                          f"version {FORMAT_VERSION}")
    return manifest


def ingest_export(db: Database, folder: Path, *, quiet: bool = False) -> ImportResult:
    """Read an export back into this database. Vectors load through db/shards.py (validated per file,
    idempotent); labels and relevance join photos this database has; minors decisions only ever make it
    stricter: an exported 'excluded' for the same bytes excludes the photo here, as a moderator decision with an
    audit row naming the export, and 'cleared' decisions are counted, never applied. One bad file or row is one
    reject (in `rejects`, under this import's ingest run), never a refused export; nothing stored is lost."""
    folder = Path(folder).resolve()
    manifest = _manifest(folder)
    with db.write() as cur:
        result = ImportResult(folder, exchange.start_import_run(cur, str(folder), FORMAT_NAME))
    files = {table: sorted((folder / table).rglob("*.parquet")) for table in exchange.TABLES}
    with bar(total=sum(len(f) for f in files.values()), desc="import", unit="file", disable=quiet) as progress:
        for file in files["vectors"]:
            _vectors(db, folder, file, result)
            progress.update(1)
        for table, take in (("labels", _labels), ("relevance", _relevance), ("minors_decisions", _decisions)):
            for file in files[table]:
                try:
                    take(db, folder, file, result)
                except duckdb.Error as exc:
                    result.rejects.append((_shown(folder, file), None, None, f"unreadable: {exc}"))
                progress.update(1)
    counts = {"vectors": result.vectors, "labels": result.labels, "relevance": result.relevance,
              "excluded": result.excluded, "cleared_not_applied": result.cleared_not_applied,
              "rejects": len(result.rejects), "manifest_counts": manifest.get("counts")}
    with db.write() as cur:
        exchange.finish_import_run(cur, result.run_id, counts, result.rejects)
    return result


def _shown(folder: Path, file: Path) -> str:
    return str(file.relative_to(folder))


def _vectors(db: Database, folder: Path, file: Path, result: ImportResult) -> None:
    loaded = load_vector_files(db, [str(file)])
    for _, reason in loaded.refused:
        result.rejects.append((_shown(folder, file), None, None, reason))
    if not loaded.refused:
        result.rejects.extend((_shown(folder, file), row, image_id, reason)
                              for row, image_id, reason in exchange.vector_rows_without_photo(db, str(file)))
    result.vectors += loaded.inserted
    result.vectors_already_stored += loaded.already_stored


def _labels(db: Database, folder: Path, file: Path, result: ImportResult) -> None:
    with db.write() as cur:
        inserted, unknown = exchange.import_labels(cur, str(file))
    result.labels += inserted
    result.rejects.extend((_shown(folder, file), row, image_id, "no such photo in this database")
                          for row, image_id in unknown)


def _relevance(db: Database, folder: Path, file: Path, result: ImportResult) -> None:
    with db.write() as cur:
        inserted, refused = exchange.import_relevance(cur, str(file))
    result.relevance += inserted
    result.rejects.extend((_shown(folder, file), row, image_id, reason) for row, image_id, reason in refused)


def _decisions(db: Database, folder: Path, file: Path, result: ImportResult) -> None:
    stricter, cleared = exchange.exclusions_to_apply(db, str(file))
    result.cleared_not_applied += cleared
    if stricter:
        moderation.decide(db, stricter, "excluded", moderator=IMPORT_MODERATOR,
                          reason=f"excluded in the export {folder.name} ({_shown(folder, file)})")
        result.excluded += len(stricter)
