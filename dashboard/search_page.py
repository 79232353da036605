"""Live search page: query, top-K grid with scores, captions and why each photo matched (detected objects, top
ImageNet labels), encoder and re-rank choice, an object filter ("must show"), a score cut-off on the scale the
scores use with the point where results stop being relevant on average, the total and the pages, flags (one by one
or in bulk; each card shows its current flag) with undo, a full-size view of a photo, "more like this", and label
export. Logic lives in live_search.py, score_scale.py and photo_detail.py."""

from __future__ import annotations

import streamlit as st

from dashboard import context, live_search, photo_detail, photo_view, score_scale, stage_progress
from dashboard.comparison import encoder_label
from dashboard.live_search import CardFlag, Markers
from dashboard.minors_review import escape
from db import labels, reads
from db.database import DatabaseError
from pipeline.encoders.base import WeightsUnavailable
from pipeline.perception.objects import COCO80
from pipeline.rerank import RerankError
from pipeline.search import Hit, NoVectors, QueryError, Searcher, Why

COLUMNS = 4
PAGE_SIZES = (12, 24, 48)
VERDICT_LABELS = {"relevant": "Relevant", "not_relevant": "Not relevant", "offensive": "Offensive"}
BULK_DEFAULT = "relevant"
LIKE_KEY = "search_like"  # the photo "more like this" searches from; None for the text search
PAGE_KEY = "search_page"
SIGNATURE_KEY = "search_signature"  # what the current pages are of: a change goes back to page 1


def save_flags(query: str, encoder_id: str, flags: list[labels.Flag]) -> list:
    return live_search.flag(context.queue(), context.current_user().name, query, encoder_id, flags)


def flag_one(query: str, encoder_id: str, hit: Hit, verdict: str) -> None:
    comment = st.session_state.get(f"note_{hit.image_id}") or None
    flag = labels.Flag(hit.image_id, hit.rank, hit.score, verdict, comment)
    context.remember(save_flags(query, encoder_id, [flag]), f"Flag #{hit.rank} {VERDICT_LABELS[verdict].lower()}")
    st.session_state[f"note_{hit.image_id}"] = ""


def flag_selected(query: str, encoder_id: str, hits: list[Hit]) -> None:
    """Flag the selected results, then put the bulk controls back as they were (verdict, comment, selection), so
    the next bulk flag never reuses the last one's verdict or comment unnoticed."""
    chosen = [hit for hit in hits if st.session_state.get(f"sel_{hit.image_id}")]
    if not chosen:
        context.remember([], "Select results first")
        return
    verdict = st.session_state["search_bulk_verdict"]
    comment = st.session_state.get("search_bulk_comment") or None
    flags = [labels.Flag(h.image_id, h.rank, h.score, verdict, comment) for h in chosen]
    context.remember(save_flags(query, encoder_id, flags), f"Bulk flag ({len(flags)} results)")
    for hit in hits:
        st.session_state[f"sel_{hit.image_id}"] = False
    st.session_state["search_bulk_verdict"] = BULK_DEFAULT
    st.session_state["search_bulk_comment"] = ""


def undo(write_key: str) -> None:
    context.remember(live_search.undo(context.queue(), context.current_user().name, write_key), "Undo")


def more_like(image_id: str) -> None:
    st.session_state[LIKE_KEY] = image_id
    st.session_state[PAGE_KEY] = 1


def back_to_text() -> None:
    st.session_state[LIKE_KEY] = None
    st.session_state[PAGE_KEY] = 1


@st.dialog("Photo", width="large")
def full_view(image_id: str, role: str, perceiver: str) -> None:
    """The photo at full size with everything stored about it; the minors decision for moderators only."""
    with context.page_database() as db:
        detail = photo_detail.read(db, image_id, role, perceiver)
    if detail is None:
        st.warning("This photo is no longer shown.")
    else:
        left, right = st.columns([3, 2])
        photo = photo_view.photo(detail.file, image_id)
        if photo is not None:
            left.image(photo, width="stretch")
        else:
            left.caption("(photo not available)")
        with right:
            st.markdown(f"**{image_id}**")
            st.markdown("**Captions**")
            for caption in detail.captions or ["(no caption)"]:
                st.markdown(f"- {escape(caption)}")  # caption text shown literally
            st.markdown("**Detected objects**")
            if detail.objects.empty:
                st.caption("No objects detected (or not perceived yet).")
            else:
                st.dataframe(detail.objects, hide_index=True, key="view_objects")
        st.markdown("**Labels collected**")
        if detail.labels.empty:
            st.caption("No reviewer has flagged this photo yet.")
        else:
            st.dataframe(detail.labels, hide_index=True, key="view_labels")
        if role == photo_detail.MODERATOR:
            st.markdown("**Minors decision** (moderators only)")
            st.json(detail.minors or {"status": "no decision"}, expanded=False)
    if st.button("Close", key="view_close"):
        st.rerun()


