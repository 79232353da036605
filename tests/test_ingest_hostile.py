"""Hostile dataset folders: replaced bytes, symlinks, rotated photos, odd JSON values, hidden entries, bad names.

Each case is one reject (or one clear error) and the rest of the dataset loads; nothing outside the dataset
folder is ever read.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from builders import IMG_A, IMG_B, coco_dir, file_count, flickr_dir, image_bytes, ingest, rejects, write_lines
from db.database import Database
from pipeline.cli import main
from pipeline.ingest import fingerprint

SPLIT = "images/val2017"


def photo(colour: tuple[int, int, int], size: tuple[int, int] = (32, 24), fmt: str = "BMP", **save) -> bytes:
    """An image of one colour; BMP bytes have the same length for every colour of one size."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt, **save)
    return buffer.getvalue()


def coco_with(root: Path, files: dict[str, bytes] | None = None, **json_parts) -> Path:
    """A COCO folder with image 1 captioned and its photo, plus the given files and JSON parts."""
    parts = {"images": [{"id": 1, "file_name": "000000000001.jpg", "width": 32, "height": 24}],
             "captions": [{"id": 10, "image_id": 1, "caption": "A red square."}], **json_parts}
    return coco_dir(root, files={"000000000001.jpg": image_bytes(), **(files or {})}, **parts)


def image_rows(db: Database) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in db.fetch_all("SELECT name, status, status_reason, sha256, path FROM images")}


def last_run_status(db: Database) -> str:
    return db.fetch_all("SELECT status FROM ingest_runs ORDER BY id DESC LIMIT 1")[0][0]


