"""Sign-in: a password form checked against the users file, or OIDC through st.login where secrets configure it;
and the session kept across reloads in a signed cookie (db/sessions.py).

Kept apart from app.py so the routing stays readable; pages only ever see the User in session_state. Every page
run re-checks the session: against the users file (re-read only when it changed, db/users.py UsersFile), so a
user removed from it is signed out and one whose role changed gets the new role, and with it that role's pages,
on their next click; and against its expiry and the sign-outs every process records (sessions.SignOuts), so a
sign-out in one window ends the user's sessions in every other window and process on their next click.

A sign-in gives the session a token that a script in the page stores as a cookie (``studio_session``, Path=/,
SameSite=Strict, Max-Age its life); a new connection (reload, bookmark, link) sends it, and a valid one signs the
same user in before navigation. JavaScript writes it because Streamlit has no server-side way to set a cookie, so
it is not HttpOnly: a script injected into the page could read it. An OIDC session (st.login keeps its own cookie)
is refused when the provider's sign-in (the ID token's ``iat``) is not later than the user's last sign-out. Once a
connection's session ended, neither the cookie nor OIDC signs it in again without the user asking. Failed password
sign-ins back off per name and per client (backoff.py), answering at once.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from pathlib import Path

import streamlit as st

from dashboard import context
from dashboard.backoff import Backoff
from db import sessions, users

CLIENT_KEY = "sign_in_client"
CLAIMS_KEY = "session_claims"
COOKIE_KEY = "session_cookie"  # (token, max-age): what keep_cookie stores in the browser
CLEAR_KEY = "session_cookie_clear"  # a token to remove from the browser, if the cookie still holds it
COOKIE_READ_KEY = "session_cookie_read"  # the connection's cookie was tried: never again in this session
ENDED_KEY = "session_ended"  # signed out or ended here: OIDC does not sign this connection in again by itself


@st.cache_resource
def users_file(path: str) -> users.UsersFile:
    """One cached users file per path for the process: a stat per page run, a read only after a change."""
    return users.UsersFile(path)


@st.cache_resource
def sign_outs(path: str) -> sessions.SignOuts:
    """The sign-out times beside the users file at ``path``: a stat per page run, a read only after a change."""
    return sessions.SignOuts(sessions.signed_out_path(Path(path)))


@st.cache_resource
def secret(path: str, from_env: str) -> bytes:
    """The session secret, read (or made) once per process; keyed by $STUDIO_SESSION_SECRET too, so setting it
    takes effect."""
    return sessions.load_secret(Path(path))


@st.cache_resource
def backoff() -> Backoff:
    """The failed sign-ins of every session of this process."""
    return Backoff()


def oidc_configured() -> bool:
    """st.login needs an [auth] section in .streamlit/secrets.toml; without a secrets file there is none."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all is the common case
        return False


def users_path() -> Path:
    return users.users_path(context.db_path())


def known_users() -> dict[str, dict]:
    """The users file now, as the cached UsersFile has it; UsersError when it is unusable."""
    return users_file(str(users_path())).load()


def session_secret() -> bytes:
    """SessionError when the secret is unusable."""
    return secret(str(users_path()), os.environ.get(sessions.SECRET_ENV, ""))


def sessions_ready() -> None:
    """Raise UsersError or SessionError when the users file, the secret, the sign-out file or the session life
    setting is unusable: then nobody is signed in, and the sign-in page says why."""
    known_users()
    session_secret()
    sign_outs(str(users_path())).times()
    sessions.session_seconds()


def browser_cookie() -> str | None:
    """The session cookie the browser sent when this connection opened (Streamlit reads cookies only then); None
    without one, and where there is no browser (AppTest's client is a mock)."""
    token = st.context.cookies.get(sessions.COOKIE)
    return token if isinstance(token, str) else None


def signed_in_user() -> users.User | None:
    """The session's user as the users file has them now, after a sign-in through the form, the session cookie or
    OIDC; None while nobody is signed in, and while the users file or session setup is unusable (the sign-in page
    then says why)."""
    try:
        sessions_ready()
    except (users.UsersError, sessions.SessionError):
        return None
    known = known_users()
    user = st.session_state.get(context.USER_KEY)
    if isinstance(user, users.User):
        return recheck(user, known)
    token = browser_cookie()
    if token and not st.session_state.get(COOKIE_READ_KEY):
        st.session_state[COOKIE_READ_KEY] = True
        try:
            claims = sessions.verify(session_secret(), token, time.time())
            user = sessions.session_user(claims, known, sign_outs(str(users_path())), time.time())
        except sessions.SessionError as exc:
            st.session_state[CLEAR_KEY] = token
            st.warning(str(exc))
        else:
            start(user, token, claims)
            return user
    if oidc_configured() and st.user.is_logged_in and not st.session_state.get(ENDED_KEY):
        return oidc_session(known)
    return None


def oidc_session(known: dict[str, dict]) -> users.User | None:
    """The user st.login signed in, when the users file lists them and they have not signed out since."""
    user = users.oidc_user(known, st.user.get("email"))
    if user is None:
        st.error(f"{st.user.get('email')} is signed in but has no role here. Ask an admin to run "
                 f"`python -m pipeline add-user {st.user.get('email')} --role data|moderator|product --oidc`.")
        return None
    signed_out = sign_outs(str(users_path())).times().get(user.name)
    provider_sign_in = st.user.get("iat")  # an ID token always carries it (OIDC Core 2)
    if signed_out is not None and isinstance(provider_sign_in, (int, float)) and provider_sign_in <= signed_out:
        st.session_state[ENDED_KEY] = True
        st.warning(f"{user.name} signed out (in this window or another); sign in with single sign-on again.")
        return None
    start(user)
    return user


