"""Reads for the demo's background runner (pipeline/demo_runner.py)."""

from __future__ import annotations

import hashlib

from db.database import Database


def data_signature(db: Database) -> str:
    """Names the loaded data: each dataset with the ingest run whose rows are loaded, and when that run started.
    An ingest that changed nothing keeps it; one that loaded anything changes it, and the demo's finished stages
    run again. The start time tells apart a rebuilt database, whose run ids start from 1 again."""
    rows = db.fetch_all("SELECT d.id, d.last_run_id, CAST(r.started AS VARCHAR) FROM datasets d "
                        "LEFT JOIN ingest_runs r ON r.id = d.last_run_id ORDER BY d.id")
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
