"""The minors filter's image layer: rules on stored perception rows (inserted here directly), calibration, evidence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders import coco_dir, ingest
from db import perception as perception_store
from db.database import Database
from pipeline.minors import image_layer, lexicon, moderation
from pipeline.minors.filter import run_filter
from test_embed import solid

PERCEIVER = "test-perceiver"
THRESHOLDS = image_layer.make_thresholds(person=0.05, face=0.5, perceiver=PERCEIVER)
LAYER = image_layer.ImageLayer(THRESHOLDS)
CAPTIONED = {1: "A man riding a wave on a surfboard.", 2: "A woman reading a book on a bench."}


@pytest.fixture
def photos(db: Database, tmp_path: Path) -> Path:
    """Photos 1 and 2 have captions that the lexicon clears; 3 to 9 have none."""
    files = {f"{i:012d}.png": solid((25 * i, 90, 200 - 20 * i)) for i in range(1, 10)}
    images = [{"id": i, "file_name": f"{i:012d}.png", "width": 16, "height": 16} for i in range(1, 10)]
    captions = [{"id": 100 * i, "image_id": i, "caption": text} for i, text in CAPTIONED.items()]
    root = coco_dir(tmp_path / "c", images=images, captions=captions, files=files)
    ingest(db, root)
    return root


def box(kind: str, score: float, size: float = 100.0, age: float | None = None, label: str | None = None) -> dict:
    return {"kind": kind, "label": label or ("face" if kind == "face" else "person"), "score": score,
            "x0": 10.0, "y0": 20.0, "x1": 10.0 + size, "y1": 20.0 + size, "size_px": size, "age": age,
            "age_model": "age-test" if age is not None else None, "model_id": f"{kind}-test"}


def perceived(db: Database, image_id: str, *found: dict, perceiver: str = PERCEIVER) -> None:
    """Store a perception result for the photo's current bytes, as the perceive stage would."""
    sha = db.fetch_all("SELECT sha256 FROM images WHERE id = ?", [image_id])[0][0]
    photo = pd.DataFrame([{"image_id": image_id, "sha256": sha, "width": 640, "height": 480, "seconds": 0.1,
                           "objects": sum(f["kind"] == "object" for f in found),
                           "faces": sum(f["kind"] == "face" for f in found)}])
    rows = pd.DataFrame([{"image_id": image_id, "sha256": sha, **f} for f in found],
                        columns=["image_id", "sha256", *perception_store.DETECTION_COLUMNS])
    with db.write() as cur:
        perception_store.save_perceived(cur, perceiver, photo, rows)


def decision(db: Database, image_id: str) -> tuple[str, dict]:
    status, reasons = db.fetch_all("SELECT status, reasons FROM minors_decisions WHERE image_id = ?", [image_id])[0]
    return status, json.loads(reasons)


def test_a_small_but_present_person_box_keeps_the_photo_pending(db: Database, photos: Path) -> None:
    perceived(db, "c/3", box("object", 0.06, size=9.0), box("object", 0.9, label="dog"))
    run_filter(db, detector=None, image=LAYER, quiet=True)
    status, reasons = decision(db, "c/3")
    assert (status, reasons["rule"]) == ("pending_review", "no-captions-people-seen")
    assert reasons["image"]["verdict"] == "people"
    assert reasons["image"]["persons"] == [{"score": 0.06, "box": [10.0, 20.0, 19.0, 29.0]}]


def test_an_empty_scene_is_cleared_with_its_evidence(db: Database, photos: Path) -> None:
    perceived(db, "c/3", box("object", 0.04), box("face", 0.45, size=20.0), box("object", 0.95, label="teddy bear"))
    report = run_filter(db, detector=None, image=LAYER, quiet=True)
    status, reasons = decision(db, "c/3")
    assert (status, reasons["rule"]) == ("cleared", "no-captions-nobody-seen")
    assert reasons["image"] == {
        "verdict": "nobody", "perceiver": PERCEIVER, "thresholds": THRESHOLDS.as_dict(), "width": 640, "height": 480,
        "best_person_score": 0.04, "best_face_score": 0.45, "persons": [], "persons_total": 0, "faces": [],
        "faces_total": 0}
    assert report.version == f"{lexicon.RULE_SET_VERSION}+image-{THRESHOLDS.id}"
    assert "c/3" in {r[0] for r in db.fetch_all("SELECT id FROM visible_images")}


