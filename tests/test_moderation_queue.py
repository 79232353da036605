"""db/moderation_queue.py and its write-queue ops: what "To decide" holds and in which order, which pending photos
wait for their file, leases (two moderators never get the same photo; an expired lease is anybody's), undo, and
the role check where the ops are applied."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from db import minors, moderation_queue as mq, users
from db.database import Database
from db.shared import SharedDatabase
from db.write_queue import WriteQueue
from pipeline.cli import main as pipeline_main
from test_search_page import colour_photos

T0 = datetime(2026, 12, 1, 9, 0)


@pytest.fixture
def queue_db(tmp_path: Path) -> Path:
    """24 photos, every decision pending, decided at T0 + n minutes for photo c/n, except c/9 decided first."""
    path = tmp_path / "studio.duckdb"
    assert pipeline_main(["ingest", "--data", str(colour_photos(tmp_path / "c")), "--db", str(path), "--quiet"]) == 0
    assert pipeline_main(["filter", "--db", str(path), "--quiet"]) == 0
    with Database(path) as db, db.write() as cur:
        cur.execute("UPDATE minors_decisions SET status = 'pending_review', "
                    "decided_at = ? + to_minutes(CAST(split_part(image_id, '/', 2) AS INTEGER))", [T0])
        cur.execute("UPDATE minors_decisions SET decided_at = ? WHERE image_id = 'c/9'", [T0 - timedelta(hours=1)])
    return path


@pytest.fixture
def writer(queue_db: Path):
    """The dashboard's write queue on ``queue_db``, with two moderators, a data user and a product user."""
    file = users.users_path(queue_db)
    for name, role in (("mona", "moderator"), ("omar", "moderator"), ("dana", "data"), ("rita", "product")):
        users.add(file, name, role, None)
    queue = WriteQueue(SharedDatabase(queue_db, linger_seconds=0), file, retry_seconds=0.05)
    yield queue
    queue.close()
    queue.shared.close()


def submit(queue: WriteQueue, user: str, *ops: tuple[str, dict]) -> list:
    return queue.submit_and_wait(list(ops), user, 10)


def lease_of(queue: WriteQueue, user: str) -> str | None:
    with queue.shared.use() as db:
        return mq.lease_of(db, user)


