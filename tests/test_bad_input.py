"""One test per class of bad input: each bad line is in `rejects` with file, line and reason; good lines stay."""

from __future__ import annotations

from pathlib import Path

from builders import IMG_A, IMG_B, IMG_C, coco_dir, file_count, flickr_dir, image_bytes, ingest, rejects
from db.database import Database

CROWD = "CrowdFlowerAnnotations.txt"
EXPERT = "ExpertAnnotations.txt"
TOKENS = "Flickr8k.token.txt"


def test_invalid_bytes_reject_only_their_line(db: Database, tmp_path: Path) -> None:
    crowd = [f"{IMG_A}\t{IMG_A}#0\t1\t3\t0".encode(), b"33875\xff\xfe\r\x00garbage\tmore", f"{IMG_B}\t{IMG_B}#0\t0\t0\t3".encode()]
    result = ingest(db, flickr_dir(tmp_path / "f", crowd=crowd))
    assert (file_count(result, CROWD).read, file_count(result, CROWD).accepted) == (3, 2)
    [(_, line, raw, reason)] = rejects(db, CROWD)
    assert (line, reason) == (2, "invalid UTF-8 bytes")
    assert "\\xff\\xfe" in raw  # shown escaped, not dropped
    assert db.fetch_all("SELECT count(*) FROM crowd_ratings")[0][0] == 2


def test_wrong_column_count(db: Database, tmp_path: Path) -> None:
    expert = [f"{IMG_A}\t{IMG_B}#0\t1\t1", f"{IMG_A}\t{IMG_B}#0\t1\t1\t2\t4", f"{IMG_B}\t{IMG_B}#0\t4\t4\t3"]
    result = ingest(db, flickr_dir(tmp_path / "f", expert=expert))
    assert [(r[1], r[3]) for r in rejects(db, EXPERT)] == [
        (1, "expected 5 columns (image, query_id, expert_1, expert_2, expert_3), found 4"),
        (2, "expected 5 columns (image, query_id, expert_1, expert_2, expert_3), found 6"),
    ]
    assert file_count(result, EXPERT).accepted == 1


def test_non_numeric_scores(db: Database, tmp_path: Path) -> None:
    expert = [f"{IMG_A}\t{IMG_B}#0\tx\t1\t2", f"{IMG_B}\t{IMG_B}#0\t4\t0x3\t3", f"{IMG_C}\t{IMG_B}#0\t2\t2\t2"]
    crowd = [f"{IMG_A}\t{IMG_A}#0\tabout half\t3\t0", f"{IMG_B}\t{IMG_B}#0\t0.5\t1\tnan"]
    ingest(db, flickr_dir(tmp_path / "f", expert=expert, crowd=crowd))
    assert [r[3] for r in rejects(db, EXPERT)] == ['expert_1 "x" is not an integer', 'expert_2 "0x3" is not an integer']
    assert [r[3] for r in rejects(db, CROWD)] == ['share "about half" is not a number', 'n_no "nan" is not an integer']


def test_out_of_range_scores(db: Database, tmp_path: Path) -> None:
    expert = [f"{IMG_A}\t{IMG_B}#0\t0\t1\t2", f"{IMG_B}\t{IMG_B}#0\t4\t4\t5", f"{IMG_C}\t{IMG_B}#0\t1\t4\t2"]
    crowd = [f"{IMG_A}\t{IMG_A}#0\t1.5\t3\t0", f"{IMG_B}\t{IMG_B}#0\t0\t-1\t3", f"{IMG_C}\t{IMG_C}#0\t0\t0\t0"]
    ingest(db, flickr_dir(tmp_path / "f", expert=expert, crowd=crowd))
    assert [r[3] for r in rejects(db, EXPERT)] == ["expert_1 0 out of range 1..4", "expert_3 5 out of range 1..4"]
    assert [r[3] for r in rejects(db, CROWD)] == [
        "share 1.5 out of range 0..1", "n_yes -1 below minimum 0", "no votes: n_yes + n_no = 0"]
    assert db.fetch_all("SELECT expert_1, expert_2, expert_3 FROM expert_ratings") == [(1, 4, 2)]