def test_a_64px_face_aged_8_excludes_the_photo(db: Database, photos: Path) -> None:
    perceived(db, "c/3", box("object", 0.8), box("face", 0.7, size=40.0, age=35.0),
              box("face", 0.9, size=64.0, age=8.0))
    run_filter(db, detector=None, image=LAYER, quiet=True)
    status, reasons = decision(db, "c/3")
    assert (status, reasons["rule"]) == ("excluded", "no-captions-child-face")
    first, second = reasons["image"]["faces"]
    assert (first["size_px"], first["age"], first["rule"]) == (64.0, 8.0, "age-under-13")
    assert (second["age"], second["rule"]) == (35.0, None)


@pytest.mark.parametrize("size, age, status, rule", [
    (40.0, 14.0, "pending_review", "no-captions-young-face"),  # under 16: review
    (63.0, 8.0, "pending_review", "no-captions-young-face"),  # under 13 but too small to exclude on
    (120.0, 30.0, "pending_review", "no-captions-people-seen"),  # an adult face never clears the photo
    (20.0, None, "pending_review", "no-captions-people-seen"),  # too small for an age: still a face
])
def test_face_sizes_and_ages(db: Database, photos: Path, size, age, status, rule) -> None:
    perceived(db, "c/3", box("face", 0.8, size=size, age=age))
    run_filter(db, detector=None, image=LAYER, quiet=True)
    assert (decision(db, "c/3")[0], decision(db, "c/3")[1]["rule"]) == (status, rule)


def test_a_face_under_the_face_threshold_fires_no_age_rule(db: Database, photos: Path) -> None:
    perceived(db, "c/3", box("face", 0.49, size=80.0, age=5.0))
    run_filter(db, detector=None, image=LAYER, quiet=True)
    assert decision(db, "c/3")[0] == "cleared"


def test_a_captioned_photo_the_lexicon_clears_goes_to_review_when_a_face_looks_like_a_child(
        db: Database, photos: Path) -> None:
    perceived(db, "c/1", box("object", 0.9), box("face", 0.9, size=90.0, age=7.0))
    perceived(db, "c/2", box("object", 0.9), box("face", 0.9, size=90.0, age=40.0))
    run_filter(db, detector=None, image=LAYER, quiet=True)
    status, reasons = decision(db, "c/1")
    assert (status, reasons["rule"], reasons["captions"]) == ("pending_review", "captions-cleared-face-looks-young", 1)
    assert reasons["image"]["faces"][0]["rule"] == "age-under-13"
    status, reasons = decision(db, "c/2")  # adults: the lexicon's clearance stands, with the evidence beside it
    assert (status, reasons["rule"]) == ("cleared", "captions-without-child-words")
    assert reasons["image"]["verdict"] == "people"


def test_unperceived_and_replaced_photos_stay_pending(db: Database, photos: Path) -> None:
    perceived(db, "c/4")  # nothing found in the bytes perceived ...
    perceived(db, "c/5", perceiver="another-perceiver")  # ... a perceiver whose thresholds are not these
    run_filter(db, detector=None, image=LAYER, quiet=True)
    assert decision(db, "c/4")[0] == "cleared"
    (photos / "images/val2017/000000000004.png").write_bytes(solid((1, 2, 3)))  # ... then the file is replaced
    ingest(db, photos)
    run_filter(db, detector=None, image=LAYER, quiet=True)
    for image_id in ("c/4", "c/5", "c/6"):
        status, reasons = decision(db, image_id)
        assert (status, reasons["rule"]) == ("pending_review", "no-captions-not-perceived")
        assert reasons["image"] == {"verdict": "not-perceived", "perceiver": PERCEIVER,
                                    "thresholds": THRESHOLDS.as_dict()}
    assert decision(db, "c/1")[0] == "cleared"  # captioned and not perceived: the lexicon decides, as before


def test_a_moderator_decision_is_kept(db: Database, photos: Path) -> None:
    run_filter(db, detector=None, image=LAYER, quiet=True)
    moderation.decide(db, ["c/3"], "cleared", moderator="mia", reason="a landscape, checked by eye")
    perceived(db, "c/3", box("face", 0.9, size=90.0, age=6.0))  # perception later says child: the moderator stands
    report = run_filter(db, detector=None, image=LAYER, quiet=True)
    assert report.moderated_kept == 1
    assert db.fetch_all("SELECT status, decided_by FROM minors_decisions WHERE image_id = 'c/3'") == [
        ("cleared", "moderator")]


