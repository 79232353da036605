"""Parquet export (pipeline/exchange.py): Hive-partitioned tables DuckDB reads back; only visible photos' vectors
and labels leave; the target appears whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from db.database import Database
from db.shards import load_vector_files
from pipeline import exchange
from pipeline.cli import main

STATUSES = {0: "cleared", 1: "cleared", 2: "excluded", 3: "pending_review"}


def _studio(db: Database) -> None:
    """Four photos (two cleared, one excluded, one pending), a vector of two encoders each, a label and a
    relevance pair per photo."""
    with db.write() as cur:
        cur.execute("INSERT INTO datasets VALUES ('d', 'coco', '/x', 'fp', 1)")
        for i, status in STATUSES.items():
            cur.execute("INSERT INTO images VALUES (?, 'd', ?, ?, NULL, 1, 1, ?, 'ok', NULL, false)",
                        [f"d/{i}", str(i), f"{i}.jpg", f"sha{i}"])
            cur.execute("INSERT INTO minors_decisions VALUES (?, ?, ?, '{}', 'v1', 'rule', NULL, now())",
                        [f"d/{i}", f"sha{i}", status])
            for encoder, dim in (("small", 3), ("big", 5)):
                cur.execute("INSERT INTO embeddings VALUES (?, ?, ?, ?, now())",
                            [f"d/{i}", encoder, f"sha{i}", [float(i)] * dim])
            cur.execute("INSERT INTO labels VALUES (?, 'ann', now(), 'dog', ?, 'small', 1, 0.5, 'relevant', "
                        "NULL, NULL)",
                        [i + 1, f"d/{i}"])
            cur.execute("INSERT INTO relevance VALUES ('d', ?, 'q#0', 0.5, 0.5, 3, 0.5, 'f')", [f"d/{i}"])
        # a cleared photo whose bytes changed since its vector: that vector must not leave either
        cur.execute("UPDATE embeddings SET sha256 = 'old' WHERE image_id = 'd/1' AND encoder_id = 'big'")


def test_export_reads_back_with_hive_partitions_and_only_visible_vectors(db: Database, tmp_path: Path) -> None:
    _studio(db)
    out = tmp_path / "export"
    result = exchange.export(db, out, quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == exchange.FORMAT_NAME and manifest["version"] == exchange.FORMAT_VERSION
    assert manifest["counts"] == result.counts == {"vectors": 3, "labels": 2, "minors_decisions": 4, "relevance": 2}
    assert manifest["encoders"] == {"big": {"dims": 5, "vectors": 1}, "small": {"dims": 3, "vectors": 2}}
    assert (out / "vectors" / "encoder_id=small").is_dir()
    assert (out / "minors_decisions" / "status=excluded").is_dir()
    con = duckdb.connect()
    vectors = con.execute(f"SELECT encoder_id, image_id, sha256, vector FROM read_parquet('{out}/vectors/**/*.parquet',"
                          " hive_partitioning=true) ORDER BY 1, 2").fetchall()
    assert vectors == [("big", "d/0", "sha0", [0.0] * 5), ("small", "d/0", "sha0", [0.0] * 3),
                       ("small", "d/1", "sha1", [1.0] * 3)]
    decisions = dict(con.execute(f"SELECT image_id, status FROM read_parquet('{out}/minors_decisions/**/*.parquet', "
                                 "hive_partitioning=true)").fetchall())
    assert decisions == {f"d/{i}": s for i, s in STATUSES.items()}
    labels = con.execute(f"SELECT image_id FROM read_parquet('{out}/labels/*.parquet') ORDER BY 1").fetchall()
    assert labels == [("d/0",), ("d/1",)]
    relevance = con.execute(f"SELECT dataset, image_id FROM read_parquet('{out}/relevance/**/*.parquet', "
                            "hive_partitioning=true) ORDER BY 2").fetchall()
    assert relevance == [("d", "d/0"), ("d", "d/1")]


def test_exported_vector_files_load_as_shards_into_a_second_db(db: Database, tmp_path: Path) -> None:
    _studio(db)
    out = tmp_path / "export"
    exchange.export(db, out, quiet=True)
    with Database(tmp_path / "second.duckdb") as second:
        _studio(second)
        with second.write() as cur:
            cur.execute("DELETE FROM embeddings")
        files = sorted(str(p) for p in (out / "vectors").rglob("*.parquet"))
        report = load_vector_files(second, files)
        assert (report.inserted, report.refused) == (3, [])
        assert second.fetch_all("SELECT encoder_id, image_id, vector FROM embeddings ORDER BY 1, 2") == \
            db.fetch_all("SELECT e.encoder_id, e.image_id, e.vector FROM embeddings e JOIN visible_images v "
                         "ON v.id = e.image_id AND v.sha256 = e.sha256 ORDER BY 1, 2")


def test_non_empty_target_refused_unless_force(db: Database, tmp_path: Path) -> None:
    _studio(db)
    out = tmp_path / "export"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(exchange.ExportError, match="not empty"):
        exchange.export(db, out, quiet=True)
    assert (out / "keep.txt").read_text() == "mine"
    exchange.export(db, out, force=True, quiet=True)
    assert not (out / "keep.txt").exists() and (out / "manifest.json").is_file()


def test_failed_export_leaves_no_folder(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _studio(db)

    def killed(*_args) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(exchange.exchange, "encoder_dims", killed)
    with pytest.raises(KeyboardInterrupt):
        exchange.export(db, tmp_path / "export", quiet=True)
    assert not [p for p in tmp_path.iterdir() if "export" in p.name]


def test_cli_export(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with Database(path) as db:
        _studio(db)
    assert main(["export", "--db", str(path), "--to", str(tmp_path / "out"), "--quiet"]) == 0
    assert "vectors 3" in capsys.readouterr().out
    assert main(["export", "--db", str(path), "--to", str(tmp_path / "out"), "--quiet"]) != 0