# ------------------------------------------------------------------------------------ 1. replaced photo bytes
@pytest.mark.parametrize("how", ["in place (cp -p)", "renamed over (rsync -t)"])
def test_photo_replaced_with_same_size_and_mtime_is_reingested(db: Database, tmp_path: Path, how: str) -> None:
    old, new = photo((200, 30, 60)), photo((20, 200, 60))
    assert len(old) == len(new) and old != new
    root = coco_with(tmp_path / "c", files={"000000000002.bmp": old})
    ingest(db, root)
    path = root / SPLIT / "000000000002.bmp"
    before = os.stat(path)
    if how.startswith("in place"):
        path.write_bytes(new)
    else:
        (root / SPLIT / ".tmp").write_bytes(new)
        os.replace(root / SPLIT / ".tmp", path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    result = ingest(db, root)
    assert not result.skipped
    assert image_rows(db)["2"][2] == hashlib.sha256(new).hexdigest()


def test_annotation_replaced_with_same_size_and_mtime_is_reingested(db: Database, tmp_path: Path) -> None:
    root = flickr_dir(tmp_path / "f", expert=[f"{IMG_A}\t{IMG_B}#0\t1\t1\t2"])
    ingest(db, root)
    path = root / "ExpertAnnotations.txt"
    before = os.stat(path)
    write_lines(path, [f"{IMG_A}\t{IMG_B}#0\t4\t4\t4"])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not ingest(db, root).skipped
    assert db.fetch_all("SELECT expert_1 FROM expert_ratings") == [(4,)]


# ------------------------------------------------------------------------------------------------ 2. symlinks
def test_photo_symlink_out_of_the_dataset_is_refused(db: Database, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "child.jpg"
    secret.parent.mkdir()
    secret.write_bytes(image_bytes())
    root = coco_with(tmp_path / "c")
    (root / SPLIT / "000000000002.jpg").symlink_to(secret)
    result = ingest(db, root)
    rows = image_rows(db)
    assert rows["2"][:3] == ("missing", f"symlink points outside the dataset folder: {secret}", None)
    assert rows["1"][0] == "ok"
    assert [r[3] for r in rejects(db, f"{SPLIT}/000000000002.jpg")] == [
        f"symlink points outside the dataset folder: {secret}"]
    folder = file_count(result, f"{SPLIT}/")
    assert (folder.read, folder.accepted, folder.rejected) == (2, 1, 1)


def test_symlink_inside_the_dataset_is_read(db: Database, tmp_path: Path) -> None:
    root = coco_with(tmp_path / "c")
    (root / SPLIT / "000000000002.jpg").symlink_to(root / SPLIT / "000000000001.jpg")
    ingest(db, root)
    rows = image_rows(db)
    assert rows["2"][0] == "ok" and rows["2"][2] == rows["1"][2]


def test_folder_symlinks_out_of_the_dataset_are_never_followed(db: Database, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "000000000005.jpg").write_bytes(image_bytes())
    root = coco_with(tmp_path / "c")
    (root / "images" / "evil").symlink_to(outside)  # a split folder that leads out
    (root / SPLIT / "root").symlink_to("/")  # a folder link inside a split folder
    ingest(db, root)
    assert set(image_rows(db)) == {"1"}  # nothing from outside became an image
    assert {r[0]: r[3] for r in rejects(db) if r[0].startswith("images/")} == {
        "images/evil/": f"symlink points outside the dataset folder: {outside}",
        f"{SPLIT}/root": "symlink points outside the dataset folder: /",
    }
    assert last_run_status(db) == "ok"
    flickr = flickr_dir(tmp_path / "f")
    (flickr / "Images").symlink_to(outside)  # the layout's whole photo folder leads out
    ingest(db, flickr)
    assert [r[3] for r in rejects(db, "Images/")] == [f"symlink points outside the dataset folder: {outside}"]
    assert db.fetch_all("SELECT count(*) FROM images WHERE dataset = 'f' AND status <> 'missing'") == [(0,)]


def test_annotation_symlink_out_of_the_dataset_is_refused(db: Database, tmp_path: Path) -> None:
    outside = write_lines(tmp_path / "outside.txt", [f"{IMG_A}\t{IMG_B}#0\t1\t1\t2"])
    root = flickr_dir(tmp_path / "f")
    (root / "ExpertAnnotations.txt").unlink()
    (root / "ExpertAnnotations.txt").symlink_to(outside)
    result = ingest(db, root)
    assert [(r[1], r[3]) for r in rejects(db, "ExpertAnnotations.txt")] == [
        (None, f"symlink points outside the dataset folder: {outside}")]
    assert (file_count(result, "ExpertAnnotations.txt").read, db.fetch_all("SELECT count(*) FROM expert_ratings")) \
        == (1, [(0,)])
    assert db.fetch_all("SELECT count(*) FROM captions")[0][0] == 4  # the other files still load

    elsewhere = coco_with(tmp_path / "elsewhere-coco")
    root = tmp_path / "c"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "captions_val2017.json").symlink_to(elsewhere / "annotations" / "captions_val2017.json")
    ingest(db, root)
    assert [r[3] for r in rejects(db, "annotations/captions_val2017.json")] == [
        f"symlink points outside the dataset folder: {elsewhere / 'annotations' / 'captions_val2017.json'}"]
    assert db.fetch_all("SELECT count(*) FROM captions WHERE dataset = 'c'") == [(0,)]


def test_fingerprint_never_follows_links(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "a.txt").write_text("x")
    (root / "loop").symlink_to(root / "loop")
    (root / "dangling").symlink_to(tmp_path / "gone")
    (root / "everything").symlink_to("/")
    os.mkfifo(root / "pipe")  # never opened: reading it would block
    first = fingerprint(root)
    assert fingerprint(root) == first
    (root / "dangling").unlink()
    (root / "dangling").symlink_to(tmp_path / "elsewhere")
    assert fingerprint(root) != first


# -------------------------------------------------------------------------------------------- 3. orientation
def test_exif_orientation_swaps_width_and_height(db: Database, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    rotated = photo((10, 10, 10), (40, 30), "JPEG", exif=exif)
    broken = photo((10, 10, 10), (40, 30), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    root = coco_with(tmp_path / "c", files={"000000000002.jpg": rotated, "000000000003.jpg": broken})
    ingest(db, root)
    sizes = {r[0]: r[1:] for r in db.fetch_all("SELECT name, status, width, height FROM images")}
    assert sizes["2"] == ("ok", 30, 40)
    assert sizes["3"] == ("ok", 40, 30)  # an unreadable EXIF block: shown as stored, not corrupt


# ------------------------------------------------------------------------------- 10. one bad entry, one reject
@pytest.mark.parametrize("target", ["dangling", "loop"])
def test_dangling_and_looping_symlinks_are_one_reject(db: Database, tmp_path: Path, target: str) -> None:
    root = coco_with(tmp_path / "c")
    link = root / SPLIT / "000000000002.jpg"
    link.symlink_to(tmp_path / "gone.jpg" if target == "dangling" else link)
    ingest(db, root)
    [(_, _, _, reason)] = rejects(db, f"{SPLIT}/000000000002.jpg")
    assert reason.startswith("dangling symlink" if target == "dangling" else "symlink loop")
    assert image_rows(db)["1"][0] == "ok" and last_run_status(db) == "ok"


def test_pipes_are_reported_never_read(db: Database, tmp_path: Path) -> None:
    root = coco_with(tmp_path / "c")
    os.mkfifo(root / SPLIT / "000000000002.jpg")
    flickr = flickr_dir(tmp_path / "f")
    (flickr / "ExpertAnnotations.txt").unlink()
    os.mkfifo(flickr / "ExpertAnnotations.txt")
    ingest(db, root)
    ingest(db, flickr)
    assert [r[3] for r in rejects(db, f"{SPLIT}/000000000002.jpg")] == [
        "not a regular file (pipe, socket or device), not read"]
    assert [r[3] for r in rejects(db, "ExpertAnnotations.txt")] == ["not a regular file, not read"]


def test_coco_ids_of_the_wrong_json_type_are_rejects(db: Database, tmp_path: Path) -> None:
    images = [{"id": 1, "file_name": "000000000001.jpg", "width": 32, "height": 24},
              {"id": [2], "file_name": "000000000002.jpg", "width": 32, "height": 24},
              {"id": 3, "file_name": {"x": 1}, "width": 32, "height": 24},
              {"id": 4, "file_name": "../../../etc/passwd", "width": 32, "height": 24}]
    captions = [{"id": 10, "image_id": 1, "caption": "A red square."},
                {"id": {"n": 11}, "image_id": 1, "caption": "odd id"},
                {"id": 12, "image_id": 1, "caption": {"text": "not a string"}},
                {"id": 13, "image_id": True, "caption": "a boolean image id"},
                {"id": 10 ** 30, "image_id": 1, "caption": "an id no BIGINT holds"}]
    objects = [{"id": 1, "image_id": 1, "category_id": 18}, {"id": 2, "image_id": 1, "category_id": [18]},
               {"id": 3, "image_id": 1, "category_id": {"id": 1}}, {"id": 4, "image_id": 1, "category_id": 5},
               {"id": 5, "image_id": 1, "category_id": 6}]
    root = coco_with(tmp_path / "c", images=images, captions=captions, objects=objects)
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 18, "name": "dog", "supercategory": "animal"},
                  {"id": [7], "name": "list id", "supercategory": "x"}, {"id": {"a": 1}, "name": "dict id"},
                  {"id": 5, "name": ["not", "a", "string"], "supercategory": "x"}]
    instances = root / "annotations" / "instances_val2017.json"
    instances.write_text(json.dumps({"images": images, "annotations": objects, "categories": categories}))
    result = ingest(db, root)
    captions_file = "annotations/captions_val2017.json"
    assert [(r[1], r[3]) for r in rejects(db, f"{captions_file} [images]")] == [
        (2, "id [2] is not an integer"), (3, 'file_name {"x": 1} is not a string'),
        (4, "file_name must be a file name, without folders")]
    assert [(r[1], r[3]) for r in rejects(db, f"{captions_file} [annotations]")] == [
        (2, 'id {"n": 11} is not an integer'), (3, 'caption {"text": "not a string"} is not a string'),
        (4, "image_id true is not an integer"),
        (5, f'caption_id "{10 ** 30}" is not a numeric id of at most 18 digits')]
    assert [(r[1], r[3]) for r in rejects(db, "annotations/instances_val2017.json [categories]")] == [
        (3, "id [7] is not a non-negative integer"), (4, 'id {"a": 1} is not a non-negative integer'),
        (5, 'name ["not", "a", "string"] is not a string')]
    assert [(r[1], r[3]) for r in rejects(db, "annotations/instances_val2017.json [annotations]")] == [
        (2, "category_id [18] is not an integer"), (3, 'category_id {"id": 1} is not an integer'),
        (4, "category_id 5 refers to a rejected category"), (5, "unknown category_id 6")]
    assert db.fetch_all("SELECT category, n_instances FROM objects") == [("dog", 1)]
    assert db.fetch_all("SELECT text FROM captions") == [("A red square.",)]
    assert file_count(result, "annotations/instances_val2017.json [categories]").read == 5


def test_deeply_nested_json_is_one_reject(db: Database, tmp_path: Path) -> None:
    root = coco_with(tmp_path / "c")
    (root / "annotations" / "instances_val2017.json").write_text('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}")
    ingest(db, root)
    assert [r[3] for r in rejects(db, "annotations/instances_val2017.json")] == ["invalid JSON: nested too deeply"]
    assert db.fetch_all("SELECT count(*) FROM captions") == [(1,)]


# ------------------------------------------------------------------------- 11. hidden entries, names, captions
def test_hidden_files_and_sub_folders_are_reported(db: Database, tmp_path: Path) -> None:
    root = coco_with(tmp_path / "c")
    (root / SPLIT / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / SPLIT / "extra").mkdir()
    (root / SPLIT / "extra" / "000000000009.jpg").write_bytes(image_bytes())
    (root / "images" / "README.txt").write_text("photos go in images/<split>/")
    os.mkdir(root / SPLIT / os.fsdecode(b"bad\xff"))
    result = ingest(db, root)
    assert {r[0]: r[3] for r in rejects(db) if r[0].startswith("images/")} == {
        f"{SPLIT}/.DS_Store": "hidden file, not read",
        f"{SPLIT}/extra": "sub-folder, not read",
        f"{SPLIT}/bad\\xff": "file name is not valid UTF-8, not read",
        "images/README.txt": "not in a split folder (images/<split>/), not read",
    }
    assert set(image_rows(db)) == {"1"}
    folder = file_count(result, f"{SPLIT}/")
    assert (folder.read, folder.accepted, folder.rejected) == (4, 1, 3)


@pytest.mark.parametrize("name", ["x/../y", "..", "a b", "", "-x", "é", "x" * 65])
def test_invalid_dataset_names_are_refused(db: Database, tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a valid dataset name"):
        ingest(db, flickr_dir(tmp_path / "f"), name=name)
    assert db.fetch_all("SELECT count(*) FROM ingest_runs") == [(0,)]


def test_invalid_folder_name_is_refused(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="folder name 'my photos'.*--name"):
        ingest(db, flickr_dir(tmp_path / "my photos"))
    assert ingest(db, tmp_path / "my photos", name="my-photos").run_id == 1


def test_cli_name_with_dot_dot_exits_2(tmp_path: Path, capsys) -> None:
    root = flickr_dir(tmp_path / "f")
    db_path = tmp_path / "s.duckdb"
    assert main(["ingest", "--data", str(root), "--db", str(db_path), "--name", "x/..", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --name 'x/..' is not a valid dataset name") and "Traceback" not in err
    with Database(db_path) as db:
        assert db.fetch_all("SELECT count(*) FROM images") == [(0,)]


def test_control_characters_in_text(db: Database, tmp_path: Path) -> None:
    tokens = [f"{IMG_A}#0\tA girl\x00 in pink .", f"{IMG_A}#1\tA girl \x1b[31min red .", f"{IMG_A}#2\tA girl\r going .",
              f"{IMG_B}#0\tA dog\x85 .", f"{IMG_B}#1\tA dog ."]
    ingest(db, flickr_dir(tmp_path / "f", tokens=tokens))
    assert [(r[1], r[3]) for r in rejects(db, "Flickr8k.token.txt")] == [
        (1, "NUL character in text"), (2, "control character U+001B in text"), (4, "control character U+0085 in text")]
    assert db.fetch_all("SELECT text FROM captions ORDER BY id") == [("A girl  going .",), ("A dog .",)]

    captions = [{"id": 10, "image_id": 1, "caption": "cut\n."}, {"id": 11, "image_id": 1, "caption": "a\tb\r\nc"},
                {"id": 12, "image_id": 1, "caption": "split\x1fhere"}, {"id": 13, "image_id": 1, "caption": "nul\x00"}]
    ingest(db, coco_with(tmp_path / "c", captions=captions))
    assert [(r[1], r[3]) for r in rejects(db, "annotations/captions_val2017.json [annotations]")] == [
        (3, "control character U+001F in text"), (4, "NUL character in text")]
    assert db.fetch_all("SELECT text FROM captions WHERE dataset = 'c' ORDER BY id") == [("cut .",), ("a b c",)]


def test_control_characters_in_quoted_fields_and_image_names(db: Database, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write_lines(root / "train_dataset.csv", ["image,query_id,query_text", "a.jpg,a.jpg#0,A dog",
                                             '"b\x07.jpg",a.jpg#0,A dog', 'a.jpg,"c\tx.jpg#0",A cat',
                                             'a.jpg,a.jpg#1,"A cat, \x1fsitting"'])
    ingest(db, root)
    rule = "an image file name such as photo.jpg, without folders or control characters"
    assert [(r[1], r[3]) for r in rejects(db, "train_dataset.csv")] == [
        (3, f'image "b\x07.jpg" is not a valid image name ({rule})'),
        (4, f'query_id "c\tx.jpg#0" names an invalid image ({rule})'),
        (5, "control character U+001F in query_text")]
