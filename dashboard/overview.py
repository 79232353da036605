"""Data and figures for the Overview page, kept apart from Streamlit so they can be unit-tested without it.

Why the database is opened once per page run and closed before anything is drawn (and not cached with
``st.cache_resource``): DuckDB lets one process write a file, and a writer cannot open it while another
process holds any connection, read-only ones included. A cached connection would keep the pipeline out for as
long as the dashboard runs. :func:`load_snapshot` instead reads everything the page shows into DataFrames and
closes the connection, so the lock is held for milliseconds. Caching those results (keyed by path and mtime)
would save only those milliseconds and could show stale data while changes still sit in the ``.wal`` file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from db import reads
from db.database import Database, DatabaseError

DB_ENV = "STUDIO_DB"
DEFAULT_DB = "studio.duckdb"  # the pipeline CLI's default too, relative to the current directory
RECENT_RUNS = 20
FILE_COLUMNS = ["file", "read", "accepted", "rejected"]


@dataclass(frozen=True)
class Snapshot:
    """Everything the Overview page shows, read in one short read-only session."""

    datasets: pd.DataFrame  # reads.datasets_overview
    runs: pd.DataFrame  # reads.ingest_runs, newest first
    rejects: pd.DataFrame  # reads.reject_counts
    # dataset -> (run id, per-file counts) of the run whose rows are loaded now (datasets.last_run_id)
    files: dict[str, tuple[int, list[dict]]] = field(default_factory=dict)


def db_path() -> Path:
    """$STUDIO_DB, else studio.duckdb in the current directory: the same default as ``python -m pipeline``."""
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def how_to_build(path: Path) -> str:
    """The commands that fill the database the dashboard reads (``--db`` so a custom $STUDIO_DB is honoured)."""
    return f"Run `./studio demo`, or `python -m pipeline ingest --db {path}`, then reload this page."


def load_snapshot(path: Path, recent_runs: int = RECENT_RUNS) -> Snapshot:
    """Read the page's data read-only and close the connection; raises DatabaseError with a readable message.

    A missing file, a file locked by a running pipeline, or a file that is not a studio database all end up as
    DatabaseError, so the page can show a message instead of a traceback.
    """
    try:
        with Database(path, read_only=True) as db:
            datasets = reads.datasets_overview(db)
            files = {
                str(row.dataset): (int(row.last_run_id), reads.file_counts(db, int(row.last_run_id)))
                for row in datasets.itertuples()
            }
            return Snapshot(datasets, reads.ingest_runs(db, recent_runs), reads.reject_counts(db), files)
    except duckdb.Error as exc:
        raise DatabaseError(f"{path}: cannot read the studio database ({exc})") from exc


def metric_totals(datasets: pd.DataFrame) -> dict[str, int]:
    """Totals over all datasets for the metrics row; ratings count expert and crowd judgments together."""

    def total(column: str) -> int:
        return int(datasets[column].sum()) if column in datasets and not datasets.empty else 0

    return {
        "datasets": len(datasets),
        "images_ok": total("images_ok"),
        "images_missing": total("images_missing"),
        "images_corrupt": total("images_corrupt"),
        "captions": total("captions"),
        "expert_ratings": total("expert_ratings"),
        "crowd_ratings": total("crowd_ratings"),
        "ratings": total("expert_ratings") + total("crowd_ratings"),
    }


def rejects_figure(rejects: pd.DataFrame) -> go.Figure | None:
    """Stacked bars of rejected lines per source file, coloured by reason class; None when nothing was rejected.

    Bars are labelled "dataset / file" because two datasets of the same layout share file names.
    """
    if rejects.empty:
        return None
    data = rejects.assign(source=rejects["dataset"].astype(str) + " / " + rejects["file"].astype(str))
    fig = px.bar(
        data,
        x="source",
        y="rejected",
        color="reason_class",
        labels={"source": "dataset / file", "rejected": "rejected lines", "reason_class": "reason"},
        title="Rejected lines by file and reason",
    )
    fig.update_layout(barmode="stack", legend_title_text="reason")
    return fig


def file_counts_frame(files: list[dict]) -> pd.DataFrame:
    """The per-file read / accepted / rejected rows of one run, with fixed columns even when there are none."""
    frame = pd.DataFrame(files)
    if frame.empty:
        return pd.DataFrame(columns=FILE_COLUMNS)
    return frame[[c for c in FILE_COLUMNS if c in frame] + [c for c in frame if c not in FILE_COLUMNS]]
