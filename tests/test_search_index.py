"""The dashboard's search index changes only when an encoder's set of vectors does: moderation decisions, labels and
re-ingests never rebuild it (visibility is checked per answer), adding or removing vectors rebuilds it once, and
each encoder keeps one index in memory. Builds are counted by wrapping VectorIndex.build."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest

from dashboard import context, live_search
from dashboard_support import MODERATOR, PRODUCT, list_user
from db import embeddings as store
from db.database import Database
from db.shared import LeasedDatabase
from fakes import ColourEncoder
from pipeline.embed import embed
from pipeline.vector_index import VectorIndex
from test_search_page import embedded_colour_db

ENCODER = "colour-test"
RED_PHOTOS = {"c/3", "c/6", "c/9", "c/12"}  # photo i is red when i % 3 == 0 (test_search_page.colour_photos)


class OtherColourEncoder(ColourEncoder):
    """The same vectors under another encoder id: a second index."""

    def __init__(self) -> None:
        super().__init__()
        self.id = self.feature_id = "colour-other"


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = embedded_colour_db(tmp_path / "studio.duckdb", tmp_path / "c", photos=12)
    encoders = {ENCODER: ColourEncoder, "colour-other": OtherColourEncoder}
    monkeypatch.setitem(live_search.ENCODER_LOADERS, "colour-", lambda db, encoder_id: encoders[encoder_id]())
    monkeypatch.setenv(context.DB_ENV, str(path))
    list_user(MODERATOR)
    list_user(PRODUCT)
    return path


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref]:
    """A weak reference to every index built from now on: its length counts builds, live ones are in memory."""
    refs: list[weakref.ref] = []
    original = VectorIndex.build.__func__

    def counting(cls, chunks, *, rows):
        index = original(cls, chunks, rows=rows)
        refs.append(weakref.ref(index))
        return index

    monkeypatch.setattr(VectorIndex, "build", classmethod(counting))
    return refs


def in_memory(refs: list[weakref.ref]) -> int:
    gc.collect()
    return sum(ref() is not None for ref in refs)


def found(path: Path, query: str = "red", encoder_id: str = ENCODER, top: int = 4) -> set[str]:
    """The ``top`` results for ``query`` (the red photos tie, so as a set)."""
    searcher = live_search.searcher_for(str(path), encoder_id)
    hits = live_search.run_search(searcher, query, k=top, offset=0, min_score=None, rerank=False,
                                  user=PRODUCT.name).result.hits
    return {hit.image_id for hit in hits}


def test_moderation_and_labels_never_rebuild_the_index(path: Path, built: list) -> None:
    assert found(path) == RED_PHOTOS and len(built) == 1
    queue = context.write_queue(str(path))
    for image_id in ("c/6", "c/9", "c/6", "c/2", "c/4"):  # five decisions, one at a time, as moderators click
        [outcome] = queue.submit_and_wait([("moderate", {"image_ids": [image_id], "status": "excluded",
                                                          "reason": "a child in the background"})],
                                          MODERATOR.name, 10)
        assert outcome.state == "saved", outcome
        assert "c/6" not in found(path)
    [outcome] = live_search.flag(queue, PRODUCT.name, "red", ENCODER, [live_search.labels.Flag(
        "c/3", 1, 0.9, "relevant", None)], wait_seconds=10)
    assert outcome.state == "saved", outcome
    assert found(path, top=2) == {"c/3", "c/12"} and not {"c/6", "c/9", "c/2", "c/4"} & found(path, top=12)
    assert len(built) == 1  # the first search built the index; nothing since rebuilt it


def test_a_re_ingest_leaves_the_index_and_vectors_rebuild_it_once(path: Path, built: list) -> None:
    assert found(path) == RED_PHOTOS and len(built) == 1
    with Database(path) as db:
        with db.write() as cur:  # the photo's file went missing at a re-ingest: not visible, vectors unchanged
            cur.execute("UPDATE images SET status = 'missing' WHERE id = 'c/6'")
        assert "c/6" not in found(path) and len(built) == 1
        with db.write() as cur:
            assert store.delete_orphan_vectors(cur, ENCODER) == 1  # a vector removed: one rebuild
        assert found(path, top=3) == {"c/3", "c/9", "c/12"} and found(path, "green")
        assert len(built) == 2
        with db.write() as cur:
            cur.execute("UPDATE images SET status = 'ok' WHERE id = 'c/6'")
        embed(db, ColourEncoder(), workers=0, quiet=True)  # a vector added: one rebuild
    assert found(path) == RED_PHOTOS and found(path, "blue")
    assert len(built) == 3


def test_one_index_per_encoder_in_memory(path: Path, built: list) -> None:
    with Database(path) as db:
        embed(db, OtherColourEncoder(), workers=0, quiet=True)
    assert found(path) == found(path, encoder_id="colour-other") == RED_PHOTOS
    assert len(built) == 2 and in_memory(built) == 2
    with Database(path) as db:
        with db.write() as cur:
            cur.execute("UPDATE images SET status = 'missing' WHERE id = 'c/3'")
            store.delete_orphan_vectors(cur, "colour-other")
    assert found(path, encoder_id="colour-other", top=3) == {"c/6", "c/9", "c/12"}
    assert found(path, top=3) == {"c/6", "c/9", "c/12"}  # the other encoder's index still holds c/3: not visible
    assert len(built) == 3 and in_memory(built) == 2  # the new version replaced the old one
    assert built[1]() is None


def test_must_show_counts_are_recounted_after_a_moderation_decision(path: Path) -> None:
    """The "must show" counts are cached per objects_version: a decision changes it, so an excluded photo's
    objects stop counting at the next page run."""
    with Database(path) as db:
        before = store.objects_version(db)
        assert store.objects_version(db) == before  # nothing changed: the cached counts serve
    queue = context.write_queue(str(path))
    [outcome] = queue.submit_and_wait([("moderate", {"image_ids": ["c/6"], "status": "excluded",
                                                      "reason": "a child in the background"})], MODERATOR.name, 10)
    assert outcome.state == "saved"
    with Database(path) as db:
        assert store.objects_version(db) != before


def test_must_show_counts_lag_one_recount_behind_a_decision(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recount of the "must show" choices runs in the background: a page run waits for it a moment at most,
    and meanwhile shows the counts of before, marked as not current; the next one after it finished shows the
    decision. Results never lag (the same search answers without the excluded photo at once)."""
    from test_search_objects import perceive_rows

    with Database(path) as db:
        perceive_rows(db, {"c/3": [("dog", 0.9)], "c/6": [("dog", 0.9)], "c/7": [("cat", 0.9)]})
    gate, counting = threading.Event(), store.objects_on_visible_photos
    monkeypatch.setattr(store, "objects_on_visible_photos", lambda *a: gate.wait(10) and counting(*a))
    shared = LeasedDatabase(context.shared_database(str(path)))
    counts = live_search.ObjectCounts(shared, wait_seconds=0.05)
    first = store.objects_version(shared)
    assert counts.get(first) == (None, False)  # nothing counted yet: the page offers every COCO name, no numbers
    gate.set()
    assert counts.get(first) == ([("dog", 2), ("cat", 1)], True)
    gate.clear()
    queue = context.write_queue(str(path))
    [outcome] = queue.submit_and_wait([("moderate", {"image_ids": ["c/6"], "status": "excluded",
                                                      "reason": "a child in the background"})], MODERATOR.name, 10)
    assert outcome.state == "saved"
    second = store.objects_version(shared)
    assert counts.get(second) == ([("dog", 2), ("cat", 1)], False)  # the counts of before, while recounting
    assert "c/6" not in found(path, top=12)
    gate.set()
    counts.wait_seconds = 10  # the page run waits a tenth of it when counts of before stand in: 1 s for the recount
    assert counts.get(second) == ([("cat", 1), ("dog", 1)], True)