def card(hit: Hit, files: dict, captions: dict[str, list[str]], why: dict[str, Why], reranked: bool,
         current: CardFlag | None, flagging: tuple[str, str] | None, perceiver: str) -> None:
    """One result: photo, score, captions, why, its current flag, view / more like this and (text search) flags."""
    with st.container(border=True):
        photo = photo_view.photo(files, hit.image_id)
        if photo is not None:
            st.image(photo, width="stretch")
        else:
            st.caption("(photo not available)")
        score = f"**#{hit.rank}** · score **{hit.score:.3f}**"
        st.markdown(score + (f" · cosine {hit.cosine:.3f}" if reranked else ""))
        st.caption(" · ".join(map(escape, captions.get(hit.image_id, [])[:2])) or "(no caption)")
        if hit.image_id in why:
            st.caption(f"Why: {why[hit.image_id].text()}")
        if st.button("View full size", key=f"view_{hit.image_id}", width="stretch"):  # one a row: never cut short
            full_view(hit.image_id, context.current_user().role, perceiver)
        st.button("More like this", key=f"like_{hit.image_id}", on_click=more_like, args=(hit.image_id,),
                  width="stretch")
        if flagging is None:
            return
        query, encoder_id = flagging
        st.caption(f"Your flag: **{VERDICT_LABELS[current.verdict]}** ({current.state})" if current
                   else "Not flagged by you yet")
        st.checkbox("select", key=f"sel_{hit.image_id}")
        st.text_input("comment", key=f"note_{hit.image_id}", label_visibility="collapsed",
                      placeholder="comment (optional)")
        for verdict, text in VERDICT_LABELS.items():
            st.button(text, key=f"{verdict}_{hit.image_id}", on_click=flag_one, width="stretch",
                      type="primary" if current and current.verdict == verdict else "secondary",
                      args=(query, encoder_id, hit, verdict))


def grid(hits: list[Hit], **shown) -> None:
    for start in range(0, len(hits), COLUMNS):
        for column, hit in zip(st.columns(COLUMNS), hits[start:start + COLUMNS]):
            with column:
                card(hit, current=shown["flags"].get(hit.image_id), **{k: v for k, v in shown.items() if k != "flags"})


def result_grid(hits: list[Hit], files: dict, captions: dict[str, list[str]], why: dict[str, Why], reranked: bool,
                flags: dict[str, CardFlag], flagging: tuple[str, str] | None, marker: score_scale.Marker | None,
                perceiver: str) -> None:
    if flagging is not None:
        bulk = st.columns([2, 3, 1], vertical_alignment="bottom")
        bulk[0].selectbox("Verdict for selected", list(VERDICT_LABELS), format_func=VERDICT_LABELS.get,
                          key="search_bulk_verdict")
        bulk[1].text_input("Comment for selected (optional)", key="search_bulk_comment")
        bulk[2].button("Flag selected", key="search_bulk_flag", on_click=flag_selected, args=(*flagging, hits))
    shown = dict(files=files, captions=captions, why=why, reranked=reranked, flags=flags, flagging=flagging,
                 perceiver=perceiver)
    split = score_scale.first_below([hit.score for hit in hits], marker)
    if split is None:
        grid(hits, **shown)
        return
    grid(hits[:split], **shown)
    st.markdown(f"---\n**Below here results are usually not relevant** (score under {marker.describe()}).")
    grid(hits[split:], **shown)


