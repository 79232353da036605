"""Bad CLI input gets a clear one-line error and exit code 2, never a traceback and never a silent default
(issue #12 items 11 and 12)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from db.database import Database
from pipeline.cli import main


@pytest.mark.parametrize("wait", ["-1", "nan", "inf", "soon"])
def test_the_cli_refuses_a_wait_that_is_not_a_number_of_seconds(path: Path, wait: str,
                                                                capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["status", "--db", str(path), "--wait", wait])
    assert exit_.value.code == 2 and "--wait" in capsys.readouterr().err


def test_calibrating_the_minors_check_needs_labels_named_explicitly(path: Path, capsys: pytest.CaptureFixture) -> None:
    """No default that points production at the test fixture tests/data/minors_labels.csv."""
    with pytest.raises(SystemExit) as exit_:
        main(["calibrate-minors", "--clip-pretrained", "none", "--db", str(path)])
    assert exit_.value.code == 2 and "--labels" in capsys.readouterr().err


def test_a_dataset_folder_whose_name_cannot_be_an_id_does_not_stop_the_others(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture) -> None:
    from builders import flickr_dir

    data = tmp_path / "data"
    flickr_dir(data / "good")
    flickr_dir(data / "bad name")
    db = tmp_path / "s.duckdb"
    assert main(["ingest", "--data", str(data), "--db", str(db), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "folder name 'bad name' is not a valid dataset name" in err and "good (flickr8k)" in out
    with Database(db) as database:
        assert database.fetch_all("SELECT id FROM datasets") == [("good",)]


@pytest.mark.parametrize("argv, option", [
    (["embed", "--batch-size", "0"], "--batch-size"), (["embed", "--workers", "-1"], "--workers"),
    (["evaluate-retrieval", "--folds", "1"], "--folds"), (["train", "--folds", "0"], "--folds"),
    (["train", "--threads", "0"], "--threads"), (["use-reranker", "none", "--by", ""], "--by"),
    (["use-reranker", "none", "--by", "ann\nforged line"], "--by"),
])
def test_counts_and_names_are_checked_before_any_work(path: Path, argv: list[str], option: str,
                                                      capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--db", str(path)])
    assert exit_.value.code == 2 and option in capsys.readouterr().err


@pytest.mark.parametrize("weight", ["nan", "inf", "-1"])
def test_relevance_weights_must_be_finite(path: Path, weight: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["relevance", "--expert-weight", weight, "--db", str(path)]) == 2
    assert "must be >= 0 and finite" in capsys.readouterr().err


def test_a_db_path_that_is_not_text_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--db", str(tmp_path) + "/" + os.fsdecode(b"st\xffdio.duckdb")])
    assert exit_.value.code == 2 and "not valid UTF-8" in capsys.readouterr().err


def test_bad_labels_files_are_named(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    headerless = tmp_path / "labels.csv"
    headerless.write_text("000000000001,yes\n")
    for labels, message in ((tmp_path / "absent.csv", "cannot read it"), (headerless, "needs a header")):
        assert main(["calibrate-minors", "--clip-pretrained", "none", "--labels", str(labels),
                     "--db", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --labels {labels}") and message in err


def test_os_errors_are_one_line_with_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["add-user", "ann", "--role", "data", "--generate-password", "--users", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unexpected" not in err and len(err.strip().splitlines()) == 1


def test_a_full_disk_is_said_in_words(path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    from pipeline import cli

    def disk_full(args) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setitem(cli.STAGES, "relevance", disk_full)
    assert main(["relevance", "--db", str(path)]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "free space and run again" in err and "unexpected" not in err
