"""Search: ranking, paging, cut-off, visible photos only, and every kind of awkward query."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from db import reads
from db.database import Database
from fakes import ColourEncoder
from pipeline.embed import embed
from pipeline.minors import moderation
from pipeline.minors.filter import run_filter
from pipeline.search import MAX_QUERY_CHARS, EncoderIndex, NoVectors, QueryError, Searcher, clean_query
from test_embed import photo_folder, solid
from builders import ingest


@pytest.fixture
def searcher(db: Database, tmp_path: Path) -> Searcher:
    files = {f"{i:012d}.png": solid(colour) for i, colour in
             enumerate([(255, 0, 0), (230, 20, 20), (0, 255, 0), (0, 0, 255), (200, 0, 40)], start=1)}
    ingest(db, photo_folder(tmp_path / "c", files))
    run_filter(db, detector=None, quiet=True)
    embed(db, ColourEncoder(), workers=0, quiet=True)
    return Searcher(db, ColourEncoder())


def test_ranks_by_cosine_and_pages(searcher: Searcher) -> None:
    result = searcher.search("something red", k=3)
    assert [hit.image_id for hit in result.hits] == ["c/1", "c/2", "c/5"]
    assert [hit.rank for hit in result.hits] == [1, 2, 3]
    assert result.hits[0].score >= result.hits[1].score >= result.hits[2].score
    page_two = searcher.search("something red", k=3, offset=3)
    assert [hit.rank for hit in page_two.hits] == [4, 5]
    assert {h.image_id for h in result.hits} | {h.image_id for h in page_two.hits} == {f"c/{i}" for i in range(1, 6)}


def test_score_cut_off(searcher: Searcher) -> None:
    everything = searcher.search("red", k=5)
    cut = everything.hits[2].score
    assert [h.image_id for h in searcher.search("red", k=5, min_score=cut).hits] == [
        h.image_id for h in everything.hits[:3]]


def test_never_returns_a_photo_the_view_hides(db: Database, searcher: Searcher) -> None:
    """A photo a moderator excludes after the index was built still never comes out."""
    assert searcher.search("red", k=1).hits[0].image_id == "c/1"  # index built now, c/1 in it
    moderation.decide(db, ["c/1"], "excluded", moderator="mia", reason="child in the background")
    result = searcher.search("red", k=5)
    assert "c/1" not in [hit.image_id for hit in result.hits] and len(result.hits) == 4
    assert result.notices == []  # not a stale index: the index holds every vector, visibility is per answer
    fresh = Searcher(db, ColourEncoder())
    assert "c/1" not in [hit.image_id for hit in fresh.search("red", k=5).hits]
    assert fresh.search("red", k=5).notices == []


@pytest.mark.parametrize("query, message", [
    ("", "Type a few words"), ("   \t\n ", "Type a few words"), (None, "Type a few words"),
    ("🐶🐱🌊", "no words"), ("!!! ??? ...", "no words"),
])
def test_unsearchable_queries_get_a_message(searcher: Searcher, query, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        searcher.search(query)


def test_odd_but_searchable_queries_get_results(searcher: Searcher) -> None:
    long = searcher.search("red " * 2500)  # 10,000 characters
    assert long.hits and any("shortened" in n for n in long.notices)
    russian = searcher.search("красная машина")
    assert russian.hits and any("English" in n for n in russian.notices)
    emoji_and_words = searcher.search("red 🚗 car")
    assert emoji_and_words.hits and emoji_and_words.notices == []


def test_clean_query_normalises() -> None:
    assert clean_query("  a\u00a0dog\n on   grass ") == ("a dog on grass", [])
    text, notices = clean_query("x" * (MAX_QUERY_CHARS + 5))
    assert len(text) == MAX_QUERY_CHARS and notices


def test_bad_paging_arguments(searcher: Searcher) -> None:
    with pytest.raises(QueryError, match="k must be"):
        searcher.search("red", k=0)
    with pytest.raises(QueryError, match="offset"):
        searcher.search("red", offset=-1)


def test_no_vectors_names_the_command(db: Database) -> None:
    with pytest.raises(NoVectors, match="python -m pipeline embed"):
        Searcher(db, ColourEncoder()).search("red")


def test_one_searcher_serves_many_threads(searcher: Searcher) -> None:
    """As the dashboard shares one Searcher (st.cache_resource) between sessions."""
    import threading

    results, errors = [], []

    def ask(query: str) -> None:
        try:
            for _ in range(20):
                results.append((query, [h.image_id for h in searcher.search(query, k=3).hits]))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(q,)) for q in ("red", "green", "blue", "red car") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 160
    assert {tuple(ids) for query, ids in results if query == "red"} == {("c/1", "c/2", "c/5")}


# ------------------------------------------------------------------------------ totals, scale, more like this
def nearest_other(db: Database, image_id: str) -> str:
    """The photo whose stored vector is nearest to ``image_id``'s, visible or not (the index's own view)."""
    from db import embeddings as store

    ids, vectors = zip(*store.vectors_of(db, "colour-test", [f"c/{i}" for i in range(1, 6)]).items())
    own = vectors[ids.index(image_id)]
    return max((float(v @ own), i) for i, v in zip(ids, vectors) if i != image_id)[1]


def test_more_like_this_never_returns_an_excluded_photo_even_the_nearest(db: Database, searcher: Searcher) -> None:
    nearest = nearest_other(db, "c/1")
    assert [h.image_id for h in searcher.like("c/1", k=1).hits] == [nearest]  # index built with it visible
    moderation.decide(db, [nearest], "excluded", moderator="mia", reason="child in the background")
    result = searcher.like("c/1", k=10)
    ids = [h.image_id for h in result.hits]
    assert nearest not in ids and "c/1" not in ids  # neither the excluded nearest nor the photo itself
    assert sorted(ids) == sorted({"c/2", "c/3", "c/4", "c/5"} - {nearest}) and result.total == 3
    assert [h.rank for h in result.hits] == [1, 2, 3] and result.hits[0].score >= result.hits[-1].score
    assert [h.image_id for h in searcher.like("c/1", k=2, offset=1).hits] == ids[1:3]


def test_more_like_this_from_a_photo_no_longer_shown_is_refused(db: Database, searcher: Searcher) -> None:
    moderation.decide(db, ["c/3"], "pending_review", moderator="mia", reason="unsure")
    with pytest.raises(QueryError, match="not shown any more"):
        searcher.like("c/3")
    with pytest.raises(QueryError, match="not shown any more"):
        searcher.like("c/404")


def test_totals_count_visible_photos_at_or_above_the_cut_off(db: Database, searcher: Searcher) -> None:
    searcher.indexes.recount_wait_seconds = None  # after the decision below: wait for the recount
    full = searcher.search("red", k=5, with_total=True)
    assert full.total == 5
    cut = full.hits[2].score
    assert searcher.search("red", k=1, min_score=cut, with_total=True).total == 3  # every page, not this one
    moderation.decide(db, ["c/1"], "excluded", moderator="mia", reason="child in the background")
    assert searcher.search("red", k=5, with_total=True).total == 4
    assert searcher.search("red", k=5, min_score=cut, with_total=True).total == 2
    vector = searcher.query_vector("red")
    assert searcher.count_at_least(vector, 2.0) == 0 and searcher.count_at_least(vector, -2.0) == 4
    # More than half the index above the cut-off: counted from the side below, the same answer.
    assert searcher.count_at_least(vector, full.hits[4].score) == 4


def test_after_a_decision_the_total_of_before_stands_in_while_it_is_recounted(
        db: Database, searcher: Searcher, monkeypatch: pytest.MonkeyPatch) -> None:
    """The visible count joins every visible photo (~0.6 s at a million): a decision must not make the next search
    wait for it. The old total is shown, marked, until the background recount lands."""
    assert searcher.search("red", k=5, with_total=True).total == 5
    release, real = threading.Event(), reads.visible_vector_count
    monkeypatch.setattr(reads, "visible_vector_count", lambda *a, **k: release.wait(10) and real(*a, **k))
    searcher.indexes.recount_wait_seconds = 0.05
    moderation.decide(db, ["c/1"], "excluded", moderator="mia", reason="child in the background")
    started = time.perf_counter()
    stale = searcher.search("red", k=5, with_total=True)
    assert time.perf_counter() - started < 5 and (stale.total, stale.total_current) == (5, False)
    assert "c/1" not in [hit.image_id for hit in stale.hits]  # the results themselves are never stale
    release.set()
    searcher.indexes.recount_wait_seconds = None
    fresh = searcher.search("red", k=5, with_total=True)
    assert (fresh.total, fresh.total_current) == (4, True)


def test_warming_the_index_counts_the_visible_photos_before_the_first_query(
        db: Database, searcher: Searcher, monkeypatch: pytest.MonkeyPatch) -> None:
    index = EncoderIndex(db, searcher.encoder.id)
    index.warm()
    index._warming.join(60)
    monkeypatch.setattr(reads, "visible_vector_count", lambda *a, **k: pytest.fail("counted when asked"))
    assert index.visible_count() == 5 and index.count_current()


def test_score_range_is_the_scale_the_query_scores_use(searcher: Searcher) -> None:
    low, high = searcher.score_range("red")
    scores = [h.score for h in searcher.search("red", k=5).hits]
    assert low == pytest.approx(min(scores), abs=1e-6) and high == pytest.approx(max(scores), abs=1e-6)
    assert searcher.score_range("a little girl on a beach") is None  # refused by the minors rules: never encoded
