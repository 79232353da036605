"""Ray engine of the embed stage: same vectors as in-process, killed worker redone, shards planned and written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from db import embeddings as store
from db.database import Database
from fakes import ColourEncoder
from pipeline import ray_engine
from pipeline.embed import embed
from test_embed import four_photos  # noqa: F401 - fixture

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def local_ray():
    """One embedded 2-CPU Ray for the module; workers import the test fakes."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
    ray_engine.start_ray(None, 2)
    yield
    ray.shutdown()


def test_plan_is_deterministic_and_numbered() -> None:
    todo = pd.DataFrame({"image_id": [f"d/{i}" for i in range(5)], "path": ["p"] * 5, "sha256": ["s"] * 5})
    plan = ray_engine.plan_shards(todo.iloc[::-1], 2)
    assert [len(s.image_ids) for s in plan] == [2, 2, 1]
    assert plan == ray_engine.plan_shards(todo, 2) and plan[0].name.startswith("00000-")
    assert plan[0].name != ray_engine.plan_shards(todo.iloc[1:], 2)[0].name


def test_writer_is_atomic_and_lists_shards(tmp_path: Path) -> None:
    import pyarrow as pa

    ray_engine.write_shard(str(tmp_path / "out"), "00000-a.parquet", pa.table({"x": [1]}))
    assert ray_engine.existing_shards(str(tmp_path / "out")) == {"00000-a.parquet"}
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["00000-a.parquet"]


def test_ray_matches_in_process(db: Database, four_photos: Path, tmp_path: Path, local_ray) -> None:  # noqa: F811
    report = ray_engine.embed_ray(db, ColourEncoder(), shards_uri=str(tmp_path / "s"), shard_size=1, workers=2,
                                  quiet=True)
    assert report.embedded == 3 and [i for i, _ in report.failed] == []
    ids, ray_vectors = store.visible_vectors(db, "colour-test")
    with db.write() as cur:
        cur.execute("DELETE FROM embeddings")
    embed(db, ColourEncoder(), workers=0, quiet=True)
    local_ids, local_vectors = store.visible_vectors(db, "colour-test")
    assert ids == local_ids and np.abs(ray_vectors - local_vectors).max() <= 1e-5


class CrashOnceMapper(ray_engine.EmbedMapper):
    """Kills its worker process on the first shard of the job (a marker file beside the shards says it did)."""

    def __call__(self, batch: dict) -> dict:
        marker = Path(self.uri).parent / "crashed"
        if not marker.exists():
            marker.touch()
            os._exit(1)
        return super().__call__(batch)


def test_killed_worker_shard_is_redone(db: Database, four_photos: Path,  # noqa: F811
                                       tmp_path: Path, local_ray) -> None:
    marker = tmp_path / "crashed"
    report = ray_engine.embed_ray(db, ColourEncoder(), shards_uri=str(tmp_path / "s"), shard_size=1, workers=2,
                                  quiet=True, mapper=CrashOnceMapper)
    assert marker.exists()
    assert report.embedded == 3
    rows = db.fetch_all("SELECT image_id, count(*) FROM embeddings GROUP BY image_id ORDER BY image_id")
    assert rows == [("c/1", 1), ("c/2", 1), ("c/3", 1)]


