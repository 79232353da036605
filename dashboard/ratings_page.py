"""Ratings EDA page: how experts, the crowd and the aggregated target judge (photo, query) pairs, how well the
experts agree, a drill-down by query and by photo, and the labels reviewers add from live search.

Presentation only; the SQL lives in db/eda.py and the statistics and figures in dashboard/ratings.py. Photos are
shown only through reads.visible_photo_files and photo_view, i.e. only the bytes the minors filter has cleared.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import context, photo_view, ratings
from db import eda, reads
from db.labels import VERDICTS

ALL_DATASETS = "(all)"
LABELS_PAGE = 20


def filters(datasets: list[str]) -> eda.PairFilter:
    """Dataset and mean-expert-score range; the full range means no score filter, so crowd-only pairs stay in."""
    left, right = st.columns([1, 2])
    dataset = left.selectbox("Dataset", [ALL_DATASETS, *datasets], key="eda_dataset")
    full_range = (ratings.SCORE_MEANS[0], ratings.SCORE_MEANS[-1])
    low, high = right.select_slider(
        "Mean expert score", options=ratings.SCORE_MEANS, value=full_range, format_func=ratings.format_mean,
        key="eda_score",
        help="Keeps pairs whose mean of the three expert scores lies in this range. Narrowing it drops pairs the "
             "experts did not score (crowd only).")
    return eda.PairFilter(dataset=None if dataset == ALL_DATASETS else dataset,
                          score_range=None if (low, high) == full_range else (low, high))


HEADLINE_PER_ROW = 4  # seven tiles in one row cut their labels short at 1400 px ("Mean expert s...")


def show_headline(snapshot: ratings.Snapshot) -> None:
    cells = ratings.headline(snapshot.summary, snapshot.agreement)
    for start in range(0, len(cells), HEADLINE_PER_ROW):
        row = cells[start : start + HEADLINE_PER_ROW]
        for column, (label, value, help_text) in zip(st.columns(HEADLINE_PER_ROW), row):
            column.metric(label, value, help=help_text)


def expert_section(snapshot: ratings.Snapshot) -> None:
    st.subheader("Expert scores and agreement")
    if snapshot.agreement is None:
        st.info("No pair in this selection has expert scores (the crowd judged them only).")
        return
    st.plotly_chart(ratings.expert_scores_figure(snapshot.expert_scores), key="eda_expert_chart")
    if snapshot.agreement.columns_sorted:
        st.caption("Every pair's three scores are stored in ascending order (expert_1 ≤ expert_2 ≤ expert_3), as in "
                   "the Flickr8k file: the columns are the lowest, middle and highest score, not three identified "
                   "experts. The agreement statistics below do not depend on who gave which score.")
    st.dataframe(ratings.agreement_table(snapshot.agreement), hide_index=True)


def crowd_and_target_section(snapshot: ratings.Snapshot) -> None:
    st.subheader("Crowd, experts vs crowd, aggregated target")
    left, right = st.columns(2)
    if snapshot.crowd_shares.empty:
        left.info("No pair in this selection has crowd votes.")
    else:
        left.plotly_chart(ratings.crowd_share_figure(snapshot.crowd_shares), key="eda_crowd_chart")
    if snapshot.expert_vs_crowd.empty:
        right.info("No pair in this selection was judged by both the experts and the crowd.")
    else:
        right.plotly_chart(ratings.expert_vs_crowd_figure(snapshot.expert_vs_crowd), key="eda_versus_chart")
        correlation = snapshot.summary["expert_crowd_correlation"]
        right.caption(f"{snapshot.summary['both_pairs']:,} pairs judged by both; Pearson r of expert mean and crowd "
                      f"share: {ratings.format_number(correlation)}.")
    if snapshot.targets.empty:
        st.info("No relevance target yet for these pairs. Run `python -m pipeline relevance`.")
    else:
        st.plotly_chart(ratings.target_figure(snapshot.targets), key="eda_target_chart")


def show_gallery(tiles: list[ratings.Tile]) -> None:
    for column, tile in zip(st.columns(len(tiles) or 1), tiles):
        name = tile.image_id.split("/", 1)[-1]
        if tile.photo is None:
            column.caption(f"{name}: photo not available · {tile.caption}")
        else:
            column.image(tile.photo, caption=f"{name} · {tile.caption}")


def _matches(what: str, searched: str, order: str, key: str, find) -> pd.DataFrame | None:
    """A search box and the first matches of ``find(db, text)`` (one page, read in SQL); None when nothing
    matches (the page says so)."""
    text = st.text_input(f"Find a {what} ({searched} contains)", key=key)
    with context.page_database() as db:
        found = find(db, text.strip() or None)
    if found.empty:
        st.info(f"No judged {what} matches.")
        return None
    if len(found) == eda.PICKER_LIMIT:
        st.caption(f"The first {eda.PICKER_LIMIT} matches by {order}; type more to narrow them.")
    return found


def query_drilldown(where: eda.PairFilter) -> None:
    """A search box, the first matching queries in a picker, and the chosen query's pairs: every step one page
    read in SQL, however many queries there are."""
    queries = _matches("query", "text or id", "text", "eda_query_search", lambda db, text: eda.find_queries(
        db, where.dataset, text))
    if queries is None:
        return
    labels = ratings.query_labels(queries)
    query_id = st.selectbox("Query", list(labels), format_func=labels.get, key="eda_query")
    with context.page_database() as db:
        total, pairs = eda.pairs_of_query(db, where, query_id)
        files = reads.visible_photo_files(db, list(pairs["image_id"].head(ratings.GALLERY_SIZE)))
    show_gallery(ratings.gallery(pairs, lambda image_id: photo_view.photo(files, image_id)))
    if total > len(pairs):
        st.caption(f"The best {len(pairs):,} of {total:,} judged photos.")
    st.dataframe(pairs, hide_index=True)


def image_drilldown(where: eda.PairFilter) -> None:
    images = _matches("photo", "id", "id", "eda_image_search", lambda db, text: eda.find_images(
        db, where.dataset, text))
    if images is None:
        return
    counts = dict(zip(images["image_id"], images["pairs"]))
    image_id = st.selectbox("Photo", list(counts), format_func=lambda i: f"{i} · {counts[i]} pairs", key="eda_image")
    with context.page_database() as db:
        total, pairs = eda.pairs_of_image(db, where, image_id)
        files = reads.visible_photo_files(db, [image_id])
    left, right = st.columns([1, 3])
    photo = photo_view.photo(files, image_id)
    if photo is None:
        left.caption("photo not available")
    else:
        left.image(photo)
    if total > len(pairs):
        right.caption(f"The best {len(pairs):,} of {total:,} judged queries.")
    right.dataframe(pairs, hide_index=True)


def labels_section(snapshot: ratings.Snapshot, dataset: str | None) -> None:
    st.subheader("Reviewers' labels from live search")
    if snapshot.verdicts.empty:
        st.info("No labels yet. Reviewers flag search results on the Live search page; their verdicts show up "
                "here at the next page run.")
        return
    totals = snapshot.verdicts.groupby("verdict")["labels"].sum()
    for column, verdict in zip(st.columns(len(VERDICTS)), VERDICTS):
        column.metric(f"Labels: {verdict}", f"{int(totals.get(verdict, 0)):,}")
    st.plotly_chart(ratings.labels_figure(snapshot.verdicts), key="eda_labels_chart")
    count = int(totals.sum())
    pages = max(1, -(-count // LABELS_PAGE))
    page = st.number_input(f"Labels page (of {pages:,})", 1, pages, 1, key="eda_labels_page")
    with context.page_database() as db:
        rows = eda.labels_page(db, dataset, LABELS_PAGE, (page - 1) * LABELS_PAGE)
    st.caption(f"{count:,} labels, newest first (photo ids only: a labelled photo may not be visible).")
    st.dataframe(rows, hide_index=True)


def main() -> None:
    st.title("Ratings EDA")
    st.caption("How the experts (scores 1..4), the crowd (share of yes votes) and the aggregated relevance target "
               "judge (photo, query) pairs. Every chart and number follows the filters below.")
    context.require_role(__file__)
    with context.page_database() as db:
        datasets = eda.rated_datasets(db)
    where = filters(datasets) if datasets else eda.PairFilter()
    with context.page_database() as db:
        snapshot = ratings.load_snapshot(db, where)

    if not datasets:
        st.info(f"No expert or crowd ratings in the database yet. {context.how_to_build()}")
    elif not snapshot.summary["pairs"]:
        st.info("No judged pair matches these filters: widen the score range or pick another dataset.")
    else:
        show_headline(snapshot)
        expert_section(snapshot)
        crowd_and_target_section(snapshot)
        st.subheader("Drill-down")
        by_query, by_image = st.tabs(["By query", "By photo"])
        with by_query:
            query_drilldown(where)
        with by_image:
            image_drilldown(where)
    labels_section(snapshot, where.dataset)


main()
