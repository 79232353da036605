"""Symlinks, hidden files, sub-folders and other odd entries in dataset folders.

Held: nothing outside the dataset's folder is read (a link that resolves outside is rejected with a reason: no
``ok`` photo, no sha256 of the outside file, none of its lines or records stored, not even as a reject's raw
text); a dangling link or a loop is one reject and the rest of the dataset loads; a hidden file, a sub-folder or
a FIFO in an image folder is reported, not skipped without a word; nothing hangs. A link that stays inside the
dataset, and a dataset folder that is itself a link, are fine.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from abuse_kit import build, judge
from abuse_kit.core import Attempt, Ctx, quick_only
from abuse_kit.judge import Broke

DS = "coco-x"
FOLDER = "images/val2017"


def _outside(tmp: Path) -> tuple[Path, bytes]:
    secret = tmp / "outside" / "secret.jpg"
    secret.parent.mkdir(parents=True, exist_ok=True)
    data = build.jpeg((48, 36), (1, 2, 3))
    secret.write_bytes(data)
    return secret, data


def _ingest(ctx: Ctx, root: Path, tmp: Path, timeout: float = 60) -> tuple[Path, judge.Run]:
    db = tmp / "db.duckdb"
    run = judge.ingested(ctx.ingest(root, db, timeout=timeout), db, root.name)
    return db, run


def _good_photos(db: Path, dataset: str = DS, expected: int = 4) -> None:
    good = judge.query(db, "SELECT count(*) FROM images WHERE dataset = ? AND status = 'ok' "
                           "AND path LIKE 'images/val2017/00000000000_.jpg'", [dataset])[0][0]
    if good != expected:
        raise Broke(f"{good} of the {expected} good photos are ok")


def _refused(db: Path, path: str, outside_sha: str | None = None, dataset: str = DS) -> str:
    """``path`` (a file or a folder prefix) was not read, and a reject names it."""
    rows = judge.query(db, "SELECT path, status, sha256 FROM images WHERE dataset = ? AND path LIKE ? || '%'",
                       [dataset, path])
    read = [r for r in rows if r[1] == "ok" or r[2] is not None]
    if read:
        raise Broke(f"read through the link: {read[0][0]} stored {read[0][1]} with its sha256")
    if outside_sha and judge.query(db, "SELECT count(*) FROM images WHERE sha256 = ?", [outside_sha])[0][0]:
        raise Broke("the outside file's sha256 is stored")
    named = [r for r in judge.rejects(db, dataset) if (r[0] or "").startswith(path) or path in (r[3] or "")]
    if not named:
        raise Broke(f"{path}: not read, but no reject says so")
    return f"rejected: {named[0][3][:90]}"


def file_link(name: str, target, *, note: str = "#12.2: a symlink to a file outside is stored ok") -> Attempt:
    """``target(tmp, folder) -> (link target, sha of what it points to or None)``."""
    def run(ctx: Ctx, tmp: Path) -> str:
        root = build.coco_dir(tmp / DS)
        folder = root / FOLDER
        link_to, sha = target(tmp, folder)
        (folder / "000000000080.jpg").symlink_to(link_to)
        db, _ = _ingest(ctx, root, tmp)
        _good_photos(db)
        return _refused(db, f"{FOLDER}/000000000080.jpg", sha)
    return Attempt("links", name, run, note)


def _abs_outside(tmp: Path, folder: Path):
    secret, data = _outside(tmp)
    return secret, hashlib.sha256(data).hexdigest()


def _rel_outside(tmp: Path, folder: Path):
    secret, data = _outside(tmp)
    return Path(os.path.relpath(secret, folder)), hashlib.sha256(data).hexdigest()


def _hop_outside(tmp: Path, folder: Path):
    secret, data = _outside(tmp)
    (folder / "000000000081.jpg").symlink_to(secret)
    return Path("000000000081.jpg"), hashlib.sha256(data).hexdigest()


def _dangling(tmp: Path, folder: Path):
    return tmp / "no-such-file.jpg", None


def _loop(tmp: Path, folder: Path):
    (folder / "000000000081.jpg").symlink_to(folder / "000000000080.jpg")
    return folder / "000000000081.jpg", None


def dir_link(name: str, layout: str, folder: str, target: str, *, note: str = "#12.2: a directory symlink to / "
             "makes ingest read every file of the machine") -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        if layout == "coco":
            root = build.coco_dir(tmp / DS)
        elif layout == "flickr":
            root = build.flickr_dir(tmp / "flickr8k-x")
        else:
            root = build.withsense_dir(tmp / "ws")
        link = root / folder
        if link.is_dir() and not link.is_symlink():
            for child in link.iterdir():
                child.unlink()
            link.rmdir()
        link.symlink_to(target, target_is_directory=True)
        db, _ = _ingest(ctx, root, tmp, timeout=120)
        if layout == "coco":
            _good_photos(db)
        return _refused(db, folder + "/", dataset=root.name)
    return Attempt("links", name, run, note)


def odd_entry(name: str, make, *, note: str = "", good: bool = True) -> Attempt:
    """``make(folder)`` adds an entry to the image folder and returns its path relative to the dataset root."""
    def run(ctx: Ctx, tmp: Path) -> str:
        root = build.coco_dir(tmp / DS)
        entry = make(root / FOLDER)
        db, _ = _ingest(ctx, root, tmp, timeout=60)
        if good:
            _good_photos(db)
        named = [r for r in judge.rejects(db, DS) if entry in (r[0] or "") or entry in (r[3] or "")]
        rows = judge.query(db, "SELECT status, status_reason FROM images WHERE dataset = ? AND path LIKE ?",
                           [DS, f"{FOLDER}/%{entry}%"])
        if named:
            return f"reported: {named[0][3][:90]}"
        if rows:
            return f"stored {rows[0][0]}"
        raise Broke(f"{entry!r} skipped without a word")
    return Attempt("links", name, run, note)


def _hidden(folder: Path) -> str:
    (folder / ".000000000088.jpg").write_bytes(build.jpeg())
    return ".000000000088.jpg"


def _ds_store(folder: Path) -> str:
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 64)
    return ".DS_Store"


def _subfolder(folder: Path) -> str:
    (folder / "nested").mkdir()
    (folder / "nested" / "000000000089.jpg").write_bytes(build.jpeg())
    return "nested"


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "000000000090.jpg")
    return "000000000090.jpg"


def _inside_dir_loop(folder: Path) -> str:
    (folder / "again").symlink_to(folder, target_is_directory=True)
    return "again"


def _inside_file(folder: Path) -> str:
    (folder / "000000000087.jpg").symlink_to("000000000001.jpg")
    return "000000000087.jpg"


def _bad_name(folder: Path) -> str:
    with open(os.fsencode(folder) + b"/0000\xff\xfe91.jpg", "wb") as handle:
        handle.write(build.jpeg())
    return "91.jpg"


def _newline_name(folder: Path) -> str:
    (folder / "0000\n92.jpg").write_bytes(build.jpeg())
    return "92.jpg"


def _long_name(folder: Path) -> str:
    name = "9" * 250 + ".jpg"
    (folder / name).write_bytes(build.jpeg())
    return name


def annotation_link(ctx: Ctx, tmp: Path) -> str:
    """annotations/captions_*.json is a link to a JSON outside the dataset: its captions must not be stored."""
    root = build.coco_dir(tmp / DS)
    outside = tmp / "outside" / "captions.json"
    outside.parent.mkdir(parents=True)
    doc = build.coco_records()["captions"]
    for record in doc["annotations"]:
        record["caption"] = "SECRET caption from outside the dataset"
    outside.write_text(json.dumps(doc))
    link = root / "annotations" / "captions_val2017.json"
    link.unlink()
    link.symlink_to(outside)
    db, _ = _ingest(ctx, root, tmp)
    leaked = judge.query(db, "SELECT count(*) FROM captions WHERE text LIKE 'SECRET%'")[0][0]
    if leaked:
        raise Broke(f"{leaked} captions read from a file outside the dataset through a symlink")
    if not [r for r in judge.rejects(db, DS) if r[0].startswith("annotations/captions")]:
        raise Broke("the linked annotation file is neither read nor reported")
    return "the outside annotation file was refused"


def token_link(ctx: Ctx, tmp: Path) -> str:
    """Flickr8k.token.txt links to /etc/passwd: no line of it may land anywhere, rejects' raw text included."""
    root = build.flickr_dir(tmp / "flickr8k-x")
    (root / build.TOKENS).unlink()
    (root / build.TOKENS).symlink_to("/etc/passwd")
    db, _ = _ingest(ctx, root, tmp)
    leaked = judge.query(db, "SELECT count(*) FROM rejects WHERE raw LIKE 'root:%'")[0][0]
    if leaked:
        raise Broke("lines of /etc/passwd are stored as rejects' raw text")
    if not [r for r in judge.rejects(db, "flickr8k-x") if build.TOKENS in (r[0] or "") + (r[3] or "")]:
        raise Broke("the linked token file is neither read nor reported")
    return "the link outside was refused"


