"""The project stage (pipeline/project.py): every embedded photo mapped once, deterministic for a seed, a chunked
transform equal to a one-shot one, the fit bounded by its sample, staleness, and clear errors that leave the stored
map as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dashboard import explore
from db import embeddings as vector_store, explore as store
from db.database import Database
from pipeline import demo_runner, project
from pipeline.cli import main

ENCODER = "unit-test"


def add_vectors(db: Database, start: int, count: int, dim: int = 8, encoder: str = ENCODER, seed: int = 1) -> None:
    rng = np.random.default_rng(seed + start)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors[: count // 2, 0] += 8.0  # two groups, so the clusters and the first axis mean something
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"d/{i:05d}" for i in range(start, start + count)]
    with db.write() as cur:
        vector_store.save_photo_vectors(cur, encoder, None, ids, [f"sha-{i}" for i in ids], vectors)


def stored_map(db: Database, encoder: str = ENCODER) -> list[tuple]:
    return db.fetch_all("SELECT image_id, sha256, x, y, cluster FROM photo_map WHERE encoder_id = ? ORDER BY image_id",
                        [encoder])


@pytest.fixture
def db(tmp_path: Path):
    with Database(tmp_path / "s.duckdb") as database:
        add_vectors(database, 0, 500)
        yield database


def test_every_embedded_photo_is_mapped_once_with_the_bytes_its_vector_came_from(db: Database) -> None:
    report = project.project(db, ENCODER, chunk_rows=64, quiet=True)
    rows = stored_map(db)
    embedded = db.fetch_all("SELECT image_id, sha256 FROM embeddings WHERE encoder_id = ? ORDER BY image_id",
                            [ENCODER])
    assert [(r[0], r[1]) for r in rows] == embedded and report.photos == 500 and not report.already_current
    assert {r[4] for r in rows} == set(range(report.clusters)) and report.clusters == project.cluster_count(500) == 7
    info = store.map_info(db, ENCODER)
    assert info.version() == vector_store.vector_set_version(db, ENCODER) and info.fitted_on == 500
    # the two groups of vectors lie apart along the first axis, the shifted one on its positive side
    xs = np.array([r[2] for r in rows])
    assert xs[:250].min() > 0 and xs[:250].mean() - xs[250:].mean() > 0.8


def test_the_same_seed_gives_the_same_map_and_chunks_change_nothing(db: Database) -> None:
    project.project(db, ENCODER, chunk_rows=10_000, quiet=True)
    one_shot = stored_map(db)
    project.project(db, ENCODER, chunk_rows=7, force=True, quiet=True)
    assert stored_map(db) == one_shot  # same seed, another chunking: identical points and clusters
    _, all_vectors = store.fitting_sample(db, ENCODER, 10_000, 0)
    fitted = project.fit(all_vectors, 0)
    xy, clusters = fitted.transform(all_vectors)
    parts = [fitted.transform(chunk) for chunk in np.array_split(all_vectors, 9)]
    assert np.array_equal(np.vstack([p[0] for p in parts]), xy)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), clusters)


def test_the_fit_reads_a_bounded_sample_and_still_maps_every_photo(db: Database) -> None:
    ids, _ = store.fitting_sample(db, ENCODER, 50, seed=3)
    assert len(ids) == 50 and ids == store.fitting_sample(db, ENCODER, 50, seed=3)[0]
    assert ids != store.fitting_sample(db, ENCODER, 50, seed=4)[0]
    report = project.project(db, ENCODER, sample=50, quiet=True)
    assert report.fitted_on == 50 and report.photos == 500 and len(stored_map(db)) == 500


def test_a_map_knows_when_the_vectors_changed_since(db: Database) -> None:
    project.project(db, ENCODER, quiet=True)
    info = store.map_info(db, ENCODER)
    assert explore.stale_notice(info, vector_store.vector_set_version(db, ENCODER)) is None
    assert project.project(db, ENCODER, quiet=True).already_current
    add_vectors(db, 500, 3)
    notice = explore.stale_notice(info, vector_store.vector_set_version(db, ENCODER))
    assert "500 vectors" in notice and "503 now" in notice and f"project --encoder {ENCODER}" in notice
    report = project.project(db, ENCODER, quiet=True)
    assert not report.already_current and report.photos == 503 and len(stored_map(db)) == 503
    with db.write() as cur:  # a photo's vector removed (photo gone): the count drops, the map is stale again
        cur.execute("DELETE FROM embeddings WHERE image_id = 'd/00000'")
    assert explore.stale_notice(store.map_info(db, ENCODER), vector_store.vector_set_version(db, ENCODER))
    project.project(db, ENCODER, quiet=True)
    assert "d/00000" not in {r[0] for r in stored_map(db)}


def test_no_vectors_is_a_clear_error(db: Database) -> None:
    with pytest.raises(project.ProjectError, match=r"no photo vectors of 'other'.*pipeline embed.*unit-test"):
        project.project(db, "other", quiet=True)


def test_a_bad_vector_stops_the_stage_and_the_stored_map_stays(db: Database) -> None:
    project.project(db, ENCODER, quiet=True)
    before = stored_map(db)
    with db.write() as cur:
        cur.execute("UPDATE embeddings SET vector = [1.0, 'nan'::FLOAT, 0, 0, 0, 0, 0, 0]::FLOAT[], created = now() "
                    "WHERE image_id = 'd/00499'")
    with pytest.raises(project.ProjectError, match="not finite.*d/00499"):
        project.project(db, ENCODER, sample=10, quiet=True)  # the bad one is not sampled: found while mapping
    assert stored_map(db) == before
    with pytest.raises(project.ProjectError, match="not finite.*d/00499"):
        project.project(db, ENCODER, quiet=True)  # sampled: found before the fit
    assert stored_map(db) == before


def test_cli_maps_every_encoder_and_says_what_to_run_first(tmp_path: Path, capsys) -> None:
    path = str(tmp_path / "c.duckdb")
    assert main(["project", "--db", path, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no photo vectors to project yet; run `python -m pipeline embed`")
    with Database(path) as db:
        add_vectors(db, 0, 40, encoder="a")
        add_vectors(db, 0, 30, encoder="b")
    assert main(["project", "--db", path, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "project a: 40 photos mapped" in out and "project b: 30 photos mapped" in out
    assert main(["project", "--db", path, "--encoder", "b", "--quiet"]) == 0
    assert "project b: already current" in capsys.readouterr().out
    assert main(["project", "--db", path, "--encoder", "c", "--quiet"]) == 2
    assert "no photo vectors of 'c'" in capsys.readouterr().err


def test_the_demo_projects_after_the_fitted_bridge_and_goes_on_without_it() -> None:
    names = [stage.name for stage in demo_runner.DEMO_STAGES]
    assert names.index("project") == names.index("fit-bridge") + 1
    stage = next(s for s in demo_runner.DEMO_STAGES if s.name == "project")
    assert stage.argv == ("project",) and not stage.needed and "Explore" in demo_runner.MAKES_USABLE["project"]
