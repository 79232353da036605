"""Minors review page (moderators only). First view, "To decide": one photo at a time, leased to this moderator,
decided with a key (minors_queue_view.py). "Waiting for the file": pending photos nobody can see yet. "All decisions":
the pending and excluded grid with the caption words that fired and the detectors' boxes drawn on each photo (score,
estimated age), confirm or overturn with a reason one by one or in bulk, the audit trail, exports. Logic:
minors_review.py, queue_flow.py, evidence.py."""

from __future__ import annotations

import streamlit as st

from dashboard import context, evidence, minors_queue_view, minors_review, stage_progress
from db import minors
from db.shared import LeasedDatabase
from pipeline.minors.moderation import STATUSES, ModerationError, validate

PAGE_SIZE = 20
BLOCKED_SHOWN = 100
AUDIT_SHOWN = 200
STATUS_LABELS = {"cleared": "Clear (show in search)", "excluded": "Exclude", "pending_review": "Keep pending"}
VIEWS = ("To decide", "Waiting for the file", "All decisions")


def decide(image_ids: list[str], status: str | None, reason: str) -> None:
    """Check, queue as the signed-in moderator, then rerun so the queue shows the new state. No decision is
    preselected: a moderator chooses one each time."""
    if status is None:
        st.error("Choose a decision first.")
        return
    user = context.current_user()
    try:
        with context.page_database() as db:
            ids = validate(db, image_ids, status, moderator=user.name, reason=reason)
    except ModerationError as exc:
        st.error(str(exc))
        return
    outcomes = context.submit([("moderate", {"image_ids": ids, "status": status, "reason": reason.strip()})])
    context.remember(outcomes, f"Decision on {len(ids)} photo(s)")
    st.rerun()


def item(row, found: evidence.Evidence | None) -> None:
    """One queued photo: the photo with what the detectors saw drawn on it, why it is here (fired words
    highlighted), the evidence table, and a decision form."""
    with st.container(border=True):
        left, right = st.columns([1, 2])
        photo = minors_queue_view.shown_photo(row, found)
        if photo is not None:
            left.image(photo, width="stretch")
        else:
            left.caption("(photo not available: no file, or not the bytes this decision is about)")
        left.caption(evidence.summary(found) if found is not None
                     else "Not perceived yet: run `python -m pipeline perceive`.")
        right.markdown(f"**{row.image_id}** · `{row.status}` · {row.decided_by}"
                       + (f" ({row.moderator})" if row.moderator else ""))
        right.caption(minors_review.escape(row.reason))
        for line in minors_review.fired_captions(row.reasons):
            right.markdown(line)
        if found is not None and found.boxes:
            with right.expander(f"What the detectors saw ({len(found.boxes)} boxes)"):
                if photo is not None:
                    st.image(photo, width="stretch")
                st.dataframe(evidence.table(found), hide_index=True)
        cells = right.columns([2, 3, 1], vertical_alignment="bottom")
        status = cells[0].selectbox("Decision", STATUSES, format_func=STATUS_LABELS.get, index=None,
                                    placeholder="Choose", key=f"minors_status_{row.image_id}")
        reason = cells[1].text_input("Reason", key=f"minors_reason_{row.image_id}")
        if cells[2].button("Decide", key=f"minors_decide_{row.image_id}"):
            decide([row.image_id], status, reason)


def blocked_searches() -> None:
    """Searches the legal block refused (who, when, the words that fired): moderators see what people look for."""
    with context.page_database() as db:
        total, newest = minors.blocked_queries(db, BLOCKED_SHOWN)
    st.subheader(f"Blocked searches ({total:,})")
    if total:
        st.caption(f"The newest {len(newest):,}." if total > len(newest) else "Newest first.")
        st.dataframe(newest, hide_index=True)
    else:
        st.caption("No search has been refused under the minors rules.")


