"""Small datasets written by the tests themselves, one folder per layout."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from db.database import Database
from pipeline.ingest import IngestResult, ingest_dataset
from pipeline.layouts import detect

IMG_A = "1000268201_693b08cb0e.jpg"
IMG_B = "1001773457_577c3a7d70.jpg"
IMG_C = "1002674143_1b742ab4b8.jpg"


def write_lines(path: Path, lines: list[str | bytes], *, newline: bytes = b"\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + newline for ln in lines))
    return path


def flickr_dir(root: Path, *, tokens=None, expert=None, crowd=None, splits=None) -> Path:
    """A Flickr8k text folder; each argument is a list of lines (None writes a small valid default)."""
    root.mkdir(parents=True, exist_ok=True)
    tokens = tokens if tokens is not None else [
        f"{IMG_A}#0\tA child in a pink dress is climbing up a set of stairs .",
        f"{IMG_A}#1\tA girl going into a wooden building .",
        f"{IMG_B}#0\tA black dog and a spotted dog are fighting",
        f"{IMG_C}#0\tA little girl covered in paint sits in front of a painted rainbow .",
    ]
    expert = expert if expert is not None else [
        f"{IMG_A}\t{IMG_B}#0\t1\t1\t2",
        f"{IMG_B}\t{IMG_B}#0\t4\t4\t3",
    ]
    crowd = crowd if crowd is not None else [
        f"{IMG_A}\t{IMG_A}#0\t1\t3\t0",
        f"{IMG_B}\t{IMG_B}#0\t0.666667\t2\t1",
    ]
    write_lines(root / "Flickr8k.token.txt", tokens)
    write_lines(root / "ExpertAnnotations.txt", expert)
    write_lines(root / "CrowdFlowerAnnotations.txt", crowd)
    for split, lines in (splits or {}).items():
        write_lines(root / f"Flickr_8k.{split}Images.txt", lines)
    return root


def image_bytes(kind: str = "ok", size: tuple[int, int] = (32, 24), fmt: str = "JPEG") -> bytes:
    """A real encoded image, or a broken one: 'zero', 'truncated', 'text'."""
    if kind == "zero":
        return b""
    if kind == "text":
        return b"this is not an image\n"
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 60)).save(buffer, fmt)
    data = buffer.getvalue()
    return data[: len(data) // 2] if kind == "truncated" else data


def coco_dir(root: Path, *, images: list[dict], captions: list[dict], objects: list[dict] | None = None,
             files: dict[str, bytes] | None = None, split: str = "val2017") -> Path:
    """A COCO folder: captions/instances JSON for one split and the given image files."""
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / f"captions_{split}.json").write_text(json.dumps({"images": images, "annotations": captions}))
    if objects is not None:
        categories = [{"id": 1, "name": "person", "supercategory": "person"},
                      {"id": 18, "name": "dog", "supercategory": "animal"}]
        (ann / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": objects, "categories": categories}))
    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
    return root


def ingest(db: Database, root: Path, **kwargs) -> IngestResult:
    reader = detect(root)
    assert reader is not None, f"no layout detected in {root}"
    result = ingest_dataset(db, root, reader, quiet=True, **kwargs)
    for count in result.files:
        assert count.accepted + count.rejected == count.read, count
    return result


def rejects(db: Database, file: str | None = None) -> list[tuple[str, int, str, str]]:
    """(file, line, raw, reason) rows, optionally of one file, in line order."""
    rows = db.fetch_all("SELECT file, line, raw, reason FROM rejects ORDER BY file, line")
    return [r for r in rows if file is None or r[0] == file]


def file_count(result: IngestResult, file: str):
    return next(f for f in result.files if f.file == file)


def table_counts(db: Database) -> dict[str, int]:
    tables = [r[0] for r in db.fetch_all(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1")]
    return {t: db.fetch_all(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
