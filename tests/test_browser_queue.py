"""The moderator queue in a real browser, on the real COCO-mini photos (../shared/data/coco-mini).

(a) A moderator signs in and decides 20 photos of "To decide" with the keyboard only (A clear, X exclude; no click
after the sign-in form); the audit trail in DuckDB then holds exactly those 20 photos, each with its reason, and the
rate is printed and kept in test-artifacts/queue/rate.txt. (b) Two moderators in two browser contexts step through
the queue at once and never see the same photo. The database is built by the real pipeline (`ingest`, `filter`;
without `perceive` the 80 uncaptioned photos wait as "not perceived", so the queue holds 93). Fails, never skips,
when the data, chromium or playwright is missing. Screenshots (1400 x 900) go to test-artifacts/queue/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_support import ARTIFACTS as ALL_ARTIFACTS, ROOT, VIEWPORT, browser, serve, sign_in
from db import users
from db.database import Database
from pipeline.cli import main as pipeline_main

ARTIFACTS = ALL_ARTIFACTS / "queue"
COCO_MINI = ROOT.parent / "shared" / "data" / "coco-mini"
PASSWORDS = {"mona": "mona-secret-12", "omar": "omar-secret-12", "pia": "pia-secret-123"}
DECIDED = 20
CURRENT = ".st-key-queue_current"
# The picture is loaded and the page's script run has ended (a key pressed mid-run can be lost as the buttons are
# drawn again).
PICTURE_LOADED = """() => {
    const img = document.querySelector('[data-testid="stMain"] [data-testid="stImage"] img');
    const app = document.querySelector('[data-testid="stApp"]');
    return img !== null && img.complete && img.naturalWidth > 0
        && app !== null && app.getAttribute('data-test-script-state') === 'notRunning';
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`streamlit run dashboard/app.py` on COCO-mini ingested and filtered, three moderators in users.json."""
    if not (COCO_MINI / "annotations").is_dir():
        pytest.fail(f"{COCO_MINI} not found: this test needs the real COCO-mini data (see ../shared/data/README.md)")
    root = tmp_path_factory.mktemp("queue")
    db_path = root / "studio.duckdb"
    for stage in (["ingest", "--data", str(COCO_MINI)], ["filter"]):
        assert pipeline_main([*stage, "--db", str(db_path), "--quiet"]) == 0
    for name, password in PASSWORDS.items():
        users.add(root / "users.json", name, "moderator", password)
    with serve(db_path, root / "users.json", ARTIFACTS) as url:
        yield url, db_path


def shown_photo(page) -> str:
    """The photo id the page shows now ("Photo coco-mini/123")."""
    from playwright.sync_api import expect

    expect(page.locator(CURRENT)).to_be_visible()
    return page.locator(CURRENT).inner_text().removeprefix("Photo").strip()


def next_photo(page, before: str) -> str:
    """Wait until the page shows another photo than ``before``, its picture loaded, and return it: what a moderator
    needs before the next key."""
    from playwright.sync_api import expect

    expect(page.locator(CURRENT)).not_to_have_text(f"Photo {before}")
    page.wait_for_function(PICTURE_LOADED)
    return shown_photo(page)


def settled(page) -> str:
    """The photo shown once the page has finished its run."""
    page.wait_for_function(PICTURE_LOADED)
    return shown_photo(page)


def open_queue(chromium, url: str, name: str):
    """A fresh context signed in as ``name`` straight onto the Minors review page (its URL; no click after the
    sign-in form)."""
    page = chromium.new_context(viewport=VIEWPORT).new_page()
    sign_in(page, f"{url}/minors_page", name, PASSWORDS[name])
    return page


def test_a_moderator_decides_twenty_photos_with_the_keyboard(server: tuple[str, Path]) -> None:
    url, db_path = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    keys = {"a": "cleared", "x": "excluded"}
    decided: dict[str, str] = {}
    with browser() as chromium:
        page = open_queue(chromium, url, "mona")
        current = settled(page)
        page.screenshot(path=ARTIFACTS / "1-first-photo.png")
        started = time.monotonic()
        for number in range(DECIDED):
            key = "x" if number % 4 == 3 else "a"
            decided[current] = keys[key]
            page.keyboard.press(key)
            current = next_photo(page, current)
            if number == 0:
                page.screenshot(path=ARTIFACTS / "2-after-a-decision.png")
        seconds = time.monotonic() - started
        page.screenshot(path=ARTIFACTS / "3-after-twenty.png")
    rate = DECIDED / seconds * 60
    line = f"{DECIDED} decisions by keyboard in {seconds:.1f} s: {rate:.1f} decisions per minute"
    print(line)
    (ARTIFACTS / "rate.txt").write_text(line + "\n")

    with Database(db_path, wait_seconds=30) as db:
        audit = db.fetch_all("SELECT image_id, moderator, old_status, new_status, reason FROM moderation_audit "
                             "WHERE moderator = 'mona' ORDER BY id")
        states = dict(db.fetch_all("SELECT image_id, status FROM minors_decisions WHERE moderator = 'mona'"))
    assert [row[0] for row in audit] == list(decided)  # exactly those 20, in the order decided
    assert all(old == "pending_review" and new == decided[image] and reason.strip()
               for image, _, old, new, reason in audit)
    assert {r[4] for r in audit} == {"No child under 16 visible", "Child under 16 visible"}  # the default presets
    assert states == decided


def test_two_moderators_never_see_the_same_photo(server: tuple[str, Path]) -> None:
    url, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser() as chromium:
        first, second = open_queue(chromium, url, "omar"), open_queue(chromium, url, "pia")
        shown = [settled(first), settled(second)]
        for step in range(8):
            assert shown[0] != shown[1], f"step {step}: both see {shown[0]}"
            mover = step % 2
            page = (first, second)[mover]
            page.keyboard.press("s" if step % 3 == 0 else "a")  # skip or clear: either moves the lease on
            shown[mover] = next_photo(page, shown[mover])
            shown[1 - mover] = settled((first, second)[1 - mover])
            if step == 0:
                first.screenshot(path=ARTIFACTS / "4-omar.png")
                second.screenshot(path=ARTIFACTS / "5-pia.png")
        assert shown[0] != shown[1]