def main() -> None:
    """Progress first, then the view chosen, "To decide" by default."""
    st.title("Minors review")
    context.require_role(__file__)  # app.py does not register this page for other roles; belt and braces
    stage_progress.waiting_notice(__file__)
    context.show_remembered()

    me = context.current_user().name
    with context.page_database() as db:
        counts = minors.status_counts(db)
        if counts:
            minors_queue_view.progress(db, me)
    if not counts:
        st.info("No minors decisions yet: run `python -m pipeline filter` (after `python -m pipeline ingest`).")
        return
    view = st.segmented_control("View", VIEWS, default=VIEWS[0], required=True, key="minors_view",
                                label_visibility="collapsed")
    if view == VIEWS[0]:
        minors_queue_view.to_decide(me)
    elif view == VIEWS[1]:
        minors_queue_view.waiting_for_file()
    else:
        all_decisions(counts)


def all_decisions(counts: dict[str, int]) -> None:
    """The grid for bulk work: every decision the filters match, a page at a time, the searches the legal block
    refused, the audit trail, exports."""
    with context.page_database() as db:
        datasets = minors.decided_datasets(db)
    for column, status in zip(st.columns(3), ("pending_review", "excluded", "cleared")):
        column.metric(status.replace("_", " ").capitalize(), f"{counts.get(status, 0):,}")

    filters = st.columns([2, 2, 3])
    statuses = filters[0].multiselect("Status", STATUSES, default=list(minors_review.QUEUE_STATUSES),
                                      key="minors_statuses")
    dataset = filters[1].selectbox("Dataset", ["(all)", *datasets], key="minors_dataset")
    text = filters[2].text_input("Photo id or fired word contains", key="minors_text")
    chosen = (statuses, None if dataset == "(all)" else dataset, text.strip() or None)
    with context.page_database() as db:
        total = minors_review.queue_count(db, *chosen)
    st.subheader(f"Queue ({total:,})")
    pages = max(1, -(-total // PAGE_SIZE))
    page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="minors_page")
    with context.page_database() as db:
        shown = minors_review.queue_page(db, *chosen, page, PAGE_SIZE)
        seen = minors_review.evidence_of(db, shown)
        audit = minors.audit_trail(db, limit=AUDIT_SHOWN)
        audit_total = minors.audit_count(db)

    with st.expander("Decide many at once", expanded=False):
        every = st.checkbox(f"All {len(shown)} photos on this page", key="minors_bulk_all")
        picked = list(shown["image_id"]) if every else st.multiselect(
            "Photos", list(shown["image_id"]), key="minors_bulk_ids")
        cells = st.columns([2, 3, 1], vertical_alignment="bottom")
        bulk_status = cells[0].selectbox("Decision", STATUSES, format_func=STATUS_LABELS.get, index=None,
                                         placeholder="Choose", key="minors_bulk_status")
        bulk_reason = cells[1].text_input("Reason", key="minors_bulk_reason")
        if cells[2].button("Apply to selected", key="minors_bulk_apply"):
            decide(picked, bulk_status, bulk_reason)

    for row in shown.itertuples():
        item(row, seen.get(row.image_id))

    blocked_searches()
    st.subheader(f"Audit trail ({audit_total:,})")
    if audit_total > len(audit):
        st.caption(f"The newest {len(audit):,}; the CSV below holds all of it.")
    st.dataframe(audit, hide_index=True)
    # The CSVs are built when clicked (Streamlit runs the callable then, on its own thread), each in its own short
    # read: a page run never reads every decision to offer them.
    leased = LeasedDatabase(context.shared_database(str(context.db_path())))
    left, right = st.columns(2)
    left.download_button("Queue as CSV", minors_review.queue_file(leased, *chosen), "minors_queue.csv", "text/csv",
                         key="minors_export_queue", on_click="ignore")
    right.download_button("Audit trail as CSV", minors_review.audit_file(leased), "moderation_audit.csv", "text/csv",
                          key="minors_export_audit", on_click="ignore")


main()
