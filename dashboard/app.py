"""The dashboard's single entrypoint (`streamlit run dashboard/app.py`): page config and navigation only.

Pages are thin files beside this one, routed with ``st.navigation`` rather than a ``pages/`` folder, so their
order, titles and icons are declared here in one place. Each page does its own reads (see overview.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
# `streamlit run` puts only dashboard/ on sys.path; pages import db/ and dashboard/ from the project root.
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

st.set_page_config(page_title="With Sense studio", layout="wide")

navigation = st.navigation(
    [st.Page(HERE / "home_page.py", title="Overview", icon=":material/dashboard:", default=True)]
)
navigation.run()
