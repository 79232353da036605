"""Reads for the demo's background runner (pipeline/demo_runner.py)."""

from __future__ import annotations

import hashlib

from db.database import Database


def data_signature(db: Database) -> str:
    """Names the loaded data: each dataset with the ingest run whose rows are loaded. An ingest that changed
    nothing keeps it; one that loaded anything changes it, and the demo's finished stages run again."""
    rows = db.fetch_all("SELECT id, last_run_id FROM datasets ORDER BY id")
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
