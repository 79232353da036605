"""The demo's background stages as the pages show them: progress on the Overview page, a notice on the others.

Reads only the runner's status file and the claim (pipeline/demo_runner.py), never the database, so it answers
while the stages hold the file. A page passes its own file; :data:`WAITS_FOR` says which stages make it whole.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import context
from pipeline import demo_runner

REFRESH_SECONDS = 2.0
# Page file -> the background stages whose results it shows (ingest, done before the dashboard opens, is not one).
WAITS_FOR: dict[str, tuple[str, ...]] = {
    "ratings_page.py": (),
    "minors_page.py": ("perceive", "filter"),
    "search_page.py": ("filter", "embed", "fit-bridge"),
    "models_page.py": ("evaluate-retrieval", "train"),
    "explore_page.py": ("embed", "fit-bridge", "project"),
}
STATE_ICONS = {"done": "✅", "skipped": "✅", "running": "⏳", "pending": "·", "failed": "❌", "not run": "–"}


def stages_table(run: demo_runner.RunView) -> pd.DataFrame:
    """One row per stage: state, time, progress of the running one, what it makes usable, and any error."""
    rows = []
    for stage in run.status.stages:
        state = "stopped" if run.stopped is stage and stage.state == "running" else stage.state
        count = f"{stage.done:,}/{stage.total:,} {stage.unit}" if stage.total else (
            f"{stage.done:,} {stage.unit}" if stage.done else "")
        rows.append({"stage": stage.name, "state": f"{STATE_ICONS.get(stage.state, '')} {state}",
                     "seconds": stage.seconds, "progress": count if stage.state == "running" else "",
                     "makes usable": demo_runner.MAKES_USABLE.get(stage.name, ""), "message": stage.message})
    return pd.DataFrame(rows)


def resume_advice(run: demo_runner.RunView) -> str | None:
    """What to tell the user when the run stopped before the end, or None while it runs or when it finished."""
    if run.running or run.stopped is None:
        return None
    stage = run.stopped
    if stage.state == "running":
        why = "its process ended before the stage finished (stopped or killed)"
    else:
        why = f"it failed: {stage.message or 'see the log'}"
    return (f"The background stage `{stage.name}` stopped: {why}. The database holds what the finished stages "
            f"and `{stage.name}`'s committed batches stored. Run `./studio demo` again to resume from there "
            f"(finished stages are not redone); the log is `{demo_runner.log_path(context.db_path())}`.")


def overview_block() -> None:
    """The Overview page's progress section; refreshes itself every few seconds while the stages run."""
    if demo_runner.read_status(context.db_path()) is None:
        return
    _overview_fragment()


@st.fragment(run_every=REFRESH_SECONDS)
def _overview_fragment() -> None:
    run = demo_runner.view(context.db_path())
    if run is None:
        return
    st.subheader("Pipeline stages")
    current = next((s for s in run.status.stages if s.state == "running"), None)
    if run.running and current is not None:
        share = current.done / current.total if current.total else 0.0
        label = f"`{current.name}`: {current.done:,} of {current.total:,} {current.unit}" if current.total \
            else f"`{current.name}` is running"
        st.progress(min(1.0, share), text=label)
        st.caption("Pages show the data as the last finished stage left it; moderation decisions and flags made "
                   "meanwhile are queued and saved when the stages end.")
    advice = resume_advice(run)
    if advice:
        st.error(advice)
    elif run.status.finished and not run.running:
        st.success(f"Every stage finished ({run.status.finished}).")
    st.dataframe(stages_table(run), hide_index=True, key="stages_table")


def waiting_notice(page: str) -> None:
    """Say which of this page's stages are not finished yet (or stopped), above the page's own content."""
    run = demo_runner.view(context.db_path())
    if run is None:
        return
    waiting = [name for name in WAITS_FOR.get(Path(page).name, ())
               if run.state_of(name) not in ("done", "skipped")]
    if not waiting:
        return
    advice = resume_advice(run)
    if advice:
        st.warning(advice)
        return
    states = ", ".join(f"`{name}` ({_progress_of(run, name)})" for name in waiting)
    st.info(f"This page waits for the background stage(s) {states}; it shows what is stored so far. Progress is "
            "on the Overview page.")


def _progress_of(run: demo_runner.RunView, name: str) -> str:
    stage = run.status.stage(name)
    if stage is None:
        return "not planned"
    if stage.state == "running" and stage.total:
        return f"running, {stage.done:,}/{stage.total:,} {stage.unit}"
    return stage.state
