"""Sign-in: a password form checked against the users file, or OIDC through st.login where secrets configure it.

Kept apart from app.py so the routing stays readable; pages only ever see the User in session_state.
"""

from __future__ import annotations

import streamlit as st

from dashboard import context, users


def oidc_configured() -> bool:
    """st.login needs an [auth] section in .streamlit/secrets.toml; without a secrets file there is none."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all is the common case
        return False


def signed_in_user() -> users.User | None:
    """The session's user, after a sign-in through the form or OIDC; None while nobody is signed in."""
    user = st.session_state.get(context.USER_KEY)
    if isinstance(user, users.User):
        return user
    path = users.users_path(context.db_path())
    try:
        known = users.load(path)
    except users.UsersError as exc:
        st.error(str(exc))
        return None
    if oidc_configured() and st.user.is_logged_in:
        user = users.oidc_user(known, st.user.get("email"))
        if user is None:
            st.error(f"{st.user.get('email')} is signed in but has no role here. Ask an admin to run "
                     f"`python -m pipeline add-user {st.user.get('email')} --role data|moderator|product --oidc`.")
            return None
        st.session_state[context.USER_KEY] = user
        return user
    return None


def sign_in_page() -> None:
    """The only page anyone sees before signing in."""
    st.title("With Sense studio")
    path = users.users_path(context.db_path())
    try:
        known = users.load(path)
    except users.UsersError as exc:
        st.error(str(exc))
        return
    if not known:
        st.info(f"No users yet (`{path}`). Add one with `python -m pipeline add-user NAME --role data|moderator|"
                "product` (it asks for the password); `./studio demo` creates three demo users.")
    with st.form("sign_in"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        user = users.authenticate(known, name, password)
        if user is None:
            st.error("Unknown user name or wrong password.")
        else:
            st.session_state[context.USER_KEY] = user
            st.rerun()
    if oidc_configured():
        st.button("Sign in with single sign-on", on_click=st.login)


def sign_out() -> None:
    st.session_state.pop(context.USER_KEY, None)
    if oidc_configured() and st.user.is_logged_in:
        st.logout()
