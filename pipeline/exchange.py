"""Export this database as partitioned Parquet (Hive style) that DuckDB, Spark and Ray read directly.

The export is written to a hidden temporary folder next to the target and renamed into place only when every
table and the manifest are written: a killed export leaves at most a ``.DIR.partial-*`` folder, never a DIR
that looks whole. A non-empty DIR is refused unless ``force`` (then it is replaced by the finished export).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from db import exchange
from db.database import Database
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