def test_crowd_share_inconsistent_with_votes(db: Database, tmp_path: Path) -> None:
    crowd = [f"{IMG_A}\t{IMG_A}#0\t0.333333\t1\t2", f"{IMG_B}\t{IMG_B}#0\t0.5\t1\t2"]
    ingest(db, flickr_dir(tmp_path / "f", crowd=crowd))
    assert [(r[1], r[3]) for r in rejects(db, CROWD)] == [(2, "share inconsistent with n_yes / (n_yes + n_no)")]


def test_duplicate_keys_keep_the_first(db: Database, tmp_path: Path) -> None:
    expert = [f"{IMG_A}\t{IMG_B}#0\t1\t1\t2", f"{IMG_A}\t{IMG_B}#0\t1\t1\t2", f"{IMG_A}\t{IMG_B}#0\t3\t3\t3"]
    tokens = [f"{IMG_A}#0\tA girl .", f"{IMG_B}#0\tA dog .", f"{IMG_A}#0\tA different caption ."]
    ingest(db, flickr_dir(tmp_path / "f", expert=expert, tokens=tokens))
    assert [(r[1], r[3]) for r in rejects(db, EXPERT)] == [
        (2, "duplicate of line 1"),
        (3, "duplicate key (image, query_id) with different values; first at line 1"),
    ]
    assert [(r[1], r[3]) for r in rejects(db, TOKENS)] == [
        (3, "duplicate key (caption_id) with different values; first at line 1")]
    assert db.fetch_all("SELECT expert_3 FROM expert_ratings") == [(2,)]
    assert db.fetch_all("SELECT text FROM captions WHERE id = ?", [f"f/{IMG_A}#0"]) == [("A girl .",)]


def test_caption_ids_of_unknown_images(db: Database, tmp_path: Path) -> None:
    """Flickr8k: a caption id must name a Flickr8k photo; COCO: a caption's image must be listed."""
    tokens = [f"{IMG_A}#0\tA girl .", "e667626_18933d713e.jpg#0\tA white bird .", "no-hash-here\tA cat ."]
    crowd = [f"{IMG_A}\t9999_abc.jpg#0\t1\t3\t0"]  # well-formed name of a photo nothing else mentions
    ingest(db, flickr_dir(tmp_path / "f", tokens=tokens, crowd=crowd))
    reasons = [r[3] for r in rejects(db, TOKENS)]
    assert reasons[0].startswith('caption_id "e667626_18933d713e.jpg#0" names an invalid image')
    assert reasons[1] == 'caption_id "no-hash-here" is not of the form <image>#<n>'
    assert [r[3] for r in rejects(db, CROWD)] == ['query_id "9999_abc.jpg#0" refers to an unknown image']

    coco = coco_dir(tmp_path / "c", images=[{"id": 1, "file_name": "000000000001.jpg", "width": 32, "height": 24}],
                    captions=[{"id": 10, "image_id": 1, "caption": "A dog."},
                              {"id": 11, "image_id": 2, "caption": "Ghost photo."}],
                    files={"000000000001.jpg": image_bytes()})
    result = ingest(db, coco)
    [(file, line, raw, reason)] = rejects(db, "annotations/captions_val2017.json [annotations]")
    assert (line, reason) == (2, 'image "2" refers to an unknown image')
    assert '"Ghost photo."' in raw
    assert file_count(result, "annotations/captions_val2017.json [annotations]").accepted == 1


