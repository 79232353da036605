"""Data and figures for the Overview page, kept apart from Streamlit so they can be unit-tested without it.

Everything the page shows is read in one short block on the shared database (dashboard/context.py) and turned
into DataFrames, so the file is held for milliseconds and a pipeline stage is never kept out for long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from db import reads
from db.database import Database

RECENT_RUNS = 20
FILE_COLUMNS = ["file", "read", "accepted", "rejected"]


@dataclass(frozen=True)
class Snapshot:
    """Everything the Overview page shows above the rejects browser, read in one block."""

    datasets: pd.DataFrame  # reads.datasets_overview
    runs: pd.DataFrame  # reads.ingest_runs, newest first
    rejects: pd.DataFrame  # reads.reject_counts
    # dataset -> (run id, per-file counts) of the run whose rows are loaded now (datasets.last_run_id)
    files: dict[str, tuple[int, list[dict]]] = field(default_factory=dict)


def load_snapshot(db: Database, recent_runs: int = RECENT_RUNS) -> Snapshot:
    """Everything the page shows but the rejects browser, in one block of reads."""
    datasets = reads.datasets_overview(db)
    files = {
        str(row.dataset): (int(row.last_run_id), reads.file_counts(db, int(row.last_run_id)))
        for row in datasets.itertuples()
    }
    return Snapshot(datasets, reads.ingest_runs(db, recent_runs), reads.reject_counts(db), files)


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