def dataset_link(ctx: Ctx, tmp: Path) -> str:
    """The dataset folder itself is a symlink (data/coco-x -> elsewhere): a normal setup, it must load."""
    real = build.coco_dir(tmp / "elsewhere" / DS)
    data = tmp / "data"
    data.mkdir()
    (data / DS).symlink_to(real, target_is_directory=True)
    db = tmp / "db.duckdb"
    judge.ingested(ctx.ingest(data, db), db, DS)
    _good_photos(db)
    return "a linked dataset folder loads"


def attempts() -> list[Attempt]:
    ten = "#12.10: a dangling symlink or a loop ends the whole dataset's ingest"
    eleven = "#12.11: hidden files and sub-folders in image folders are skipped without a word"
    return quick_only([
        file_link("file symlink to a photo outside", _abs_outside),
        file_link("relative symlink escaping with ../", _rel_outside),
        file_link("symlink to an inside symlink that points outside", _hop_outside),
        file_link("dangling symlink", _dangling, note=ten),
        file_link("symlink loop", _loop, note=ten),
        dir_link("COCO split folder symlink to /", "coco", "images/root", "/"),
        dir_link("COCO split folder symlink to /etc", "coco", "images/etc", "/etc"),
        dir_link("Flickr8k Images/ symlink to /etc", "flickr", "Images", "/etc"),
        dir_link("With Sense train_images/ symlink to /etc", "ws", "train_images", "/etc"),
        odd_entry("symlink to a photo inside the dataset", _inside_file, note="allowed: stays inside"),
        odd_entry("directory symlink loop inside the image folder", _inside_dir_loop),
        odd_entry("hidden photo .000000000088.jpg", _hidden, note=eleven),
        odd_entry("hidden .DS_Store", _ds_store, note=eleven),
        odd_entry("sub-folder with a photo", _subfolder, note=eleven),
        odd_entry("FIFO named like a photo", _fifo, note="never block on it; report it"),
        odd_entry("file name with invalid UTF-8 bytes", _bad_name),
        odd_entry("file name with a newline", _newline_name),
        odd_entry("250-character file name", _long_name),
        Attempt("links", "annotation JSON symlink to outside", annotation_link, "#12.2 (annotation files too)"),
        Attempt("links", "Flickr8k.token.txt symlink to /etc/passwd", token_link, "#12.2 (text files too)"),
        Attempt("links", "dataset folder is itself a symlink", dataset_link, "allowed"),
    ], {"file symlink to a photo outside", "dangling symlink", "symlink loop", "COCO split folder symlink to /etc",
        "hidden photo .000000000088.jpg", "sub-folder with a photo"})
