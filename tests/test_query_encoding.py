"""A query holding bytes that are not UTF-8 gets a clear error, from clean_query up to the CLI, never a traceback.

Python decodes command-line bytes it cannot read as lone surrogates ('\\udcff' for byte 0xff): os.fsdecode does
exactly what building sys.argv does."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from builders import flickr_dir
from db.database import Database
from fakes import ColourEncoder
from pipeline import cli
from pipeline.cli import main
from pipeline.search import QueryError, Searcher, clean_query

UNDECODABLE = os.fsdecode(b"chi\xffld at the beach")


@pytest.mark.parametrize("query, what", [
    (UNDECODABLE, "byte 0xff at character 4"), ("a \ud800 dog", "lone surrogate U+D800 at character 3"),
])
def test_clean_query_refuses_text_that_is_not_utf8(query: str, what: str) -> None:
    with pytest.raises(QueryError, match=re.escape(f"not valid UTF-8 text ({what})")):
        clean_query(query)


def test_searcher_refuses_it_before_the_encoder_or_the_block(db: Database) -> None:
    logged = []
    searcher = Searcher(db, ColourEncoder(), log_blocked=lambda *args: logged.append(args))
    with pytest.raises(QueryError, match="not valid UTF-8"):
        searcher.search(UNDECODABLE)
    assert logged == []


def test_cli_search_exits_2_with_the_reason(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_encoder", lambda args, db, **_: ColourEncoder())  # the default takes seconds to load
    db = str(tmp_path / "s.duckdb")
    flickr_dir(tmp_path / "mini")
    assert main(["ingest", "--data", str(tmp_path / "mini"), "--db", db, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", UNDECODABLE, "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The query is not valid UTF-8 text (byte 0xff") and "Traceback" not in err
