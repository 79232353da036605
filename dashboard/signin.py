"""Sign-in: a password form checked against the users file, or OIDC through st.login where secrets configure it.

Kept apart from app.py so the routing stays readable; pages only ever see the User in session_state. Every page
run re-checks that user against the users file (re-read only when it changed, db/users.py UsersFile): a user
removed from it is signed out, one whose role changed gets the new role, and with it that role's pages, on their
next click. Failed password sign-ins back off per name and per client (backoff.py), answering at once.
"""

from __future__ import annotations

import math
import secrets

import streamlit as st

from dashboard import context
from dashboard.backoff import Backoff
from db import users

CLIENT_KEY = "sign_in_client"


@st.cache_resource
def users_file(path: str) -> users.UsersFile:
    """One cached users file per path for the process: a stat per page run, a read only after a change."""
    return users.UsersFile(path)


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


def known_users() -> dict[str, dict]:
    """The users file now, as the cached UsersFile has it; UsersError when it is unusable."""
    return users_file(str(users.users_path(context.db_path()))).load()


def signed_in_user() -> users.User | None:
    """The session's user as the users file has them now, after a sign-in through the form or OIDC; None while
    nobody is signed in, and while the users file is unusable (the sign-in page then says why)."""
    try:
        known = known_users()
    except users.UsersError:
        return None
    user = st.session_state.get(context.USER_KEY)
    if isinstance(user, users.User):
        return recheck(user, known)
    if oidc_configured() and st.user.is_logged_in:
        user = users.oidc_user(known, st.user.get("email"))
        if user is None:
            st.error(f"{st.user.get('email')} is signed in but has no role here. Ask an admin to run "
                     f"`python -m pipeline add-user {st.user.get('email')} --role data|moderator|product --oidc`.")
            return None
        st.session_state[context.USER_KEY] = user
        return user
    return None


def recheck(user: users.User, known: dict[str, dict]) -> users.User | None:
    """``user`` with their role now; None, signed out, when the users file no longer lists them."""
    entry = known.get(user.name)
    if entry is None:
        st.session_state.pop(context.USER_KEY, None)
        st.warning(f"{user.name} is no longer in the users file, so this session was signed out.")
        return None
    if entry["role"] != user.role:
        user = users.User(user.name, entry["role"])
        st.session_state[context.USER_KEY] = user
        st.info(f"Your role is now {user.role}; the pages follow it.")
    return user


def client_id() -> str:
    """The client a failed sign-in is counted against: its IP address where Streamlit knows it (not for local
    connections), else this browser session."""
    address = st.context.ip_address
    if address:
        return f"ip:{address}"
    return f"session:{st.session_state.setdefault(CLIENT_KEY, secrets.token_hex(8))}"


def sign_in_page() -> None:
    """The only page anyone sees before signing in."""
    st.title("With Sense studio")
    try:
        known = known_users()
    except users.UsersError as exc:
        st.error(str(exc))
        return
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
    st.session_state[context.USER_KEY] = user
    st.rerun()


def sign_out() -> None:
    st.session_state.pop(context.USER_KEY, None)
    if oidc_configured() and st.user.is_logged_in:
        st.logout()
