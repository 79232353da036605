"""Driving the dashboard with AppTest: the real entrypoint (dashboard/app.py, st.navigation), a signed-in user
seeded into session_state (and listed in the users file, which every page run re-checks), then a switch to the
page under test. AppTest (streamlit 1.67) renders st.navigation pages, so every page is exercised exactly as
`streamlit run` routes it."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import context
from db import users
from db.users import User

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
TIMEOUT = 60  # the first run imports plotly, pandas and the pipeline inside the script thread

DATA = User("dana", "data")
MODERATOR = User("mona", "moderator")
PRODUCT = User("rita", "product")


def open_app(monkeypatch: pytest.MonkeyPatch, db_path: Path | None, user: User | None = DATA,
             page: str | None = None) -> AppTest:
    """Run the app as ``user`` (None: nobody signed in) on ``db_path`` and switch to ``page`` (a file name in
    dashboard/, e.g. "search_page.py"); fails on any exception the script raised."""
    if db_path is None:
        monkeypatch.delenv(context.DB_ENV, raising=False)
    else:
        monkeypatch.setenv(context.DB_ENV, str(db_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if user is not None:
        list_user(user)
        at.session_state[context.USER_KEY] = user
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def list_user(user: User) -> None:
    """Give ``user`` their role in the users file the dashboard reads now ($STUDIO_USERS, else users.json beside
    the database), as an OIDC entry (no password to hash)."""
    path = users.users_path(context.db_path())
    entry = users.load(path).get(user.name)
    if entry is None or entry["role"] != user.role:
        users.add(path, user.name, user.role, None)


def plotly_values(values: list | dict) -> list:
    """Plotly 7 writes numeric arrays as {"dtype", "bdata"} (base64 of the raw array) in the figure JSON."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def frame_with_column(at: AppTest, column: str) -> pd.DataFrame:
    return next(df.value for df in at.dataframe if column in df.value.columns)
