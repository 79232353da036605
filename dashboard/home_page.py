"""Overview page: which datasets are loaded, how many rows each has, and what the ingest runs rejected.

Presentation only; reading and shaping the data lives in overview.py. Every failure to read the database ends
in a message naming the command to run, never a traceback.
"""

from __future__ import annotations

import streamlit as st

from dashboard import overview
from db.database import DatabaseError


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


def main() -> None:
    st.title("With Sense studio")
    st.caption("What the pipeline has loaded into the studio database: datasets, row counts, ingest runs "
               "and the lines it rejected.")

    path = overview.db_path()
    if not path.exists():
        st.info(f"No database at `{path}` yet. {overview.how_to_build(path)}")
        return
    try:
        snapshot = overview.load_snapshot(path)
    except DatabaseError as exc:
        st.warning(f"{exc}\n\nIf a pipeline run is writing to it, reload this page when it has finished; "
                   f"otherwise rebuild it. {overview.how_to_build(path)}")
        return
    if snapshot.datasets.empty:
        st.info(f"The database `{path}` has no datasets yet. {overview.how_to_build(path)}")
        return

    show_metrics(overview.metric_totals(snapshot.datasets))

    st.subheader("Datasets")
    st.dataframe(snapshot.datasets, hide_index=True)

    st.subheader("Latest ingest runs")
    st.dataframe(snapshot.runs, hide_index=True)

    st.subheader("Rejected lines")
    figure = overview.rejects_figure(snapshot.rejects)
    if figure is None:
        st.success("No line was rejected in the runs now loaded.")
    else:
        st.plotly_chart(figure)

    st.subheader("Files of the latest run")
    dataset = st.selectbox("Dataset", list(snapshot.files), key="files_dataset")
    run_id, files = snapshot.files[dataset]
    st.caption(f"Ingest run {run_id}: the run whose rows are loaded now.")
    st.dataframe(overview.file_counts_frame(files), hide_index=True)


main()
