"""What the detectors saw, drawn for moderators (dashboard/evidence.py), and the Minors review page showing it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from builders import coco_dir
from dashboard import evidence
from dashboard_support import MODERATOR, open_app
from db import perception
from db.database import Database
from pipeline.cli import main as pipeline_main
from pipeline.perception import PERCEIVER_ID

GREY = (200, 200, 200)
COLUMNS = ["image_id", "kind", "label", "score", "x0", "y0", "x1", "y1", "size_px", "age"]


def jpeg(size: tuple[int, int], colour=GREY, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def pixel(data: bytes, xy: tuple[int, int]) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").getpixel(xy)


def near(colour: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    """JPEG moves colours a little, never from orange to grey."""
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected))


def rows(*detections: tuple) -> pd.DataFrame:
    return pd.DataFrame([("p", *d) for d in detections], columns=COLUMNS)


FACE_CHILD = ("face", "face", 0.9, 400.0, 200.0, 1000.0, 600.0, 400.0, 7.4)
PERSON = ("object", "person", 0.55, 100.0, 100.0, 1900.0, 950.0, 850.0, None)
DOG = ("object", "dog", 0.6, 1200.0, 700.0, 1800.0, 900.0, 200.0, None)


def test_boxes_land_at_the_scaled_coordinates_in_their_colours() -> None:
    """Boxes are in full-resolution pixels (2000 x 1000 here); the display bytes are half that: 1000 x 500."""
    found = evidence.select(rows(FACE_CHILD, PERSON, DOG), 2000, 1000)
    drawn = evidence.annotate(jpeg((1000, 500)), found)
    with Image.open(io.BytesIO(drawn)) as image:
        assert image.size == (1000, 500)
    face, person = evidence.COLOURS[evidence.FACE], evidence.COLOURS[evidence.PERSON]
    assert near(pixel(drawn, (201, 200)), face)  # the face's left edge: x0 400 -> 200
    assert near(pixel(drawn, (498, 200)), face)  # its right edge: x1 1000 -> 500
    assert near(pixel(drawn, (350, 298)), face)  # its bottom edge: y1 600 -> 300
    assert near(pixel(drawn, (400, 200)), GREY)  # where the unscaled left edge would be: inside, the photo
    assert near(pixel(drawn, (51, 300)), person)  # the person's left edge: x0 100 -> 50
    assert near(pixel(drawn, (948, 300)), person)  # its right edge: x1 1900 -> 950
    assert near(pixel(drawn, (600, 400)), evidence.COLOURS[evidence.OBJECT])  # the dog: x0 1200 -> 600
    assert near(pixel(drawn, (750, 400)), GREY)  # an outline only, no label
    with Image.open(io.BytesIO(drawn)) as image:  # the face's label: on the face colour, just above its box
        band = [image.convert("RGB").getpixel((x, y)) for x in range(204, 300) for y in range(80, 98)]
    assert sum(near(c, face) for c in band) > len(band) / 3 and sum(max(c) < 80 for c in band) > 20


def test_what_is_drawn_follows_the_decision_thresholds_and_the_caps() -> None:
    weak_face = ("face", "face", 0.5, 0.0, 0.0, 10.0, 10.0, 10.0, None)
    weak_dog = ("object", "dog", 0.1, 0.0, 0.0, 5.0, 5.0, 5.0, None)
    many = [("object", "person", 0.03 + i / 1000, 0.0, 0.0, 9.0, 9.0, 9.0, None) for i in range(30)]
    found = evidence.select(rows(FACE_CHILD, weak_face, DOG, weak_dog, *many), 400, 200, {"face": 0.78})
    groups = [box.group for box in found.boxes]
    assert groups == ["object"] + ["person"] * evidence.MAX_DRAWN["person"] + ["face"]  # faces drawn last: on top
    assert [b.label for b in found.boxes if b.group == "object"] == ["dog"] and found.boxes[0].score == 0.6
    assert found.not_drawn == 30 - evidence.MAX_DRAWN["person"]
    assert found.boxes[-1].caption == "face 0.90 · age ~7" and found.boxes[1].caption == "person 0.06"
    assert evidence.summary(found) == ("1 face(s), youngest ~7; 25 person box(es), best 0.06; 1 other object(s): "
                                       "dog; 5 weaker box(es) not drawn")
    table = evidence.table(found)
    assert table.iloc[0].to_dict() == {"what": "face", "score": 0.9, "size_px": 400, "age": 7.4,
                                       "box": "400,200 – 1000,600"}
    reasons = {"rule": "no-captions-people-seen", "image": {"thresholds": {"person": 0.011, "face": 0.78}}}
    assert evidence.thresholds_of(reasons) == {"person": 0.011, "face": 0.78}
    assert evidence.thresholds_of({"rule": "caption-child-words"}) == {}
    assert evidence.summary(evidence.select(rows(), 10, 10)) == "no person, face or object found"


@pytest.fixture
def perceived_db(tmp_path: Path) -> Path:
    """Two photos: 1 (2000 x 1000, captioned "a little boy": excluded) perceived with a child's face, a person
    and a dog; 2 (captioned "a toddler") never perceived."""
    images = [{"id": i, "file_name": f"{i:012d}.png", "width": 2000, "height": 1000} for i in (1, 2)]
    captions = [{"id": 11, "image_id": 1, "caption": "A little boy with a dog."},
                {"id": 12, "image_id": 2, "caption": "A toddler in a room."}]
    data = coco_dir(tmp_path / "c", images=images, captions=captions,
                    files={f"{i:012d}.png": jpeg((2000, 1000), fmt="PNG") for i in (1, 2)})
    path = tmp_path / "studio.duckdb"
    assert pipeline_main(["ingest", "--data", str(data), "--db", str(path), "--quiet"]) == 0
    with Database(path) as db:
        sha = db.fetch_all("SELECT sha256 FROM images WHERE id = 'c/1'")[0][0]
        found = pd.DataFrame([("c/1", sha, "test-model", kind, label, score, x0, y0, x1, y1, size, age, "test-age")
                              for kind, label, score, x0, y0, x1, y1, size, age in (
                                  ("face", "face", 0.9, 500, 200, 900, 600, 400, 7.2),
                                  ("object", "person", 0.5, 400, 100, 1200, 950, 800, None),
                                  ("object", "dog", 0.7, 1300, 500, 1900, 950, 450, None))],
                             columns=["image_id", "sha256", *perception.DETECTION_COLUMNS])
        photos = pd.DataFrame([{"image_id": "c/1", "sha256": sha, "width": 2000, "height": 1000, "objects": 2,
                                "faces": 1, "seconds": 0.1}])
        with db.write() as cur:
            perception.save_perceived(cur, PERCEIVER_ID, photos, found)
    assert pipeline_main(["filter", "--db", str(path), "--quiet"]) == 0
    return path


def test_review_page_draws_the_boxes_with_score_and_age(monkeypatch: pytest.MonkeyPatch, perceived_db: Path) -> None:
    drawn: dict[tuple, bytes] = {}
    real_annotate = evidence.annotate

    def spy(data: bytes, found: evidence.Evidence) -> bytes:
        drawn[found.boxes] = real_annotate(data, found)
        return drawn[found.boxes]

    monkeypatch.setattr(evidence, "annotate", spy)
    at = open_app(monkeypatch, perceived_db, MODERATOR, page="minors_page.py")
    at.segmented_control(key="minors_view").set_value("All decisions").run()  # the grid (the page opens on "To decide")
    assert at.multiselect(key="minors_bulk_ids").options == ["c/1", "c/2"]
    captions = [c.value for c in at.caption]
    assert "1 face(s), youngest ~7; 1 person box(es), best 0.50; 1 other object(s): dog" in captions
    assert "Not perceived yet: run `python -m pipeline perceive`." in captions  # c/2
    assert [e.label for e in at.expander if e.label.startswith("What the detectors saw")] == \
        ["What the detectors saw (3 boxes)"]
    table = next(df.value for df in at.dataframe if "age" in df.value.columns)
    assert table[["what", "score"]].values.tolist() == [["face", 0.9], ["person", 0.5], ["dog", 0.7]]
    assert table["age"].iloc[0] == 7.2 and table["age"].iloc[1:].isna().all()
    assert len(at.image) == 3  # c/1 in the queue and in its evidence view, c/2 plain

    (boxes, annotated), = drawn.items()
    assert [b.caption for b in boxes] == ["dog 0.70", "person 0.50", "face 0.90 · age ~7"]
    # The display bytes are 1600 x 800 (pipeline/photos.py): every box is scaled by 0.8.
    with Image.open(io.BytesIO(annotated)) as image:
        assert image.size == (1600, 800)
    assert near(pixel(annotated, (401, 400)), evidence.COLOURS[evidence.FACE])  # face x0 500 -> 400
    assert near(pixel(annotated, (500, 400)), GREY)  # where the unscaled edge would be: the photo
    assert near(pixel(annotated, (321, 600)), evidence.COLOURS[evidence.PERSON])  # person x0 400 -> 320
    with Database(perceived_db) as db:
        reasons = json.loads(db.fetch_all("SELECT reasons FROM minors_decisions WHERE image_id = 'c/1'")[0][0])
    assert reasons["rule"] == "caption-child-words"
