"""Overview page: which datasets are loaded, how many rows each has, what the ingest runs rejected, and a browser
over the rejected lines themselves (file, line, reason, raw text) with filters.

Presentation only; reading and shaping the data lives in overview.py and db/reads.py.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import context, overview, stage_progress
from db import reads

REJECTS_PAGE = 50


def show_metrics(totals: dict[str, int]) -> None:
    """One row of headline counts, summed over all datasets."""
    cells = [
        ("Datasets", totals["datasets"], None),
        ("Images ok", totals["images_ok"], "Photos found on disk and readable"),
        ("Images missing", totals["images_missing"], "Referenced by annotations, file not found"),
        ("Images corrupt", totals["images_corrupt"], "File found but not a readable image"),
        ("Captions", totals["captions"], None),
        ("Ratings", totals["ratings"],
         f"Expert {totals['expert_ratings']:,} + crowd {totals['crowd_ratings']:,} judgments"),
    ]
    for column, (label, value, help_text) in zip(st.columns(len(cells)), cells):
        column.metric(label, f"{value:,}", help=help_text)


def rejects_browser() -> None:
    """Filter rejected lines by dataset, file and text, and page through them."""
    with context.page_database() as db:
        files = reads.reject_files(db)
    if files.empty:
        return
    left, middle, right = st.columns(3)
    dataset = left.selectbox("Dataset", ["(all)", *files["dataset"].unique()], key="rejects_dataset")
    in_dataset = files if dataset == "(all)" else files[files["dataset"] == dataset]
    file = middle.selectbox("File", ["(all)", *in_dataset["file"].unique()], key="rejects_file")
    text = right.text_input("Reason or raw text contains", key="rejects_text")
    filters = {"dataset": None if dataset == "(all)" else dataset, "file": None if file == "(all)" else file,
               "reason_contains": text.strip() or None}
    with context.page_database() as db:
        total = reads.rejects(db, **filters, limit=0)[0]
        pages = max(1, -(-total // REJECTS_PAGE))
        page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="rejects_page")
        _, rows = reads.rejects(db, **filters, limit=REJECTS_PAGE, offset=(page - 1) * REJECTS_PAGE)
    st.caption(f"{total:,} rejected lines match; showing {len(rows):,}.")
    st.dataframe(rows, hide_index=True)


# The datasets table's columns in reading order with short headers: fourteen columns under their SQL names ran
# past a 1400 px window. The folder and the last run id are left to "Latest ingest runs" just below.
DATASET_COLUMNS = {"dataset": "dataset", "layout": "layout", "images": "photos", "images_ok": "readable",
                   "images_missing": "no file", "images_corrupt": "corrupt", "captions": "captions",
                   "expert_ratings": "expert", "crowd_ratings": "crowd", "relevance_pairs": "pairs",
                   "object_labels": "objects", "rejects": "rejects"}


def show_datasets(datasets: pd.DataFrame) -> None:
    shown = datasets[[column for column in DATASET_COLUMNS if column in datasets]]
    st.dataframe(shown, hide_index=True, column_config={
        column: st.column_config.Column(label, pinned=column == "dataset",
                                        width=None if column == "dataset" else "small")
        for column, label in DATASET_COLUMNS.items()})
    st.caption("Photos: readable, no file (listed, nothing at the path) or corrupt. Ratings: expert scores and "
               "crowd votes; pairs: relevance targets; objects: COCO object labels; rejects: lines refused at "
               "ingest. Each dataset's folder is its ingest run's source below.")


def main() -> None:
    context.require_role(__file__)
    st.title("With Sense studio")
    st.caption("What the pipeline has loaded into the studio database: datasets, row counts, ingest runs "
               "and the lines it rejected.")
    stage_progress.overview_block()  # before any read: it answers while the stages hold the database
    with context.page_database() as db:
        snapshot = overview.load_snapshot(db)
    if snapshot.datasets.empty:
        st.info(f"The database has no datasets yet. {context.how_to_build()}")
        return

    show_metrics(overview.metric_totals(snapshot.datasets))

    st.subheader("Datasets")
    show_datasets(snapshot.datasets)

    st.subheader("Latest ingest runs")
    st.dataframe(snapshot.runs, hide_index=True)

    st.subheader("Rejected lines")
    figure = overview.rejects_figure(snapshot.rejects)
    if figure is None:
        st.success("No line was rejected in the runs now loaded.")
    else:
        st.plotly_chart(figure)
        rejects_browser()

    st.subheader("Files of the latest run")
    dataset = st.selectbox("Dataset", list(snapshot.files), key="files_dataset")
    run_id, files = snapshot.files[dataset]
    st.caption(f"Ingest run {run_id}: the run whose rows are loaded now.")
    st.dataframe(overview.file_counts_frame(files), hide_index=True)


main()
