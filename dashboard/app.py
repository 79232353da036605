"""The dashboard's single entrypoint (`streamlit run dashboard/app.py`): sign-in, then navigation by role.

Pages are thin files beside this one, routed with ``st.navigation`` rather than a ``pages/`` folder, every one
from the table in dashboard/roles.py. Every page's URL exists in every session, so a reload, a bookmark or a
shared link never meets Streamlit's "Page not found": before sign-in each URL shows the sign-in form, and the
sign-in reruns the same URL, which then opens the page it asked for. A page the user's role may not see is
registered hidden (not in the sidebar) as a stub that says who it is for, never the page itself; each page checks
the role again itself (context.require_role), and every run re-checks the session (signin.signed_in_user).
"""

from __future__ import annotations

import sys
import threading
from functools import partial
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
# `streamlit run` puts only dashboard/ on sys.path; pages import db/ and dashboard/ from the project root.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from dashboard import context, roles, signin  # noqa: E402 - needs the project root on sys.path first


def pages_for(role: str) -> list[st.Page]:
    """The role's pages, and a hidden "not for you" stub at the URL of each page it may not see."""
    return [st.Page(HERE / file, title=title, icon=icon, default=(file == roles.HOME)) if role in allowed else
            st.Page(partial(not_allowed, file), title=title, icon=icon, url_path=Path(file).stem, visibility="hidden")
            for file, title, icon, allowed in roles.PAGES]


def sign_in_pages() -> list[st.Page]:
    """The sign-in form at every page's URL (the home page's at the root too); a page's URL path is its file's
    stem, as st.Page infers it, so after sign-in the rerun finds the real page under the same URL."""
    return [st.Page(partial(signin.sign_in_page, None if file == roles.HOME else title), title=title, icon=icon,
                    url_path=Path(file).stem, default=(file == roles.HOME))
            for file, title, icon, _ in roles.PAGES]


def not_allowed(file: str) -> None:
    """What a page's URL shows a role it is not for: who it is for, and nothing of the page."""
    st.error(f"This page is for {roles.who_sees(file)}.")


@st.cache_resource
def warm_search(path: str) -> threading.Thread:
    """Once per process and database, after the first page a user opens: the Live search index built in the
    background (live_search.warm_newest_index), the search code (torch: seconds) imported there too, so the first
    query waits for neither (pages rendered meanwhile share the CPU with the build)."""
    def warm() -> None:
        from dashboard import live_search

        live_search.warm_newest_index(path)

    thread = threading.Thread(target=warm, daemon=True, name="warm-search-index")
    thread.start()
    return thread


st.set_page_config(page_title="With Sense studio", layout="wide")

user = signin.signed_in_user()
if user is None:
    st.navigation(sign_in_pages(), position="hidden").run()
else:
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        st.button("Sign out", on_click=signin.sign_out)
        signin.keep_cookie()
    st.navigation(pages_for(user.role)).run()
    warm_search(str(context.db_path()))
