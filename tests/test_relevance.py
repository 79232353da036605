"""Relevance stage: the documented formula, configurable weights, bad weights refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import IMG_A, IMG_B, IMG_C, flickr_dir, ingest
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
