"""Bad CLI input gets a clear one-line error and exit code 2, never a traceback and never a silent default
(issue #12 items 11 and 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.database import Database
from pipeline.cli import main


@pytest.fixture
def path(tmp_path: Path) -> Path:
    db_path = tmp_path / "studio.duckdb"
    Database(db_path).close()
    return db_path


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
