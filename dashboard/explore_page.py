"""Explore page: the embedding map of the visible photos (coloured by dataset, cluster, reviewers' verdict, COCO
object annotated or detected; a click shows the photo and its captions) and the labels reviewers collected so far,
by reviewer, verdict and query. Logic lives in explore.py; the map is computed by `python -m pipeline project`."""

from __future__ import annotations

import streamlit as st

from dashboard import context, explore, photo_view, stage_progress
from dashboard.comparison import encoder_label
from db import embeddings as vector_store, explore as store, reads

PHOTO_KEY = "explore_photo"  # the photo last clicked on the map


def show_photo(image_id: str | None) -> None:
    """The clicked photo and its captions, read again through the visible reads: a photo withdrawn since the
    click, or an id that is not visible, shows nothing but a note."""
    if not image_id:
        st.caption("Click a point to see its photo.")
        return
    with context.page_database() as db:
        files = reads.visible_photo_files(db, [image_id])
        captions = reads.visible_captions_of(db, [image_id]).get(image_id, [])
    picture = photo_view.photo(files, image_id)
    if image_id not in files:
        st.caption("This photo is no longer shown (not visible).")
        return
    st.markdown(f"**{image_id}**")
    if picture is not None:
        st.image(picture, width="stretch")
    else:
        st.caption("(photo file not available)")
    for caption in captions[:5]:
        st.caption(caption)


def photo_map() -> None:
    with context.page_database() as db:
        infos = store.map_infos(db)
    if not infos:
        st.info("No embedding map yet. Run `python -m pipeline project "
                f"--db {context.db_path()}` (after `embed`), then reload this page.")
        return
    by_id = {info.encoder_id: info for info in infos}
    top = st.columns([3, 2])
    encoder_id = top[0].selectbox("Encoder", list(by_id), key="explore_encoder",
                                  format_func=lambda e: f"{encoder_label(e)} ({by_id[e].vectors:,} vectors)")
    colour_by = top[1].radio("Colour by", list(explore.COLOUR_BY), format_func=explore.COLOUR_BY.get,
                             horizontal=True, key="explore_colour")
    info = by_id[encoder_id]
    with context.page_database() as db:
        stale = explore.stale_notice(info, vector_store.vector_set_version(db, encoder_id))
        version = explore.cache_version(db, info)
    if stale:
        st.warning(stale)
    total, points = explore.map_points(str(context.db_path()), encoder_id, explore.MAX_POINTS, version)
    if points.empty:
        st.info("No visible photo on this map yet: photos appear once the minors filter clears them "
                f"(`python -m pipeline filter --db {context.db_path()}`).")
        return
    with context.page_database() as db:
        colour = explore.groups(db, points, colour_by)
    shown = f"all {total:,}" if len(points) == total else f"a fixed sample of {len(points):,} of the {total:,}"
    st.caption(f"Showing {shown} visible photos. Axes: the two principal components of the vectors "
               f"({info.explained:.0%} of their variance); {info.clusters} k-means clusters of the full vectors.")
    left, right = st.columns([3, 1])
    with left:
        event = st.plotly_chart(explore.figure(points, colour), key="explore_map", on_select="rerun",
                                selection_mode="points", config={"scrollZoom": True})
    picked = explore.picked_id(event)
    if picked:
        st.session_state[PHOTO_KEY] = picked
    with right:
        show_photo(st.session_state.get(PHOTO_KEY))


def labels_section() -> None:
    st.subheader("Labels collected so far")
    with context.page_database() as db:
        labelled, reviewers, queries = store.label_totals(db)
        counts = {column: store.labels_by(db, column, explore.TOP_GROUPS) for column in explore.LABEL_GROUPS}
    if not labelled:
        st.info("No labels yet: reviewers flag search results on the Live search page.")
        return
    tiles = st.columns(3)
    tiles[0].metric("Labels", f"{labelled:,}")
    tiles[1].metric("Reviewers", f"{reviewers:,}")
    tiles[2].metric("Queries", f"{queries:,}")
    for tab, (column, name) in zip(st.tabs([f"By {name}" for name in explore.LABEL_GROUPS.values()]),
                                   explore.LABEL_GROUPS.items()):
        with tab:
            table = explore.labels_table(counts[column], name)
            if {"user_name": reviewers, "query": queries}.get(column, 0) > explore.TOP_GROUPS:
                st.caption(f"The {explore.TOP_GROUPS} {name}s with most labels.")
            st.plotly_chart(explore.labels_figure(table, name), key=f"explore_labels_{column}")
            st.dataframe(table, hide_index=True, key=f"explore_table_{column}")


context.require_role(__file__)
stage_progress.waiting_notice(__file__)
st.title("Explore")
photo_map()
labels_section()
