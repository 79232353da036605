"""The With Sense layout: sniffed delimiters and headers, quoted text, index columns, image folders."""

from __future__ import annotations

from pathlib import Path

from builders import IMG_A, IMG_B, IMG_C, file_count, image_bytes, ingest, rejects, write_lines
from db.database import Database
from pipeline.layouts import detect
from pipeline.readers import withsense


def withsense_dir(root: Path) -> Path:
    write_lines(root / "train_dataset.csv", [
        "image,query_id,query_text",
        f"{IMG_A},{IMG_B}#0,A black dog and a spotted dog are fighting",
        f'{IMG_B},{IMG_B}#0,A black dog and a spotted dog are fighting',
        f'{IMG_C},{IMG_A}#1,"A girl, in pink, going into a ""wooden"" building ."',
        f'{IMG_C},{IMG_A}#2,"unterminated quote',
        f"{IMG_A},{IMG_B}#0,A black dog and a spotted dog are fighting",
        f"{IMG_C},{IMG_B}#0,A different text for the same query",
        f"{IMG_A},ghost.jpg#0,Nobody knows this photo",
    ])
    write_lines(root / "ExpertAnnotations.tsv", [
        f"{IMG_A}\t{IMG_B}#0\t1\t1\t2", f"{IMG_B}\t{IMG_B}#0\t4\t4\t4", f"{IMG_C}\t{IMG_A}#1\t3\t4\t3"])
    write_lines(root / "CrowdAnnotations.tsv", [
        "image\tquery_id\tshare\tn_yes\tn_no", f"{IMG_A}\t{IMG_B}#0\t0\t0\t3", f"{IMG_B}\t{IMG_B}#0\t1\t3\t0"])
    write_lines(root / "test_queries.csv", [
        "|query_id|query_text|image",
        "0|test1.jpg#0|Two blonde boys , one in a camouflage shirt , are having a water fight .|test1.jpg",
        "1|test2.jpg#0|A man rides a bike .|test2.jpg",
    ])
    write_lines(root / "test_images.csv", ["image", "test1.jpg", "test2.jpg", "../etc/passwd"])
    for name in (IMG_A, IMG_B):
        (root / "train_images").mkdir(parents=True, exist_ok=True)
        (root / "train_images" / name).write_bytes(image_bytes())
    (root / "test_images").mkdir()
    (root / "test_images" / "test1.jpg").write_bytes(image_bytes(size=(40, 30)))
    return root


def test_detected_before_flickr(tmp_path: Path) -> None:
    assert detect(withsense_dir(tmp_path / "ws")) is withsense


def test_withsense_layout_end_to_end(db: Database, tmp_path: Path) -> None:
    result = ingest(db, withsense_dir(tmp_path / "ws"))
    train = file_count(result, "train_dataset.csv")
    assert (train.read, train.accepted, train.rejected, train.header) == (7, 3, 4, True)
    assert [(r[1], r[3]) for r in rejects(db, "train_dataset.csv")] == [
        (5, "malformed quoting"),
        (6, "duplicate of line 2"),
        (7, f'query_id "{IMG_B}#0" has a different query_text at line 2'),
        (8, 'query_id "ghost.jpg#0" refers to an unknown image'),
    ]
    assert db.fetch_all("SELECT text FROM captions WHERE id = ?", [f"ws/{IMG_A}#1"]) == [
        ('A girl, in pink, going into a "wooden" building .',)]
    crowd = file_count(result, "CrowdAnnotations.tsv")
    assert (crowd.read, crowd.accepted, crowd.header) == (2, 2, True)
    queries = file_count(result, "test_queries.csv")
    assert (queries.read, queries.accepted, queries.header) == (2, 2, True)  # '|' and a pandas index column
    assert db.fetch_all("SELECT text FROM captions WHERE id = 'ws/test2.jpg#0'") == [("A man rides a bike .",)]
    assert [r[3] for r in rejects(db, "test_images.csv")] == [
        'image "../etc/passwd" is not a valid image name '
        '(an image file name such as photo.jpg, without folders or control characters)']
    images = {r[0]: r[1:] for r in db.fetch_all("SELECT name, status, split, width, path FROM images")}
    assert images[IMG_A] == ("ok", "train", 32, f"train_images/{IMG_A}")
    assert images["test1.jpg"] == ("ok", "test", 40, "test_images/test1.jpg")
    assert images["test2.jpg"] == ("missing", "test", None, None)
    assert images[IMG_C][0] == "missing"
    assert db.fetch_all("SELECT split, count(*) FROM query_pairs GROUP BY 1 ORDER BY 1") == [("test", 2), ("train", 3)]
    assert db.fetch_all("SELECT count(*) FROM relevance")[0][0] == 3