def test_image_files_missing_zero_byte_truncated_and_not_images(db: Database, tmp_path: Path) -> None:
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 32, "height": 24} for i in range(1, 6)]
    files = {"000000000001.jpg": image_bytes(), "000000000002.jpg": image_bytes("zero"),
             "000000000003.jpg": image_bytes("truncated"), "000000000004.jpg": image_bytes("text"),
             "000000000099.png": image_bytes(fmt="PNG")}  # 5 is missing; 99 is an uncaptioned upload
    captions = [{"id": 100 + i, "image_id": i, "caption": f"photo {i}"} for i in range(1, 6)]
    result = ingest(db, coco_dir(tmp_path / "c", images=images, captions=captions, files=files))
    status = dict((r[0], r[1:]) for r in db.fetch_all(
        "SELECT name, status, status_reason, width, has_caption FROM images ORDER BY name"))
    assert status["1"] == ("ok", None, 32, True)
    assert status["2"][:2] == ("corrupt", "zero-byte file")
    assert status["3"][0] == "corrupt" and "truncated" in status["3"][1]
    assert status["4"][:2] == ("corrupt", "not an image file")
    assert status["5"] == ("missing", "file not found", 32, True)  # size from the JSON, no file
    assert status["99"] == ("ok", None, 32, False)
    assert [(r[0], r[3]) for r in rejects(db) if r[1] is None] == [
        ("images/val2017/000000000002.jpg", "corrupt image: zero-byte file"),
        ("images/val2017/000000000003.jpg", f"corrupt image: {status['3'][1]}"),
        ("images/val2017/000000000004.jpg", "corrupt image: not an image file"),
    ]
    folder = file_count(result, "images/val2017/")
    assert (folder.read, folder.accepted, folder.rejected) == (5, 2, 3)
    assert db.fetch_all("SELECT count(*) FROM captions")[0][0] == 5  # captions of bad photos are kept


def test_invalid_json_is_one_reject_and_other_files_still_load(db: Database, tmp_path: Path) -> None:
    root = coco_dir(tmp_path / "c", images=[{"id": 1, "file_name": "000000000001.jpg", "width": 32, "height": 24}],
                    captions=[{"id": 10, "image_id": 1, "caption": "A dog."}], files={"000000000001.jpg": image_bytes()})
    (root / "annotations" / "instances_val2017.json").write_text('{"images": [ {"id": 1,')
    result = ingest(db, root)
    [(file, line, _, reason)] = rejects(db, "annotations/instances_val2017.json")
    assert reason.startswith("invalid JSON:") and line == 1
    assert file_count(result, "annotations/instances_val2017.json").rejected == 1
    assert db.fetch_all("SELECT count(*) FROM captions")[0][0] == 1


def test_coco_objects_and_unknown_categories(db: Database, tmp_path: Path) -> None:
    images = [{"id": 1, "file_name": "000000000001.jpg", "width": 32, "height": 24}]
    objects = [{"id": 1, "image_id": 1, "category_id": 18}, {"id": 2, "image_id": 1, "category_id": 18},
               {"id": 3, "image_id": 1, "category_id": 1}, {"id": 4, "image_id": 1, "category_id": 77}, "junk"]
    ingest(db, coco_dir(tmp_path / "c", images=images, captions=[], objects=objects,
                        files={"000000000001.jpg": image_bytes()}))
    assert db.fetch_all("SELECT category, supercategory, n_instances FROM objects ORDER BY category") == [
        ("dog", "animal", 2), ("person", "person", 1)]
    assert [(r[1], r[3]) for r in rejects(db, "annotations/instances_val2017.json [annotations]")] == [
        (4, "unknown category_id 77"), (5, "record is not a JSON object")]


def test_blank_lines_and_crlf(db: Database, tmp_path: Path) -> None:
    root = flickr_dir(tmp_path / "f")
    (root / EXPERT).write_bytes(f"{IMG_A}\t{IMG_B}#0\t1\t1\t2\r\n\r\n{IMG_B}\t{IMG_B}#0\t4\t4\t3\r\n".encode())
    result = ingest(db, root)
    assert [(r[1], r[3]) for r in rejects(db, EXPERT)] == [(2, "empty line")]
    assert file_count(result, EXPERT).accepted == 2