def test_unreachable_address_exits_2_and_changes_nothing(path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli import main

    before = path.read_bytes()
    assert main(["embed", "--db", str(path), "--engine", "ray", "--address", "127.0.0.1:1", "--quiet"]) == 2
    assert "cannot reach Ray at 127.0.0.1:1" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_gpus_per_worker_is_refused_where_nothing_runs_on_a_gpu(path: Path, shared_weights: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """The offline encoder and the perception networks run on ONNX Runtime's CPU provider: GPUs asked for would
    be reserved on a cluster and left idle, so the stage says so before Ray starts; a negative count is a usage
    error."""
    from pipeline.cli import main

    before = path.read_bytes()
    assert main(["embed", "--db", str(path), "--engine", "ray", "--gpus-per-worker", "1", "--quiet"]) == 2
    assert "has no GPU path" in capsys.readouterr().err
    assert main(["perceive", "--db", str(path), "--weights", str(shared_weights), "--engine", "ray",
                 "--gpus-per-worker", "0.5", "--quiet"]) == 2
    assert "no GPU path" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["embed", "--db", str(path), "--engine", "ray", "--gpus-per-worker", "-1"])
    assert "give a number of GPUs, 0 or more" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_offline_encoder_on_coco_mini_gives_the_in_process_vectors(tmp_path: Path, shared_data: Path,
                                                                   local_ray) -> None:
    """The goal of issue #16 on the real photos: every COCO-mini photo, the offline encoder (sent to the actors
    without its ONNX session, which each actor opens itself), vectors and cached features within 1e-5."""
    from builders import ingest
    from pipeline import bridge

    db = Database(tmp_path / "coco.duckdb")
    ingest(db, shared_data / "coco-mini")
    encoder = ray_engine.base_encoder(bridge.load_for(db, "offline"))
    report = ray_engine.embed_ray(db, encoder, shards_uri=str(tmp_path / "s"), shard_size=32, workers=2,
                                  quiet=True)
    ray_ids, ray_vectors = store.dataset_vectors(db, encoder.id, "coco-mini")
    ray_features = store.cached_features(db, encoder.feature_id, ray_ids)
    with db.write() as cur:
        cur.execute("DELETE FROM embeddings")
        cur.execute("DELETE FROM image_features")
    embed(db, encoder, quiet=True)
    ids, vectors = store.dataset_vectors(db, encoder.id, "coco-mini")
    features = store.cached_features(db, encoder.feature_id, ids)
    assert report.embedded == len(ids) == 239 and ray_ids == ids and ray_features[0] == features[0] == ids
    assert np.abs(ray_vectors - vectors).max() <= 1e-5
    assert np.abs(ray_features[1] - features[1]).max() <= 1e-5
    db.close()


def test_default_shard_folder_is_emptied_once_loaded(db: Database, four_photos: Path, local_ray) -> None:  # noqa: F811
    report = ray_engine.embed_ray(db, ColourEncoder(), shard_size=1, workers=2, quiet=True)
    folder = Path(ray_engine.default_shards_dir(db, "embed", "colour-test"))
    assert report.embedded == 3 and folder.is_dir() and list(folder.iterdir()) == []
    assert db.fetch_all("SELECT count(*) FROM embeddings")[0][0] == 3


def _perceived(db: Database) -> tuple[list, pd.DataFrame]:
    photos = db.fetch_all("SELECT image_id, sha256, width, height, objects, faces FROM perceived_photos ORDER BY 1")
    found = db.fetch_df("SELECT image_id, sha256, model_id, kind, label, score, x0, y0, x1, y1, size_px, age, "
                        "age_model FROM detections ORDER BY image_id, kind, label, score")
    return photos, found.reset_index(drop=True)


def test_perceive_on_ray_stores_what_the_in_process_stage_does(tmp_path: Path, shared_data: Path,
                                                               shared_weights: Path, local_ray) -> None:
    """Twelve real COCO-mini photos perceived by 2 actors (each checking the weights itself), boxes scaled to the
    stored size by the driver: the same perceived_photos and detections as in-process; a shard loaded twice
    changes nothing."""
    from builders import ingest
    from pipeline import perceive
    from pipeline.perception import PERCEIVER_ID

    db = Database(tmp_path / "perceive.duckdb")
    ingest(db, shared_data / "coco-mini")
    with db.write() as cur:  # twelve photos to do: the others count as missing here
        cur.execute("UPDATE images SET status = 'missing' WHERE id NOT IN "
                    "(SELECT id FROM images WHERE status = 'ok' ORDER BY id LIMIT 12)")
    shards = tmp_path / "shards"
    report = ray_engine.perceive_ray(db, str(shared_weights), shards_uri=str(shards), shard_size=4, workers=2,
                                     quiet=True)
    on_ray = _perceived(db)
    before = db.fetch_all("SELECT count(*), max(created) FROM perceived_photos")
    report_again = ray_engine.PerceiveReport(PERCEIVER_ID)
    for file in sorted(shards.glob("*.parquet")):
        ray_engine.load_perceived_shard(db, str(file), None, PERCEIVER_ID, report_again)
    assert report_again.perceived == 0 and db.fetch_all("SELECT count(*), max(created) FROM perceived_photos") == before
    with db.write() as cur:
        cur.execute("DELETE FROM detections")
        cur.execute("DELETE FROM perceived_photos")
    local = perceive.perceive(db, perceive.Perceiver(shared_weights, threads=1), quiet=True)
    in_process = _perceived(db)
    assert report.perceived == local.perceived == 12 and report.objects == local.objects > 0
    assert on_ray[0] == in_process[0]
    numbers = ["score", "x0", "y0", "x1", "y1", "size_px", "age"]
    pd.testing.assert_frame_equal(on_ray[1].drop(columns=numbers), in_process[1].drop(columns=numbers))
    assert np.allclose(on_ray[1][numbers].astype(float), in_process[1][numbers].astype(float), atol=1e-4,
                       equal_nan=True)
    db.close()


def test_perceive_unreachable_address_exits_2_and_changes_nothing(path: Path, shared_weights: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli import main

    before = path.read_bytes()
    assert main(["perceive", "--db", str(path), "--weights", str(shared_weights), "--engine", "ray",
                 "--address", "127.0.0.1:1", "--quiet"]) == 2
    assert "cannot reach Ray at 127.0.0.1:1" in capsys.readouterr().err
    assert path.read_bytes() == before