def test_to_decide_is_oldest_first_and_photos_without_a_file_wait(queue_db: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with Database(queue_db) as db, db.write() as cur:
        cur.execute("UPDATE images SET status = 'missing' WHERE id = 'c/2'")  # the file went away
        cur.execute("UPDATE images SET path = NULL, sha256 = NULL, status = 'missing' WHERE id = 'c/3'")  # Flickr8k
        cur.execute("UPDATE images SET status = 'corrupt', status_reason = 'truncated' WHERE id = 'c/4'")
        cur.execute("UPDATE images SET sha256 = 'f' || sha256[2:] WHERE id = 'c/5'")  # replaced since decided
        cur.execute("UPDATE minors_decisions SET status = 'excluded' WHERE image_id = 'c/6'")  # not pending
    with Database(queue_db) as db:
        order = mq.to_decide(db)
        assert order[:3] == ["c/9", "c/1", "c/7"]  # c/9 decided first, then by decided_at
        assert mq.counts(db) == (len(order), 4) == (24 - 5, 4)
        with monkeypatch.context() as patch:  # more decisions older than the last ingest than a keyed lookup takes
            patch.setattr(mq.reads, "KEYED_LIMIT", 2)
            assert mq.counts(db) == (19, 4)
        waiting = mq.waiting(db).set_index("image_id")
        assert list(waiting.index) == ["c/2", "c/3", "c/4", "c/5"]
        with db.write() as cur:  # decided after the last ingest: bytes are not compared, and need not be
            cur.execute("UPDATE minors_decisions SET decided_at = ? WHERE image_id <> 'c/5'",
                        [datetime.now() + timedelta(hours=1)])
        assert mq.counts(db) == (19, 4)
    missing = waiting["what_is_missing"]
    assert missing["c/2"].startswith("the file is missing") and waiting.loc["c/2", "expected_path"].endswith(
        "000000000002.png")
    assert missing["c/3"].startswith("no file is known") and pd.isna(waiting.loc["c/3", "expected_path"])
    assert missing["c/4"] == "the file is unreadable: truncated"
    assert "run `python -m pipeline filter`" in missing["c/5"]


def test_two_moderators_claiming_at_once_get_different_photos(writer: WriteQueue) -> None:
    """Claims race from two threads, again and again, each moving on (a skip) every time: never the same photo."""
    seen: dict[str, list[str]] = {"mona": [], "omar": []}
    barrier = threading.Barrier(2)

    def moderator(name: str) -> None:
        skipped: list[str] = []
        for _ in range(8):
            barrier.wait()
            assert submit(writer, name, ("claim_next", {"skip": skipped}))[0].state == "saved"
            mine = lease_of(writer, name)
            seen[name].append(mine)
            skipped.append(mine)
            barrier.wait()  # both hold their lease now

    threads = [threading.Thread(target=moderator, args=(n,)) for n in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(a != b for a, b in zip(seen["mona"], seen["omar"]))
    assert all(len(set(held)) == 8 and None not in held for held in seen.values())
    with writer.shared.use() as db:
        assert len(mq.leases(db)) == 2


def test_my_lease_is_kept_skip_moves_it_and_an_expired_lease_is_anybodys(queue_db: Path) -> None:
    with Database(queue_db) as db:
        with db.write() as cur:
            assert mq.claim_next(cur, "omar", now=T0) == "c/9"
            assert mq.claim_next(cur, "mona", now=T0) == "c/1"
            assert mq.claim_next(cur, "mona", now=T0 + timedelta(minutes=5)) == "c/1"  # kept, renewed
        assert mq.my_lease(db, "mona", T0 + timedelta(minutes=12)) == ("c/1", T0 + timedelta(minutes=15))
        with db.write() as cur:
            assert mq.claim_next(cur, "mona", ["c/1"], now=T0 + timedelta(minutes=5)) == "c/2"  # skipped: next
        assert mq.leases(db, T0 + timedelta(minutes=6)) == {"c/9": "omar", "c/2": "mona"}
        with db.write() as cur:  # omar's lease ran out at T0 + 10 min: the oldest photo is free again
            assert mq.claim_next(cur, "rita", now=T0 + timedelta(minutes=9)) == "c/1"  # nobody holds c/1 now
            assert mq.claim_next(cur, "ali", now=T0 + timedelta(minutes=11)) == "c/9"
        assert mq.has_next(db, "mona", ["c/4"], T0 + timedelta(minutes=11))
        skipped = [f"c/{n}" for n in range(2, 25) if n != 9]  # c/1 is rita's, c/9 ali's
        assert not mq.has_next(db, "mona", skipped, T0 + timedelta(minutes=11))
        assert mq.has_next(db, "mona", skipped[1:], T0 + timedelta(minutes=11))  # c/2: her own lease
        with db.write() as cur:
            assert mq.claim_next(cur, "mona", [f"c/{n}" for n in range(1, 25)], now=T0) is None  # all skipped
        assert "mona" not in mq.leases(db, T0).values()


def test_a_decision_ends_the_lease_and_the_next_photo_comes_in_the_same_write(writer: WriteQueue) -> None:
    assert submit(writer, "mona", ("claim_next", {}))[0].state == "saved"
    assert lease_of(writer, "mona") == "c/9"
    outcomes = submit(writer, "mona", ("moderate", {"image_ids": ["c/9"], "status": "cleared", "reason": "adults"}),
                      ("claim_next", {"skip": []}))
    assert [o.state for o in outcomes] == ["saved", "saved"]
    assert lease_of(writer, "mona") == "c/1"
    with writer.shared.use() as db:
        assert mq.leases(db) == {"c/1": "mona"} and "c/9" not in mq.to_decide(db)


def test_undo_restores_the_status_audits_it_and_brings_the_photo_back(writer: WriteQueue) -> None:
    submit(writer, "mona", ("claim_next", {}))
    submit(writer, "mona", ("moderate", {"image_ids": ["c/9"], "status": "excluded", "reason": "a child"}),
           ("claim_next", {}))
    with writer.shared.use() as db:
        last = mq.last_decision(db, "mona")
        assert mq.decided_today(db) == {"mona": 1}
    assert (last["image_id"], last["old_status"], last["new_status"]) == ("c/9", "pending_review", "excluded")
    assert submit(writer, "omar", ("undo_moderation", {"audit_id": last["audit_id"]}))[0].state == "refused"
    assert submit(writer, "mona", ("undo_moderation", {"audit_id": last["audit_id"]}))[0].state == "saved"
    with writer.shared.use() as db:
        assert db.fetch_all("SELECT status, moderator FROM minors_decisions WHERE image_id = 'c/9'") == [
            ("pending_review", "mona")]
        audit = minors.audit_trail(db, "c/9")
        assert mq.lease_of(db, "mona") == "c/9"  # back on screen
        assert mq.decided_today(db) == {} and mq.last_decision(db, "mona") is None
    assert audit[["old_status", "new_status", "reason"]].values.tolist() == [
        ["pending_review", "excluded", "a child"], ["excluded", "pending_review", "undo: a child"]]
    assert audit["undoes"].tolist()[1] == audit["id"].tolist()[0]
    again = submit(writer, "mona", ("undo_moderation", {"audit_id": last["audit_id"]}))[0]
    assert again.state == "refused" and "not your latest" in again.message


def test_undo_is_refused_when_somebody_decided_the_photo_since(writer: WriteQueue) -> None:
    submit(writer, "mona", ("moderate", {"image_ids": ["c/9"], "status": "cleared", "reason": "adults"}))
    submit(writer, "omar", ("moderate", {"image_ids": ["c/9"], "status": "excluded", "reason": "a child"}))
    with writer.shared.use() as db:
        audit_id = mq.last_decision(db, "mona")["audit_id"]
    refused = submit(writer, "mona", ("undo_moderation", {"audit_id": audit_id}))[0]
    assert refused.state == "refused" and "decided again since" in refused.message
    with writer.shared.use() as db:
        assert db.fetch_all("SELECT status FROM minors_decisions WHERE image_id = 'c/9'") == [("excluded",)]


@pytest.mark.parametrize("user", ["dana", "rita"])
def test_queue_writes_are_refused_for_anyone_but_a_moderator(writer: WriteQueue, user: str) -> None:
    claim, undo = submit(writer, user, ("claim_next", {}), ("undo_moderation", {"audit_id": 1}))
    assert claim.state == undo.state == "refused" and "needs the role moderator" in claim.message
    with writer.shared.use() as db:
        assert mq.leases(db) == {}


def test_a_claim_with_a_bad_skip_list_is_refused_alone(writer: WriteQueue) -> None:
    bad, good = submit(writer, "mona", ("claim_next", {"skip": "c/9"}), ("claim_next", {"skip": ["c/9"]}))
    assert bad.state == "refused" and "list" in bad.message and good.state == "saved"
    assert lease_of(writer, "mona") == "c/1"


@pytest.mark.parametrize("missing", [3, 12])
def test_the_next_photo_is_found_past_photos_without_a_file(queue_db: Path, monkeypatch: pytest.MonkeyPatch,
                                                             missing: int) -> None:
    """The next photo is searched a chunk of pending decisions at a time (2, then 8 here), then by one join: the
    oldest photo with its file comes out whichever way it is found, and the same as the whole queue's first."""
    monkeypatch.setattr(mq, "FIRST_CHUNK", 2)
    monkeypatch.setattr(mq.reads, "KEYED_LIMIT", 8)
    order = ["c/9", *(f"c/{n}" for n in range(1, 25) if n != 9)]
    with Database(queue_db) as db:
        with db.write() as cur:
            cur.execute("UPDATE images SET status = 'missing' WHERE list_contains(?, id)", [order[:missing]])
        with db.write() as cur:
            assert mq.claim_next(cur, "mona", now=T0) == order[missing] == mq.to_decide(db, 1)[0]
            assert mq.claim_next(cur, "omar", [order[missing + 1]], now=T0) == order[missing + 2]
