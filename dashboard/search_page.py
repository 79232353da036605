"""Live search page: query, top-K grid with scores, captions and why each photo matched (detected objects, top
ImageNet labels), encoder and re-rank choice, an object filter ("must show"), score cut-off, paging, flags (one by
one or in bulk) with undo, and label export. Logic lives in live_search.py."""

from __future__ import annotations

import streamlit as st

from dashboard import context, live_search, photo_view, stage_progress
from db import labels, reads
from db.database import DatabaseError
from pipeline.encoders.base import WeightsUnavailable
from pipeline.perception.objects import COCO80
from pipeline.rerank import RerankError
from pipeline.search import Hit, NoVectors, QueryError, Why

COLUMNS = 4
PAGE_SIZES = (12, 24, 48)
VERDICT_LABELS = {"relevant": "Relevant", "not_relevant": "Not relevant", "offensive": "Offensive"}
def save_flags(query: str, encoder_id: str, flags: list[labels.Flag]) -> list:
    return live_search.flag(context.queue(), context.current_user().name, query, encoder_id, flags)


def flag_one(query: str, encoder_id: str, hit: Hit, verdict: str) -> None:
    comment = st.session_state.get(f"note_{hit.image_id}") or None
    flag = labels.Flag(hit.image_id, hit.rank, hit.score, verdict, comment)
    context.remember(save_flags(query, encoder_id, [flag]), f"Flag #{hit.rank} {VERDICT_LABELS[verdict].lower()}")


def flag_selected(query: str, encoder_id: str, hits: list[Hit]) -> None:
    chosen = [hit for hit in hits if st.session_state.get(f"sel_{hit.image_id}")]
    if not chosen:
        context.remember([], "Select results first")
        return
    verdict = st.session_state["search_bulk_verdict"]
    comment = st.session_state.get("search_bulk_comment") or None
    flags = [labels.Flag(h.image_id, h.rank, h.score, verdict, comment) for h in chosen]
    context.remember(save_flags(query, encoder_id, flags), f"Bulk flag ({len(flags)} results)")
    for hit in chosen:
        st.session_state[f"sel_{hit.image_id}"] = False


def undo(write_key: str) -> None:
    context.remember(live_search.undo(context.queue(), context.current_user().name, write_key), "Undo")


def result_grid(query: str, encoder_id: str, hits: list[Hit], files: dict[str, tuple[str, str]],
                captions: dict[str, list[str]], why: dict[str, Why], reranked: bool) -> None:
    bulk = st.columns([2, 3, 1], vertical_alignment="bottom")
    bulk[0].selectbox("Verdict for selected", list(VERDICT_LABELS), format_func=VERDICT_LABELS.get,
                      key="search_bulk_verdict")
    bulk[1].text_input("Comment for selected (optional)", key="search_bulk_comment")
    bulk[2].button("Flag selected", key="search_bulk_flag", on_click=flag_selected, args=(query, encoder_id, hits))
    for start in range(0, len(hits), COLUMNS):
        for column, hit in zip(st.columns(COLUMNS), hits[start:start + COLUMNS]):
            with column.container(border=True):
                photo = photo_view.photo(files, hit.image_id)
                if photo is not None:
                    st.image(photo, width="stretch")
                else:
                    st.caption("(photo not available)")
                score = f"**#{hit.rank}** · score **{hit.score:.3f}**"
                st.markdown(score + (f" · cosine {hit.cosine:.3f}" if reranked else ""))
                st.caption(" · ".join(captions.get(hit.image_id, [])[:2]) or "(no caption)")
                if hit.image_id in why:
                    st.caption(f"Why: {why[hit.image_id].text()}")
                st.checkbox("select", key=f"sel_{hit.image_id}")
                st.text_input("comment", key=f"note_{hit.image_id}", label_visibility="collapsed",
                              placeholder="comment (optional)")
                for verdict, text in VERDICT_LABELS.items():
                    st.button(text, key=f"{verdict}_{hit.image_id}", on_click=flag_one, width="stretch",
                              args=(query, encoder_id, hit, verdict))


