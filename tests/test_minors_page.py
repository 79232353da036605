"""The Minors review page through AppTest: moderators only, the queue with fired words highlighted, decisions one
by one and in bulk recorded with the moderator and reason, the audit trail; plus minors_review.py."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from builders import image_bytes
from dashboard import context, minors_review, photo_view
from dashboard_support import APP, DATA, MODERATOR, PRODUCT, TIMEOUT, frame_with_column, open_app
from db import minors, moderation_queue
from db.database import Database
from db.shared import pipeline_claim, publish_snapshot, remove_snapshot
from pipeline.cli import main as pipeline_main
from pipeline.minors import moderation, query_block
from test_search_objects import perceive_rows
from test_search_page import colour_photos


@pytest.fixture
def minors_db(tmp_path: Path) -> Path:
    """24 photos; c/1's caption names a boy (excluded); c/2's says 'girl' in a doubtful way (pending)."""
    path = tmp_path / "studio.duckdb"
    data = colour_photos(tmp_path / "c")
    captions = json.loads((data / "annotations" / "captions_val2017.json").read_text())
    captions["annotations"][1]["caption"] = "Two girls, maybe teenagers, by a green wall."
    (data / "annotations" / "captions_val2017.json").write_text(json.dumps(captions))
    assert pipeline_main(["ingest", "--data", str(data), "--db", str(path), "--quiet"]) == 0
    assert pipeline_main(["filter", "--db", str(path), "--quiet"]) == 0
    return path


def open_grid(monkeypatch: pytest.MonkeyPatch, path: Path) -> AppTest:
    """The page as a moderator, switched to its "All decisions" grid (the page opens on "To decide")."""
    at = open_app(monkeypatch, path, MODERATOR, page="minors_page.py")
    at.segmented_control(key="minors_view").set_value("All decisions").run()
    assert not at.exception
    return at


def decisions(path: Path) -> dict[str, tuple]:
    assert context.write_queue(str(path)).flush(10)
    with Database(path) as db:
        return {r[0]: r[1:] for r in db.fetch_all("SELECT image_id, status, decided_by, moderator FROM minors_decisions")}


def test_only_moderators_have_the_page(monkeypatch: pytest.MonkeyPatch, minors_db: Path) -> None:
    """For other roles the page is not registered at all, and the script itself refuses them too."""
    for user in (DATA, PRODUCT):
        with pytest.raises(ValueError, match="Could not find a navigation page") as refused:
            open_app(monkeypatch, minors_db, user, page="minors_page.py")
        known = str(refused.value).split("Known pages:")[1]
        assert "search_page.py" in known and "minors_page.py" not in known
        alone = AppTest.from_file(APP.parent / "minors_page.py", default_timeout=TIMEOUT)
        alone.session_state[context.USER_KEY] = user
        alone.run()
        assert alone.error[0].value == "This page is for moderators." and not alone.image and not alone.markdown
    at = open_app(monkeypatch, minors_db, MODERATOR, page="minors_page.py")
    assert at.title[0].value == "Minors review"


def test_queue_shows_reasons_with_the_fired_words_highlighted(monkeypatch: pytest.MonkeyPatch,
                                                             minors_db: Path) -> None:
    at = open_grid(monkeypatch, minors_db)
    states = decisions(minors_db)
    queued = sorted(i for i, (status, *_ ) in states.items() if status != "cleared")
    assert "c/1" in queued
    assert at.multiselect(key="minors_bulk_ids").options == queued
    assert "A :red-background[**little boy**] in a green room\\." in [m.value for m in at.markdown]
    assert {m.label: m.value for m in at.metric}["Excluded"] == str(sum(s[0] == "excluded" for s in states.values()))


def test_a_decision_needs_a_reason_and_is_audited(monkeypatch: pytest.MonkeyPatch, minors_db: Path) -> None:
    at = open_grid(monkeypatch, minors_db)
    at.selectbox(key="minors_status_c/1").select("cleared")
    at.button(key="minors_decide_c/1").click().run()
    assert "reason is required" in at.error[0].value
    assert decisions(minors_db)["c/1"][0] == "excluded"

    at.text_input(key="minors_reason_c/1").input("toy figure, not a child")
    at.button(key="minors_decide_c/1").click().run()
    assert not at.exception
    assert decisions(minors_db)["c/1"] == ("cleared", "moderator", "mona")
    with Database(minors_db) as db:
        audit = db.fetch_all("SELECT image_id, moderator, old_status, new_status, reason FROM moderation_audit")
    assert audit == [("c/1", "mona", "excluded", "cleared", "toy figure, not a child")]
    assert "c/1" not in at.multiselect(key="minors_bulk_ids").options  # cleared: out of the queue
    assert any("toy figure" in str(df.value.values) for df in at.dataframe)  # the audit trail table
    with Database(minors_db) as db:
        exported = minors_review.queue_export(minors_review.load_queue(db, ["cleared"], None, "c/1"))
    row = pd.read_csv(io.BytesIO(exported)).set_index("image_id").loc["c/1"]
    assert (row["status"], row["decided_by"], row["moderator"]) == ("cleared", "moderator", "mona")
    assert row["reason"] == "caption-child-words; words: little boy; moderator: toy figure, not a child"


def test_bulk_decision_on_every_photo_of_the_page(monkeypatch: pytest.MonkeyPatch, minors_db: Path) -> None:
    at = open_grid(monkeypatch, minors_db)
    queued = at.multiselect(key="minors_bulk_ids").options
    at.checkbox(key="minors_bulk_all").check().run()
    at.selectbox(key="minors_bulk_status").select("excluded")
    at.text_input(key="minors_bulk_reason").input("confirmed on review")
    at.button(key="minors_bulk_apply").click().run()
    assert not at.exception
    states = decisions(minors_db)
    assert all(states[i] == ("excluded", "moderator", "mona") for i in queued)
    with Database(minors_db) as db:
        assert db.fetch_all("SELECT count(*) FROM moderation_audit WHERE reason = 'confirmed on review'")[0][0] \
            == len(queued)


def test_highlight_merges_overlaps_and_escapes_markdown() -> None:
    assert minors_review.highlight("A little boy *here*", [(2, 12), (9, 12)]) == \
        "A :red-background[**little boy**] \\*here\\*"
    reasons = {"rule": "caption-child-words", "matches": [
        {"caption": "A boy and a kid.", "text": "boy", "span": [2, 5]},
        {"caption": "A boy and a kid.", "text": "kid", "span": [12, 15]}]}
    assert minors_review.fired_captions(json.dumps(reasons)) == [
        "A :red-background[**boy**] and a :red-background[**kid**]\\."]
    assert minors_review.reason_summary(reasons) == "caption-child-words; words: boy, kid"
    moderated = {"moderator_reason": "toy", "previous": json.dumps(reasons)}
    assert minors_review.reason_summary(moderated) == "caption-child-words; words: boy, kid; moderator: toy"


def test_photo_view_is_none_for_missing_or_changed_files(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(image_bytes())
    sha = hashlib.sha256(image_bytes()).hexdigest()
    assert photo_view.photo({"a": (str(tmp_path / "a.jpg"), sha)}, "a") is not None
    assert photo_view.photo({"a": (str(tmp_path / "a.jpg"), "0" * 64)}, "a") is None  # not the decided bytes
    assert photo_view.photo({"b": (str(tmp_path / "b.jpg"), sha)}, "b") is None
    assert photo_view.photo({"n": (float("nan"), None)}, "n") is None and photo_view.photo({}, "a") is None


def test_no_decisions_yet_names_the_filter_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    Database(tmp_path / "empty.duckdb").close()
    at = open_app(monkeypatch, tmp_path / "empty.duckdb", MODERATOR, page="minors_page.py")
    assert "python -m pipeline filter" in at.info[0].value and not at.metric


def test_moderators_see_the_searches_the_legal_block_refused(monkeypatch: pytest.MonkeyPatch,
                                                             minors_db: Path) -> None:
    at = open_grid(monkeypatch, minors_db)
    assert "Blocked searches (0)" in [h.value for h in at.subheader]
    with Database(minors_db) as db:
        for query in ("kids on a beach", "a little boy with a kite"):
            query_block.log(db, query, query_block.check(query), "rita")
    at.run()
    assert "Blocked searches (2)" in [h.value for h in at.subheader]
    blocked = frame_with_column(at, "matched_words")
    assert blocked[["user_name", "query", "matched_words"]].values.tolist() == [
        ["rita", "a little boy with a kite", "little boy"], ["rita", "kids on a beach", "kids"]]


def test_the_queue_is_read_one_page_at_a_time_from_sql(monkeypatch: pytest.MonkeyPatch, minors_db: Path) -> None:
    """The page asks the database for one page of PAGE_SIZE decisions and for their count (db/minors.py), filtered
    there; it never loads the whole queue."""
    with Database(minors_db) as db, db.write() as cur:
        cur.execute("UPDATE minors_decisions SET status = 'pending_review'")  # all 24 photos queued: two pages
    asked: list[tuple] = []
    queue = minors.queue
    monkeypatch.setattr(minors, "queue", lambda db, statuses, dataset=None, text=None, limit=None, offset=0: (
        asked.append((tuple(statuses), dataset, text, limit, offset)),
        queue(db, statuses, dataset, text, limit, offset))[1])
    at = open_grid(monkeypatch, minors_db)
    assert "Queue (24)" in [h.value for h in at.subheader]
    first = at.multiselect(key="minors_bulk_ids").options
    assert len(first) == 20 and first == sorted(first)  # by status, then photo id
    at.number_input(key="minors_page").set_value(2).run()
    second = at.multiselect(key="minors_bulk_ids").options
    assert len(second) == 4 and not set(first) & set(second)
    assert all(limit == 20 for *_, limit, _ in asked) and asked[-1][-1] == 20  # page 2 starts at row 20

    at.text_input(key="minors_text").input("LITTLE BOY").run()  # a fired word in the reasons, in SQL
    assert "Queue (1)" in [h.value for h in at.subheader]
    assert at.multiselect(key="minors_bulk_ids").options == ["c/1"]
    assert asked[-1][2] == "LITTLE BOY"


def test_the_exports_are_made_when_called_and_hold_every_match(minors_db: Path) -> None:
    """The page hands the download buttons these callables (Streamlit calls them on click), so a page run never
    reads every decision to offer the CSVs; each holds every decision its filters match."""
    with Database(minors_db) as db:
        for number in range(3):
            moderation.decide(db, ["c/1"], "excluded", moderator="mona", reason=f"look {number}")
        queue_csv, audit_csv = minors_review.queue_file(db, [], None, None), minors_review.audit_file(db)
        queued = minors_review.load_queue(db, [], None, None)["image_id"].tolist()
        exported = pd.read_csv(io.BytesIO(queue_csv()))
        assert exported["image_id"].tolist() == queued and "c/1" in queued
        assert "words: little boy" in " ".join(exported["reason"])
        assert pd.read_csv(io.BytesIO(audit_csv()))["reason"].tolist() == ["look 0", "look 1", "look 2"]


def shown_photo(at: AppTest) -> str:
    """The photo id the "To decide" view shows ("Photo **c/3**")."""
    return next(m.value for m in at.markdown if m.value.startswith("Photo **")).removeprefix("Photo **")[:-2]


def test_to_decide_one_photo_at_a_time_with_keys_reasons_skip_and_undo(monkeypatch: pytest.MonkeyPatch,
                                                                        minors_db: Path) -> None:
    """The page opens on the oldest pending photo that has its file; each key records the decision with the
    preset reason and shows the next photo in the same run; skip moves on; undo restores and brings it back."""
    with Database(minors_db) as db, db.write() as cur:
        cur.execute("UPDATE minors_decisions SET status = 'pending_review' WHERE image_id IN "
                    "('c/3', 'c/4', 'c/5', 'c/6')")
        cur.execute("UPDATE images SET status = 'missing', status_reason = 'file not found' WHERE id = 'c/6'")
    with Database(minors_db) as db:
        perceive_rows(db, {"c/2": [("person", 0.8)]})
    at = open_app(monkeypatch, minors_db, MODERATOR, page="minors_page.py")
    assert at.segmented_control(key="minors_view").value == "To decide"
    assert "1 person box(es), best 0.80" in [c.value for c in at.caption]  # drawn on the photo, and listed:
    assert frame_with_column(at, "what")[["what", "score"]].values.tolist() == [["person", 0.8]]
    tiles = {m.label: m.value for m in at.metric}
    assert (tiles["Left to decide"], tiles["Waiting for the file"], tiles["Decided today by you"]) == ("4", "1", "0")
    assert shown_photo(at) == "c/2" and len(at.image) == 1
    assert any(m.value.startswith("A caption uses words that may mean a child") for m in at.markdown)
    assert "Two :red-background[**girls**], maybe :red-background[**teenagers**], by a green wall\\." in [
        m.value for m in at.markdown]
    assert at.button(key="queue_undo").disabled

    at.button(key="queue_clear").click().run()
    assert shown_photo(at) == "c/3" and not at.exception
    at.selectbox(key="queue_reason_excluded").select("Baby or toddler")
    at.button(key="queue_exclude").click().run()
    assert shown_photo(at) == "c/4"
    assert at.selectbox(key="queue_reason_excluded").value == "Child under 16 visible"  # back to the default
    assert decisions(minors_db)["c/2"] == ("cleared", "moderator", "mona")
    with Database(minors_db) as db:
        assert db.fetch_all("SELECT image_id, new_status, reason FROM moderation_audit ORDER BY id") == [
            ("c/2", "cleared", "No child under 16 visible"), ("c/3", "excluded", "Baby or toddler")]

    at.button(key="queue_skip").click().run()
    assert shown_photo(at) == "c/5"  # c/4 skipped: not handed back straight away
    at.button(key="queue_undo").click().run()
    assert shown_photo(at) == "c/3" and decisions(minors_db)["c/3"][0] == "pending_review"
    with Database(minors_db) as db:
        undo = minors.audit_trail(db).iloc[-1]
    assert undo[["image_id", "old_status", "new_status", "reason", "undoes"]].tolist() == [
        "c/3", "excluded", "pending_review", "undo: Baby or toddler", 2]  # audit row 2 is the one undone
    assert {m.label: m.value for m in at.metric}["Decided today by you"] == "1"

    at.text_input(key="queue_reason_text").input("a doll, not a child")
    at.button(key="queue_clear").click().run()
    assert decisions(minors_db)["c/3"][0] == "cleared" and shown_photo(at) == "c/5"
    assert at.text_input(key="queue_reason_text").value == ""

    at.segmented_control(key="minors_view").set_value("Waiting for the file").run()
    waiting = frame_with_column(at, "what_is_missing")
    assert waiting[["image_id", "what_is_missing"]].values.tolist() == [["c/6", "the file is missing (file not found)"]]


def test_no_decision_is_preselected_in_the_grid(monkeypatch: pytest.MonkeyPatch, minors_db: Path) -> None:
    """Deciding without choosing is refused: "Exclude" (the first status) is never recorded silently."""
    at = open_grid(monkeypatch, minors_db)
    assert at.selectbox(key="minors_status_c/1").value is None and at.selectbox(key="minors_bulk_status").value is None
    at.text_input(key="minors_reason_c/1").input("looked")
    at.button(key="minors_decide_c/1").click().run()
    assert at.error[0].value == "Choose a decision first."
    with Database(minors_db) as db:
        assert minors.audit_count(db) == 0


def test_while_a_pipeline_stage_writes_the_queue_hands_out_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                   minors_db: Path) -> None:
    """A claim would wait in the journal behind the stage (2 s per page run) and the snapshot pages read would not
    show it: the view says the queue waits for the stage instead, and writes nothing."""
    with pipeline_claim(minors_db, "filter"):
        publish_snapshot(minors_db)
        at = open_app(monkeypatch, minors_db, MODERATOR, page="minors_page.py")
        assert any("`filter` is writing the database" in i.value for i in at.info)
        assert not [m for m in at.markdown if m.value.startswith("Photo **")]
        assert context.write_queue(str(minors_db)).pending() == []
    remove_snapshot(minors_db)
    at.run()
    assert shown_photo(at) == "c/2"


def test_a_lease_half_gone_is_renewed_by_the_page(monkeypatch: pytest.MonkeyPatch, minors_db: Path) -> None:
    """A moderator looking at one photo for long keeps it: a page run renews a lease with under half its time left,
    so it is not handed to another moderator meanwhile."""
    at = open_app(monkeypatch, minors_db, MODERATOR, page="minors_page.py")
    assert shown_photo(at) == "c/2"
    with Database(minors_db) as db, db.write() as cur:
        cur.execute("UPDATE moderation_leases SET expires_at = ?", [datetime.now() + timedelta(minutes=2)])
    at.run()
    assert shown_photo(at) == "c/2" and context.write_queue(str(minors_db)).flush(10)
    with Database(minors_db) as db:
        _, expires = moderation_queue.my_lease(db, "mona")
    assert expires - datetime.now() > timedelta(minutes=moderation_queue.LEASE_MINUTES - 1)


def test_when_every_photo_left_is_skipped_they_can_come_back(monkeypatch: pytest.MonkeyPatch,
                                                             minors_db: Path) -> None:
    at = open_app(monkeypatch, minors_db, MODERATOR, page="minors_page.py")
    assert shown_photo(at) == "c/2"  # the only pending photo
    at.button(key="queue_skip").click().run()
    assert [i.value for i in at.info] == ["You skipped every photo free to decide."]
    at.button(key="queue_unskip").click().run()
    assert shown_photo(at) == "c/2"
    at.button(key="queue_exclude").click().run()
    assert at.success[0].value.startswith("Nothing left to decide") and not at.button(key="queue_undo").disabled
