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


def _second(path: Path) -> Database:
    """The same four photos, every one cleared here, with no vectors, labels or relevance yet."""
    second = Database(path)
    _studio(second)
    with second.write() as cur:
        for table in ("embeddings", "labels", "relevance"):
            cur.execute(f"DELETE FROM {table}")
        cur.execute("UPDATE minors_decisions SET status = 'cleared'")
    return second


def _state(db: Database) -> list:
    return [db.fetch_all(sql) for sql in (
        "SELECT encoder_id, image_id, sha256, vector, created FROM embeddings ORDER BY 1, 2",
        "SELECT user_name, query, image_id, verdict FROM labels ORDER BY 3",
        "SELECT dataset, image_id, query_id, relevance FROM relevance ORDER BY 2",
        "SELECT image_id, status, decided_by FROM minors_decisions ORDER BY 1")]


def test_ingest_of_an_export_round_trips_and_only_ever_excludes(db: Database, tmp_path: Path) -> None:
    _studio(db)
    out = tmp_path / "export"
    exchange.export(db, out, quiet=True)
    assert exchange.is_export(out) and not exchange.is_export(tmp_path)
    with _second(tmp_path / "second.duckdb") as second:
        result = exchange.ingest_export(second, out, quiet=True)
        assert (result.vectors, result.labels, result.relevance, result.excluded, result.cleared_not_applied,
                result.rejects) == (3, 2, 2, 1, 2, [])
        vectors, labels, relevance, decisions = _state(second)
        assert [row[:4] for row in vectors] == db.fetch_all(
            "SELECT e.encoder_id, e.image_id, e.sha256, e.vector FROM embeddings e JOIN visible_images v "
            "ON v.id = e.image_id AND v.sha256 = e.sha256 ORDER BY 1, 2")
        assert [row[2] for row in labels] == ["d/0", "d/1"] and [row[1] for row in relevance] == ["d/0", "d/1"]
        # the export's exclusion of d/2 applied as an audited decision; its pending d/3 did not loosen or
        # tighten anything here (pending is not an exclusion), and no 'cleared' was ever applied
        assert decisions == [("d/0", "cleared", "rule"), ("d/1", "cleared", "rule"),
                             ("d/2", "excluded", "moderator"), ("d/3", "cleared", "rule")]
        audit = second.fetch_all("SELECT image_id, moderator, new_status, reason FROM moderation_audit")
        assert audit == [("d/2", exchange.IMPORT_MODERATOR, "excluded",
                          "excluded in the export export (minors_decisions/status=excluded/data_0.parquet)")]
        before = _state(second)
        again = exchange.ingest_export(second, out, quiet=True)
        assert (again.vectors, again.labels, again.relevance, again.excluded) == (0, 0, 0, 0)
        assert _state(second) == before  # created stamps included: the search index is not rebuilt


def test_ingest_of_an_export_rejects_bad_files_and_rows_one_by_one(db: Database, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _studio(db)
    out = tmp_path / "export"
    exchange.export(db, out, quiet=True)
    (out / "labels" / "broken.parquet").write_bytes(b"PAR1 not parquet at all")
    pq.write_table(pa.table({"image_id": ["d/0"], "sha256": ["sha0"], "encoder_id": ["small"],
                             "vector": pa.array([[1.0, 2.0, 3.0, 4.0]], pa.list_(pa.float32()))}),
                   out / "vectors" / "encoder_id=small" / "wrong_dim.parquet")
    pq.write_table(pa.table({"image_id": ["d/9", "d/1"], "sha256": ["sha9", "sha1"], "encoder_id": ["tiny"] * 2,
                             "vector": pa.array([[1.0], [2.0]], pa.list_(pa.float32()))}),
                   out / "vectors" / "encoder_id=small" / "unknown_photo.parquet")
    with _second(tmp_path / "second.duckdb") as second:
        with second.write() as cur:
            cur.execute("INSERT INTO embeddings VALUES ('d/0', 'small', 'sha0', [7.0, 7.0, 7.0], now())")
        result = exchange.ingest_export(second, out, quiet=True)
        rejects = second.fetch_all("SELECT file, line, raw, reason FROM rejects ORDER BY file, line")
        assert [(f, line, raw) for f, line, raw, _ in rejects] == [
            ("labels/broken.parquet", None, None), ("vectors/encoder_id=small/unknown_photo.parquet", 1, "d/9"),
            ("vectors/encoder_id=small/wrong_dim.parquet", None, None)]
        assert "dimension 4" in rejects[2][3] and "no such photo" in rejects[1][3]
        assert len(result.rejects) == 3 and result.labels == 2  # the good labels file still loaded
        stored = {(e, i): v for e, i, v in second.fetch_all("SELECT encoder_id, image_id, vector FROM embeddings")}
        assert stored[("small", "d/0")] == [7.0, 7.0, 7.0]  # what was stored for the same bytes is kept
        assert stored[("tiny", "d/1")] == [2.0] and ("tiny", "d/9") not in stored


def test_cli_ingest_of_an_export(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with Database(path) as db:
        _studio(db)
    assert main(["export", "--db", str(path), "--to", str(tmp_path / "out"), "--quiet"]) == 0
    second = tmp_path / "second.duckdb"
    _second(second).close()
    assert main(["ingest", "--db", str(second), "--data", str(tmp_path / "out"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "3 vectors loaded" in printed and "1 photos excluded" in printed and "0 rejects" in printed
