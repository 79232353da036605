"""Ingest runner: idempotent, atomic (failure and kill), datasets independent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import IMG_A, IMG_B, coco_dir, flickr_dir, image_bytes, ingest, table_counts
from db.database import Database
from pipeline import relevance
from pipeline.ingest import PAUSE_BEFORE_COMMIT_ENV, IngestError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def snapshot(db: Database, dataset: str | None = None) -> dict[str, list[tuple]]:
    """Every row of every table (of one dataset, where the table has a dataset column)."""
    tables = [r[0] for r in db.fetch_all(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1")]
    result = {}
    for table in tables:
        columns = [r[0] for r in db.fetch_all(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])]
        where = " WHERE dataset = ?" if dataset and "dataset" in columns else ""
        rows = db.fetch_all(f"SELECT * FROM {table}{where}", [dataset] if where else [])
        result[table] = sorted(rows, key=repr)
    return result


def small_coco(root: Path) -> Path:
    images = [{"id": 7, "file_name": "000000000007.jpg", "width": 32, "height": 24}]
    return coco_dir(root, images=images, captions=[{"id": 1, "image_id": 7, "caption": "A red square."}],
                    files={"000000000007.jpg": image_bytes()})


def test_second_ingest_changes_no_row_count(db: Database, tmp_path: Path) -> None:
    root = flickr_dir(tmp_path / "f", expert=[f"{IMG_A}\t{IMG_B}#0\t1\t1\t2", "broken line"])
    first = ingest(db, root)
    counts = table_counts(db)
    second = ingest(db, root)
    assert second.skipped and second.previous_run_id == first.run_id
    assert table_counts(db) == counts
    forced = ingest(db, root, force=True)
    assert not forced.skipped
    after = table_counts(db)
    assert after.pop("ingest_runs") == counts.pop("ingest_runs") + 1  # the forced run is logged
    assert after == counts  # rejects of the dataset are replaced, not piled up


def test_changed_file_is_reingested(db: Database, tmp_path: Path) -> None:
    root = flickr_dir(tmp_path / "f")
    ingest(db, root)
    flickr_dir(root, expert=[f"{IMG_A}\t{IMG_B}#0\t3\t3\t3"])
    assert not ingest(db, root).skipped
    assert db.fetch_all("SELECT expert_1 FROM expert_ratings") == [(3,)]


def test_failure_midway_rolls_back_everything(db: Database, tmp_path: Path, monkeypatch) -> None:
    root = flickr_dir(tmp_path / "f")
    ingest(db, root)
    before = snapshot(db)
    flickr_dir(root, tokens=[f"{IMG_A}#0\tonly one caption now ."])

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(relevance, "apply", explode)  # fails after rows were deleted and re-inserted
    with pytest.raises(IngestError, match="rolled back; nothing changed. RuntimeError: disk full"):
        ingest(db, root)
    after = snapshot(db)
    failed_runs = [r for r in after.pop("ingest_runs") if r[7] == "failed"]
    assert len(failed_runs) == 1 and "disk full" in failed_runs[0][8]
    before.pop("ingest_runs")
    assert after == before


def test_killed_run_leaves_database_exactly_as_before(tmp_path: Path) -> None:
    db_path = tmp_path / "kill.duckdb"
    first, second = flickr_dir(tmp_path / "flickr"), small_coco(tmp_path / "coco")
    cli = [sys.executable, "-m", "pipeline", "ingest", "--db", str(db_path), "--quiet"]
    subprocess.run([*cli, "--data", str(first)], cwd=PROJECT_ROOT, check=True, capture_output=True)
    with Database(db_path, read_only=True) as db:
        before = snapshot(db)
    marker = tmp_path / "paused"
    env = {**os.environ, PAUSE_BEFORE_COMMIT_ENV: str(marker)}
    proc = subprocess.Popen([*cli, "--data", str(second)], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "ingest ended before reaching the pause"
            assert time.monotonic() < deadline, "ingest never reached the pause"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Database(db_path) as db:  # read-write: replays the WAL as a crash recovery would
        assert snapshot(db) == before


def test_second_dataset_does_not_disturb_the_first(db: Database, tmp_path: Path) -> None:
    ingest(db, flickr_dir(tmp_path / "flickr"))
    before = snapshot(db, "flickr")
    ingest(db, small_coco(tmp_path / "coco"))
    after = snapshot(db, "flickr")
    for table in ("datasets", "ingest_runs"):  # these hold one row per dataset / run
        assert set(before[table]) <= set(after[table])
        before.pop(table), after.pop(table)
    assert after == before
    assert db.fetch_all("SELECT dataset, count(*) FROM images GROUP BY 1 ORDER BY 1") == [("coco", 1), ("flickr", 3)]


def test_name_option_keeps_two_copies_apart(db: Database, tmp_path: Path) -> None:
    root = flickr_dir(tmp_path / "f")
    ingest(db, root, name="copy-a")
    ingest(db, root, name="copy-b")
    assert db.fetch_all("SELECT dataset, count(*) FROM captions GROUP BY 1 ORDER BY 1") == [("copy-a", 4), ("copy-b", 4)]
