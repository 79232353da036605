"""Photos shown and embedded are the bytes decided (issue #12 items 1 and 3): a file replaced after ingest under the
same name, size and mtime is neither embedded nor shown; EXIF orientation is applied wherever a photo is decoded."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from builders import coco_dir, ingest
from dashboard_support import PRODUCT, open_app
from db.database import Database
from fakes import ColourEncoder
from pipeline import photos
from pipeline.embed import embed
from pipeline.minors.filter import run_filter
from test_embed import solid
from test_search_page import colour_encoder, colour_photos  # noqa: F401 - the fixture registers the colour encoder

WIDE = (40, 20)  # stored sideways: EXIF orientation 6 says "turn 90 degrees clockwise to show"


def rotated_jpeg(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image = Image.new("RGB", WIDE, (200, 30, 60))
    image.paste((20, 20, 220), (0, 0, 10, 20))  # a blue band on the left: where it ends up shows the turn
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def replace_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """What `cp -p`, `rsync -t` or a restored backup do: other bytes, same name, same size, same mtime."""
    before = path.stat()
    assert len(data) == before.st_size
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def same_size_other_colour(path: Path) -> bytes:
    """A PNG of another colour padded to exactly the size of the file at ``path`` (decoders ignore bytes after
    the PNG's end chunk)."""
    size = path.stat().st_size
    for colour in ((0, 0, 0), (255, 255, 255), (250, 0, 0), (0, 250, 0), (0, 0, 250)):
        data = solid(colour)
        if len(data) <= size and data != path.read_bytes()[: len(data)]:
            return data + b"\0" * (size - len(data))
    pytest.fail("no smaller PNG of another colour found")


class SizeRecorder(ColourEncoder):
    """Records the size of every photo it is given, as the embed stage hands it over."""

    sizes: list[tuple[int, int]] = []

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        SizeRecorder.sizes.append(image.size)
        return super().preprocess(image)


def two_photos(tmp_path: Path, files: dict[str, bytes]) -> Path:
    images = [{"id": i, "file_name": name, "width": 16, "height": 16} for i, name in enumerate(files, 1)]
    captions = [{"id": 10 * i, "image_id": i, "caption": "A wall."} for i in range(1, len(files) + 1)]
    return coco_dir(tmp_path / "c", images=images, captions=captions, files=files)


def test_embed_refuses_bytes_replaced_since_ingest(db: Database, tmp_path: Path) -> None:
    root = two_photos(tmp_path, {"000000000001.png": solid((0, 0, 250)), "000000000002.png": solid((250, 0, 0))})
    ingest(db, root)
    first = root / "images" / "val2017" / "000000000001.png"
    replace_keeping_size_and_mtime(first, same_size_other_colour(first))
    report = embed(db, ColourEncoder(), workers=0, quiet=True)
    assert report.embedded == 1
    [(image_id, reason)] = report.failed
    assert image_id == "c/1" and "sha256 differs" in reason
    assert db.fetch_all("SELECT image_id FROM embeddings") == [("c/2",)]


def test_embed_sees_a_rotated_photo_upright(db: Database, tmp_path: Path) -> None:
    ingest(db, two_photos(tmp_path, {"000000000001.jpg": rotated_jpeg()}))
    SizeRecorder.sizes = []
    assert embed(db, SizeRecorder(), workers=0, quiet=True).embedded == 1
    assert SizeRecorder.sizes == [(20, 40)]


def test_display_bytes_are_upright_and_only_the_decided_bytes(tmp_path: Path) -> None:
    path = tmp_path / "sideways.jpg"
    path.write_bytes(rotated_jpeg())
    sha = photos.hashlib.sha256(path.read_bytes()).hexdigest()
    with Image.open(io.BytesIO(photos.display_bytes(path, sha))) as shown:
        assert shown.size == (20, 40)
        top = np.asarray(shown.convert("RGB"))[:5].mean(axis=(0, 1))
        assert top[2] > 150 and top[0] < 100  # the blue band was on the left; turned clockwise it is on top
    path.write_bytes(solid((0, 250, 0)))
    assert photos.display_bytes(path, sha) is None
    with pytest.raises(photos.PhotoUnavailable, match="sha256 differs"):
        photos.read_verified(path, sha)
    with pytest.raises(photos.PhotoUnavailable, match="cannot read"):
        photos.read_verified(tmp_path / "gone.jpg", sha)


def test_a_broken_exif_block_leaves_the_photo_as_it_is() -> None:
    image = Image.new("RGB", WIDE)
    image.info["exif"] = b"Exif\x00\x00garbage"
    assert photos.upright(image).size == WIDE


def test_search_page_does_not_show_a_cleared_photo_whose_file_was_replaced(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipeline.cli import main as pipeline_main

    root = colour_photos(tmp_path / "c", photos=6)
    path = tmp_path / "studio.duckdb"
    assert pipeline_main(["ingest", "--data", str(root), "--db", str(path), "--quiet"]) == 0
    with Database(path) as db:
        run_filter(db, detector=None, quiet=True)
        embed(db, ColourEncoder(), workers=0, quiet=True)
    red = root / "images" / "val2017" / "000000000003.png"  # photo 3 is red and cleared
    replace_keeping_size_and_mtime(red, same_size_other_colour(red))
    monkeypatch.setenv("STUDIO_DB", str(path))
    at = open_app(monkeypatch, path, PRODUCT, page="search_page.py")
    at.text_input(key="search_query").input("red").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [cb.key.removeprefix("sel_") for cb in at.checkbox if cb.key and cb.key.startswith("sel_")]
    assert "c/3" in shown  # still a search result (its vector is of the decided bytes) ...
    assert len(at.get("image")) == len(shown) - 1  # ... but its replaced file is never shown
    assert any(c.value == "(photo not available)" for c in at.caption)


def test_the_people_detector_reads_only_the_decided_bytes(tmp_path: Path) -> None:
    from pipeline.minors.detector import PeopleDetector

    path = tmp_path / "photo.jpg"
    path.write_bytes(rotated_jpeg())
    sha = photos.hashlib.sha256(path.read_bytes()).hexdigest()
    detector = PeopleDetector()
    assert detector.count(str(path), sha) is not None
    assert detector.count(str(path), "0" * 64) is None  # other bytes than decided: no detection, stays pending


def test_a_vector_of_other_bytes_than_the_cleared_ones_is_not_searchable(db: Database, tmp_path: Path) -> None:
    from pipeline.search import Searcher

    ingest(db, two_photos(tmp_path, {"000000000001.png": solid((0, 0, 250)), "000000000002.png": solid((250, 0, 0))}))
    run_filter(db, detector=None, quiet=True)
    embed(db, ColourEncoder(), workers=0, quiet=True)
    # The photo was re-ingested with new bytes and cleared again; its vector is still the old bytes' one.
    with db.write() as cur:
        cur.execute("UPDATE embeddings SET sha256 = 'old-bytes' WHERE image_id = 'c/2'")
    assert [hit.image_id for hit in Searcher(db, ColourEncoder()).search("red", k=10).hits] == ["c/1"]
