"""Export of visible photos (id, dataset, path, captions) as CSV: reads `visible_images` only."""

from __future__ import annotations

from pathlib import Path

from db import reads
from db.database import Database


def export_visible_photos(db: Database, path: Path, dataset: str | None = None) -> int:
    """Write the CSV; returns the number of photos written."""
    frame = reads.visible_photos(db, dataset)
    frame.to_csv(path, index=False)
    return len(frame)
