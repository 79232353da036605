"""Sessions and deep links in a real browser (Playwright driving Debian's chromium against `streamlit run`).

A signed-in user who reloads any page stays signed in and on that page (the session cookie, db/sessions.py); a
page their role may not see says so at its URL and shows nothing of itself; signing out ends the session in every
window and a reload then shows the sign-in form; a link opened while signed out shows the sign-in form and, after
sign-in, the page it named. The pages come from dashboard/roles.PAGES, so a page added there is covered too.
While visiting every page as each role, a 1400x900 screenshot of it is kept in test-artifacts/pages/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_support import ARTIFACTS, VIEWPORT, browser, serve, sign_in
from builders import flickr_dir
from dashboard import roles
from db import sessions, users
from pipeline.cli import main as pipeline_main
from test_search_page import colour_photos

PAGE_SHOTS = ARTIFACTS / "pages"
LOG_DIR = ARTIFACTS / "browser_sessions"
ACCOUNTS = {"data": ("dana", "dana-secret-1"), "moderator": ("mona", "mona-secret-1"),
            "product": ("rita", "rita-secret-1")}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on 24 colour photos (one excluded; vectors from the offline encoder and
    their map) and a Flickr8k folder with ratings, one user per role."""
    root = tmp_path_factory.mktemp("browser_sessions")
    db_path = root / "studio.duckdb"
    for stage in (["ingest", "--data", str(colour_photos(root / "c"))],
                  ["ingest", "--data", str(flickr_dir(root / "f"))], ["filter"], ["embed"], ["project"]):
        assert pipeline_main([*stage, "--db", str(db_path), "--quiet"]) == 0, stage
    for role, (name, password) in ACCOUNTS.items():
        users.add(root / "users.json", name, role, password)
    with serve(db_path, root / "users.json", LOG_DIR) as served:
        yield served


def page_url(base: str, file: str) -> str:
    """A page's address: the root for the home page, else its file's stem (st.Page's URL path)."""
    return base + "/" + ("" if file == roles.HOME else Path(file).stem)


def settle(page) -> None:
    """Wait until the script run has finished: Streamlit's running icon (shown after a short delay) is gone, and
    no element is still a loading placeholder."""
    from playwright.sync_api import expect

    page.wait_for_timeout(700)
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)


def expect_on(page, base: str, file: str, title: str) -> None:
    """Signed in, on ``file``'s page: its URL, its sidebar link marked current, no sign-in form."""
    from playwright.sync_api import expect

    expect(page.get_by_text("Signed in as")).to_be_visible()
    expect(page.locator('[data-testid="stSidebarNavLink"][aria-current="page"]')).to_have_accessible_name(title)
    expect(page).to_have_url(re.compile(re.escape(page_url(base, file)) + "/?$"))
    expect(page.get_by_role("textbox", name="Password")).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@pytest.mark.parametrize("role", list(ACCOUNTS))
def test_a_reload_keeps_every_page_and_foreign_pages_say_not_allowed(url: str, role: str) -> None:
    from playwright.sync_api import expect

    name, password = ACCOUNTS[role]
    PAGE_SHOTS.mkdir(parents=True, exist_ok=True)
    with browser() as chromium:
        context = chromium.new_context(viewport=VIEWPORT)
        page = context.new_page()
        sign_in(page, url, name, password)
        page.wait_for_function("document.cookie.includes('studio_session=')")  # the page's script stored it
        cookie = next(c for c in context.cookies() if c["name"] == sessions.COOKIE)
        assert (cookie["path"], cookie["sameSite"], cookie["httpOnly"]) == ("/", "Strict", False)
        assert abs(cookie["expires"] - (time.time() + sessions.session_seconds())) < 120  # Max-Age: 12 h
        visible = [(file, title) for file, title, _, allowed in roles.PAGES if role in allowed]
        for file, title in visible:
            page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
            expect_on(page, url, file, title)
            settle(page)
            page.reload()
            expect_on(page, url, file, title)
            settle(page)
            page.screenshot(path=PAGE_SHOTS / f"{role}-{slug(title)}.png")
        for file, title, _, allowed in roles.PAGES:
            if role in allowed:
                continue
            page.goto(page_url(url, file))  # a deep link (and a reload there) to a page not for this role
            expect(page.get_by_text(f"This page is for {roles.who_sees(file)}.")).to_be_visible()
            expect(page.get_by_text("Signed in as")).to_be_visible()
            settle(page)
            expect(page.get_by_role("heading", name=title)).to_have_count(0)  # nothing of the page itself
            expect(page.locator('[data-testid="stSidebarNavLink"]', has_text=title)).to_have_count(0)
            page.screenshot(path=PAGE_SHOTS / f"{role}-{slug(title)}-not-allowed.png")
        context.close()


def test_signing_out_ends_every_window_and_a_reload_shows_sign_in(url: str) -> None:
    from playwright.sync_api import expect

    name, password = ACCOUNTS["product"]
    with browser() as chromium:
        context = chromium.new_context(viewport=VIEWPORT)
        page = context.new_page()
        sign_in(page, url, name, password)
        page.wait_for_function("document.cookie.includes('studio_session=')")
        other = context.new_page()  # a second window: signed in by the cookie
        other.goto(page_url(url, "ratings_page.py"))
        expect_on(other, url, "ratings_page.py", "Ratings EDA")
        settle(other)  # its cookie script has run: it would otherwise store the token again after the sign-out

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("textbox", name="Password")).to_be_visible()
        expect(page.get_by_text("Signed in as")).to_have_count(0)
        page.wait_for_function("!document.cookie.includes('studio_session=')")
        assert not [c for c in context.cookies() if c["name"] == sessions.COOKIE]
        page.reload()
        expect(page.get_by_role("textbox", name="Password")).to_be_visible()
        expect(page.get_by_text("Signed in as")).to_have_count(0)

        other.locator('[data-testid="stSidebarNavLink"]', has_text="Overview").click()  # its next click
        expect(other.get_by_text(f"{name} signed out (in this window or another); sign in again.")).to_be_visible()
        expect(other.get_by_role("textbox", name="Password")).to_be_visible()
        page.screenshot(path=LOG_DIR / "signed-out.png")
        context.close()


def test_a_link_opened_signed_out_lands_on_its_page_after_sign_in(url: str) -> None:
    from playwright.sync_api import expect

    name, password = ACCOUNTS["moderator"]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with browser() as chromium:
        context = chromium.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(60_000)
        for file, title, _, _ in roles.PAGES:
            if file == roles.HOME:
                continue
            page.goto(page_url(url, file))
            expect(page.get_by_role("textbox", name="User name")).to_be_visible()
            expect(page.get_by_text(f"Sign in to open {title}.")).to_be_visible()
            settle(page)
            expect(page.get_by_text("Page not found")).to_have_count(0)
        page.goto(page_url(url, "minors_page.py"))
        page.get_by_role("textbox", name="User name").fill(name)
        page.get_by_role("textbox", name="Password").fill(password)
        page.screenshot(path=LOG_DIR / "deep-link-sign-in.png")
        page.get_by_role("button", name="Sign in").click()
        expect_on(page, url, "minors_page.py", "Minors review")
        expect(page.get_by_role("heading", name="Minors review")).to_be_visible()
        context.close()
