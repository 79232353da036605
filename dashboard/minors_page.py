"""Minors review page (moderators only): the pending and excluded queue with the caption words that fired and the
detectors' boxes drawn on each photo (score, estimated age), confirm or overturn with a reason one by one or in bulk,
the audit trail, exports. Logic: minors_review.py, evidence.py."""

from __future__ import annotations

import streamlit as st

from dashboard import context, evidence, minors_review, photo_view, stage_progress
from db import minors
from db.shared import LeasedDatabase
from pipeline.minors.moderation import STATUSES, ModerationError, validate

PAGE_SIZE = 20
BLOCKED_SHOWN = 100
AUDIT_SHOWN = 200
STATUS_LABELS = {"cleared": "Clear (show in search)", "excluded": "Exclude", "pending_review": "Keep pending"}


def decide(image_ids: list[str], status: str, reason: str) -> None:
    """Check, queue as the signed-in moderator, then rerun so the queue shows the new state."""
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


@st.cache_data(max_entries=256, show_spinner=False)  # like photo_view: keyed by the decided bytes and the boxes
def _evidence_photo(path: str, sha256: str, found: evidence.Evidence) -> bytes | None:
    return evidence.annotated_photo(path, sha256, found)


def shown_photo(row, found: evidence.Evidence | None) -> bytes | None:
    """The decided bytes of the photo, with the detectors' boxes drawn on them when there are any."""
    if found is None or not found.boxes:
        return photo_view.photo({row.image_id: (row.path, row.sha256)}, row.image_id)
    if not (isinstance(row.path, str) and isinstance(row.sha256, str)):
        return None
    return _evidence_photo(row.path, row.sha256, found)


def item(row, found: evidence.Evidence | None) -> None:
    """One queued photo: the photo with what the detectors saw drawn on it, why it is here (fired words
    highlighted), the evidence table, and a decision form."""
    with st.container(border=True):
        left, right = st.columns([1, 2])
        photo = shown_photo(row, found)
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
        status = cells[0].selectbox("Decision", STATUSES, format_func=STATUS_LABELS.get,
                                    key=f"minors_status_{row.image_id}")
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
    st.title("Minors review")
    context.require_role(__file__)  # app.py does not register this page for other roles; belt and braces
    stage_progress.waiting_notice(__file__)
    context.show_remembered()

    with context.page_database() as db:
        counts = minors.status_counts(db)
        datasets = minors.decided_datasets(db)
    if not counts:
        st.info("No minors decisions yet: run `python -m pipeline filter` (after `python -m pipeline ingest`).")
        return
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
        bulk_status = cells[0].selectbox("Decision", STATUSES, format_func=STATUS_LABELS.get,
                                         key="minors_bulk_status")
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
