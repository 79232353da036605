"""Relevance stage: the documented formula, configurable weights, bad weights refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import IMG_A, IMG_B, IMG_C, flickr_dir, ingest
from db import database
from db import relevance as relevance_sql
from db.database import Database
from pipeline import relevance


@pytest.fixture
def rated(db: Database, tmp_path: Path) -> Database:
    expert = [f"{IMG_A}\t{IMG_B}#0\t1\t2\t3", f"{IMG_B}\t{IMG_B}#0\t4\t4\t4"]  # expert 1/3, 1
    crowd = [f"{IMG_A}\t{IMG_B}#0\t0.5\t1\t1", f"{IMG_C}\t{IMG_B}#0\t0.25\t1\t3"]  # crowd 0.5; crowd-only 0.25
    ingest(db, flickr_dir(tmp_path / "f", expert=expert, crowd=crowd))
    return db


def targets(db: Database) -> dict[str, float]:
    return {r[0].split("/")[1]: r[1] for r in db.fetch_all("SELECT image_id, relevance FROM relevance")}


def test_default_formula(rated: Database) -> None:
    got = targets(rated)
    assert got[IMG_A] == pytest.approx(0.6 * (1 / 3) + 0.4 * 0.5)
    assert got[IMG_B] == pytest.approx(1.0)  # expert only
    assert got[IMG_C] == pytest.approx(0.25)  # crowd only
    formulas = {r[0] for r in rated.fetch_all("SELECT formula FROM relevance")}
    assert formulas == {relevance.formula(0.6, 0.4)}


def test_weights_are_stored_and_reused(rated: Database, tmp_path: Path) -> None:
    assert relevance.run(rated, expert_weight=1, crowd_weight=0) == 2  # crowd-only pair drops out
    assert targets(rated)[IMG_A] == pytest.approx(1 / 3)
    ingest(rated, flickr_dir(tmp_path / "g"))  # a later ingest uses the stored weights
    assert {r[0] for r in rated.fetch_all("SELECT DISTINCT formula FROM relevance")} == {relevance.formula(1, 0)}


@pytest.mark.parametrize("weights", [(-1, 1), (0, 0)])
def test_bad_weights_change_nothing(rated: Database, weights) -> None:
    before = rated.fetch_all("SELECT * FROM relevance ORDER BY image_id")
    with pytest.raises(ValueError, match="weights must be >= 0"):
        relevance.run(rated, expert_weight=weights[0], crowd_weight=weights[1])
    assert rated.fetch_all("SELECT * FROM relevance ORDER BY image_id") == before


def test_the_ratings_page_tables_follow_every_recompute(rated: Database) -> None:
    """rated_pairs holds every judged pair (FULL OUTER join of the ratings) with the current target, and the cube
    counts them; both are rewritten with the relevance rows (migration 0007, db/relevance.py refresh_rated)."""
    def pairs() -> dict[str, tuple]:
        return {r[0].split("/")[1]: r[1:] for r in rated.fetch_all(
            "SELECT image_id, expert_1 + expert_2 + expert_3, share, target FROM rated_pairs")}

    assert pairs() == {IMG_A: (6, 0.5, pytest.approx(0.6 / 3 + 0.2)), IMG_B: (12, None, 1.0),
                       IMG_C: (None, 0.25, 0.25)}
    cube = rated.fetch_all("SELECT expert_1, share_bin, target_bin, pairs FROM rating_cube ORDER BY ALL")
    assert cube == [(1, 0.5, 0.4, 1), (4, None, 0.9, 1), (None, 0.2, 0.2, 1)]  # 1.0 falls in the last bin
    relevance.run(rated, expert_weight=1, crowd_weight=0)  # the crowd-only pair loses its target, stays judged
    assert pairs()[IMG_C] == (None, 0.25, None) and pairs()[IMG_A][2] == pytest.approx(1 / 3)
    assert rated.fetch_all("SELECT query_id, pairs, rank FROM rated_queries") == [(f"f/{IMG_B}#0", 3, 1)]
    assert [r[1:] for r in rated.fetch_all("SELECT image_id, pairs, rank FROM rated_images ORDER BY rank")] == [
        (1, 1), (1, 2), (1, 3)]


def test_migration_0007_fills_the_ratings_page_tables_of_an_existing_database(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A database made before migration 0007 gets rated_pairs, rating_cube, rated_queries and rated_images filled
    from its ratings, exactly as refresh_rated writes them."""
    path = tmp_path / "old.duckdb"
    scripts = database._migration_scripts()
    monkeypatch.setattr(database, "_migration_scripts", lambda: [s for s in scripts if s[0] < 7])
    with Database(path) as db, db.write() as cur:
        cur.execute("INSERT INTO datasets VALUES ('f', 'flickr8k', '/x', 'fp', 1)")
        cur.execute("INSERT INTO captions VALUES ('f/q#0', 'f', 'f/a', 'A dog', 'tokens')")
        cur.execute("INSERT INTO expert_ratings VALUES ('f', 'f/a', 'f/q#0', 1, 2, 4), ('f', 'f/b', 'f/q#0', 4, 4, 4)")
        cur.execute("INSERT INTO crowd_ratings VALUES ('f', 'f/a', 'f/q#0', 1.0, 3, 0), ('f', 'f/c', 'f/x#1', 0, 0, 3)")
        cur.execute("INSERT INTO relevance VALUES ('f', 'f/a', 'f/q#0', 4 / 9, 1.0, 3, 0.7, 'old formula')")
    monkeypatch.setattr(database, "_migration_scripts", lambda: scripts)
    tables = ("rated_pairs", "rating_cube", "rated_queries", "rated_images")
    with Database(path) as db:
        migrated = {t: sorted(db.fetch_all(f"SELECT * FROM {t}"), key=str) for t in tables}
        with db.write() as cur:
            relevance_sql.refresh_rated(cur, None)
        assert migrated == {t: sorted(db.fetch_all(f"SELECT * FROM {t}"), key=str) for t in tables}
    assert len(migrated["rated_pairs"]) == 3 and [r[2:4] for r in migrated["rated_queries"]] == [
        ("A dog", 2), (None, 1)]
    assert [r[-1] for r in migrated["rated_pairs"] if r[1] == "f/a"] == [0.7]
