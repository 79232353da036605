"""Small, valid datasets of each layout, written into a temp folder, that an attempt then damages in one place.

Every builder writes clean data whose ingest rejects nothing, so any reject or missing row after the damage is
the damage's doing. Photos are generated (tiny JPEGs), or copied from the shared COCO-mini into /tmp only.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

from PIL import Image

IMG = [f"{1000000 + i}_{0xabc00 + i * 7919:x}.jpg" for i in range(8)]
TOKENS = "Flickr8k.token.txt"
EXPERTS = "ExpertAnnotations.txt"
CROWD = "CrowdFlowerAnnotations.txt"
TRAIN = "Flickr_8k.trainImages.txt"
TEST = "Flickr_8k.testImages.txt"
# A line of each Flickr file that is valid and uses fresh keys: damaged, it is "the one bad line".
FRESH = {
    TOKENS: [f"{IMG[5]}#2", "A red kite flies over a sandy beach ."],
    EXPERTS: [IMG[5], f"{IMG[0]}#1", "2", "3", "4"],
    CROWD: [IMG[5], f"{IMG[0]}#1", "0.5", "1", "1"],
    TRAIN: ["1999999_abcdef.jpg"],
}
FEEDS = {TOKENS: "captions", EXPERTS: "expert_ratings", CROWD: "crowd_ratings", TRAIN: None}


def write_lines(path: Path, lines: list[str | bytes], newline: bytes = b"\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + newline for ln in lines))
    return path


def flickr_lines() -> dict[str, list[str]]:
    """The clean Flickr8k text files, line by line (tab-separated, no headers)."""
    return {
        TOKENS: [f"{IMG[i]}#{n}\tA dog number {i} runs on the grass , take {n} ." for i in range(6) for n in (0, 1)]
        [:11],  # 11 captions: IMG[5]#1 is left free
        EXPERTS: [f"{IMG[i]}\t{IMG[i + 1]}#0\t{1 + i % 4}\t{1 + (i + 1) % 4}\t{1 + (i + 2) % 4}" for i in range(4)],
        CROWD: [f"{IMG[i]}\t{IMG[i + 1]}#0\t{share}\t{yes}\t{no}"
                for i, (share, yes, no) in enumerate([("0", 0, 3), ("1", 3, 0), ("0.333333", 1, 2), ("0.5", 2, 2)])],
        TRAIN: [IMG[i] for i in range(4)],
        TEST: [IMG[4], IMG[5]],
    }


def flickr_dir(root: Path, overrides: dict[str, list[str | bytes]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in {**flickr_lines(), **(overrides or {})}.items():
        write_lines(root / name, lines)
    return root


def jpeg(size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 30, 60), **save) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", **save)
    return buffer.getvalue()


def encoded(img: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **save)
    return buffer.getvalue()


def withsense_dir(root: Path) -> Path:
    """The With Sense layout: comma CSV with header and quotes, TSVs, '|' test queries with a pandas index."""
    a, b, c = IMG[0], IMG[1], IMG[2]
    write_lines(root / "train_dataset.csv", [
        "image,query_id,query_text",
        f"{a},{b}#0,A black dog and a spotted dog are fighting",
        f"{b},{b}#0,A black dog and a spotted dog are fighting",
        f'{c},{a}#1,"A girl, in pink, going into a ""wooden"" building ."',
    ])
    write_lines(root / "ExpertAnnotations.tsv",
                [f"{a}\t{b}#0\t1\t1\t2", f"{b}\t{b}#0\t4\t4\t4", f"{c}\t{a}#1\t3\t4\t3"])
    write_lines(root / "CrowdAnnotations.tsv", [
        "image\tquery_id\tshare\tn_yes\tn_no", f"{a}\t{b}#0\t0\t0\t3", f"{b}\t{b}#0\t1\t3\t0"])
    # Ten rows, so that one damaged row stays a minority when the dialect is sniffed.
    write_lines(root / "test_queries.csv", ["|query_id|query_text|image"] + [
        f"{i}|test{i}.jpg#0|{'Two dogs are having a water fight' if i % 2 else 'A man rides a bike'} {i} .|test{i}.jpg"
        for i in range(1, 11)])
    write_lines(root / "test_images.csv", ["image"] + [f"test{i}.jpg" for i in range(1, 11)])
    (root / "train_images").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate((a, b)):
        (root / "train_images" / name).write_bytes(jpeg(color=(40 * i, 90, 20)))
    (root / "test_images").mkdir()
    (root / "test_images" / "test1.jpg").write_bytes(jpeg((40, 30)))
    return root


def coco_records(n: int = 4) -> dict:
    """Clean COCO documents for photos 1..n: two captions and one object each, categories person and dog."""
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 32, "height": 24} for i in range(1, n + 1)]
    captions = [{"image_id": i, "id": 100 + 2 * i + k, "caption": f"A dog number {i} on a lawn, view {k}."}
                for i in range(1, n + 1) for k in (0, 1)]
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 18, "name": "dog", "supercategory": "animal"}]
    objects = [{"image_id": i, "id": 500 + i, "category_id": 18, "bbox": [1, 1, 5, 5]} for i in range(1, n + 1)]
    return {"captions": {"images": images, "annotations": captions},
            "instances": {"images": images, "annotations": objects, "categories": categories}}


def coco_dir(root: Path, docs: dict | None = None, *, raw: dict[str, bytes] | None = None, n: int = 4,
             split: str = "val2017") -> Path:
    """A COCO folder; ``docs`` replaces documents, ``raw`` replaces a JSON file's bytes (by kind)."""
    docs = {**coco_records(n), **(docs or {})}
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    for kind, doc in docs.items():
        data = (raw or {}).get(kind)
        (ann / f"{kind}_{split}.json").write_bytes(data if data is not None else json.dumps(doc).encode())
    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        (folder / f"{i:012d}.jpg").write_bytes(jpeg(color=(50 * i % 255, 120, 200)))
    return root


def coco_from_mini(source: Path, root: Path, captioned: int = 24, uncaptioned: int = 4) -> Path:
    """A COCO folder of some COCO-mini val2017 photos (copied to /tmp) with their records: the first ``captioned``
    photos that have captions and the first ``uncaptioned`` that have none (fit-bridge needs 20 captioned)."""
    folder = source / "images" / "val2017"
    docs = {kind: json.loads((source / "annotations" / f"{kind}_val2017.json").read_text())
            for kind in ("captions", "instances")}
    with_captions = {r["image_id"] for r in docs["captions"]["annotations"]}
    names = sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg")
    chosen = [n for n in names if int(Path(n).stem) in with_captions][:captioned] + \
        [n for n in names if int(Path(n).stem) not in with_captions][:uncaptioned]
    ids = {int(Path(n).stem) for n in chosen}
    target = root / "images" / "val2017"
    target.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        shutil.copyfile(folder / name, target / name)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for kind, doc in docs.items():
        doc["images"] = [r for r in doc["images"] if r["id"] in ids]
        doc["annotations"] = [r for r in doc["annotations"] if r["image_id"] in ids]
        for record in doc["annotations"]:
            record.pop("segmentation", None)
        (root / "annotations" / f"{kind}_val2017.json").write_text(json.dumps(doc))
    return root


def replace_with_fifo(path: Path) -> None:
    """A named pipe where the file was: a reader that opens it naively blocks forever."""
    path.unlink()
    os.mkfifo(path)


def replace_with_folder(path: Path) -> None:
    """A folder where the file was."""
    path.unlink()
    path.mkdir()