def test_with_the_opencv_detector_too_a_photo_is_cleared_only_when_both_clear_it(db: Database, photos: Path) -> None:
    class SeesPeopleIn(object):
        id = "fixed-detector"

        def count(self, path: str, sha256: str):
            return np.array([1.0 if path.endswith("000000000003.png") else 0.0])

        def sees_people(self, counts) -> bool:
            return bool(np.sum(counts) > 0)

        def describe(self, counts) -> dict:
            return {"people": int(np.sum(counts))}

    perceived(db, "c/3")  # perception sees nobody, the detector sees someone
    perceived(db, "c/4", box("object", 0.9))  # perception sees someone, the detector nobody
    perceived(db, "c/5")
    report = run_filter(db, detector=SeesPeopleIn(), image=LAYER, quiet=True)
    assert report.version == f"{lexicon.RULE_SET_VERSION}+image-{THRESHOLDS.id}+fixed-detector"
    three, four, five = (decision(db, f"c/{i}") for i in (3, 4, 5))
    assert (three[0], three[1]["rule"], three[1]["image"]["verdict"]) == (
        "pending_review", "no-captions-people-detected", "nobody")
    assert (four[0], four[1]["rule"]) == ("pending_review", "no-captions-people-seen")
    assert (five[0], five[1]["rule"]) == ("cleared", "no-captions-nobody-seen")


def scores(rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index", columns=["person", "face"])


def test_calibration_catches_every_photo_with_people_at_twice_the_thresholds() -> None:
    best = scores({"a": (0.9, 0.0), "b": (0.08, 0.0), "c": (0.0, 0.6), "d": (0.3, 0.95),  # people
                   "e": (0.03, 0.0), "f": (0.05, 0.0), "g": (0.0, 0.4), "h": (0.0, 0.0)})  # nobody
    people = pd.Series({i: i in "abcd" for i in best.index})
    person, face = image_layer.calibrate(best, people)
    # only its face catches c (0.6), so faces count from 0.3; the person threshold follows b (0.08), halved
    assert (person, face) == pytest.approx((0.04, 0.3))
    assert image_layer.caught(best, 2 * person, 2 * face)[people].all()
    assert list(best.index[~image_layer.caught(best, person, face)]) == ["e", "h"]
    unseen = scores({"a": (0.9, 0.7), "x": (0.0, 0.0)})  # x: people, but nothing stored: beyond any threshold
    assert image_layer.beyond_reach(unseen) == ["x"]
    assert image_layer.calibrate(unseen, pd.Series({"a": True, "x": True})) == pytest.approx((0.45, 0.35))
    with pytest.raises(ValueError, match="nothing to calibrate on"):
        image_layer.calibrate(unseen.loc[["x"]], pd.Series({"x": True}))


def test_calibrate_on_labels_writes_a_file_the_filter_loads(db: Database, photos: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,child_under_16,people,note\n3,no,yes,a man\n4,yes,yes,a boy\n5,no,no,a field\n"
                      "6,no,no,a car\n")
    perceived(db, "c/3", box("object", 0.5))
    perceived(db, "c/4", box("object", 0.02), box("face", 0.8, size=70.0, age=9.0))
    perceived(db, "c/5", box("object", 0.03))
    perceived(db, "c/6")
    out = tmp_path / "thresholds.json"
    stored = image_layer.calibrate_on_labels(db, labels, "c", PERCEIVER, out)
    assert (stored["person"], stored["face"]) == (0.25, 0.4)
    assert stored["figures"]["at_twice"]["recall_people"] == 1.0 and stored["figures"]["at_thresholds"][
        "nobody_cleared"] == 2
    assert len(stored["labels_sha256"]) == 64 and stored["perceiver"] == PERCEIVER
    layer = image_layer.load(out, PERCEIVER)
    assert layer.id == f"image-{stored['id']}"
    run_filter(db, detector=None, image=layer, quiet=True)
    assert [decision(db, f"c/{i}")[0] for i in (3, 4, 5, 6)] == ["pending_review", "excluded", "cleared", "cleared"]
    with pytest.raises(image_layer.ThresholdsError, match="calibrated for perceiver test-perceiver, not the current x"):
        image_layer.load(out, "x")
    with pytest.raises(image_layer.ThresholdsError, match="calibrate-perception"):
        image_layer.load(tmp_path / "missing.json", PERCEIVER)


def test_the_shipped_thresholds_belong_to_the_current_perceiver_and_labels() -> None:
    """A new perceiver (weights or settings) or relabelled photos need `calibrate-perception` run again."""
    from pipeline.perception import PERCEIVER_ID

    stored = json.loads(image_layer.THRESHOLDS_FILE.read_text())
    labels = Path(__file__).parent / "data" / "minors_labels.csv"
    assert stored["perceiver"] == PERCEIVER_ID
    assert stored["labels_sha256"] == image_layer.read_labels(labels, "coco-mini")[1]
    assert stored["figures"]["at_twice"]["people_missed"] == stored["figures"]["people_beyond_reach"]
    assert image_layer.load(perceiver=PERCEIVER_ID).id == f"image-{stored['id']}"


REAL = {  # val2017 photo -> status under the shipped thresholds (labels in tests/data/minors_labels.csv)
    117425: "excluded",  # a baby with a cupcake: a face of 92 px estimated under 13
    476704: "pending_review",  # faint, partial figures in a bus: a weak person box (0.05) still holds it
    427034: "pending_review",  # a dachshund at a laptop, an adult's hand and arm
    20247: "cleared",  # bears, nobody
    161044: "pending_review",  # planes in the sky, nobody, but a false person box above the floor: fail closed
}


def test_real_photos_through_the_perceiver_and_the_shipped_thresholds(db: Database, tmp_path: Path,
                                                                      shared_data: Path, shared_weights: Path) -> None:
    from pipeline.perceive import Perceiver, perceive
    from pipeline.perception import PERCEIVER_ID

    source = shared_data / "coco-mini" / "images" / "val2017"
    files = {f"{i:012d}.jpg": (source / f"{i:012d}.jpg").read_bytes() for i in REAL}  # copied to tmp only
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 1, "height": 1} for i in REAL]
    ingest(db, coco_dir(tmp_path / "c", images=images, captions=[], files=files))
    perceive(db, Perceiver(shared_weights), quiet=True)
    run_filter(db, detector=None, image=image_layer.load(perceiver=PERCEIVER_ID), quiet=True)
    assert {int(i.split("/")[1]): decision(db, i)[0] for i in (f"c/{n}" for n in REAL)} == REAL
    baby = decision(db, "c/117425")[1]["image"]
    assert baby["faces"][0]["rule"] == "age-under-13" and baby["persons"]


