"""db/shared.py and db/write_queue.py: the dashboard's single-writer design. Writes from many threads all land
exactly once; a pipeline stage's claim makes the dashboard let go and queue; the journal survives a crash and
is replayed without applying anything twice; a bad write is refused alone; every write is applied only for a
role the users file gives its user when it is applied, whoever submitted it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from db import labels, users
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
def users_file(path: Path) -> Path:
    """Everyone the tests write as: reviewers with the product role, one moderator, one data user."""
    file = users.users_path(path)
    for name in ("rita", "otto", *(f"user{n}" for n in range(8))):
        users.add(file, name, "product", None)
    users.add(file, "mona", "moderator", None)
    users.add(file, "dana", "data", None)
    return file


def remove_user(file: Path, name: str) -> None:
    """What an admin does to take someone's access away (there is no command for it: edit the file)."""
    listed = json.loads(file.read_text())
    del listed["users"][name]
    file.write_text(json.dumps(listed))


def moderate_op(reason: str = "a grown-up, checked") -> tuple[str, dict]:
    return ("moderate", {"image_ids": ["c/1"], "status": "cleared", "reason": reason})


@pytest.fixture
def queue(path: Path, users_file: Path):
    queue = WriteQueue(SharedDatabase(path, linger_seconds=0), users_file, retry_seconds=0.05)
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


def test_the_journal_survives_a_crash_and_replays_once(path: Path, users_file: Path) -> None:
    with pipeline_claim(path, "embed"):
        first = WriteQueue(SharedDatabase(path, linger_seconds=0), users_file, retry_seconds=0.05)
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
    second = WriteQueue(SharedDatabase(path, linger_seconds=0), users_file, retry_seconds=0.05)
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
            f"try:\n    WriteQueue(SharedDatabase({str(path)!r}), {str(path)!r} + '.users.json')\n"
            "except DatabaseError as exc:\n    print(exc); sys.exit(3)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parent.parent)
    assert other.returncode == 3 and "another dashboard process" in other.stdout


# ------------------------------------------------------------------------------------ roles where writes happen
def refusals(path: Path) -> dict[str, str]:
    with Database(path) as db:
        return dict(db.fetch_all("SELECT user_name || ' ' || op, error FROM applied_writes WHERE error IS NOT NULL"))


def test_a_moderation_decision_is_applied_only_for_a_moderator(path: Path, queue: WriteQueue) -> None:
    """Submitted straight to the queue, as any code of the dashboard process could: no page checked anything."""
    product = queue.submit(*moderate_op(), user="rita")
    moderator = queue.submit(*moderate_op(), user="mona")
    outcomes = queue.wait([product, moderator], 10)
    assert outcomes[product].state == "refused" and "moderate needs the role moderator" in outcomes[product].message
    assert outcomes[moderator].state == "saved"
    queue.shared.close()
    assert stored(path, "SELECT count(*) FROM moderation_audit WHERE moderator = 'rita'") == 0
    assert stored(path, "SELECT count(*) FROM moderation_audit WHERE moderator = 'mona'") == 1
    assert refusals(path)["rita moderate"].startswith("PermissionError: rita is product now")


def test_the_re_ranker_is_chosen_only_by_the_data_role(path: Path, queue: WriteQueue) -> None:
    keys = [queue.submit("reranker", {"run_id": None}, user=name) for name in ("mona", "rita", "dana")]
    outcomes = queue.wait(keys, 10)
    assert [outcomes[k].state for k in keys] == ["refused", "refused", "saved"]
    assert "reranker needs the role data" in outcomes[keys[0]].message
    queue.shared.close()
    assert set(refusals(path)) == {"mona reranker", "rita reranker"}


def test_a_user_removed_or_demoted_while_their_write_waits_is_refused(path: Path, queue: WriteQueue,
                                                                     users_file: Path) -> None:
    """The writes wait behind a pipeline stage; meanwhile an admin edits the users file. The writer applies what
    the file says when it applies, and also what the role was when the user clicked."""
    with pipeline_claim(path, "train"):
        removed = queue.submit(*label_op("c/1"), user="rita")
        demoted = queue.submit(*moderate_op(), user="mona")
        promoted = queue.submit(*moderate_op(), user="otto")  # a product user's click, before the promotion
        stays = queue.submit(*label_op("c/2"), user="dana")
        assert queue.wait([removed], 0.3)[removed].state == "queued"
        remove_user(users_file, "rita")
        users.add(users_file, "mona", "product", None)
        users.add(users_file, "otto", "moderator", None)
    outcomes = queue.wait([removed, demoted, promoted, stays], 10)
    assert [outcomes[k].state for k in (removed, demoted, promoted, stays)] == ["refused", "refused", "refused",
                                                                               "saved"]
    assert "not in the users file" in outcomes[removed].message
    assert "mona is product now" in outcomes[demoted].message
    assert "otto was product when this moderate was submitted" in outcomes[promoted].message
    queue.shared.close()
    assert stored(path) == 1 and stored(path, "SELECT count(*) FROM moderation_audit") == 0


def test_each_write_journals_the_role_it_was_submitted_with(path: Path, users_file: Path) -> None:
    """After a restart the journal is checked the same way. A line from before roles were journalled (no
    "role") is decided by the role the users file gives now: it never gets more than its user has today."""
    with pipeline_claim(path, "embed"):
        first = WriteQueue(SharedDatabase(path, linger_seconds=0), users_file, retry_seconds=0.05)
        first.submit(*moderate_op(), user="mona")
        first.close()
    journalled = json.loads(journal_path(path).read_text())
    assert (journalled["user"], journalled["role"]) == ("mona", "moderator")
    old = {"op": "moderate", "submitted": journalled["submitted"], "payload": journalled["payload"]}
    with journal_path(path).open("a") as fh:
        fh.write(json.dumps({**old, "key": "old-product", "user": "rita"}) + "\n")
        fh.write(json.dumps({**old, "key": "old-moderator", "user": "mona"}) + "\n")
    users.add(users_file, "mona", "product", None)  # demoted while the dashboard was down
    users.add(users_file, "rita", "moderator", None)
    second = WriteQueue(SharedDatabase(path, linger_seconds=0), users_file, retry_seconds=0.05)
    try:
        assert second.unreadable_journal_lines == 0
        outcomes = second.wait([journalled["key"], "old-product", "old-moderator"], 10)
    finally:
        second.close()
        second.shared.close()
    assert [o.state for o in outcomes.values()] == ["refused", "saved", "refused"]
    assert stored(path, "SELECT count(*) FROM moderation_audit WHERE moderator = 'rita'") == 1


def test_writes_wait_while_the_users_file_is_unreadable(path: Path, queue: WriteQueue, users_file: Path) -> None:
    """Nobody's role can be checked: nothing is applied and nothing is lost until the file is fixed."""
    good = users_file.read_text()
    users_file.write_text("{not json")
    key = queue.submit(*label_op("c/1"), user="rita")
    assert queue.wait([key], 0.5)[key].state == "queued"
    users_file.write_text(good)
    assert queue.wait([key], 10)[key].state == "saved"


def test_the_writer_checks_the_moderation_reason_too(queue: WriteQueue) -> None:
    key = queue.submit(*moderate_op("fine\nforged audit line"), user="mona")
    outcome = queue.wait([key], 10)[key]
    assert outcome.state == "refused" and "line-break" in outcome.message
