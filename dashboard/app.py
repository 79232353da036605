"""The dashboard's single entrypoint (`streamlit run dashboard/app.py`): sign-in, then navigation by role.

Pages are thin files beside this one, routed with ``st.navigation`` rather than a ``pages/`` folder. The list is
built per session from the user's role, so a page a role may not see is not registered at all: its URL does not
exist for that session (the Minors review page for anyone but moderators).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
# `streamlit run` puts only dashboard/ on sys.path; pages import db/ and dashboard/ from the project root.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from dashboard import signin  # noqa: E402 - needs the project root on sys.path first

# (file, title, icon, roles that see it)
PAGES = [
    ("home_page.py", "Overview", ":material/dashboard:", ("data", "moderator", "product")),
    ("ratings_page.py", "Ratings EDA", ":material/bar_chart:", ("data", "moderator", "product")),
    ("minors_page.py", "Minors review", ":material/shield_person:", ("moderator",)),
    ("models_page.py", "Model comparison", ":material/model_training:", ("data", "moderator", "product")),
    ("search_page.py", "Live search", ":material/image_search:", ("data", "moderator", "product")),
]


def pages_for(role: str) -> list[st.Page]:
    return [st.Page(HERE / file, title=title, icon=icon, default=(file == "home_page.py"))
            for file, title, icon, roles in PAGES if role in roles]


st.set_page_config(page_title="With Sense studio", layout="wide")

user = signin.signed_in_user()
if user is None:
    st.navigation([st.Page(signin.sign_in_page, title="Sign in", icon=":material/login:")]).run()
else:
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        st.button("Sign out", on_click=signin.sign_out)
    st.navigation(pages_for(user.role)).run()
