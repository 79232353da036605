"""Shared by the real-browser tests: Debian's chromium driven by Playwright against `streamlit run` on 127.0.0.1.

Each test module builds its own database and users file, then serves it with :func:`serve` and drives it with
:func:`browser`. Screenshots go to test-artifacts/ (git-ignored). Needs /usr/bin/chromium (`./studio test`
installs it with apt when it can) and the playwright package (requirements.txt); without them a test fails and
says which is missing, it never skips.
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
from contextlib import contextmanager
from pathlib import Path

import pytest

from db import users

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1400, "height": 900}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install chromium`; ./studio test "
                    "does this when it runs as root) or point $STUDIO_CHROMIUM at a Chromium binary")


@contextmanager
def serve(db_path: Path, users_file: Path, artifacts: Path) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on ``db_path`` with ``users_file``; yields its URL. The server's log is
    copied to ``artifacts`` at the end."""
    require_chromium()
    port = free_port()
    env = {**os.environ, "STUDIO_DB": str(db_path), users.USERS_ENV: str(users_file)}
    log_path = db_path.parent / "streamlit.log"
    log = log_path.open("w")
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
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "streamlit did not come up in 90 s"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, artifacts / "streamlit.log")


@contextmanager
def browser() -> Iterator[object]:
    """A Playwright chromium Browser (new_context / new_page on it); expect() waits up to 60 s."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)  # a first search loads the encoder's weights
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def sign_in(page, url: str, name: str, password: str) -> None:
    """Open ``url`` and sign in through the form; returns once the sidebar says who is signed in."""
    from playwright.sync_api import expect

    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()
