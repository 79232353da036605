"""Search above ann_store.ANN_ABOVE answers from the saved FAISS index (lowered to 0 here, so 12 colour photos are
"many"): saved beside the database with its version, reused by a new process, brought up to date with new vectors
without a rebuild, rebuilt (reason logged) when vectors were deleted or the files are corrupt, never answering with
an excluded photo, and usable on read-only storage."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from db import embeddings as store
from db.database import Database
from fakes import ColourEncoder
from pipeline import ann_store
from pipeline.ann_index import AnnIndex
from pipeline.cli import main as pipeline_main
from pipeline.embed import embed
from pipeline.search import EncoderIndex, Searcher
from test_readonly_storage import read_only_storage
from test_search_page import embedded_colour_db

ENCODER = "colour-test"
RED = {"c/3", "c/6", "c/9", "c/12"}


@pytest.fixture
def ann(monkeypatch: pytest.MonkeyPatch) -> list[AnnIndex]:
    """Every search uses the ANN index; the list collects each index built (not loaded) from now on."""
    monkeypatch.setattr(ann_store, "ANN_ABOVE", 0)
    built: list[AnnIndex] = []
    original = AnnIndex.build.__func__

    def counting(cls, chunks, *, folder, dim):
        index = original(cls, chunks, folder=folder, dim=dim)
        built.append(index)
        return index

    monkeypatch.setattr(AnnIndex, "build", classmethod(counting))
    return built


@pytest.fixture
def path(tmp_path: Path) -> Path:
    (tmp_path / "store").mkdir()
    return embedded_colour_db(tmp_path / "store" / "studio.duckdb", tmp_path / "c", photos=12)


def red(db: Database, top: int = 4) -> set[str]:
    """A fresh searcher (a new process's), so each call loads the saved index or builds one."""
    return {hit.image_id for hit in Searcher(db, ColourEncoder()).search("red", k=top).hits}


def saved_meta(path: Path) -> dict:
    return json.loads((ann_store.index_folder(path, ENCODER) / "meta.json").read_text())


def test_the_index_is_saved_beside_the_database_and_reused(path: Path, ann: list) -> None:
    with Database(path) as db:
        searcher = Searcher(db, ColourEncoder())
        assert isinstance(searcher.index, AnnIndex)
        assert red(db) == RED and len(ann) == 1
        count, newest = store.vector_set_version(db, ENCODER)
        assert saved_meta(path)["version"] == [count, newest.isoformat()]
        assert red(db) == RED and len(ann) == 1  # loaded, not built again
    folder = ann_store.index_folder(path, ENCODER)
    assert folder.parent == Path(f"{path}.index") and folder.name.startswith("colour-test-")


def test_an_excluded_nearest_neighbour_is_never_returned_and_nothing_is_rebuilt(path: Path, ann: list) -> None:
    with Database(path) as db:
        searcher = Searcher(db, ColourEncoder())
        assert {hit.image_id for hit in searcher.search("red", k=4).hits} == RED
        generation = searcher.index.generation
        with db.write() as cur:
            cur.execute("UPDATE images SET status = 'missing' WHERE id = 'c/6'")  # not visible any more
        hits = searcher.search("red", k=12).hits
        assert "c/6" not in {hit.image_id for hit in hits} and {"c/3", "c/9", "c/12"} <= {h.image_id for h in hits}
        assert searcher.index.generation == generation and len(ann) == 1


def test_new_and_replaced_vectors_are_added_without_a_rebuild(path: Path, ann: list,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with Database(path) as db:
        with db.write() as cur:
            cur.execute("DELETE FROM embeddings WHERE image_id IN ('c/9', 'c/12')")  # not embedded yet
        assert {"c/3", "c/6"} <= red(db) and not {"c/9", "c/12"} & red(db, top=10)
        assert len(ann) == 1
        rows = saved_meta(path)["rows"]
        embed(db, ColourEncoder(), workers=0, quiet=True)  # two new vectors
        with db.write() as cur:  # c/3 re-embedded from new bytes: now blue
            cur.execute("UPDATE embeddings SET vector = [0.0, 0.0, 0.995, 0.1], created = now() "
                        "WHERE image_id = 'c/3'")
        with caplog.at_level(logging.WARNING):
            assert red(db, top=3) == {"c/6", "c/9", "c/12"}
        assert "c/3" not in red(db) and len(ann) == 1  # brought up to date, not rebuilt
        assert "brought up to date" in caplog.text
        assert saved_meta(path)["rows"] == rows + 3 and saved_meta(path)["live"] == 12
        blue = {hit.image_id for hit in Searcher(db, ColourEncoder()).search("blue", k=5).hits}
        assert "c/3" in blue


def test_deleted_vectors_or_corrupt_files_rebuild_with_the_reason_logged(path: Path, ann: list,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    with Database(path) as db:
        assert red(db) == RED and len(ann) == 1
        with db.write() as cur:
            cur.execute("UPDATE images SET status = 'missing' WHERE id = 'c/6'")
            assert store.delete_orphan_vectors(cur, ENCODER) == 1
        with caplog.at_level(logging.WARNING):
            assert red(db, top=3) == {"c/3", "c/9", "c/12"}
        assert len(ann) == 2 and "some were deleted" in caplog.text
        caplog.clear()
        meta = ann_store.index_folder(path, ENCODER) / "meta.json"
        meta.write_text("{half written")
        with caplog.at_level(logging.WARNING):
            assert red(db, top=3) == {"c/3", "c/9", "c/12"}
        assert len(ann) == 3 and "meta.json" in caplog.text and "building" in caplog.text
        assert json.loads(meta.read_text())["live"] == 11
        assert not list(meta.parent.parent.glob("*.building")) and not list(meta.parent.parent.glob("*.old"))


def test_two_searchers_of_one_database_share_one_build(path: Path, ann: list) -> None:
    """Two dashboards (here two threads, each with its own EncoderIndex) asking at once: one builds under the
    folder's lock, the other waits and loads what it saved."""
    with Database(path) as db:
        results: list[set[str]] = []
        gate = threading.Barrier(2)

        def ask() -> None:
            index = EncoderIndex(db, ENCODER)
            gate.wait()
            results.append({i for i, _ in index.current().top_k(ColourEncoder().encode_texts(["red"])[0], 4)})

        threads = [threading.Thread(target=ask) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert results == [RED, RED] and len(ann) == 1


def test_a_cut_off_total_is_an_estimate_from_the_sample(path: Path, ann: list) -> None:
    with Database(path) as db:
        searcher = Searcher(db, ColourEncoder())
        everything = searcher.search("red", k=4, with_total=True)
        assert everything.total == 11 and not everything.total_estimated  # photo 1 (a boy) is held back
        cut = searcher.search("red", k=4, with_total=True, min_score=0.9)
        assert cut.total_estimated and cut.total == 4  # every row is in a sample this small: exact here
        low, high = searcher.score_range("red")
        assert low < 0.9 < high == pytest.approx(max(hit.score for hit in cut.hits))


def test_read_only_storage_uses_a_current_saved_index_or_builds_one_for_itself(
        path: Path, ann: list, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with Database(path) as db:
        assert red(db) == RED and len(ann) == 1
    with read_only_storage(path.parent, monkeypatch) as view, Database(view / path.name, read_only=True) as db:
        assert red(db) == RED and len(ann) == 1  # the saved index is current: loaded from the read-only folder
    with Database(path) as db:
        with db.write() as cur:
            cur.execute("UPDATE embeddings SET created = now() WHERE image_id = 'c/3'")  # the saved one is stale
    mount_point = path.parent.with_name(path.parent.name + "-ro")  # the helper makes it anew
    if mount_point.exists():
        mount_point.rmdir()
    with read_only_storage(path.parent, monkeypatch) as view, Database(view / path.name, read_only=True) as db:
        with caplog.at_level(logging.WARNING):
            assert red(db) == RED
        assert "cannot save a search index" in caplog.text and len(ann) == 2
        assert not ann[-1].folder.is_relative_to(view)


def test_vectors_of_another_dimension_are_refused_by_the_index(tmp_path: Path) -> None:
    vectors = np.eye(4, dtype=np.float32)
    index = AnnIndex.build([(["a", "b", "c", "d"], vectors)], folder=tmp_path / "i", dim=4)
    with pytest.raises(ValueError, match="dim"):
        index.append([(["e"], np.ones((1, 3), np.float32))])
    assert len(index) == 4
    index.close()


def test_index_stage_saves_brings_up_to_date_and_says_when_none_is_needed(
        path: Path, ann: list, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    assert pipeline_main(["index", "--db", str(path), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "index colour-test: 12 vectors in" in out and "no saved index" in err and len(ann) == 1
    with Database(path) as db, db.write() as cur:
        cur.execute("UPDATE embeddings SET created = now() WHERE image_id = 'c/3'")
    assert pipeline_main(["index", "--db", str(path), "--encoder", ENCODER, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "brought up to date" in err and len(ann) == 1
    with Database(path) as db:
        assert red(db) == RED and len(ann) == 1  # the search loads what the stage saved
    assert pipeline_main(["index", "--db", str(path), "--encoder", "nope", "--quiet"]) == 2
    assert "no vectors of encoder 'nope'" in capsys.readouterr().err
    monkeypatch.setattr(ann_store, "ANN_ABOVE", 12)
    assert pipeline_main(["index", "--db", str(path), "--quiet"]) == 0
    assert "at most 12: the search's exact index" in capsys.readouterr().out
