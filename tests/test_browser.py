"""The dashboard in a real browser: Debian's chromium driven by Playwright against `streamlit run` on 127.0.0.1.

A reviewer signs in, searches, flags a result, and the label is then found in DuckDB. Screenshots of each step
are kept in test-artifacts/browser/ (git-ignored). The database is built by the real pipeline with the offline
encoder, so this is the path a person takes with `./studio demo`. Needs /usr/bin/chromium (`./studio test`
installs it with apt when it can) and the playwright package (requirements.txt); without them this test fails
and says which is missing, it never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_support import ARTIFACTS as ALL_ARTIFACTS, browser, serve
from db import users
from db.database import Database
from pipeline.cli import main as pipeline_main
from test_search_page import colour_photos

ARTIFACTS = ALL_ARTIFACTS / "browser"
PASSWORD = "reviewer-secret-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`streamlit run dashboard/app.py` on a database with 24 photos (one excluded), a reviewer in users.json."""
    root = tmp_path_factory.mktemp("browser")
    db_path = root / "studio.duckdb"
    for stage in (["ingest", "--data", str(colour_photos(root / "c"))], ["filter"], ["embed"]):
        assert pipeline_main([*stage, "--db", str(db_path), "--quiet"]) == 0
    users.add(root / "users.json", "reviewer", "product", PASSWORD)
    with serve(db_path, root / "users.json", ARTIFACTS) as url:
        yield url, db_path


def test_reviewer_signs_in_searches_and_flags(server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect

    url, db_path = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser() as chromium:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.set_default_timeout(60_000)
        page.get_by_role("textbox", name="User name").fill("reviewer")
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.screenshot(path=ARTIFACTS / "1-sign-in.png")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Signed in as")).to_be_visible()
        expect(page.get_by_role("link", name="Minors review")).to_have_count(0)  # not for this role

        page.get_by_role("link", name="Live search").click()
        box = page.get_by_role("textbox", name="Describe the scene")
        box.fill("a red wall")
        box.press("Enter")
        expect(page.get_by_text("answered in")).to_be_visible()
        expect(page.get_by_text("#1 · score")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "2-results.png", full_page=True)

        page.get_by_role("button", name="Relevant", exact=True).first.click()
        expect(page.get_by_role("button", name="Undo")).to_have_count(1)
        page.screenshot(path=ARTIFACTS / "3-flagged.png", full_page=True)

    # The dashboard lets go of the file within its linger time; a pipeline stage would wait the same way.
    with Database(db_path, wait_seconds=30) as db:
        rows = db.fetch_all("SELECT user_name, query, rank, verdict, encoder FROM labels")
    assert len(rows) == 1
    user, query, rank, verdict, encoder = rows[0]
    assert (user, query, rank, verdict) == ("reviewer", "a red wall", 1, "relevant")
    assert encoder.startswith("offline-")
