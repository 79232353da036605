"""Integration on the real data in ../shared/data (fails on CI when it is missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import file_count, ingest, rejects
from db.database import Database

FLICKR_FILES = ("Flickr8k.token.txt", "ExpertAnnotations.txt", "CrowdFlowerAnnotations.txt",
                "Flickr_8k.trainImages.txt", "Flickr_8k.devImages.txt", "Flickr_8k.testImages.txt")


@pytest.fixture(scope="module")
def real_db(tmp_path_factory, shared_data: Path):
    db = Database(tmp_path_factory.mktemp("real") / "real.duckdb")
    results = {name: ingest(db, shared_data / name) for name in ("flickr8k-text", "coco-mini")}
    yield db, results
    db.close()


@pytest.mark.parametrize("name", FLICKR_FILES)
def test_flickr_every_line_is_stored_or_rejected(real_db, shared_data: Path, name: str) -> None:
    db, results = real_db
    count = file_count(results["flickr8k-text"], name)
    assert count.read == (shared_data / "flickr8k-text" / name).read_bytes().count(b"\n")  # counted independently
    assert count.accepted + count.rejected == count.read
    assert len(rejects(db, name)) == count.rejected


def test_flickr_damage_is_found_where_it_is(real_db) -> None:
    db, results = real_db
    crowd = rejects(db, "CrowdFlowerAnnotations.txt")
    assert {r[3] for r in crowd} == {"invalid UTF-8 bytes"}
    assert [r[1] for r in crowd] == list(range(32419, 32484))  # one run of 65 damaged lines
    assert file_count(results["flickr8k-text"], "ExpertAnnotations.txt").rejected == 0
    assert db.fetch_all("SELECT count(*) FROM expert_ratings")[0][0] == 5822
    merged = [r for r in rejects(db, "Flickr8k.token.txt") if r[1] == 40809]
    assert merged and merged[0][3].startswith("expected 2 columns")
    outside = [r for r in rejects(db, "Flickr8k.token.txt") if "names an invalid image" in r[3]]
    assert all(r[2].startswith(("e", "2258277193_586949ec62.jpg.1#")) for r in outside)


def test_flickr_images_missing_but_annotations_kept(real_db) -> None:
    db, _ = real_db
    assert db.fetch_all(
        "SELECT count(*), count(*) FILTER (status = 'missing') FROM images WHERE dataset = 'flickr8k-text'"
    ) == [(8091, 8091)]
    assert db.fetch_all("SELECT count(*) FROM captions WHERE dataset = 'flickr8k-text'")[0][0] == 40455
    unmatched = db.fetch_all(
        "SELECT count(*) FROM expert_ratings e WHERE NOT EXISTS (SELECT 1 FROM captions c WHERE c.id = e.query_id)")
    assert unmatched == [(0,)]  # every judged query has its text
    assert db.fetch_all("SELECT min(relevance), max(relevance) FROM relevance") == [(0.0, 1.0)]


def test_coco_mini_counts(real_db) -> None:
    db, results = real_db
    assert db.fetch_all(
        "SELECT count(*), count(*) FILTER (status = 'ok'), count(*) FILTER (NOT has_caption) FROM images "
        "WHERE dataset = 'coco-mini'") == [(239, 239, 80)]
    assert db.fetch_all("SELECT count(*) FROM captions WHERE dataset = 'coco-mini'") == [(795,)]
    assert db.fetch_all("SELECT count(DISTINCT image_id) FROM captions WHERE dataset = 'coco-mini'") == [(159,)]
    assert db.fetch_all("SELECT count(DISTINCT category) FROM objects")[0][0] >= 40
    assert db.fetch_all("SELECT count(*) FROM images WHERE dataset = 'coco-mini' AND sha256 IS NULL") == [(0,)]
    assert all(f.rejected == 0 for f in results["coco-mini"].files)
