"""db/shared.py and db/write_queue.py: the dashboard's single-writer design. Writes from many threads all land
exactly once; a pipeline stage's claim makes the dashboard let go and queue; the journal survives a crash and
is replayed without applying anything twice; a bad write is refused alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from db import labels
from db.database import Database
from db.shared import DatabaseBusy, DatabaseMissing, SharedDatabase, claim_path, pipeline_claim, running_claim
from db.write_queue import WriteQueue, journal_path


def label_op(image_id: str, verdict: str = "relevant") -> tuple[str, dict]:
    return ("label", {"query": "a red wall", "encoder": "colour-test",
                      "flag": {"image_id": image_id, "rank": 1, "score": 0.5, "verdict": verdict, "comment": None}})


def stored(path: Path, sql: str = "SELECT count(*) FROM labels") -> int:
    with Database(path) as db:
        return db.fetch_all(sql)[0][0]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    Database(tmp_path / "studio.duckdb").close()
    return tmp_path / "studio.duckdb"


@pytest.fixture
def queue(path: Path):
    queue = WriteQueue(SharedDatabase(path, linger_seconds=0), retry_seconds=0.05)
    yield queue
    queue.close()
    queue.shared.close()


def test_writes_from_many_threads_land_exactly_once(path: Path, queue: WriteQueue) -> None:
    def reviewer(n: int) -> None:
        for i in range(25):
            keys = queue.submit_many([label_op(f"c/{n}-{i}")], f"user{n}")
            assert queue.wait(keys, 10)[keys[0]].state == "saved"

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.shared.close()
    assert stored(path) == 200
    assert stored(path, "SELECT count(DISTINCT write_key) FROM labels") == 200
    assert stored(path, "SELECT count(*) FROM applied_writes WHERE error IS NULL") == 200
    assert journal_path(path).read_text() == ""


def test_a_pipeline_claim_queues_writes_until_the_stage_ends(path: Path, queue: WriteQueue) -> None:
    with pipeline_claim(path, "train"):
        key = queue.submit(*label_op("c/1"), user="rita")
        assert queue.wait([key], 0.5)[key].state == "queued"
        assert not queue.shared.is_open  # the file is free for the stage
        assert key in journal_path(path).read_text()
        with Database(path) as stage:  # what the stage does meanwhile: it can open and write
            assert labels.count(stage) == 0
    assert queue.wait([key], 10)[key].state == "saved"
    queue.shared.close()
    assert stored(path) == 1


def test_the_journal_survives_a_crash_and_replays_once(path: Path) -> None:
    with pipeline_claim(path, "embed"):
        first = WriteQueue(SharedDatabase(path, linger_seconds=0), retry_seconds=0.05)
        keys = first.submit_many([label_op("c/1"), label_op("c/2")], "rita")
        first.close()  # the process dies before the stage lets go
    lines = journal_path(path).read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == keys
    # A crash after a commit but before the journal was compacted: the first write is already applied.
    with Database(path) as db, db.write() as cur:
        labels.add(cur, user="rita", query="a red wall", encoder="colour-test",
                   flag=labels.Flag("c/1", 1, 0.5, "relevant"), write_key=keys[0])
        cur.execute("INSERT INTO applied_writes VALUES (?, 'label', 'rita', now(), now(), NULL)", [keys[0]])
    with journal_path(path).open("a") as fh:
        fh.write('{"key": "cut-short", "op": "lab')  # a line cut by the crash itself
    second = WriteQueue(SharedDatabase(path, linger_seconds=0), retry_seconds=0.05)
    try:
        assert second.unreadable_journal_lines == 1
        assert second.flush(10)
    finally:
        second.close()
        second.shared.close()
    assert stored(path) == 2
    assert stored(path, "SELECT count(*) FROM labels WHERE image_id = 'c/1'") == 1


def test_a_bad_write_is_refused_alone(path: Path, queue: WriteQueue) -> None:
    mine = queue.submit(*label_op("c/1"), user="rita")
    assert queue.wait([mine], 10)[mine].state == "saved"
    with pipeline_claim(path, "filter"):  # hold the writer so the next three go in one batch
        keys = queue.submit_many([label_op("c/2"), ("undo_label", {"write_key": mine}), label_op("c/3")], "otto")
    outcomes = queue.wait(keys, 10)
    assert [outcomes[k].state for k in keys] == ["saved", "refused", "saved"]
    assert "not yours" in outcomes[keys[1]].message
    queue.shared.close()
    assert stored(path) == 3  # rita's label survived otto's undo
    assert stored(path, "SELECT count(*) FROM applied_writes WHERE error IS NOT NULL") == 1


def test_undo_removes_only_the_users_own_label(path: Path, queue: WriteQueue) -> None:
    key = queue.submit(*label_op("c/1"), user="rita")
    undo = queue.submit("undo_label", {"write_key": key}, user="rita")
    assert queue.wait([key, undo], 10)[undo].state == "saved"
    queue.shared.close()
    assert stored(path) == 0


def test_every_write_needs_a_user_and_a_known_operation(queue: WriteQueue) -> None:
    with pytest.raises(ValueError, match="records its user"):
        queue.submit(*label_op("c/1"), user=" ")
    with pytest.raises(ValueError, match="unknown write operation"):
        queue.submit("drop_table", {}, user="rita")
    bad = queue.submit(*label_op("c/1", verdict="meh"), user="rita")  # the page checks first; the writer too
    outcome = queue.wait([bad], 10)[bad]
    assert outcome.state == "refused" and "verdict must be one of" in outcome.message


def test_shared_database_lingers_then_lets_go(path: Path) -> None:
    shared = SharedDatabase(path, linger_seconds=0.2)
    with shared.use() as db:
        assert db.fetch_all("SELECT 1") == [(1,)]
    assert shared.is_open
    threading.Event().wait(0.5)
    assert not shared.is_open


def test_shared_database_refuses_while_a_stage_runs_and_ignores_dead_claims(path: Path, tmp_path: Path) -> None:
    shared = SharedDatabase(path, linger_seconds=0)
    with pipeline_claim(path, "ingest"):
        assert running_claim(path)["stage"] == "ingest"
        with pytest.raises(DatabaseBusy, match="`ingest`"):
            with shared.use():
                pass
    assert not claim_path(path).exists()
    claim_path(path).write_text(json.dumps({"pid": 2 ** 22 + 12345, "stage": "ghost", "started": "x"}))
    assert running_claim(path) is None  # its process is gone: never locks the dashboard out
    with shared.use() as db:
        assert db.fetch_all("SELECT 1") == [(1,)]
    with pytest.raises(DatabaseMissing):
        with SharedDatabase(tmp_path / "absent.duckdb").use():
            pass
    assert not (tmp_path / "absent.duckdb").exists()
    os.remove(claim_path(path))


def test_one_writer_process_per_database(path: Path, queue: WriteQueue) -> None:
    code = ("import sys; sys.path.insert(0, '.'); from db.shared import SharedDatabase; "
            "from db.write_queue import WriteQueue; from db.database import DatabaseError\n"
            f"try:\n    WriteQueue(SharedDatabase({str(path)!r}))\n"
            "except DatabaseError as exc:\n    print(exc); sys.exit(3)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parent.parent)
    assert other.returncode == 3 and "another dashboard process" in other.stdout
