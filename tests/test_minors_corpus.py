"""The minors corpus (tests/data/minors/*.txt, one case a line): captions the filter must never clear, queries
the search must always block, and queries and captions that must stay searchable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard.minors_review import fired_captions
from pipeline.minors import query_block
from pipeline.minors.filter import CLEARED, decide_from_captions
from pipeline.minors.lexicon import find
from pipeline.search import clean_query

CORPUS = Path(__file__).parent / "data" / "minors"
_CODE_POINT = re.compile(r"\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})")


def lines(name: str) -> list[str]:
    """The file's cases: lines that are neither blank nor comments, with \\uXXXX / \\UXXXXXXXX decoded."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    return [_CODE_POINT.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), line)
            for line in text.splitlines() if line.strip() and not line.startswith("#")]


NEVER_CLEAR = lines("never_clear_captions.txt")
ALWAYS_BLOCK = lines("always_block_queries.txt")
SEARCHABLE = lines("must_stay_searchable.txt")


def blocked(query: str) -> query_block.QueryCheck:
    """The check Searcher.search makes: on the query as clean_query hands it on."""
    return query_block.check(clean_query(query)[0])


def test_the_corpus_is_large_and_has_the_issues_examples() -> None:
    assert min(len(NEVER_CLEAR), len(ALWAYS_BLOCK), len(SEARCHABLE)) >= 40
    assert {"chi\u200bld", "ch\u0456ld"} <= set(ALWAYS_BLOCK)
    assert {"a kid goat", "a baby elephant walking with the herd", "A young man throwing a frisbee."} <= set(SEARCHABLE)
    assert len(set(NEVER_CLEAR)) == len(NEVER_CLEAR) and len(set(ALWAYS_BLOCK)) == len(ALWAYS_BLOCK)


@pytest.mark.parametrize("caption", NEVER_CLEAR)
def test_caption_is_never_cleared(caption: str) -> None:
    status, reasons = decide_from_captions(["c/1"], [caption])
    assert status != CLEARED, reasons


@pytest.mark.parametrize("caption", NEVER_CLEAR)
def test_highlighted_span_holds_the_words_that_fired(caption: str) -> None:
    """Spans index the caption as written (invisible and look-alike characters included), so the review page
    highlights the very words: each span alone still reads as a child word."""
    _, reasons = decide_from_captions(["c/1"], [caption])
    for match in reasons["matches"]:
        start, end = match["span"]
        assert caption[start:end] == match["text"] and find(match["text"]), match
    [line] = fired_captions(reasons)
    assert ":red-background[**" in line


@pytest.mark.parametrize("query", ALWAYS_BLOCK)
def test_query_is_always_blocked(query: str) -> None:
    assert blocked(query).blocked, query


@pytest.mark.parametrize("text", SEARCHABLE)
def test_stays_searchable_and_cleared(text: str) -> None:
    assert find(text) == [] and not blocked(text).blocked, [m.as_dict() for m in find(text)]
    assert decide_from_captions(["c/1"], [text])[0] == CLEARED
