"""SQL of one dataset ingest, run inside a single write transaction opened by :meth:`Database.write`.

The ingest runner (pipeline/ingest.py) decides *what* to read; this class owns *how* it lands in the tables:
staging, validation (db/validation.py), the replace-the-dataset writes, rejects and the run record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from db import validation

if TYPE_CHECKING:  # imported for annotations only: db/ must not depend on pipeline/ at run time
    from pipeline.images import ImageScan
    from pipeline.lines import StagedRows

SCAN_SCHEMA = (
    ("name", pa.string()), ("path", pa.string()), ("split", pa.string()), ("status", pa.string()),
    ("reason", pa.string()), ("width", pa.int32()), ("height", pa.int32()), ("sha256", pa.string()),
)
DATASET_TABLES = ("images", "captions", "query_pairs", "expert_ratings", "crowd_ratings", "relevance", "objects")


@dataclass(frozen=True)
class FileCount:
    file: str
    read: int
    accepted: int
    rejected: int
    header: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "read": self.read, "accepted": self.accepted, "rejected": self.rejected}


def next_run_id(cur: duckdb.DuckDBPyConnection) -> int:
    return int(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM ingest_runs").fetchone()[0])


def record_failed_run(
    cur: duckdb.DuckDBPyConnection, dataset: str, source: str, layout: str, started: datetime, message: str
) -> int:
    """Log a run that rolled back; nothing else in the database changes."""
    run_id = next_run_id(cur)
    cur.execute(
        "INSERT INTO ingest_runs VALUES (?, ?, ?, ?, ?, current_timestamp, NULL, 'failed', ?)",
        [run_id, dataset, source, layout, started, message],
    )
    return run_id


def last_fingerprint(cur: duckdb.DuckDBPyConnection, dataset: str) -> tuple[str, int] | None:
    row = cur.execute("SELECT fingerprint, last_run_id FROM datasets WHERE id = ?", [dataset]).fetchone()
    return (row[0], int(row[1])) if row else None


class IngestTransaction:
    """Replaces one dataset's rows from staged sources; every statement runs on the caller's transaction."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, dataset: str, image_pattern: str, image_rule: str) -> None:
        self.cur = cur
        self.dataset = dataset
        self.run_id = next_run_id(cur)
        self._pattern = {"image_pattern": image_pattern, "image_rule": image_rule}
        self._checked: list[validation.CheckedFile] = []
        for table in DATASET_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE dataset = ?", [dataset])
        cur.execute("DELETE FROM rejects WHERE dataset = ?", [dataset])
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE image_facts "
            "(name VARCHAR, path VARCHAR, split VARCHAR, width INTEGER, height INTEGER)"
        )
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE image_scans (name VARCHAR, path VARCHAR, split VARCHAR, status VARCHAR, "
            "reason VARCHAR, width INTEGER, height INTEGER, sha256 VARCHAR)"
        )

    # ------------------------------------------------------------------------------------------------ staging
    def check_rows(self, staged: StagedRows) -> None:
        """Stage a source's rows and run the row checks on them."""
        index = len(self._checked)
        stage, table = f"stage_{index}", f"checked_{index}"
        self.cur.register(stage, staged.rows)
        validation.run(
            self.cur,
            validation.row_check_sql(staged.spec, stage, table),
            {"separator": staged.separator, **self._pattern},
        )
        self.cur.unregister(stage)  # on failure the transaction is aborted; closing the cursor drops the view
        params = {"dataset": self.dataset, "source": staged.file, **staged.params}
        self._checked.append(
            validation.CheckedFile(staged.spec, staged.file, table, params, staged.python_rejects, staged.header)
        )

    def add_scans(self, scans: list[ImageScan]) -> None:
        if not scans:
            return
        arrow = pa.table({name: pa.array([getattr(s, name) for s in scans], kind) for name, kind in SCAN_SCHEMA})
        self.cur.register("scans_arrow", arrow)
        self.cur.execute("INSERT INTO image_scans SELECT * FROM scans_arrow")
        self.cur.unregister("scans_arrow")

    # ------------------------------------------------------------------------------------------------ writing
    def finish(self) -> list[FileCount]:
        """Reference checks, accepted rows into their tables, rejects, and the images table; per-file counts."""
        known = ["SELECT name FROM image_scans WHERE status <> 'skipped'"]
        known += [sql for c in self._checked if (sql := validation.defined_images_sql(c.spec, c.table))]
        self.cur.execute(f"CREATE OR REPLACE TEMP TABLE known_images AS SELECT DISTINCT name FROM ({' UNION '.join(known)})")
        for checked in self._checked:
            validation.run(self.cur, validation.reference_check_sql(checked.spec, checked.table), {})
        for checked in self._checked:
            insert = validation.TARGET_INSERTS[checked.spec.target].format(table=checked.table)
            params = {k: checked.params.get(k) for k in validation.TARGET_PARAMS[checked.spec.target]}
            validation.run(self.cur, insert, params)
            self.cur.execute(
                f"INSERT INTO rejects SELECT ?, ?, ?, line_no, raw, reason FROM {checked.table} WHERE reason IS NOT NULL",
                [self.run_id, self.dataset, checked.file],
            )
            if checked.python_rejects:
                self.cur.executemany(
                    "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
                    [[self.run_id, self.dataset, checked.file, *r] for r in checked.python_rejects],
                )
        self._assemble_images()
        return [self._count(c) for c in self._checked] + self._image_folder_counts()

    def _count(self, checked: validation.CheckedFile) -> FileCount:
        accepted, rejected = self.cur.execute(
            f"SELECT count(*) FILTER (reason IS NULL), count(*) FILTER (reason IS NOT NULL) FROM {checked.table}"
        ).fetchone()
        rejected += len(checked.python_rejects)
        return FileCount(checked.file, accepted + rejected, accepted, rejected, checked.header)

    def _assemble_images(self) -> None:
        """One images row per known image: scanned file if any, else 'missing'; duplicate scans are rejected.

        Scan statuses (pipeline/images.py): ``ok`` and ``corrupt`` are images; ``refused`` (a file that may not be
        read, e.g. a symlink out of the dataset) is an image stored as ``missing`` with the reason; ``skipped``
        (hidden files, sub-folders) is no image at all, only a reject, so it takes no part in duplicate names.
        """
        self.cur.execute(
            """
            CREATE OR REPLACE TEMP TABLE scan_ranked AS
            SELECT *, CASE WHEN status <> 'skipped' THEN row_number() OVER w END AS rank,
                   first_value(path) OVER w AS first_path
            FROM image_scans
            WINDOW w AS (PARTITION BY name, status = 'skipped' ORDER BY path)
            """
        )
        self.cur.execute(
            """
            INSERT INTO rejects
            SELECT ?, ?, path, NULL, NULL,
                   CASE WHEN status IN ('skipped', 'refused') THEN reason
                        WHEN rank > 1 THEN 'duplicate image name "' || name || '"; kept ' || first_path
                        ELSE 'corrupt image: ' || reason END
            FROM scan_ranked WHERE rank > 1 OR status <> 'ok'
            """,
            [self.run_id, self.dataset],
        )
        self.cur.execute(
            """
            INSERT INTO images
            SELECT $dataset || '/' || k.name, $dataset, k.name,
                   coalesce(s.path, f.path), coalesce(s.split, f.split),
                   CASE WHEN s.status = 'ok' THEN s.width
                        WHEN s.status IS NULL OR s.status = 'refused' THEN f.width END,
                   CASE WHEN s.status = 'ok' THEN s.height
                        WHEN s.status IS NULL OR s.status = 'refused' THEN f.height END,
                   s.sha256, CASE WHEN s.status = 'refused' THEN 'missing' ELSE coalesce(s.status, 'missing') END,
                   CASE WHEN s.status IS NOT NULL THEN s.reason
                        WHEN f.path IS NOT NULL THEN 'file not found'
                        ELSE 'no image file in the dataset' END,
                   c.image_id IS NOT NULL
            FROM known_images k
            LEFT JOIN (SELECT DISTINCT image_id FROM captions WHERE dataset = $dataset) c
                   ON c.image_id = $dataset || '/' || k.name
            LEFT JOIN (SELECT * FROM scan_ranked WHERE rank = 1) s USING (name)
            LEFT JOIN (SELECT name, min(path) AS path, min(split) AS split, max(width) AS width,
                              max(height) AS height
                       FROM image_facts GROUP BY name) f USING (name)
            """,
            {"dataset": self.dataset},
        )

    def _image_folder_counts(self) -> list[FileCount]:
        rows = self.cur.execute(
            """
            SELECT regexp_replace(path, '/[^/]*$', '/') AS folder, count(*),
                   count(*) FILTER (status = 'ok' AND rank = 1)
            FROM scan_ranked GROUP BY folder ORDER BY folder
            """
        ).fetchall()
        return [FileCount(folder, read, ok, read - ok) for folder, read, ok in rows]

    # ------------------------------------------------------------------------------------------------ summary
    def table_counts(self) -> dict[str, int]:
        counts = {
            table: int(self.cur.execute(f"SELECT count(*) FROM {table} WHERE dataset = ?", [self.dataset]).fetchone()[0])
            for table in DATASET_TABLES
        }
        for status in ("ok", "missing", "corrupt"):
            counts[f"images_{status}"] = int(
                self.cur.execute(
                    "SELECT count(*) FROM images WHERE dataset = ? AND status = ?", [self.dataset, status]
                ).fetchone()[0]
            )
        counts["images_uncaptioned"] = int(
            self.cur.execute(
                "SELECT count(*) FROM images WHERE dataset = ? AND NOT has_caption", [self.dataset]
            ).fetchone()[0]
        )
        return counts

    def record_run(
        self, *, source: str, layout: str, fingerprint: str, started: datetime, counts: dict[str, Any]
    ) -> None:
        self.cur.execute(
            "INSERT INTO ingest_runs VALUES (?, ?, ?, ?, ?, current_timestamp, ?, 'ok', NULL)",
            [self.run_id, self.dataset, source, layout, started, json.dumps(counts)],
        )
        self.cur.execute(
            "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?)",
            [self.dataset, layout, source, fingerprint, self.run_id],
        )
