"""The minors filter on the real COCO-mini photos against labels made by looking at each one."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from builders import ingest
from db.database import Database
from pipeline.minors.detector import NAMES, PeopleDetector
from pipeline.minors.filter import run_filter

LABELS = Path(__file__).parent / "data" / "minors_labels.csv"


def labels() -> dict[str, dict[str, str]]:
    with open(LABELS, newline="") as handle:
        return {f"coco-mini/{row['image_id']}": row for row in csv.DictReader(handle)}


def test_labels_cover_every_photo_once() -> None:
    rows = labels()
    assert len(rows) == 239
    assert {r["child_under_16"] for r in rows.values()} == {"yes", "no", "unsure"}
    assert all(r["people"] in ("yes", "no") for r in rows.values())
    assert all(r["people"] == "yes" for r in rows.values() if r["child_under_16"] == "yes")


@pytest.fixture(scope="module")
def decided(tmp_path_factory, shared_data: Path) -> dict[str, tuple[str, bool]]:
    with Database(tmp_path_factory.mktemp("minors") / "m.duckdb") as db:
        ingest(db, shared_data / "coco-mini")
        run_filter(db, detector=None, quiet=True)
        return {image_id: (status, captioned) for image_id, status, captioned in db.fetch_all(
            "SELECT m.image_id, m.status, i.has_caption FROM minors_decisions m JOIN images i ON i.id = m.image_id")}


def test_recall_on_photos_that_show_children(decided: dict[str, tuple[str, bool]]) -> None:
    children = [image_id for image_id, row in labels().items() if row["child_under_16"] == "yes"]
    caught = [image_id for image_id in children if decided[image_id][0] != "cleared"]
    assert len(children) == 16
    assert len(caught) / len(children) >= 0.95, sorted(set(children) - set(caught))


def test_uncaptioned_photos_all_wait_for_a_moderator(decided: dict[str, tuple[str, bool]]) -> None:
    uncaptioned = {status for status, captioned in decided.values() if not captioned}
    assert uncaptioned == {"pending_review"}
    assert sum(1 for _, captioned in decided.values() if not captioned) == 80


def test_people_detector_on_real_and_blank_photos(shared_data: Path, tmp_path: Path) -> None:
    from PIL import Image

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    detector = PeopleDetector()
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (120, 160, 200)).save(blank)
    assert not detector.sees_people(detector.count(str(blank), sha(blank)))
    girl_with_bat = shared_data / "coco-mini/images/train2017/000000544238.jpg"  # labelled: a child, clearly visible
    counts = detector.count(str(girl_with_bat), sha(girl_with_bat))
    assert counts.shape == (len(NAMES),) and detector.sees_people(counts)
    assert detector.count(str(tmp_path / "missing.jpg"), sha(blank)) is None
    assert np.all(counts >= 0)
