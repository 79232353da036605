"""Search: ranking, paging, cut-off, visible photos only, and every kind of awkward query."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.database import Database
from fakes import ColourEncoder
from pipeline.embed import embed
from pipeline.minors import moderation
from pipeline.minors.filter import run_filter
from pipeline.search import MAX_QUERY_CHARS, NoVectors, QueryError, Searcher, clean_query
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