def recent_and_export(user_name: str) -> None:
    with context.page_database() as db:
        recent = live_search.recent_flags(db, context.queue().pending(user=user_name), user_name)
        stored = labels.count(db)
    st.subheader("Your recent flags")
    if recent.empty:
        st.caption("No flags yet: flag a result above.")
    for row in recent.itertuples():
        cells = st.columns([3, 3, 1, 2, 1])
        cells[0].write(row.query)
        cells[1].write(row.image_id)
        cells[2].write(f"#{row.rank}")
        cells[3].write(f"{VERDICT_LABELS[row.verdict]} ({row.state})")
        cells[4].button("Undo", key=f"undo_{row.write_key}", on_click=undo, args=(row.write_key,))
    st.subheader("Export labels")
    st.caption(f"{stored:,} labels from all reviewers. They feed training with "
               "`python -m pipeline train --include-feedback`.")
    path = str(context.db_path())
    left, right = st.columns(2)
    left.download_button("Labels as CSV", live_search.labels_file(path, "csv"), "labels.csv", "text/csv",
                         key="search_export_csv", on_click="ignore")
    right.download_button("Labels as Parquet", live_search.labels_file(path, "parquet"), "labels.parquet",
                          "application/vnd.apache.parquet", key="search_export_parquet", on_click="ignore")


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
    query = st.text_input("Describe the scene", key="search_query", placeholder="a dog running on a beach")
    controls = st.columns([3, 2, 1, 2, 1])
    encoder_id = controls[0].selectbox("Encoder", setup.encoders, key="search_encoder")
    live_search.encoder_index(str(context.db_path()), encoder_id).warm()  # built while the user types
    rerank = controls[1].toggle("Re-rank", key="search_rerank",
                                disabled=setup.reranker_run is None,
                                help=f"Re-order the top 100 with model run {setup.reranker_run}"
                                if setup.reranker_run else
                                "No model chosen: pick one on Model comparison or "
                                "`python -m pipeline use-reranker RUN_ID`.")
    k = controls[2].selectbox("Per page", PAGE_SIZES, key="search_k")
    cut_off = controls[3].slider("Minimum score", -1.0, 1.0, -1.0, 0.01, key="search_min_score",
                                 help="Hide results scoring below this; -1 shows everything.")
    page = controls[4].number_input("Page", 1, 100, 1, key="search_page")
    counts = dict(setup.objects or [])
    must_show = st.multiselect(
        "Must show", list(counts) if setup.objects is not None else list(COCO80), key="search_objects",
        format_func=lambda label: f"{label} ({counts[label]:,})" if label in counts else label,
        placeholder="dog, person…", help="Only photos in which the object detector found every chosen object "
                                        "(the number: visible photos showing it).")
    if not setup.objects_current:
        st.caption("Counting the photos per object after the latest changes: the numbers update on a later run."
                   if setup.objects is not None else "Counting the photos per object: the numbers come on a later run.")
    if query.strip():
        path = str(context.db_path())
        try:
            searcher = live_search.searcher_for(path, encoder_id, setup.reranker_run if rerank else None)
            timed = live_search.run_search(searcher, query, k=k, offset=(page - 1) * k,
                                           min_score=None if cut_off <= -1.0 else cut_off, rerank=rerank,
                                           user=user.name, must_show=must_show)
        except QueryError as exc:
            st.warning(str(exc))
        except (NoVectors, WeightsUnavailable, RerankError, DatabaseError) as exc:
            st.warning(str(exc))
        else:
            result = timed.result
            if result.legal_notice:
                st.error(result.legal_notice)
            else:
                for notice in result.notices:
                    st.info(notice)
                st.caption(f"{len(result.hits)} results on page {page} · answered in {timed.milliseconds:.0f} ms")
                if not result.hits:
                    st.info("No results on this page: lower the minimum score, go back a page"
                            + (", or choose fewer objects." if must_show else "."))
                ids = [hit.image_id for hit in result.hits]
                with context.page_database() as db:
                    files = reads.visible_photo_files(db, ids)
                    captions = reads.visible_captions_of(db, ids)
                    why = live_search.why_matched(db, searcher, ids)
                result_grid(result.query, encoder_id, result.hits, files, captions, why, rerank)
    recent_and_export(user.name)


main()
