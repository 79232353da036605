"""Shared fixtures: a fresh database per test and the real data beside the project."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# `--encoder auto` (the CLI default) would try the Hugging Face hub for CLIP weights where it is reachable; the
# suite's figures are for the offline encoder, so no test may download: tests of the hub path patch it themselves.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(PROJECT_ROOT))

from db.database import Database  # noqa: E402
from pipeline.layouts import DEFAULT_DATA  # noqa: E402
from pipeline.perception.weights import DEFAULT_WEIGHTS_DIR  # noqa: E402


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "test.duckdb")
    yield database
    database.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A migrated database file, closed: for code that opens the file itself (the CLI, the shared database, the
    write queue, the pipeline claim)."""
    db_path = tmp_path / "studio.duckdb"
    Database(db_path).close()
    return db_path


def _shared(folder: Path, what: str, section: str) -> Path:
    """A folder of ../shared. Missing on CI is a failure, never a skip; locally it skips with the reason."""
    if folder.is_dir():
        return folder
    message = f"{what} not found at {folder} (see README: {section})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: the real datasets."""
    return _shared(DEFAULT_DATA, "real data", "Data")


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    """../shared/weights: the perception weights."""
    return _shared(DEFAULT_WEIGHTS_DIR, "perception weights", "Perception")