def recent_and_export(user_name: str) -> None:
    with context.page_database() as db:
        recent = live_search.recent_flags(db, context.queue().pending(user=user_name), user_name)
        files = reads.visible_photo_files(db, recent["image_id"].tolist())
        stored = labels.count(db)
    st.subheader("Your recent flags")
    if recent.empty:
        st.caption("No flags yet: flag a result above.")
    for row in recent.itertuples():
        cells = st.columns([1, 3, 3, 1, 2, 1], vertical_alignment="center")
        thumbnail = photo_view.photo(files, row.image_id)  # visible photos only: the read holds no other
        if thumbnail is not None:
            cells[0].image(thumbnail, width=64)
        else:
            cells[0].caption("(not shown)")
        cells[1].write(row.query)
        cells[2].write(row.image_id)
        cells[3].write(f"#{row.rank}")
        cells[4].write(f"{VERDICT_LABELS[row.verdict]} ({row.state})")
        cells[5].button("Undo", key=f"undo_{row.write_key}", on_click=undo, args=(row.write_key,))
    st.subheader("Export labels")
    st.caption(f"{stored:,} labels from all reviewers. They feed training with "
               "`python -m pipeline train --include-feedback`.")
    path = str(context.db_path())
    left, right = st.columns(2)
    left.download_button("Labels as CSV", live_search.labels_file(path, "csv"), "labels.csv", "text/csv",
                         key="search_export_csv", on_click="ignore")
    right.download_button("Labels as Parquet", live_search.labels_file(path, "parquet"), "labels.parquet",
                          "application/vnd.apache.parquet", key="search_export_parquet", on_click="ignore")


def rerank_help(reranker_run: str | None, role: str) -> str:
    """The data team may be told the command; everyone else gets a plain sentence."""
    if reranker_run:
        return f"Re-order the top 100 results with the chosen relevance model (run {reranker_run})."
    if role == "data":
        return ("No model chosen: pick one on Model comparison or `python -m pipeline use-reranker RUN_ID`.")
    return "No re-ranking model has been chosen yet. The data team picks one on the Model comparison page."


def cut_off_slider(slot, searcher: Searcher, query: str, rerank: bool, markers: Markers) -> float | None:
    """The minimum-score slider on the scale this query's scores use (the re-rank model's 0..1 when
    re-ranking), widened to hold the markers; its lowest value is no cut-off. Returns the cut-off or None."""
    shown = [m for m in (markers.labels, markers.model) if m is not None]
    observed = (0.0, 1.0) if rerank else searcher.score_range(query)
    if observed is None:  # a query the minors rules refuse: no scores to scale
        return None
    low, high = score_scale.slider_bounds(*observed, shown)
    value = st.session_state.get("search_min_score")
    if not isinstance(value, float) or not low <= value <= high:
        st.session_state["search_min_score"] = low
    cut_off = slot.slider("Minimum score", low, high, step=score_scale.STEP, key="search_min_score",
                          help=f"Hide results scoring below this. Scores of this {'model' if rerank else 'query'} "
                               f"run from {low:.2f} to {high:.2f}; the lowest shows everything.")
    return None if cut_off <= low else cut_off


def marker_caption(markers: Markers) -> str:
    parts = []
    if markers.labels:
        parts.append(f"reviewers' labels: {markers.labels.describe()}")
    if markers.model:
        parts.append(f"{markers.model.describe()}")
    if parts:
        return "Results usually stop being relevant below " + "; ".join(parts) + "."
    return (f"No relevance marker yet: it needs {score_scale.MIN_EACH} relevant and {score_scale.MIN_EACH} "
            "not-relevant flags on this encoder's results (no calibrated model of this encoder's score exists).")


def show_results(result, timed_ms: float, page: int, k: int, searcher: Searcher, encoder_id: str, rerank: bool,
                 markers: Markers | None, flagging: tuple[str, str] | None, user_name: str) -> None:
    pages = score_scale.page_count(result.total or 0, k)
    # "about": the total of before a decision while it is recounted, or (tens of millions of photos) estimated
    about = "" if result.total_current and not result.total_estimated else "about "
    st.caption(f"{about}**{result.total:,}** matches · page {page} of {pages:,} · {len(result.hits)} on this page · "
               f"answered in {timed_ms:.0f} ms" + ("" if result.total_current else " · the total is being updated")
               + (" · the total above the cut-off is estimated from a sample" if result.total_estimated else ""))
    marker = markers.chosen if markers else None
    if result.hits and result.hits[0].rank == 1 and score_scale.no_good_match(result.hits[0].score, marker):
        st.warning(f"No good match: the best result scores {result.hits[0].score:.2f}, under "
                   f"{marker.describe()} where results are usually no longer relevant. Try other words.")
    ids = [hit.image_id for hit in result.hits]
    with context.page_database() as db:
        files = reads.visible_photo_files(db, ids)
        captions = reads.visible_captions_of(db, ids)
        why = live_search.why_matched(db, searcher, ids)
        flags = live_search.card_flags(db, context.queue().pending(user=user_name), user_name, result.query, ids) \
            if flagging else {}
    result_grid(result.hits, files, captions, why, rerank, flags, flagging, marker, searcher.perceiver)