def start(user: users.User, token: str | None = None, claims: sessions.Claims | None = None) -> None:
    """Sign ``user`` into this session with ``token`` (from the cookie), or a new one: kept in session_state,
    and stored in the browser by :func:`keep_cookie` for the next connection."""
    now = time.time()
    if token is None or claims is None:
        token, claims = sessions.issue(session_secret(), user.name, now, sessions.session_seconds())
    st.session_state[context.USER_KEY] = user
    st.session_state[CLAIMS_KEY] = claims
    st.session_state[COOKIE_KEY] = (token, max(0, int(claims.expires_at - now)))
    st.session_state.pop(CLEAR_KEY, None)


def cookie_script(token: str, max_age: int) -> str:
    """A script that stores ``token`` as the session cookie (Secure where the page came over HTTPS)."""
    value = json.dumps(f"{sessions.COOKIE}={token}; Path=/; Max-Age={max_age}; SameSite=Strict")
    return f"<script>document.cookie = {value} + (location.protocol === 'https:' ? '; Secure' : '');</script>"


def clear_script(token: str) -> str:
    """A script that removes the session cookie if it still holds ``token`` (a newer sign-in in another window
    of the same browser keeps its own)."""
    held = json.dumps(f"{sessions.COOKIE}={token}")
    gone = json.dumps(f"{sessions.COOKIE}=; Path=/; Max-Age=0; SameSite=Strict")
    return f"<script>if (document.cookie.split('; ').includes({held})) document.cookie = {gone};</script>"


def keep_cookie() -> None:
    """Render the script that stores the session's token (it runs once: the same element on every run)."""
    if COOKIE_KEY in st.session_state:
        st.html(cookie_script(*st.session_state[COOKIE_KEY]), unsafe_allow_javascript=True)


def recheck(user: users.User, known: dict[str, dict]) -> users.User | None:
    """``user`` with their role now; None, signed out, when the session expired, they signed out elsewhere, or
    the users file no longer lists them. A session signed in without a token (tests seed the user) gets one."""
    claims = st.session_state.get(CLAIMS_KEY)
    if not isinstance(claims, sessions.Claims):
        start(user)
        claims = st.session_state[CLAIMS_KEY]
    try:
        current = sessions.session_user(claims, known, sign_outs(str(users_path())), time.time())
    except sessions.SessionError as exc:
        end_session()
        st.warning(str(exc))
        return None
    if current.role != user.role:
        st.session_state[context.USER_KEY] = current
        st.info(f"Your role is now {current.role}; the pages follow it.")
    return current


def end_session() -> None:
    """Forget the user in this session and have the sign-in page remove its cookie from the browser."""
    st.session_state.pop(context.USER_KEY, None)
    st.session_state.pop(CLAIMS_KEY, None)
    st.session_state[ENDED_KEY] = True
    cookie = st.session_state.pop(COOKIE_KEY, None)
    if cookie:
        st.session_state[CLEAR_KEY] = cookie[0]


def client_id() -> str:
    """The client a failed sign-in is counted against: its IP address where Streamlit knows it (not for local
    connections), else this browser session."""
    address = st.context.ip_address
    if address:
        return f"ip:{address}"
    return f"session:{st.session_state.setdefault(CLIENT_KEY, secrets.token_hex(8))}"


def sign_in_page(asked: str | None = None) -> None:
    """What every page URL shows before sign-in (app.py registers it under each page's URL, so a link or a
    reload never meets "Page not found"); ``asked`` names the page the URL asked for, which opens after sign-in.
    Also removes the cookie of a session that ended here."""
    st.title("With Sense studio")
    if CLEAR_KEY in st.session_state:
        st.html(clear_script(st.session_state[CLEAR_KEY]), unsafe_allow_javascript=True)
    try:
        sessions_ready()
    except (users.UsersError, sessions.SessionError) as exc:
        st.error(str(exc))
        return
    known = known_users()
    if asked:
        st.caption(f"Sign in to open **{asked}**.")
    if not known:
        st.info(f"No users yet (`{users.users_path(context.db_path())}`). Add one with `python -m pipeline add-user "
                "NAME --role data|moderator|product` (it asks for the password); `./studio demo` creates three demo "
                "users.")
    with st.form("sign_in"):
        name = st.text_input("User name", max_chars=users.NAME_LIMIT)
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        sign_in(known, name, password)
    if oidc_configured():
        st.button("Sign in with single sign-on", on_click=st.login)


def sign_in(known: dict[str, dict], name: str, password: str) -> None:
    """Check the form, unless this name or client is backing off after failures (answered without a check)."""
    keys = (f"name:{users.name_key((name or '').strip())}", f"client:{client_id()}")
    wait = backoff().wait_seconds(*keys)
    if wait > 0:
        st.error(f"Too many failed sign-ins; try again in {math.ceil(wait)} s.")
        return
    user = users.authenticate(known, name, password)
    if user is None:
        backoff().failed(*keys)
        st.error("Unknown user name or wrong password.")
        return
    backoff().succeeded(keys[0])
    start(user)
    st.rerun()  # the same URL: the page it asked for, now registered for real


def sign_out() -> None:
    """End the user's sessions everywhere: every token issued to them until now is refused by every process (their
    other windows end on their next click), and this browser's cookie is removed."""
    user = st.session_state.get(context.USER_KEY)
    if isinstance(user, users.User):
        sign_outs(str(users_path())).sign_out(user.name, time.time())
    end_session()
    if oidc_configured() and st.user.is_logged_in:
        st.logout()
