"""The dashboard in a real browser: Debian's chromium driven by Playwright against `streamlit run` on 127.0.0.1.

A reviewer signs in, searches, flags a result, and the label is then found in DuckDB. Screenshots of each step
are kept in test-artifacts/browser/ (git-ignored). The database is built by the real pipeline with the offline
encoder, so this is the path a person takes with `./studio demo`. Needs /usr/bin/chromium (`./studio test`
installs it with apt when it can) and the playwright package (requirements.txt); without them this test fails
and says which is missing, it never skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from db import users
from db.database import Database
from pipeline.cli import main as pipeline_main
from test_search_page import colour_photos

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
PASSWORD = "reviewer-secret-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`streamlit run dashboard/app.py` on a database with 24 photos (one excluded), a reviewer in users.json."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install chromium`; ./studio test "
                    "does this when it runs as root) or point $STUDIO_CHROMIUM at a Chromium binary")
    root = tmp_path_factory.mktemp("browser")
    db_path = root / "studio.duckdb"
    for stage in (["ingest", "--data", str(colour_photos(root / "c"))], ["filter"], ["embed"]):
        assert pipeline_main([*stage, "--db", str(db_path), "--quiet"]) == 0
    users.add(root / "users.json", "reviewer", "product", PASSWORD)
    port = free_port()
    env = {**os.environ, "STUDIO_DB": str(db_path), users.USERS_ENV: str(root / "users.json")}
    log = (root / "streamlit.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert process.poll() is None, (root / "streamlit.log").read_text()
            assert time.monotonic() < deadline, "streamlit did not come up in 90 s"
            time.sleep(0.5)
        yield url, db_path
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "streamlit.log", ARTIFACTS / "streamlit.log")


def test_reviewer_signs_in_searches_and_flags(server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, db_path = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)  # the first search loads the encoder's weights
            page.goto(url)
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
        finally:
            browser.close()

    # The dashboard lets go of the file within its linger time; a pipeline stage would wait the same way.
    with Database(db_path, wait_seconds=30) as db:
        rows = db.fetch_all("SELECT user_name, query, rank, verdict, encoder FROM labels")
    assert len(rows) == 1
    user, query, rank, verdict, encoder = rows[0]
    assert (user, query, rank, verdict) == ("reviewer", "a red wall", 1, "relevant")
    assert encoder.startswith("offline-")
