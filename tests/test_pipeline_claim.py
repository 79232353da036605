"""The pipeline claim (issue #12 item 9) and the read-only leases of the dashboard (item 6).

A claim is an OS lock held by the stage's process plus a claim file written atomically: a pid reused by another
process never blocks the dashboard, a killed stage frees it at once, and a second stage cannot overwrite a running
stage's claim. Pages and cached objects reach the database through read-only views; writes go through the queue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db.database import Database, DatabaseError, ReadOnlyDatabase, ReadOnlyError
from db.shared import LeasedDatabase, SharedDatabase, claim_path, pipeline_claim, running_claim
from fakes import ColourEncoder
from pipeline.embed import text_vectors

PROJECT = Path(__file__).resolve().parent.parent


def stage_in_another_process(path: Path, stage: str, seconds: float) -> subprocess.Popen:
    """A process that holds the claim of ``stage`` for ``seconds``; returns once it holds it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, '.'); from db.shared import pipeline_claim\n"
         f"with pipeline_claim({str(path)!r}, {stage!r}):\n    print('held', flush=True); time.sleep({seconds})"],
        cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_claim_whose_pid_now_belongs_to_another_process_does_not_block(path: Path) -> None:
    # A stage was killed and its pid reused: pid 1 (init) is alive, but it holds no claim.
    claim_path(path).write_text(json.dumps({"pid": 1, "stage": "embed", "started": "2026-12-01T00:00:00"}))
    assert running_claim(path) is None
    with SharedDatabase(path, linger_seconds=0).use() as db:
        assert db.fetch_all("SELECT 42") == [(42,)]


def test_a_second_stage_cannot_take_over_a_running_stages_claim(path: Path) -> None:
    with pipeline_claim(path, "embed"):
        with pytest.raises(DatabaseError, match="`embed`"):
            with pipeline_claim(path, "filter"):
                pass
        assert running_claim(path)["stage"] == "embed"
    assert running_claim(path) is None and not claim_path(path).exists()


def test_a_second_stage_waits_for_the_first_one_to_end(path: Path) -> None:
    holder = stage_in_another_process(path, "ingest", seconds=0.8)
    started = time.monotonic()
    with pipeline_claim(path, "filter", wait_seconds=30):
        assert running_claim(path)["stage"] == "filter"
    assert 0.1 < time.monotonic() - started < 30
    assert holder.wait(30) == 0


def test_a_killed_stage_frees_the_database_at_once(path: Path) -> None:
    holder = stage_in_another_process(path, "train", seconds=600)
    assert running_claim(path)["stage"] == "train"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(30)
    assert running_claim(path) is None  # the claim file is still there; the kernel dropped the lock
    with pipeline_claim(path, "train", wait_seconds=0):
        assert running_claim(path)["pid"] == os.getpid()


def test_the_cli_says_which_stage_holds_the_claim(path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli import main

    with pipeline_claim(path, "embed"):
        assert main(["relevance", "--db", str(path), "--wait", "0.2"]) == 2
    assert "`embed`" in capsys.readouterr().err


def test_leases_and_page_views_only_read(path: Path) -> None:
    shared = SharedDatabase(path, linger_seconds=0)
    leased = LeasedDatabase(shared)
    assert leased.read_only and not hasattr(leased, "write")
    # The re-ranker's caption cache: through a lease, texts are encoded but nothing is written.
    assert text_vectors(leased, ColourEncoder(), ["a red wall", "a blue door"]).shape == (2, 4)
    with Database(path, read_only=True) as db:
        assert db.fetch_all("SELECT count(*) FROM text_embeddings") == [(0,)]
    for write in ("INSERT INTO settings VALUES ('k', '1')", "DELETE FROM images", "CREATE TABLE x (a INT)",
                  "SELECT 1; DROP TABLE images", "COPY images TO '/tmp/x.csv'", "ATTACH ':memory:' AS other"):
        with pytest.raises(ReadOnlyError):
            leased.fetch_all(write)
        with pytest.raises(ReadOnlyError):
            with leased.cursor() as cur:
                cur.execute(write)
    with shared.use() as db:
        view = ReadOnlyDatabase(db)
        assert view.fetch_all("WITH x AS (SELECT 2 AS a) SELECT a FROM x") == [(2,)]
        with pytest.raises(ReadOnlyError):
            view.fetch_df("UPDATE settings SET value = '2'")
        with pytest.raises(ReadOnlyError):
            view.write()
