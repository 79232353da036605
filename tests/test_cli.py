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


def test_train_refusals_exit_2_before_any_work(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "s.duckdb")
    flickr_dir(tmp_path / "mini")
    main(["ingest", "--data", str(tmp_path / "mini"), "--db", db, "--quiet"])
    capsys.readouterr()
    assert main(["train", "--db", db, "--models", "ridge,xgboost", "--quiet"]) == 2
    assert "unknown model(s) 'xgboost'" in capsys.readouterr().err
    assert main(["train", "--db", db, "--targets", "likes", "--quiet"]) == 2
    assert "unknown target(s) likes" in capsys.readouterr().err
    assert main(["train", "--db", db, "--feature-sets", "pixels", "--quiet"]) == 2
    assert "unknown feature set 'pixels'" in capsys.readouterr().err
    assert main(["train", "--db", db, "--targets", "expert", "--quiet"]) == 2
    assert "2 usable pairs, too few for 5 folds" in (err := capsys.readouterr().err) and "Traceback" not in err
    assert main(["models", "--db", db]) == 1
    assert "no model runs yet" in capsys.readouterr().out
    assert main(["use-reranker", "nope", "--by", "olga", "--db", db]) == 2
    assert "no model run 'nope'" in capsys.readouterr().err


def test_train_choose_reranker_and_search_with_it(tmp_path: Path, capsys) -> None:
    from test_train import colour_coco

    db = str(tmp_path / "s.duckdb")
    colour_coco(tmp_path / "c")
    main(["ingest", "--data", str(tmp_path / "c"), "--db", db, "--quiet"])
    main(["filter", "--db", db, "--quiet"])
    capsys.readouterr()
    assert main(["train", "--db", db, "--targets", "category-pairs", "--models", "ridge", "--feature-sets", "captions",
                 "--folds", "3", "--quiet", "--artifacts", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "target c/category-pairs" in out and "ridge" in out and "all models trained in" in out
    assert main(["models", "--db", db]) == 0
    listing = capsys.readouterr().out
    run_id = next(word for word in listing.split() if word.startswith("c/category-pairs/captions/ridge/"))
    assert main(["search", "a red picture", "--db", db, "--rerank"]) == 2
    assert "no re-ranker chosen" in capsys.readouterr().err
    assert main(["use-reranker", run_id, "--by", "olga", "--db", db]) == 0
    assert main(["embed", "--db", db, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["search", "a red picture", "--db", db, "--rerank", "-k", "3"]) == 0
    hits = capsys.readouterr().out.split()
    assert len(hits) == 9 and all(0.0 <= float(score) <= 1.0 for score in hits[1::3])
    assert main(["models", "--db", db]) == 0
    assert f"* {run_id}" in capsys.readouterr().out


def test_feedback_effect_is_reported(tmp_path: Path, capsys) -> None:
    from db import labels
    from db.database import Database
    from test_train import colour_coco

    db = str(tmp_path / "s.duckdb")
    colour_coco(tmp_path / "c")
    main(["ingest", "--data", str(tmp_path / "c"), "--db", db, "--quiet"])
    options = ["--targets", "category-pairs", "--models", "ridge", "--feature-sets", "captions", "--folds", "3",
               "--quiet", "--artifacts", str(tmp_path / "m"), "--db", db]
    assert main(["train", *options]) == 0
    with Database(db) as database, database.write() as cur:
        for i in range(1, 31):
            labels.add(cur, user="rita", query="a green picture", encoder="offline",
                       flag=labels.Flag(f"c/{i}", i, None, "relevant" if i % 3 == 1 else "not_relevant"))
    capsys.readouterr()
    assert main(["train", "--include-feedback", *options]) == 0
    out = capsys.readouterr().out
    assert "feedback: 30 labelled pairs joined training" in out
    assert "ridge / captions: r2 " in out and " -> " in out and "(vs c/category-pairs/captions/ridge/" in out
