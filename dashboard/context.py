"""What every page needs, shared per process: the database, the write queue, the signed-in user.

Pages never open DuckDB themselves. They read inside ``with page_database() as db:`` (the process-wide
SharedDatabase, held only for the block; see db/shared.py for why) and write only by submitting operations to the
process-wide WriteQueue (db/write_queue.py), which journals them and applies them from one thread. Both objects
are ``st.cache_resource`` singletons keyed by the database path, so every session shares them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from dashboard import roles
from db import users
from db.database import DatabaseError, ReadOnlyDatabase, ReadOnlyError
from db.shared import DatabaseBusy, DatabaseMissing, SharedDatabase
from db.users import User
from db.write_queue import Outcome, WriteQueue

DB_ENV = "STUDIO_DB"
DEFAULT_DB = "studio.duckdb"  # the pipeline CLI's default too, relative to the current directory
MESSAGES_KEY = "write_messages"
WRITE_WAIT_SECONDS = 2.0  # how long a page waits to say "saved" before it says "queued" (journalled)
USER_KEY = "user"


def db_path() -> Path:
    """$STUDIO_DB, else studio.duckdb in the current directory: the same default as ``python -m pipeline``."""
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def how_to_build(path: Path | None = None) -> str:
    """The commands that fill the database the dashboard reads (``--db`` so a custom $STUDIO_DB is honoured)."""
    return f"Run `./studio demo`, or `python -m pipeline ingest --db {path or db_path()}`, then reload this page."


@st.cache_resource
def shared_database(path: str) -> SharedDatabase:
    return SharedDatabase(path)


@st.cache_resource
def write_queue(path: str) -> WriteQueue:
    return WriteQueue(shared_database(path), users.users_path(path))


def queue() -> WriteQueue:
    """The write queue of this process for the database the dashboard serves."""
    return write_queue(str(db_path()))


@contextmanager
def page_database() -> Iterator[ReadOnlyDatabase]:
    """The shared database, read-only, for a block of reads; a missing or busy database ends the page with a
    message. Pages write only by submitting operations to the write queue."""
    path = db_path()
    try:
        with shared_database(str(path)).use(snapshot_ok=True) as db:
            yield ReadOnlyDatabase(db)
    except ReadOnlyError:
        raise  # a page tried to write around the queue: a bug to see, not a message about the file
    except DatabaseMissing:
        st.info(f"No database at `{path}` yet. {how_to_build(path)}")
        st.stop()
    except DatabaseBusy as exc:
        st.warning(str(exc))
        st.stop()
    except DatabaseError as exc:
        st.error(f"{exc}\n\nIf the file is not a studio database, rebuild it. {how_to_build(path)}")
        st.stop()


def current_user() -> User:
    """The signed-in user (app.py routes nobody else to a page)."""
    user = st.session_state.get(USER_KEY)
    if not isinstance(user, User):
        st.warning("Sign in first.")
        st.stop()
    return user


def require_role(page: str) -> User:
    """The signed-in user, when dashboard/roles.py lets their role see ``page`` (the page passes ``__file__``);
    otherwise the page stops with a message. Every page calls this first: routing is not the only guard."""
    user = current_user()
    if user.role not in roles.page_roles(page):
        st.error(f"This page is for {roles.who_sees(page)}.")
        st.stop()
    return user


def submit(ops: Sequence[tuple[str, dict]], wait_seconds: float = WRITE_WAIT_SECONDS) -> list[Outcome]:
    """Queue writes as the signed-in user and wait briefly for them to be applied (see db/write_queue.py)."""
    return queue().submit_and_wait(ops, current_user().name, wait_seconds)


def remember(outcomes: Sequence[Outcome], what: str) -> None:
    """Keep the outcomes of a write made in a callback or before st.rerun for :func:`show_remembered`."""
    st.session_state.setdefault(MESSAGES_KEY, []).append((list(outcomes), what))


def show_remembered() -> None:
    """Report remembered outcomes on this page run; with no outcomes, ``what`` is a warning on its own."""
    for outcomes, what in st.session_state.pop(MESSAGES_KEY, []):
        if outcomes:
            report(outcomes, what)
        else:
            st.warning(what)


def report(outcomes: Sequence[Outcome], what: str) -> None:
    """One message for the outcomes of a submit: saved, queued (a pipeline stage holds the file), or refused."""
    refused = [o.message for o in outcomes if o.state == "refused"]
    queued = sum(o.state == "queued" for o in outcomes)
    saved = sum(o.state == "saved" for o in outcomes)
    if saved:
        st.toast(f"{what}: {saved} saved")
    if queued:
        st.info(f"{what}: {queued} queued; the database is busy (a pipeline stage?). They are journalled and are "
                "saved as soon as it is free.")
    for message in refused:
        st.error(f"{what} refused: {message}")
