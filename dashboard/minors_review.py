"""Logic of the Minors review page: the moderation queue with the caption words that fired, what the detectors saw
in each photo (drawn by evidence.py), exports.

Kept apart from Streamlit so highlighting and shaping are unit-tested without it. This is the one place in the
dashboard that shows photos the minors filter excluded or holds for review: app.py registers its page for
moderators only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pandas as pd

from dashboard import evidence
from db import minors, perception
from db.database import Database
from pipeline.perception import PERCEIVER_ID

QUEUE_STATUSES = ("pending_review", "excluded")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:])")


def escape(text: str) -> str:
    """Caption text shown literally in st.markdown (captions may hold *, _, [ ] and the like)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def highlight(caption: str, spans: list[tuple[int, int]]) -> str:
    """Markdown of the caption with each fired span on a red background; overlapping spans are merged."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, last = [], 0
    for start, end in merged:
        parts += [escape(caption[last:start]), f":red-background[**{escape(caption[start:end])}**]"]
        last = end
    return "".join(parts) + escape(caption[last:])


def reasons_of(reasons_json: str | dict | None) -> dict:
    """The rule's evidence (rule, matched words, detections) with the latest moderator reason beside it.

    A moderator decision keeps the rule's reasons under "rule_evidence" (db/minors.py moderate); decisions made
    before that nested them under "previous", one level per decision: unwrap those to the rule's own."""
    reasons = json.loads(reasons_json) if isinstance(reasons_json, str) else dict(reasons_json or {})
    moderator_reason = reasons.get("moderator_reason")
    evidence = reasons
    while isinstance(evidence, dict) and "rule" not in evidence:
        inner = evidence.get("rule_evidence", evidence.get("previous"))
        evidence = json.loads(inner) if isinstance(inner, str) else inner
    if not isinstance(evidence, dict):
        evidence = {}
    return {**evidence, "moderator_reason": moderator_reason} if moderator_reason else evidence


def fired_captions(reasons_json: str | dict) -> list[str]:
    """One highlighted markdown line per caption whose words fired, with the matched words marked."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for match in reasons_of(reasons_json).get("matches", []):
        if "caption" in match and "span" in match:
            spans.setdefault(match["caption"], []).append(tuple(match["span"]))
    return [highlight(caption, caption_spans) for caption, caption_spans in spans.items()]


def reason_summary(reasons_json: str | dict) -> str:
    """Short text for the queue table: the rule, the words that fired, a moderator's reason."""
    reasons = reasons_of(reasons_json)
    words = sorted({m["text"].lower() for m in reasons.get("matches", []) if "text" in m})
    parts = [str(reasons.get("rule", "moderator decision"))]
    if words:
        parts.append("words: " + ", ".join(words))
    if reasons.get("moderator_reason"):
        parts.append(f"moderator: {reasons['moderator_reason']}")
    return "; ".join(parts)


def with_reasons(frame: pd.DataFrame) -> pd.DataFrame:
    """Queue rows (db.minors.queue) with the short reason text beside them."""
    return frame.assign(reason=frame["reasons"].map(reason_summary) if not frame.empty else [])


def load_queue(db: Database, statuses: list[str], dataset: str | None, text: str | None) -> pd.DataFrame:
    """Every decision the filters match (statuses, dataset, text in the photo id or the reasons), filtered in SQL:
    for the CSV export, built only when a moderator asks for it."""
    return with_reasons(minors.queue(db, statuses or list(QUEUE_STATUSES), dataset, text))


def queue_count(db: Database, statuses: list[str], dataset: str | None, text: str | None) -> int:
    return minors.queue_count(db, statuses or list(QUEUE_STATUSES), dataset, text)


def queue_page(db: Database, statuses: list[str], dataset: str | None, text: str | None, page: int,
               size: int) -> pd.DataFrame:
    """Page ``page`` (from 1) of ``size`` decisions the filters match: the only rows a page run reads and parses."""
    return with_reasons(minors.queue(db, statuses or list(QUEUE_STATUSES), dataset, text, size, (page - 1) * size))


def evidence_of(db: Database, queue: pd.DataFrame) -> dict[str, evidence.Evidence]:
    """What the current perceiver saw in each queued photo's current bytes, to draw on it: photos it never saw
    (or saw with other bytes) are absent. Each photo's boxes are those that counted for its decision (the image
    layer's thresholds in its reasons), else evidence.DEFAULT_MIN_SCORE."""
    ids = queue["image_id"].tolist()
    if not ids:
        return {}
    sizes = perception.perceived_of(db, PERCEIVER_ID, ids)
    detections = perception.detections_of(db, PERCEIVER_ID, ids)
    reasons = {row.image_id: reasons_of(row.reasons) for row in queue.itertuples()}
    return evidence.by_photo(detections, sizes, reasons)


def queue_file(db: Database, statuses: list[str], dataset: str | None, text: str | None) -> Callable[[], bytes]:
    """The queue CSV of these filters, made when called: for a download button, which calls it on click. ``db``
    is the page's LeasedDatabase, so the file is held only for the read."""
    return lambda: queue_export(load_queue(db, statuses, dataset, text))


def audit_file(db: Database) -> Callable[[], bytes]:
    """The whole audit trail as CSV, made when called (see :func:`queue_file`)."""
    return lambda: minors.audit_trail(db).to_csv(index=False).encode("utf-8")


def queue_export(frame: pd.DataFrame) -> bytes:
    columns = ["image_id", "dataset", "status", "reason", "decided_by", "moderator", "decided_at",
               "rule_set_version", "reasons"]
    return frame[[c for c in columns if c in frame]].to_csv(index=False).encode("utf-8")
