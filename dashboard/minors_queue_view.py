"""The Minors review page's "To decide" and "Waiting for the file" views: one photo at a time, large, with why it
is here in plain English, decided with a key (A clear, X exclude, S skip, U undo) and a preset reason.

The photo shown is the one leased to this moderator (db/moderation_queue.py): the page asks the write queue for
the next photo (op claim_next) and reads the lease back, so two moderators never see the same photo at once. A
decision and the claim of the next photo are one submit, applied in one batch; the buttons act in callbacks, so
the run that follows already shows the next photo. Logic: queue_flow.py; SQL: db/moderation_queue.py.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import streamlit as st
from PIL import Image

from dashboard import context, evidence, minors_review, photo_view, queue_flow
from db import moderation_queue
from db.database import Database
from db.shared import running_claim
from db.write_queue import Outcome
from pipeline.minors.moderation import ModerationError, checked_text

SKIP_KEY = "queue_skipped"
PHOTO_HEIGHT = 500  # px: the photo, buttons and reasons fit a 1400 x 900 window without scrolling
TEXT_KEY = "queue_reason_text"
WAITING_SHOWN = 200


def preset_key(status: str) -> str:
    return f"queue_reason_{status}"


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


def photo_width(jpeg: bytes) -> int:
    """The width that shows the photo at most PHOTO_HEIGHT px high (st.image takes a width only)."""
    with Image.open(io.BytesIO(jpeg)) as image:
        width, height = image.size
    return max(1, round(width * min(1.0, PHOTO_HEIGHT / max(1, height))))


def markdown(sentence: str) -> str:
    """A sentence of queue_flow shown as written: markdown escaped, except `code` spans (commands)."""
    parts = sentence.split("`")
    return "`".join(part if i % 2 else minors_review.escape(part) for i, part in enumerate(parts))


def progress(db: Database, me: str) -> None:
    """Decided today (mine, everyone's, per moderator) and what is left, at the top of the page."""
    today = moderation_queue.decided_today(db)
    cells = st.columns(4)
    left, waiting = moderation_queue.counts(db)
    cells[0].metric("Left to decide", f"{left:,}")
    cells[1].metric("Waiting for the file", f"{waiting:,}")
    cells[2].metric("Decided today by you", f"{today.get(me, 0):,}")
    cells[3].metric("Decided today, everyone", f"{sum(today.values()):,}")
    if today:
        st.caption("Today: " + " · ".join(f"{name} {count:,}" for name, count in today.items()))


def _report(outcomes: list[Outcome], what: str) -> None:
    """Remember what the first op's outcome says (the decision), and any claim that was not saved."""
    shown = outcomes[:1] if what else []
    shown += [o for o in outcomes[len(shown):] if o.state != "saved"]
    if shown:
        context.remember(shown, what or "Next photo")


def _run(step: queue_flow.Step, what: str) -> None:
    st.session_state[SKIP_KEY] = step.skip
    _report(context.submit(step.ops), what)


def _decide(image_id: str, status: str) -> None:
    """Button callback: record the decision with the typed reason, else the chosen preset, and lease the next."""
    reason = queue_flow.reason_for(status, st.session_state.get(preset_key(status)),
                                   st.session_state.get(TEXT_KEY, ""))
    try:
        _, reason = checked_text(context.current_user().name, reason)
    except ModerationError as exc:
        context.remember([Outcome("refused", str(exc))], f"{queue_flow.VERBS[status]} {image_id}")
        return
    _run(queue_flow.decide_step(image_id, status, reason, st.session_state.get(SKIP_KEY, [])),
         f"{queue_flow.VERBS[status]} {image_id} ({reason})")
    st.session_state[TEXT_KEY] = ""
    for decided in queue_flow.PRESETS:  # back to the default reasons: a reason is chosen for each photo
        st.session_state[preset_key(decided)] = queue_flow.PRESETS[decided][0]


def _skip(image_id: str) -> None:
    _run(queue_flow.skip_step(image_id, st.session_state.get(SKIP_KEY, [])), "")


def _undo(audit_id: int, image_id: str) -> None:
    _run(queue_flow.undo_step(audit_id, image_id, st.session_state.get(SKIP_KEY, [])), f"Undo on {image_id}")


def _forget_skips() -> None:
    st.session_state[SKIP_KEY] = []


def _lease(me: str, skipped: list[str]) -> str | None:
    """My leased photo; claims one first when I hold none and one is free, or renews mine when half its time is
    gone (a claim is a write: only then), so a photo looked at for long is not handed to someone else."""
    with context.page_database() as db:
        lease = moderation_queue.my_lease(db, me)
        mine = lease[0] if lease else None
        free = mine is None and moderation_queue.has_next(db, me, skipped)
    if free or (lease and lease[1] - datetime.now() < timedelta(minutes=moderation_queue.LEASE_MINUTES / 2)):
        _report(context.submit([("claim_next", {"skip": skipped})]), "")
        with context.page_database() as db:
            mine = moderation_queue.lease_of(db, me)
    return mine


def to_decide(me: str) -> None:
    """The leased photo, large, with its evidence and plain reasons, the reason pickers and the four keys."""
    stage = running_claim(context.db_path())
    if stage is not None:  # a claim would only wait in the journal, and pages read a snapshot meanwhile
        st.info(f"The pipeline stage `{stage.get('stage')}` is writing the database: the queue hands out photos "
                "again when it has finished. Decisions made in \"All decisions\" meanwhile are queued and saved then.")
        return
    skipped = st.session_state.setdefault(SKIP_KEY, [])
    mine = _lease(me, skipped)
    with context.page_database() as db:
        last = moderation_queue.last_decision(db, me)
        row = moderation_queue.decision(db, mine) if mine else None
        found = minors_review.evidence_of(db, row).get(mine) if mine else None
        free = not mine and moderation_queue.has_next(db, me, [])
    if row is None or row.empty:
        if free:
            st.info("You skipped every photo free to decide.")
            st.button("Show my skipped photos again", on_click=_forget_skips, key="queue_unskip")
        else:
            st.success("Nothing left to decide: every photo that has its file is decided or with another "
                       "moderator.")
        _undo_button(last)
        return
    row = next(row.itertuples())
    left, right = st.columns([3, 2])
    with left:
        photo = shown_photo(row, found)
        if photo is not None:
            st.image(photo, width=photo_width(photo))
        else:
            st.warning("Photo not available: the file is gone or holds other bytes than the ones decided. "
                       "Skip it (S); the next `filter` decides it again.")
    with right:
        with st.container(key="queue_current"):
            st.markdown(f"Photo **{minors_review.escape(row.image_id)}**")
        for sentence in queue_flow.plain_reasons(row.reasons):
            st.markdown(markdown(sentence))
        for line in minors_review.fired_captions(row.reasons):
            st.markdown(line)
        st.caption(evidence.summary(found) if found is not None else "The detectors have not seen these bytes.")
        if found is not None and found.boxes:
            with st.expander(f"What the detectors saw ({len(found.boxes)} boxes)"):
                st.dataframe(evidence.table(found), hide_index=True)
        keys = queue_flow.KEYS
        top, bottom = st.columns(2), st.columns(2)
        top[0].button("Clear", type="primary", shortcut=keys["cleared"], key="queue_clear", on_click=_decide,
                      args=(row.image_id, queue_flow.CLEAR), width="stretch", help="Show it in search")
        top[1].button("Exclude", shortcut=keys["excluded"], key="queue_exclude", on_click=_decide,
                      args=(row.image_id, queue_flow.EXCLUDE), width="stretch", help="Hide it everywhere")
        bottom[0].button("Skip", shortcut=keys["skip"], key="queue_skip", on_click=_skip, args=(row.image_id,),
                         width="stretch", help="Leave it undecided; the next photo")
        with bottom[1]:
            _undo_button(last)
        st.selectbox("Reason when cleared", queue_flow.PRESETS[queue_flow.CLEAR], key=preset_key(queue_flow.CLEAR))
        st.selectbox("Reason when excluded", queue_flow.PRESETS[queue_flow.EXCLUDE],
                     key=preset_key(queue_flow.EXCLUDE))
        st.text_input("Own reason (replaces the preset)", key=TEXT_KEY, max_chars=500)
        st.caption(f"Decided {row.decided_at:%d %b %H:%M} by the {row.decided_by}; leased to you for "
                   f"{moderation_queue.LEASE_MINUTES} min. Keys work when no text box has the focus.")


def _undo_button(last: dict | None) -> None:
    key = queue_flow.KEYS["undo"]
    st.button("Undo", shortcut=key, key="queue_undo", disabled=last is None, width="stretch",
              on_click=_undo, args=(last["audit_id"], last["image_id"]) if last else None,
              help=f"Back to {last['old_status']}: {last['image_id']}" if last else "Nothing of yours to undo")


def waiting_for_file() -> None:
    """Pending photos nobody can judge yet: what is missing and where the file is expected."""
    with context.page_database() as db:
        total = moderation_queue.counts(db)[1]
        rows = moderation_queue.waiting(db, WAITING_SHOWN)
    st.subheader(f"Waiting for the file ({total:,})")
    st.caption("These photos stay pending (hidden everywhere) until their file is there and a moderator can see "
               "it: put the file at the expected path and run `python -m pipeline ingest` again, then "
               "`python -m pipeline filter`." + (f" The oldest {len(rows):,} are listed." if total > len(rows)
                                                 else ""))
    st.dataframe(rows, hide_index=True)
