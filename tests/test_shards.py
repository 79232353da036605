"""db/shards.py: vector shards load idempotently, bad shards are refused whole with file and reason."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from db import embeddings
from db.database import Database
from db.shards import load_vector_files


def _photos(db: Database, n: int) -> None:
    with db.write() as cur:
        cur.execute("INSERT INTO datasets VALUES ('d', 'coco', '/x', 'fp', 1)")
        for i in range(n):
            cur.execute("INSERT INTO images VALUES (?, 'd', ?, ?, NULL, 1, 1, ?, 'ok', NULL, false)",
                        [f"d/{i}", str(i), f"{i}.jpg", f"sha{i}"])


def _shard(path: Path, ids: list[int], encoder: str = "enc", dim: int = 4, shas: list[str] | None = None) -> str:
    vectors = np.random.default_rng(len(ids)).random((len(ids), dim), dtype=np.float32)
    pq.write_table(pa.table({"image_id": [f"d/{i}" for i in ids], "sha256": shas or [f"sha{i}" for i in ids],
                             "encoder_id": [encoder] * len(ids), "vector": embeddings.vectors_to_arrow(vectors),
                             "feature_id": ["feat"] * len(ids),
                             "features": embeddings.vectors_to_arrow(vectors * 2)}), path)
    return str(path)


def test_shard_loaded_twice_changes_nothing(db: Database, tmp_path: Path) -> None:
    _photos(db, 4)
    first = load_vector_files(db, [_shard(tmp_path / "a.parquet", [0, 1, 2])], encoder_id="enc")
    assert (first.inserted, first.refused) == (3, [])
    version = embeddings.vector_set_version(db, "enc")
    again = load_vector_files(db, [str(tmp_path / "a.parquet")], encoder_id="enc")
    assert (again.inserted, again.already_stored) == (0, 3)
    assert embeddings.vector_set_version(db, "enc") == version
    ids, features = embeddings.cached_features(db, "feat", ["d/0", "d/1", "d/2"])
    assert ids == ["d/0", "d/1", "d/2"] and features.shape == (3, 4)


def test_bad_shards_refused_with_file_and_reason_and_stored_kept(db: Database, tmp_path: Path) -> None:
    _photos(db, 4)
    load_vector_files(db, [_shard(tmp_path / "a.parquet", [0])])
    wrong_dim = _shard(tmp_path / "dim.parquet", [1], dim=5)
    wrong_enc = _shard(tmp_path / "enc.parquet", [2], encoder="other")
    garbage = tmp_path / "junk.parquet"
    garbage.write_bytes(b"not parquet")
    good = _shard(tmp_path / "b.parquet", [3])
    report = load_vector_files(db, [wrong_dim, wrong_enc, str(garbage), good], encoder_id="enc")
    reasons = dict(report.refused)
    assert "dimension 5" in reasons[wrong_dim] and wrong_dim in reasons[wrong_dim]
    assert "'other'" in reasons[wrong_enc]
    assert "unreadable" in reasons[str(garbage)]
    assert report.inserted == 1
    assert embeddings.embedded_count(db, "enc") == 2


def test_row_for_changed_bytes_not_loaded(db: Database, tmp_path: Path) -> None:
    _photos(db, 2)
    report = load_vector_files(db, [_shard(tmp_path / "a.parquet", [0, 1], shas=["sha0", "old-bytes"])])
    assert (report.inserted, report.stale) == (1, 1)
    assert embeddings.embedded_count(db, "enc") == 1