def test_calibrate_perception_and_filter_commands(tmp_path: Path, capsys) -> None:
    from pipeline.cli import main
    from pipeline.perception import PERCEIVER_ID

    path = tmp_path / "s.duckdb"
    images = [{"id": i, "file_name": f"{i:012d}.png", "width": 16, "height": 16} for i in (1, 2)]
    root = coco_dir(tmp_path / "c", images=images, captions=[],
                    files={f"{i:012d}.png": solid((90 * i, 20, 20)) for i in (1, 2)})
    with Database(path) as db:
        ingest(db, root)
        perceived(db, "c/1", box("object", 0.4), perceiver=PERCEIVER_ID)
        perceived(db, "c/2", box("object", 0.01), perceiver=PERCEIVER_ID)
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,child_under_16,people\n1,no,yes\n2,no,no\n")
    out = tmp_path / "t.json"
    assert main(["calibrate-perception", "--db", str(path), "--labels", str(labels), "--dataset", "c",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "person 0.2000" in printed and "at twice: recall on photos with people 1.000, 1 of 1" in printed
    assert main(["filter", "--db", str(path), "--image-thresholds", str(out), "--quiet"]) == 0
    assert "no-captions-people-seen 1, no-captions-nobody-seen 1" in capsys.readouterr().out
    out.write_text(out.read_text().replace(PERCEIVER_ID, "older-weights"))
    assert main(["filter", "--db", str(path), "--image-thresholds", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "image layer off" in captured.err and "not the current" in captured.err
    assert "2 pending_review" in captured.out and "no-captions-fail-closed 2" in captured.out
    assert main(["calibrate-perception", "--db", str(path), "--labels", str(tmp_path / "none.csv")]) == 2
    assert "cannot read it" in capsys.readouterr().err
