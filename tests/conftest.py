"""Shared fixtures: a fresh database per test and the real data beside the project."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from db.database import Database  # noqa: E402
from pipeline.layouts import DEFAULT_DATA  # noqa: E402


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "test.duckdb")
    yield database
    database.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data. Missing on CI is a failure, never a skip; locally it skips with the reason."""
    if DEFAULT_DATA.is_dir():
        return DEFAULT_DATA
    message = f"real data not found at {DEFAULT_DATA} (see README: Data)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
