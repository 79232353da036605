"""The dashboard's single entrypoint (`streamlit run dashboard/app.py`): sign-in, then navigation by role.

Pages are thin files beside this one, routed with ``st.navigation`` rather than a ``pages/`` folder. The list is
built per session from the user's role (dashboard/roles.py), so a page a role may not see is not registered at
all: its URL does not exist for that session (the Minors review page for anyone but moderators). Each page checks
the role again itself (context.require_role), and every run re-checks the user against the users file.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
# `streamlit run` puts only dashboard/ on sys.path; pages import db/ and dashboard/ from the project root.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from dashboard import context, roles, signin  # noqa: E402 - needs the project root on sys.path first


def pages_for(role: str) -> list[st.Page]:
    return [st.Page(HERE / file, title=title, icon=icon, default=(file == "home_page.py"))
            for file, title, icon, allowed in roles.PAGES if role in allowed]


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
    st.navigation([st.Page(signin.sign_in_page, title="Sign in", icon=":material/login:")]).run()
else:
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        st.button("Sign out", on_click=signin.sign_out)
    st.navigation(pages_for(user.role)).run()
    warm_search(str(context.db_path()))
