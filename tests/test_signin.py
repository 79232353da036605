"""Sign-in and roles in the dashboard: failed sign-ins back off per name and per client without slowing anyone
else; every page run re-checks the session's user against the users file; every page checks the role itself.
Sessions survive a reload through a signed, expiring cookie token (db/sessions.py), a sign-out ends them
everywhere, and every page URL works as a deep link before and after sign-in (tests/test_browser_sessions.py
drives the same in a real browser)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from builders import flickr_dir
from dashboard import context, signin
from dashboard.backoff import Backoff
from dashboard_support import APP, TIMEOUT, open_app
from db import sessions, users
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
    # The page is no longer hers: its URL now says so, and nothing of the page is drawn.
    assert not at.title and errors(at) == ["This page is for moderators."] and not at.dataframe
    assert [i.value for i in at.info] == ["Your role is now product; the pages follow it."]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("minors_page.py")  # the file itself is not registered for her


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


# ------------------------------------------------------------------------------------------- session tokens
SECRET = b"k" * 32


def test_a_token_round_trips_and_names_its_session() -> None:
    token, claims = sessions.issue(SECRET, "rita", 1000.0, 3600)
    assert sessions.verify(SECRET, token, 1000.0 + 3599) == claims
    assert (claims.name, claims.issued_at, claims.expires_at) == ("rita", 1000.0, 4600.0)
    assert len(claims.session_id) == 32 and sessions.issue(SECRET, "rita", 1000.0, 3600)[1] != claims
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")  # cookie-safe


@pytest.mark.parametrize("change", ["name", "expiry", "signature", "wrong secret", "no signature", "garbage"])
def test_a_tampered_or_foreign_token_is_refused(change: str) -> None:
    token, _ = sessions.issue(SECRET, "rita", 1000.0, 3600)
    body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))

    def forged(**fields: object) -> str:
        text = json.dumps({**payload, **fields}).encode()
        return base64.urlsafe_b64encode(text).rstrip(b"=").decode() + "." + signature

    secret = SECRET
    if change == "name":
        token = forged(u="mona")
    elif change == "expiry":
        token = forged(exp=10.0 ** 12)
    elif change == "signature":
        token = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    elif change == "wrong secret":
        secret = b"s" * 32
    elif change == "no signature":
        token = body
    else:
        token = "\u00e9t\u00e9.\u00e9t\u00e9"
    with pytest.raises(sessions.SessionError, match="not signed by this server"):
        sessions.verify(secret, token, 1001.0)


def test_an_expired_token_is_refused() -> None:
    token, _ = sessions.issue(SECRET, "rita", 1000.0, 3600)
    with pytest.raises(sessions.SessionError, match="expired"):
        sessions.verify(SECRET, token, 4600.0)


def test_the_users_file_decides_who_and_with_which_role(tmp_path: Path) -> None:
    _, claims = sessions.issue(SECRET, "rita", 1000.0, 3600)
    sign_outs = sessions.SignOuts(tmp_path / "users.json.signed-out")
    assert sessions.session_user(claims, {"rita": {"role": "product"}}, sign_outs, 1001.0) == User("rita", "product")
    # The token carries no role: a changed one applies at once.
    assert sessions.session_user(claims, {"rita": {"role": "moderator"}}, sign_outs, 1001.0) == \
        User("rita", "moderator")
    with pytest.raises(sessions.SessionError, match="no longer in the users file"):
        sessions.session_user(claims, {"mona": {"role": "moderator"}}, sign_outs, 1001.0)
    with pytest.raises(sessions.SessionError, match="expired"):
        sessions.session_user(claims, {"rita": {"role": "product"}}, sign_outs, 4600.0)


def test_a_sign_out_refuses_every_earlier_token_in_every_process(tmp_path: Path) -> None:
    path = tmp_path / "users.json.signed-out"
    known = {"rita": {"role": "product"}, "bo": {"role": "data"}}
    _, early = sessions.issue(SECRET, "rita", 1000.0, 3600)
    _, other = sessions.issue(SECRET, "bo", 1000.0, 3600)
    here, elsewhere = sessions.SignOuts(path), sessions.SignOuts(path)  # two processes' views of one file
    assert not elsewhere.revoked(early)  # read (and cached) before the sign-out
    here.sign_out("rita", 1500.0)
    with pytest.raises(sessions.SessionError, match="rita signed out"):
        sessions.session_user(early, known, elsewhere, 1600.0)
    assert not elsewhere.revoked(other)  # only rita's sessions end
    _, later = sessions.issue(SECRET, "rita", 1500.5, 3600)
    assert sessions.session_user(later, known, elsewhere, 1600.0) == User("rita", "product")
    elsewhere.sign_out("bo", 1700.0)  # a second writer keeps the first one's entry
    assert json.loads(path.read_text())["signed_out"] == {"rita": 1500.0, "bo": 1700.0}
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    path.write_text("{broken")
    with pytest.raises(sessions.SessionError, match="not a sign-out file"):
        sessions.SignOuts(path).times()


def test_the_secret_is_made_once_private_or_comes_from_the_environment(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sessions.SECRET_ENV, raising=False)
    users_json = tmp_path / "users.json"
    first = sessions.load_secret(users_json)
    assert sessions.load_secret(users_json) == first and len(first) == 64
    assert oct(os.stat(sessions.secret_path(users_json)).st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users.json.session-secret"]  # nothing left aside
    token, _ = sessions.issue(first, "rita", 1000.0, 3600)
    sessions.secret_path(users_json).unlink()  # a new secret: every earlier token is void
    with pytest.raises(sessions.SessionError, match="not signed by this server"):
        sessions.verify(sessions.load_secret(users_json), token, 1001.0)
    monkeypatch.setenv(sessions.SECRET_ENV, "e" * 40)
    assert sessions.load_secret(users_json) == b"e" * 40
    monkeypatch.setenv(sessions.SECRET_ENV, "short")
    with pytest.raises(sessions.SessionError, match="at least 32"):
        sessions.load_secret(users_json)


def test_the_session_life_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sessions.HOURS_ENV, raising=False)
    assert sessions.session_seconds() == 12 * 3600
    monkeypatch.setenv(sessions.HOURS_ENV, "0.5")
    assert sessions.session_seconds() == 1800
    for bad in ("0", "-1", "soon", "nan", "inf"):
        monkeypatch.setenv(sessions.HOURS_ENV, bad)
        with pytest.raises(sessions.SessionError, match=sessions.HOURS_ENV):
            sessions.session_seconds()


# ------------------------------------------------------------------------- the session in the dashboard
def cookie_of(at: AppTest) -> str:
    """The token the signed-in page stores in the browser (the script in the sidebar)."""
    scripts = [h.proto.body for h in at.sidebar.get("html") if sessions.COOKIE in h.proto.body]
    assert len(scripts) == 1, scripts
    return scripts[0].split(f"{sessions.COOKIE}=")[1].split(";")[0]


def form_shown(at: AppTest) -> bool:
    return any(box.label == "User name" for box in at.text_input)


def reload(monkeypatch: pytest.MonkeyPatch, db_path: Path, token: str | None, page: str | None = None) -> AppTest:
    """A new connection (reload, bookmark, link) to ``page``'s URL whose browser sends ``token`` as the cookie."""
    monkeypatch.setattr(signin, "browser_cookie", lambda: token)
    monkeypatch.setenv(context.DB_ENV, str(db_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if page is not None:
        at.switch_page(page)  # before the first run: the page named by the URL, as a browser opens it
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_reload_keeps_the_user_on_the_page_they_were_on(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                                          users_file: Path) -> None:
    at = reload(monkeypatch, db_path, None)
    sign_in(at, "rita", "rita-secret-1")
    token = cookie_of(at)
    again = reload(monkeypatch, db_path, token, page="ratings_page.py")
    assert again.title[0].value == "Ratings EDA" and not form_shown(again)  # no sign-in form
    assert again.session_state[context.USER_KEY] == User("rita", "product")
    assert "Signed in as **rita** (product)" in again.sidebar.caption[0].value


def test_a_deep_link_signs_in_then_opens_the_page_it_asked_for(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                                               users_file: Path) -> None:
    at = reload(monkeypatch, db_path, None, page="models_page.py")
    assert [c.value for c in at.caption] == ["Sign in to open **Model comparison**."] and not errors(at)
    sign_in(at, "rita", "rita-secret-1")
    assert at.title[0].value == "Model comparison"


def test_a_page_the_role_may_not_see_says_so_at_its_url(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                                        users_file: Path) -> None:
    at = reload(monkeypatch, db_path, None, page="minors_page.py")
    sign_in(at, "rita", "rita-secret-1")
    assert errors(at) == ["This page is for moderators."] and not at.title and not at.dataframe
    again = reload(monkeypatch, db_path, cookie_of(at), page="minors_page.py")  # a reload there too
    assert errors(again) == ["This page is for moderators."] and not again.title


def test_signing_out_ends_the_session_in_every_window(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                                      users_file: Path) -> None:
    first = reload(monkeypatch, db_path, None)
    sign_in(first, "rita", "rita-secret-1")
    token = cookie_of(first)
    second = reload(monkeypatch, db_path, token, page="ratings_page.py")  # another window, same cookie
    bo = reload(monkeypatch, db_path, None)
    sign_in(bo, "bo", "bo-secret-12")
    first.sidebar.button[0].click().run()  # sign out
    assert context.USER_KEY not in first.session_state and form_shown(first)  # the sign-in form
    clear = [h.proto.body for h in first.get("html")]
    assert len(clear) == 1 and f"{sessions.COOKIE}={token}" in clear[0] and "Max-Age=0" in clear[0]
    second.run()  # its next click
    assert [w.value for w in second.warning] == ["rita signed out (in this window or another); sign in again."]
    assert context.USER_KEY not in second.session_state and not second.title[1:] and form_shown(second)
    bo.run()
    assert bo.session_state[context.USER_KEY] == User("bo", "product")  # other users stay signed in
    stale = reload(monkeypatch, db_path, token)  # a reload with the old cookie
    assert context.USER_KEY not in stale.session_state and form_shown(stale)
    assert f"{sessions.COOKIE}={token}" in stale.get("html")[0].proto.body  # and the page removes it
    sign_in(stale, "rita", "rita-secret-1")  # signing in again works, with a new token
    assert stale.session_state[context.USER_KEY] == User("rita", "product") and cookie_of(stale) != token


@pytest.mark.parametrize("cookie", ["tampered", "expired", "removed user"])
def test_a_cookie_that_signs_nobody_in_shows_the_form_with_the_reason(monkeypatch: pytest.MonkeyPatch,
                                                                      db_path: Path, users_file: Path,
                                                                      cookie: str) -> None:
    at = reload(monkeypatch, db_path, None)
    sign_in(at, "rita", "rita-secret-1")
    token = cookie_of(at)
    if cookie == "tampered":
        token = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        reason = "The saved session is not signed by this server; sign in again."
    elif cookie == "expired":
        secret = signin.session_secret()
        token, _ = sessions.issue(secret, "rita", time.time() - 7200, 3600)
        reason = sessions.EXPIRED
    else:
        listed = json.loads(users_file.read_text())
        del listed["users"]["rita"]
        users_file.write_text(json.dumps(listed))
        reason = "rita is no longer in the users file, so this session was signed out."
    again = reload(monkeypatch, db_path, token, page="ratings_page.py")
    assert [w.value for w in again.warning] == [reason]
    assert context.USER_KEY not in again.session_state and form_shown(again) and not again.metric


def test_an_open_session_ends_when_it_expires(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                              users_file: Path) -> None:
    at = reload(monkeypatch, db_path, None)
    sign_in(at, "rita", "rita-secret-1")
    claims = at.session_state[signin.CLAIMS_KEY]
    at.session_state[signin.CLAIMS_KEY] = dataclasses.replace(claims, expires_at=time.time() - 1)
    at.run()
    assert [w.value for w in at.warning] == [sessions.EXPIRED] and context.USER_KEY not in at.session_state


def test_an_oidc_session_from_before_a_sign_out_is_refused(monkeypatch: pytest.MonkeyPatch, db_path: Path,
                                                           users_file: Path) -> None:
    """st.login keeps its own cookie, which a sign-out elsewhere cannot remove: the provider's sign-in time (the
    ID token's iat) must be later than the user's last sign-out."""
    users.add(users_file, "sso@example.com", "data", None)
    monkeypatch.setattr(signin, "oidc_configured", lambda: True)

    def oidc(iat: float) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.user = {"is_logged_in": True, "email": "sso@example.com", "iat": iat}
        monkeypatch.setenv(context.DB_ENV, str(db_path))
        return at.run()

    before = time.time() - 10
    at = oidc(before)
    assert at.session_state[context.USER_KEY] == User("sso@example.com", "data")
    other = oidc(before)  # the same browser's provider session in another window
    at.sidebar.button[0].click().run()  # sign out
    assert context.USER_KEY not in at.session_state and form_shown(at)
    other.run()
    assert context.USER_KEY not in other.session_state and form_shown(other)
    other.run()  # its provider session does not sign it in again by itself
    assert context.USER_KEY not in other.session_state and form_shown(other)
    stale = oidc(before)  # a reload elsewhere with the old provider session
    assert [w.value for w in stale.warning] == [
        "sso@example.com signed out (in this window or another); sign in with single sign-on again."]
    assert context.USER_KEY not in stale.session_state
    fresh = oidc(time.time() + 1)  # signed in at the provider again
    assert fresh.session_state[context.USER_KEY] == User("sso@example.com", "data")
