"""Sign-in and roles in the dashboard: failed sign-ins back off per name and per client without slowing anyone
else; every page run re-checks the session's user against the users file; every page checks the role itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from builders import flickr_dir
from dashboard import context, signin
from dashboard.backoff import Backoff
from dashboard_support import APP, TIMEOUT, open_app
from db import users
from db.users import User
from pipeline.cli import main as pipeline_main

PAGES = ("home_page.py", "ratings_page.py", "minors_page.py", "models_page.py", "search_page.py")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------------ backoff.py
def test_five_failures_block_a_key_for_a_delay_that_doubles_up_to_a_cap() -> None:
    clock = Clock()
    backoff = Backoff(clock, free=5, window=900, first_delay=30, max_delay=120)
    for _ in range(4):
        backoff.failed("name:rita")
    assert backoff.wait_seconds("name:rita") == 0
    backoff.failed("name:rita")
    assert backoff.wait_seconds("name:rita") == 30
    clock.now += 10
    assert backoff.wait_seconds("name:rita") == 20  # counts down; nothing sleeps
    delays = []
    for _ in range(4):
        clock.now += backoff.wait_seconds("name:rita")
        backoff.failed("name:rita")
        delays.append(backoff.wait_seconds("name:rita"))
    assert delays == [60, 120, 120, 120]


def test_keys_are_independent_and_old_failures_are_forgotten() -> None:
    clock = Clock()
    backoff = Backoff(clock, free=2, window=60, first_delay=30, max_delay=600)
    backoff.failed("name:rita", "client:a")
    backoff.failed("name:rita", "client:a")
    assert backoff.wait_seconds("name:rita", "client:b") == 30  # the name is blocked from any client
    assert backoff.wait_seconds("name:mona", "client:a") == 30  # and the client for any name
    assert backoff.wait_seconds("name:mona", "client:b") == 0  # everyone else signs in as fast as ever
    clock.now += 61
    backoff.failed("name:rita")
    assert backoff.wait_seconds("name:rita") == 0  # the two earlier failures left the window


def test_a_success_clears_the_name_but_not_the_client() -> None:
    clock = Clock()
    backoff = Backoff(clock, free=2, window=60, first_delay=30, max_delay=600)
    backoff.failed("name:rita", "client:a")
    backoff.succeeded("name:rita")
    backoff.failed("name:mona", "client:a")
    assert backoff.wait_seconds("name:rita") == 0 and backoff.wait_seconds("client:a") == 30


# ------------------------------------------------------------------------------------------------ sign-in page
@pytest.fixture
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signin")
    assert pipeline_main(["ingest", "--data", str(flickr_dir(root / "data" / "f")), "--db",
                          str(root / "studio.duckdb"), "--quiet"]) == 0
    return root / "studio.duckdb"


@pytest.fixture
def users_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "users.json"
    users.add(path, "bo", "product", "bo-secret-12")
    users.add(path, "rita", "product", "rita-secret-1")
    monkeypatch.setenv(users.USERS_ENV, str(path))
    signin.backoff.clear()
    yield path
    signin.backoff.clear()


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    return at.button[0].click().run()


def test_failed_sign_ins_back_off_at_once_without_slowing_others(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                                                 users_file: Path) -> None:
    at = open_app(monkeypatch, db_path, user=None)
    for _ in range(5):
        assert errors(sign_in(at, "bo", "guess")) == ["Unknown user name or wrong password."]
    sign_in(at, "bo", "bo-secret-12")  # the right password, too late: refused unchecked
    assert errors(at) == ["Too many failed sign-ins; try again in 30 s."]
    assert context.USER_KEY not in at.session_state
    other = open_app(monkeypatch, db_path, user=None)  # another session (client) and another name
    sign_in(other, "rita", "rita-secret-1")
    assert other.session_state[context.USER_KEY] == User("rita", "product") and not other.error


# ------------------------------------------------------------------------------------- users file, re-checked
def test_a_user_removed_from_the_users_file_is_signed_out_on_the_next_click(monkeypatch: pytest.MonkeyPatch,
                                                                            db_path: Path, users_file: Path) -> None:
    at = open_app(monkeypatch, db_path, user=User("rita", "product"))
    assert at.metric  # the Overview page
    listed = json.loads(users_file.read_text())
    del listed["users"]["rita"]
    users_file.write_text(json.dumps(listed))
    at.run()
    assert [w.value for w in at.warning] == ["rita is no longer in the users file, so this session was signed out."]
    assert context.USER_KEY not in at.session_state and not at.metric and at.text_input  # the sign-in form


def test_a_changed_role_takes_effect_on_the_next_click(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                                       users_file: Path) -> None:
    users.add(users_file, "mona", "moderator", None)
    at = open_app(monkeypatch, db_path, user=User("mona", "moderator"), page="minors_page.py")
    assert at.title[0].value == "Minors review"
    users.add(users_file, "mona", "product", None)
    at.run()
    assert at.session_state[context.USER_KEY] == User("mona", "product")
    assert at.title[0].value != "Minors review"  # the page is no longer hers: routed to Overview
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("minors_page.py")


# --------------------------------------------------------------------------------- every page checks the role
@pytest.mark.parametrize("page", PAGES)
def test_every_page_checks_the_role_itself(monkeypatch: pytest.MonkeyPatch, db_path: Path, page: str) -> None:
    """Run each page on its own, as if routing had let the wrong session through: nobody signed in, then a role
    the page is not for. It refuses before reading anything."""
    monkeypatch.setenv(context.DB_ENV, str(db_path))
    alone = AppTest.from_file(APP.parent / page, default_timeout=TIMEOUT)
    alone.run()
    assert [w.value for w in alone.warning] == ["Sign in first."] and not alone.metric and not alone.dataframe
    alone.session_state[context.USER_KEY] = User("eve", "guest")
    alone.run()
    assert [e.value[:17] for e in alone.error] == ["This page is for "] and not alone.metric and not alone.dataframe


def test_an_unusable_users_file_signs_nobody_in_until_it_is_fixed(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                                                  users_file: Path) -> None:
    good = users_file.read_text()
    at = open_app(monkeypatch, db_path, user=User("rita", "product"))
    users_file.write_text("{not json")
    at.run()
    assert "not a users file" in errors(at)[0] and not at.metric
    users_file.write_text(good)
    at.run()
    assert at.metric and at.session_state[context.USER_KEY] == User("rita", "product")
