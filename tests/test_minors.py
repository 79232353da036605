"""Minors filter, moderation and query block, end to end on small generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from builders import coco_dir, ingest
from db import minors as store
from db import reads
from dashboard import minors_review
from db.database import Database
from fakes import ColourEncoder
from pipeline.embed import embed
from pipeline.minors import filter as minors_filter
from pipeline.minors import lexicon, moderation, query_block
from pipeline.minors.filter import run_filter
from pipeline.search import Searcher
from test_embed import solid

CAPTIONS = {
    1: ["A man riding a wave on a surfboard.", "A surfer in the ocean."],
    2: ["A little girl holding a kite.", "A child in a field."],
    3: ["Two girls walking on a beach.", "People at the shore."],
    4: ["A baby elephant next to its mother.", "Elephants by a river."],
}


class FixedDetector:
    """Stands in for OpenCV: sees people in photo 6 only."""

    id = "fixed-test-detector"

    def count(self, path: str, sha256: str):
        return np.array([1.0 if path.endswith("000000000006.png") else 0.0])

    def sees_people(self, counts) -> bool:
        return bool(np.sum(counts) > 0)

    def describe(self, counts) -> dict:
        return {"people": int(np.sum(counts))}


@pytest.fixture
def photos(db: Database, tmp_path: Path) -> Path:
    files = {f"{i:012d}.png": solid((40 * i, 90, 200 - 30 * i)) for i in range(1, 7)}
    images = [{"id": i, "file_name": f"{i:012d}.png", "width": 16, "height": 16} for i in range(1, 7)]
    captions = [{"id": 100 * i + n, "image_id": i, "caption": text}
                for i, texts in CAPTIONS.items() for n, text in enumerate(texts)]
    root = coco_dir(tmp_path / "c", images=images, captions=captions, files=files)  # 5 and 6: no captions
    ingest(db, root)
    return root


def statuses(db: Database) -> dict[str, str]:
    return dict(db.fetch_all("SELECT image_id, status FROM minors_decisions ORDER BY 1"))


def test_decisions_with_reasons(db: Database, photos: Path) -> None:
    report = run_filter(db, detector=FixedDetector(), quiet=True)
    assert statuses(db) == {"c/1": "cleared", "c/2": "excluded", "c/3": "pending_review", "c/4": "cleared",
                            "c/5": "cleared", "c/6": "pending_review"}
    assert report.version == f"{lexicon.RULE_SET_VERSION}+fixed-test-detector"
    reasons = json.loads(db.fetch_all("SELECT reasons FROM minors_decisions WHERE image_id = 'c/2'")[0][0])
    assert reasons["rule"] == "caption-child-words"
    first = reasons["matches"][0]
    assert (first["text"], first["caption_id"], first["span"]) == ("little girl", "c/200", [2, 13])
    assert first["caption"][first["span"][0]:first["span"][1]] == "little girl"
    six = json.loads(db.fetch_all("SELECT reasons FROM minors_decisions WHERE image_id = 'c/6'")[0][0])
    assert six == {"rule": "no-captions-people-detected", "detector": "fixed-test-detector", "detections": {"people": 1}}
    assert db.fetch_all("SELECT DISTINCT decided_by FROM minors_decisions") == [("rule",)]


def test_without_a_detector_uncaptioned_photos_fail_closed(db: Database, photos: Path) -> None:
    run_filter(db, detector=None, quiet=True)
    assert statuses(db)["c/5"] == statuses(db)["c/6"] == "pending_review"


def test_only_cleared_photos_are_visible(db: Database, photos: Path) -> None:
    assert db.fetch_all("SELECT count(*) FROM visible_images") == [(0,)]  # nothing decided yet: nothing shown
    run_filter(db, detector=FixedDetector(), quiet=True)
    assert [r[0] for r in db.fetch_all("SELECT id FROM visible_images ORDER BY id")] == ["c/1", "c/4", "c/5"]


def test_moderator_decisions_survive_reruns_and_new_rule_versions(db: Database, photos: Path, monkeypatch) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    moderation.decide(db, ["c/3", "c/6"], "cleared", moderator="mia", reason="adults only, checked by eye")
    moderation.decide(db, ["c/1"], "excluded", moderator="mia", reason="child visible in the background")
    monkeypatch.setattr(lexicon, "RULE_SET_VERSION", "lexicon-next")
    report = run_filter(db, detector=FixedDetector(), quiet=True)
    assert report.moderated_kept == 3
    assert statuses(db) == {"c/1": "excluded", "c/2": "excluded", "c/3": "cleared", "c/4": "cleared",
                                 "c/5": "cleared", "c/6": "cleared"}
    versions = dict(db.fetch_all("SELECT image_id, rule_set_version FROM minors_decisions"))
    assert versions["c/2"].startswith("lexicon-next") and not versions["c/1"].startswith("lexicon-next")
    moderator = db.fetch_all("SELECT decided_by, moderator FROM minors_decisions WHERE image_id = 'c/3'")
    assert moderator == [("moderator", "mia")]


def test_audit_trail_records_who_when_old_new_and_why(db: Database, photos: Path) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    moderation.decide(db, ["c/2"], "excluded", moderator="mia", reason="confirmed: a child")
    moderation.decide(db, ["c/3", "c/6"], "cleared", moderator="tom", reason="adults")
    moderation.decide(db, ["c/3"], "excluded", moderator="mia", reason="second look: one is 14")
    trail = store.audit_trail(db)
    assert trail[["image_id", "moderator", "old_status", "new_status", "reason"]].values.tolist() == [
        ["c/2", "mia", "excluded", "excluded", "confirmed: a child"],
        ["c/3", "tom", "pending_review", "cleared", "adults"],
        ["c/6", "tom", "pending_review", "cleared", "adults"],
        ["c/3", "mia", "cleared", "excluded", "second look: one is 14"],
    ]
    assert trail["changed_at"].notna().all() and list(trail["id"]) == [1, 2, 3, 4]


def test_the_rules_evidence_stays_beside_every_later_decision(db: Database, photos: Path) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    for moderator, status, reason in (("mia", "cleared", "a doll, not a child"), ("tom", "excluded", "second look"),
                                      ("mia", "pending_review", "ask legal")):
        moderation.decide(db, ["c/2"], status, moderator=moderator, reason=reason)
    reasons = db.fetch_all("SELECT reasons FROM minors_decisions WHERE image_id = 'c/2'")[0][0]
    assert minors_review.fired_captions(reasons) == ["A :red-background[**little girl**] holding a kite\\.",
                                                     "A :red-background[**child**] in a field\\."]
    assert minors_review.reason_summary(reasons) == \
        "caption-child-words; words: child, little girl; moderator: ask legal"


@pytest.mark.parametrize("ids, status, moderator, reason, message", [
    (["c/1"], "maybe", "mia", "x", "status must be one of"),
    (["c/1"], "cleared", " ", "x", "moderator name is required"),
    (["c/1"], "cleared", "mia", "", "reason is required"),
    (["c/1", "c/99"], "cleared", "mia", "x", "unknown photo ids: c/99"),
    ([], "cleared", "mia", "x", "no photos"),
])
def test_bad_moderation_changes_nothing(db: Database, photos: Path, ids, status, moderator, reason, message) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    before = statuses(db)
    with pytest.raises(moderation.ModerationError, match=message):
        moderation.decide(db, ids, status, moderator=moderator, reason=reason)
    assert statuses(db) == before and store.audit_trail(db).empty


def test_no_search_result_or_thumbnail_includes_an_excluded_or_pending_photo(db: Database, photos: Path) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    hidden = {image_id for image_id, status in statuses(db).items() if status != "cleared"}
    assert hidden == {"c/2", "c/3", "c/6"}
    embed(db, ColourEncoder(), workers=0, quiet=True)  # vectors exist for every readable photo ...
    assert db.fetch_all("SELECT count(*) FROM embeddings")[0][0] == 6
    searcher = Searcher(db, ColourEncoder())  # ... but search sees only the visible ones
    found = {hit.image_id for query in ("red", "green", "blue", "surfer", "elephant")
             for hit in searcher.search(query, k=10).hits}
    assert found and not found & hidden
    assert set(reads.visible_photo_files(db, [f"c/{i}" for i in range(1, 7)])) == {"c/1", "c/4", "c/5"}


@pytest.mark.parametrize("query", ["a little girl on a beach", "kids playing football", "a 10-year-old boy",
                                   "two teenagers", "children's party"])
def test_queries_about_children_get_the_legal_notice_and_are_logged(db: Database, photos: Path, query: str) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    embed(db, ColourEncoder(), workers=0, quiet=True)
    result = Searcher(db, ColourEncoder()).search(query, user="olga")
    assert result.hits == [] and result.legal_notice == query_block.LEGAL_NOTICE
    total, newest = store.blocked_queries(db)
    [logged] = newest.to_dict("records")
    assert total == 1 and (logged["query"], logged["user_name"]) == (query, "olga") and logged["matched_words"]


@pytest.mark.parametrize("query", ["a baby elephant", "a young man throwing a frisbee", "a teddy bear",
                                   "a little dog on a couch"])
def test_ordinary_queries_pass(db: Database, photos: Path, query: str) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    embed(db, ColourEncoder(), workers=0, quiet=True)
    result = Searcher(db, ColourEncoder()).search(query)
    assert result.legal_notice is None and result.hits
    assert store.blocked_queries(db)[0] == 0


def test_photo_unreadable_for_the_detector_stays_pending(db: Database, photos: Path) -> None:
    class Blind(FixedDetector):
        def count(self, path, sha256):
            return None

    run_filter(db, detector=Blind(), quiet=True)
    assert statuses(db)["c/5"] == "pending_review"
    reasons = json.loads(db.fetch_all("SELECT reasons FROM minors_decisions WHERE image_id = 'c/5'")[0][0])
    assert reasons["rule"] == "no-captions-fail-closed"


def test_detector_counts_are_cached_by_photo_bytes(db: Database, photos: Path) -> None:
    calls = []

    class Counting(FixedDetector):
        def count(self, path, sha256):
            calls.append(path)
            return super().count(path, sha256)

    run_filter(db, detector=Counting(), quiet=True)
    run_filter(db, detector=Counting(), quiet=True)
    assert len(calls) == 2  # photos 5 and 6, once


def test_rule_decision_of_a_single_caption_set() -> None:
    assert minors_filter.decide_from_captions(["a#0"], ["a cat on a mat"])[0] == "cleared"
    assert minors_filter.decide_from_captions(["a#0", "a#1"], ["a woman", "a girl"])[0] == "pending_review"
    assert minors_filter.decide_from_captions(["a#0", "a#1"], ["a girl", "a small boy"])[0] == "excluded"


def test_clip_check_mechanics_on_a_random_model(db: Database, photos: Path) -> None:
    """No CLIP weights here: a random ViT-S-32 proves the path runs; its scores mean nothing."""
    from pipeline.encoders import load_encoder
    from pipeline.minors.clip_check import ClipChildCheck, calibrate, calibrate_on_labels, stored_check

    encoder = load_encoder("openclip", model="ViT-S-32", pretrained=None, image_size=64)
    labels = {f"c/{i}": i in (2, 6) for i in range(1, 7)}
    calibration = calibrate_on_labels(db, encoder, labels, target_recall=1.0, quiet=True)
    assert calibration["recall"] == 1.0 and calibration["positives"] == 2
    check = stored_check(db, encoder)
    assert check.threshold == calibration["threshold"]
    run_filter(db, detector=None, clip=check, quiet=True)
    reasons = {image_id: json.loads(r) for image_id, r in db.fetch_all(
        "SELECT image_id, reasons FROM minors_decisions WHERE image_id IN ('c/5', 'c/6')")}
    assert reasons["c/6"]["rule"] == "no-captions-clip-child-score"  # labelled positive, recall 1.0: caught
    assert reasons["c/5"]["rule"] in ("no-captions-clip-child-score", "no-captions-clip-no-child")
    assert 0.0 <= reasons["c/5"]["score"] <= 1.0
    scores = ClipChildCheck(encoder, 0.5).scores(np.eye(encoder.dim, dtype=np.float32)[:3])
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    assert calibrate(np.array([0.1, 0.9, 0.4, 0.7]), np.array([False, True, True, True]), 2 / 3) == 0.7
    assert calibrate(np.array([0.1, 0.9, 0.4, 0.7]), np.array([False, True, True, True]), 1.0) == 0.4


def test_clip_check_needs_a_calibration(db: Database, photos: Path) -> None:
    from pipeline.encoders import load_encoder
    from pipeline.minors.clip_check import stored_check

    with pytest.raises(ValueError, match="calibrate-minors"):
        stored_check(db, load_encoder("openclip", model="ViT-S-32", pretrained=None, image_size=64))


def test_a_replaced_photo_loses_its_moderator_clearance(db: Database, photos: Path) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    moderation.decide(db, ["c/6"], "cleared", moderator="mia", reason="adults only")
    assert "c/6" in {r[0] for r in db.fetch_all("SELECT id FROM visible_images")}
    (photos / "images/val2017/000000000006.png").write_bytes(solid((1, 2, 3)))  # different photo, same name
    ingest(db, photos)
    assert "c/6" not in {r[0] for r in db.fetch_all("SELECT id FROM visible_images")}  # hidden at once
    assert "c/6" not in reads.visible_photo_files(db, ["c/6"])  # the key lookup applies the view's own rule
    report = run_filter(db, detector=FixedDetector(), quiet=True)
    assert (report.moderated_kept, report.moderated_superseded) == (0, 1)
    assert db.fetch_all("SELECT status, decided_by FROM minors_decisions WHERE image_id = 'c/6'") == [
        ("pending_review", "rule")]


def test_the_moderation_queue_is_filtered_paged_and_counted_in_sql(db: Database, photos: Path) -> None:
    """The Minors review page reads one page of the queue and its count from SQL (db/minors.py queue), filtered by
    status, dataset (the photo id's prefix) and text in the photo id or the reasons."""
    run_filter(db, detector=FixedDetector(), quiet=True)
    everything = store.queue(db, store.STATUSES)
    assert list(everything["image_id"]) == sorted(everything["image_id"], key=lambda i: (
        dict(zip(everything["image_id"], everything["status"]))[i], i))  # by status, then photo id
    assert store.queue_count(db, store.STATUSES) == len(everything) == 6
    pages = [store.queue(db, store.STATUSES, limit=4, offset=offset) for offset in (0, 4)]
    assert [len(p) for p in pages] == [4, 2]
    assert [i for p in pages for i in p["image_id"]] == list(everything["image_id"])

    queued = ["pending_review", "excluded"]
    assert store.queue_count(db, queued, text="LITTLE GIRL") == 1  # a fired word in the reasons, any case
    assert list(store.queue(db, queued, text="little girl")["image_id"]) == ["c/2"]
    assert list(store.queue(db, store.STATUSES, text="c/5")["image_id"]) == ["c/5"]
    assert store.queue_count(db, store.STATUSES, dataset="c") == 6
    assert store.queue_count(db, store.STATUSES, dataset="other") == 0 and store.decided_datasets(db) == ["c"]
    row = store.queue(db, ["excluded"], dataset="c", limit=1).iloc[0]
    assert (row["dataset"], row["path"].endswith("000000000002.png")) == ("c", True)


def test_the_audit_trail_shows_the_newest_rows_oldest_first(db: Database, photos: Path) -> None:
    run_filter(db, detector=FixedDetector(), quiet=True)
    for number in range(5):
        moderation.decide(db, ["c/2"], "excluded", moderator="mia", reason=f"look {number}")
    assert store.audit_count(db) == 5
    assert list(store.audit_trail(db, limit=2)["reason"]) == ["look 3", "look 4"]
    assert list(store.audit_trail(db)["reason"]) == [f"look {n}" for n in range(5)]


def test_photo_files_by_key_agree_with_the_visible_images_view(db: Database, photos: Path) -> None:
    """reads.visible_photo_files judges a few photos looked up by key with photo_visible, the macro the view is
    defined with (migration 0007): the same photos, whatever their status, decision or bytes."""
    run_filter(db, detector=FixedDetector(), quiet=True)
    moderation.decide(db, ["c/6"], "cleared", moderator="mia", reason="adults only")
    moderation.decide(db, ["c/1"], "excluded", moderator="mia", reason="second look")
    with db.write() as cur:
        cur.execute("UPDATE minors_decisions SET sha256 = 'other bytes' WHERE image_id = 'c/4'")
    ids = [f"c/{i}" for i in range(0, 8)]
    view = {r[0] for r in db.fetch_all("SELECT id FROM visible_images")}
    assert set(reads.visible_photo_files(db, ids)) == view == {"c/5", "c/6"}
