"""The CLI and data location: clear messages and exit codes, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import flickr_dir
from pipeline import layouts
from pipeline.cli import main


def test_ingest_prints_per_file_summary(tmp_path: Path, capsys) -> None:
    root = flickr_dir(tmp_path / "data" / "mini", expert=["garbage"])
    assert main(["ingest", "--data", str(tmp_path / "data"), "--db", str(tmp_path / "s.duckdb"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "mini (flickr8k)" in out
    assert [line.split() for line in out.splitlines() if line.strip().startswith("ExpertAnnotations.txt ")] == [
        ["ExpertAnnotations.txt", "1", "0", "1"]]
    assert "    ExpertAnnotations.txt:1: expected 5 columns" in out  # the first rejects, with line and reason
    assert main(["ingest", "--data", str(root), "--db", str(tmp_path / "s.duckdb"), "--quiet"]) == 0
    assert "unchanged since ingest run 1" in capsys.readouterr().out
    assert main(["status", "--db", str(tmp_path / "s.duckdb")]) == 0
    assert "mini" in capsys.readouterr().out


def test_data_location_order(tmp_path: Path, monkeypatch) -> None:
    option, env = tmp_path / "option", tmp_path / "env"
    option.mkdir(), env.mkdir()
    monkeypatch.setenv("STUDIO_DATA", str(env))
    assert layouts.resolve_data_dir(str(option)) == option
    assert layouts.resolve_data_dir(None) == env
    monkeypatch.delenv("STUDIO_DATA")
    monkeypatch.setattr(layouts, "DEFAULT_DATA", tmp_path / "nowhere")
    with pytest.raises(layouts.DataNotFound, match="Flickr8k"):
        layouts.resolve_data_dir(None)


@pytest.mark.parametrize("make", ["missing", "empty", "not-a-dataset"])
def test_bad_data_dirs_exit_2_with_a_message(tmp_path: Path, capsys, make: str) -> None:
    target = tmp_path / "d"
    if make != "missing":
        target.mkdir()
    if make == "not-a-dataset":
        (target / "notes.txt").write_text("hello")
    assert main(["ingest", "--data", str(target), "--db", str(tmp_path / "s.duckdb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert str(target) in err


def test_status_without_database(tmp_path: Path, capsys) -> None:
    assert main(["status", "--db", str(tmp_path / "none.duckdb")]) == 1
    assert "python -m pipeline ingest" in capsys.readouterr().out


def test_search_before_embed_names_the_command(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "s.duckdb")
    flickr_dir(tmp_path / "mini")
    assert main(["ingest", "--data", str(tmp_path / "mini"), "--db", db, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "a dog", "--db", db]) == 2
    err = capsys.readouterr().err
    assert "python -m pipeline embed" in err and "Traceback" not in err


def test_embed_reports_skipped_photos_and_evaluate_needs_coco(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "s.duckdb")
    flickr_dir(tmp_path / "mini")
    main(["ingest", "--data", str(tmp_path / "mini"), "--db", db, "--quiet"])
    assert main(["embed", "--db", db, "--quiet"]) == 0
    assert "0 encoded" in (out := capsys.readouterr().out) and "3 missing" in out
    assert main(["evaluate-retrieval", "--db", db, "--quiet"]) == 2
    assert "no captioned readable photos in dataset 'coco-mini'" in capsys.readouterr().err
    assert main(["search", "   ", "--db", db]) == 2
    assert "Type a few words" in capsys.readouterr().err


def test_filter_and_moderate_commands(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "s.duckdb")
    flickr_dir(tmp_path / "mini")
    main(["ingest", "--data", str(tmp_path / "mini"), "--db", db, "--quiet"])
    assert main(["filter", "--db", db, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "1 cleared, 2 excluded" in out and "caption-child-words 2" in out
    ok = main(["moderate", "mini/1001773457_577c3a7d70.jpg", "--status", "cleared", "--moderator", "mia",
               "--reason", "two dogs, no people", "--db", db])
    assert ok == 0 and "1 photo(s) set to cleared by mia" in capsys.readouterr().out
    assert main(["moderate", "mini/nope.jpg", "--status", "cleared", "--moderator", "mia", "--reason", "x",
                 "--db", db]) == 2
    assert "unknown photo ids: mini/nope.jpg" in capsys.readouterr().err


def test_blocked_query_prints_the_legal_notice(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "s.duckdb")
    flickr_dir(tmp_path / "mini")
    main(["ingest", "--data", str(tmp_path / "mini"), "--db", db, "--quiet"])
    capsys.readouterr()
    assert main(["search", "kids at the beach", "--db", db, "--user", "olga"]) == 3
    assert "children under 16" in capsys.readouterr().out