def main() -> None:
    st.title("Live search")
    user = context.require_role(__file__)
    stage_progress.waiting_notice(__file__)
    context.show_remembered()
    with context.page_database() as db:
        setup = live_search.read_setup(db, str(context.db_path()))
    if not setup.encoders:
        st.info("No searchable photos yet: run `python -m pipeline filter` and `python -m pipeline embed` "
                f"(after `python -m pipeline ingest`), or `./studio demo`. {context.how_to_build()}")
        return
    query = st.text_input("Describe the scene", key="search_query", placeholder="a dog running on a beach",
                          on_change=back_to_text)
    controls = st.columns([5, 2, 1], vertical_alignment="bottom")
    encoder_id = controls[0].selectbox("Encoder", setup.encoders, key="search_encoder", format_func=encoder_label,
                                       help="Which photo vectors to search: " + ", ".join(setup.encoders))
    path = str(context.db_path())
    live_search.encoder_index(path, encoder_id).warm()  # built while the user types
    rerank = controls[1].toggle("Re-rank", key="search_rerank", disabled=setup.reranker_run is None,
                                help=rerank_help(setup.reranker_run, user.role))
    k = controls[2].selectbox("Per page", PAGE_SIZES, key="search_k")
    counts = dict(setup.objects or [])
    must_show = st.multiselect(
        "Must show", list(counts) if setup.objects is not None else list(COCO80), key="search_objects",
        format_func=lambda label: f"{label} ({counts[label]:,})" if label in counts else label,
        placeholder="dog, person…", help="Only photos in which the object detector found every chosen object "
                                        "(the number: visible photos showing it).")
    if not setup.objects_current:
        st.caption("Counting the photos per object after the latest changes: the numbers update on a later run."
                   if setup.objects is not None else "Counting the photos per object: the numbers come on a later run.")
    like = st.session_state.get(LIKE_KEY)
    if like or query.strip():
        slots = st.columns([5, 1], vertical_alignment="bottom")
        run = setup.reranker_run if rerank and not like else None
        try:
            searcher = live_search.searcher_for(path, encoder_id, run)
            if like:
                st.info(f"Photos like {like} (nearest by the photo's own vector; visible photos only).")
                st.button("Back to the text search", key="search_back", on_click=back_to_text)
                markers, cut_off, flagging = None, None, None
            else:
                with context.page_database() as db:
                    markers = live_search.relevance_markers(db, path, encoder_id, run)
                cut_off = cut_off_slider(slots[0], searcher, query, rerank, markers)
                st.caption(marker_caption(markers))
                flagging = (query, live_search.label_encoder(encoder_id, run))
            signature = (like, query, encoder_id, rerank, k, cut_off, tuple(must_show))
            if st.session_state.get(SIGNATURE_KEY) != signature:  # new question: back to its first page
                st.session_state[SIGNATURE_KEY], st.session_state[PAGE_KEY] = signature, 1
            page = int(st.session_state.get(PAGE_KEY, 1))
            timed = search_once(searcher, like, query, k, page, cut_off, rerank, user.name, must_show)
            pages = score_scale.page_count(timed.result.total or 0, k)
            if page > pages:  # fewer pages than before (a decision, a new vector): the last one
                st.session_state[PAGE_KEY] = page = pages
                timed = search_once(searcher, like, query, k, page, cut_off, rerank, user.name, must_show)
            slots[1].number_input(f"Page (of {pages:,})", 1, pages, key=PAGE_KEY)
        except (QueryError, NoVectors, WeightsUnavailable, RerankError, DatabaseError) as exc:
            st.warning(str(exc))
        else:
            result = timed.result
            if result.legal_notice:
                st.error(result.legal_notice)
            else:
                for notice in result.notices:
                    st.info(notice)
                if flagging:
                    flagging = (result.query, flagging[1])
                if not result.hits:
                    st.info("No results on this page: lower the minimum score, go back a page"
                            + (", or choose fewer objects." if must_show else "."))
                show_results(result, timed.milliseconds, page, k, searcher, encoder_id, rerank and not like, markers,
                             flagging, user.name)
    recent_and_export(user.name)


def search_once(searcher: Searcher, like: str | None, query: str, k: int, page: int, cut_off: float | None,
                rerank: bool, user: str, must_show: list[str]) -> live_search.TimedResult:
    offset = (page - 1) * k
    if like:
        return live_search.run_like(searcher, like, k=k, offset=offset, must_show=must_show)
    return live_search.run_search(searcher, query, k=k, offset=offset, min_score=cut_off, rerank=rerank, user=user,
                                  must_show=must_show)


main()
