"""Embed stage alone, with a tiny deterministic encoder: only new or changed photos, resumable, skips bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builders import coco_dir, image_bytes, ingest
from db import embeddings as store
from db.database import Database
from fakes import ColourEncoder
from pipeline.embed import embed, text_vectors
from pipeline.minors.filter import run_filter


def solid(colour: tuple[int, int, int]) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, "PNG")
    return buffer.getvalue()


def photo_folder(root: Path, files: dict[str, bytes]) -> Path:
    images = [{"id": int(name.split(".")[0]), "file_name": name, "width": 16, "height": 16} for name in files]
    captions = [{"id": 100 + image["id"], "image_id": image["id"], "caption": f"photo {image['id']}"} for image in images]
    return coco_dir(root, images=images, captions=captions, files=files)


@pytest.fixture
def four_photos(db: Database, tmp_path: Path) -> Path:
    root = photo_folder(tmp_path / "c", {"000000000001.png": solid((255, 0, 0)), "000000000002.png": solid((0, 255, 0)),
                                         "000000000003.png": solid((0, 0, 255)), "000000000004.png": image_bytes("zero")})
    (root / "annotations" / "captions_val2017.json").write_text(
        (root / "annotations" / "captions_val2017.json").read_text().replace(
            '"images": [', '"images": [{"id": 5, "file_name": "000000000005.png", "width": 1, "height": 1}, '))
    ingest(db, root)
    run_filter(db, detector=None, quiet=True)  # captions name no child: the photos become visible
    return root


def test_embeds_readable_photos_and_counts_the_rest(db: Database, four_photos: Path) -> None:
    report = embed(db, ColourEncoder(), batch_size=2, workers=0, quiet=True)
    assert (report.embedded, report.skipped) == (3, {"corrupt": 1, "missing": 1})
    ids, vectors = store.visible_vectors(db, "colour-test")
    assert ids == ["c/1", "c/2", "c/3"]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1)
    assert vectors[0].argmax() == 0 and vectors[2].argmax() == 2  # red photo is red, blue is blue


def test_second_run_encodes_nothing_and_changed_photos_are_redone(db: Database, four_photos: Path) -> None:
    embed(db, ColourEncoder(), workers=0, quiet=True)
    again = ColourEncoder()
    report = embed(db, again, workers=0, quiet=True)
    assert (report.embedded, report.already_current, again.batches) == (0, 3, 0)
    (four_photos / "images/val2017/000000000002.png").write_bytes(solid((250, 250, 0)))
    ingest(db, four_photos)  # new bytes -> new sha256
    changed = embed(db, ColourEncoder(), workers=0, quiet=True)
    assert (changed.embedded, changed.already_current) == (1, 2)


def test_killed_run_keeps_finished_batches_and_resumes(db: Database, four_photos: Path) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        embed(db, ColourEncoder(fail_on_batch=2), batch_size=1, workers=0, quiet=True)
    assert store.embedded_count(db, "colour-test") == 1  # batch 1 was committed before the crash
    resumed = embed(db, ColourEncoder(), batch_size=1, workers=0, quiet=True)
    assert (resumed.embedded, resumed.already_current) == (2, 1)


def test_photo_broken_after_ingest_is_reported_not_fatal(db: Database, four_photos: Path) -> None:
    (four_photos / "images/val2017/000000000003.png").write_bytes(b"garbage")  # changed behind ingest's back
    report = embed(db, ColourEncoder(), workers=1, quiet=True)  # through a real loader worker process
    assert report.embedded == 2
    assert [image_id for image_id, _ in report.failed] == ["c/3"]
    assert "sha256 differs" in report.failed[0][1]  # the bytes are not the ones ingested: never decoded


def test_vectors_of_photos_gone_from_the_dataset_are_removed(db: Database, four_photos: Path) -> None:
    embed(db, ColourEncoder(), workers=0, quiet=True)
    (four_photos / "images/val2017/000000000001.png").write_bytes(b"")
    ingest(db, four_photos)
    run_filter(db, detector=None, quiet=True)
    report = embed(db, ColourEncoder(), workers=0, quiet=True)
    assert report.removed == 1
    assert store.visible_vectors(db, "colour-test")[0] == ["c/2", "c/3"]


def test_text_vectors_are_cached_by_text(db: Database) -> None:
    calls = []

    class Counting(ColourEncoder):
        def encode_texts(self, texts):
            calls.append(list(texts))
            return super().encode_texts(texts)

    first = text_vectors(db, Counting(), ["red car", "blue sky", "red car"])
    second = text_vectors(db, Counting(), ["blue sky", "green field"])
    assert calls == [["red car", "blue sky"], ["green field"]]  # new texts only, shortest first
    assert np.allclose(first[1], second[0]) and np.allclose(first[0], first[2])


def test_many_new_texts_are_stored_chunk_by_chunk(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed while encoding keeps the chunks it finished: the next run encodes only the rest."""
    monkeypatch.setattr("pipeline.embed.TEXT_CHUNK", 2)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]

    class DiesOnThirdChunk(ColourEncoder):
        def encode_texts(self, batch):
            if "eeeee" in batch:
                raise KeyboardInterrupt
            return super().encode_texts(batch)

    with pytest.raises(KeyboardInterrupt):
        text_vectors(db, DiesOnThirdChunk(), texts)
    calls = []

    class Counting(ColourEncoder):
        def encode_texts(self, batch):
            calls.append(list(batch))
            return super().encode_texts(batch)

    vectors = text_vectors(db, Counting(), texts)
    assert calls == [["eeeee"]]
    np.testing.assert_allclose(vectors, ColourEncoder().encode_texts(texts), atol=1e-6)


@pytest.mark.parametrize(("draft_side", "decoded"), [(None, (2400, 1800)), (224, (300, 225)), (400, (600, 450))])
def test_a_large_jpeg_is_decoded_at_the_scale_the_encoder_needs(db: Database, tmp_path: Path, draft_side,
                                                                decoded) -> None:
    big = image_bytes(size=(2400, 1800))  # a camera-size JPEG; 1/8 scale is 300x225, 1/4 600x450
    root = photo_folder(tmp_path / "big", {"000000000001.jpg": big})
    ingest(db, root)
    seen = []

    class Sizing(ColourEncoder):
        def preprocess(self, image):
            seen.append(image.size)
            return super().preprocess(image)

    encoder = Sizing()
    encoder.draft_side = draft_side
    assert embed(db, encoder, workers=0, quiet=True).embedded == 1
    assert seen == [decoded]
