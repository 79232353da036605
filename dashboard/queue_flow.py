"""Logic of the moderator queue (Minors review, "To decide"): the filter's rule codes in plain English, the preset
reasons of each decision, the keys, and the writes a step makes. No Streamlit here, so it is unit-tested alone.

Why plain English: a moderator reads "no-captions-fail-closed" as noise; they need to know what the filter saw and
what it could not check, in a sentence, to decide fast. Every code pipeline/minors emits has a sentence here
(tests/test_queue_flow.py reads the codes out of pipeline/minors/ and fails on one without a sentence).
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboard import minors_review
from db.moderation_queue import SKIP_LIMIT

HELD = "so it is held until a person looks"
# The decision's rule (reasons["rule"], pipeline/minors/filter.py).
RULE_SENTENCES = {
    "caption-child-words": "A caption names a child (the highlighted words), so the photo is excluded.",
    "caption-doubtful-words": f"A caption uses words that may mean a child (highlighted below), {HELD}.",
    "captions-without-child-words": "No caption names a child, so the captions cleared it.",
    "captions-cleared-face-looks-young": "No caption names a child, but a face in the photo is estimated under 16, "
                                         f"{HELD}.",
    "no-captions-fail-closed": f"No captions to check, {HELD}.",
    "no-captions-not-perceived": "No captions to check, and the detectors have not looked at these bytes yet "
                                 f"(`python -m pipeline perceive`), {HELD}.",
    "no-captions-people-seen": f"No captions to check, and the detectors saw a person or a face (drawn), {HELD}.",
    "no-captions-young-face": f"No captions to check, and a face is estimated under 16 (drawn), {HELD}.",
    "no-captions-child-face": "No captions to check, and a clearly visible face is estimated under 13 (drawn), "
                              "so the photo is excluded.",
    "no-captions-nobody-seen": "No captions, and the detectors saw no person and no face, so it was cleared.",
    "no-captions-clip-child-score": f"No captions to check, and the image model's child score is high, {HELD}.",
    "no-captions-clip-no-child": "No captions, and the image model's child score is low, so it was cleared.",
    "no-captions-people-detected": f"No captions to check, and the people detector found someone, {HELD}.",
    "no-captions-no-people": "No captions, and the people detector found nobody, so it was cleared.",
}
# Why a caption word fired (matches[].rule, pipeline/minors/lexicon.py).
WORD_RULES = {
    "child-noun": "names a child", "young-girl": "a young girl", "little-one": "a little one or toddler",
    "little-league": "a children's league", "youth-sport": "a children's sport", "scouts": "scouts",
    "preteen": "a preteen", "grade-schooler": "a school grade", "age-under-16": "an age under 16",
    "age-unclear": "an age that may be under 16", "girl-may-be-adult": "\"girl\", often said of women",
    "legal-minor": "a legal word for under 18", "little-person": "young people", "bystander-scene":
    "a scene where children are often among the crowd", "possessive-object": "a child's thing",
}
# Why a face fired (reasons["image"]["faces"][].rule, pipeline/minors/image_layer.py).
FACE_RULES = {"age-under-13": "a face estimated under 13", "age-under-16": "a face estimated under 16"}

# The decisions of the queue, their keys (st.button shortcut; "C" and "R" are Streamlit's own) and preset reasons,
# the first of each the default: a keyboard-only moderator still records why.
CLEAR, EXCLUDE = "cleared", "excluded"
KEYS = {CLEAR: "A", EXCLUDE: "X", "skip": "S", "undo": "U"}
PRESETS = {
    CLEAR: ["No child under 16 visible", "Adults only", "Nobody in the photo", "Not a person (toy, statue, animal)",
            "Person too small to tell, not a child"],
    EXCLUDE: ["Child under 16 visible", "Probably under 16", "Child in the background", "Baby or toddler"],
}
VERBS = {CLEAR: "Clear", EXCLUDE: "Exclude"}


def plain_reasons(reasons_json: str | dict | None) -> list[str]:
    """Sentences saying why the photo is here: the rule's, then each fired word with why, then each face rule."""
    reasons = minors_review.reasons_of(reasons_json)
    rule = reasons.get("rule")
    lines = [RULE_SENTENCES.get(rule, f"Rule `{rule}`." if rule else "A moderator decided it earlier.")]
    words: dict[str, str] = {}
    for match in reasons.get("matches", []):
        if "text" in match:
            words.setdefault(match["text"].lower(), WORD_RULES.get(match.get("rule"), "a child word"))
    if words:
        lines.append("Words: " + "; ".join(f"\"{w}\" ({why})" for w, why in sorted(words.items())))
    faces = [FACE_RULES[f["rule"]] for f in (reasons.get("image") or {}).get("faces", []) if f.get("rule")]
    if faces:
        lines.append("Faces: " + ", ".join(f"{faces.count(f)} × {f}" for f in dict.fromkeys(faces)))
    if reasons.get("moderator_reason"):
        lines.append(f"Last moderator's reason: {reasons['moderator_reason']}")
    return lines


@dataclass(frozen=True)
class Step:
    """What one key press writes: the ops, in order, applied in one batch by the writer thread."""

    ops: list[tuple[str, dict]]
    skip: list[str]


def reason_for(status: str, preset: str | None, typed: str) -> str:
    """The recorded reason: what the moderator typed, else the chosen preset, else the decision's default."""
    return typed.strip() or preset or PRESETS[status][0]


def decide_step(image_id: str, status: str, reason: str, skipped: list[str]) -> Step:
    """Decide the photo, then lease the next one: one submit, so the page reads the next photo at once."""
    return Step([("moderate", {"image_ids": [image_id], "status": status, "reason": reason}),
                 ("claim_next", {"skip": skipped})], skipped)


def skip_step(image_id: str, skipped: list[str]) -> Step:
    """Leave the photo undecided and lease another; it is not handed back while it is in this session's skips."""
    skipped = [*[s for s in skipped if s != image_id], image_id][-SKIP_LIMIT:]
    return Step([("claim_next", {"skip": skipped})], skipped)


def undo_step(audit_id: int, image_id: str, skipped: list[str]) -> Step:
    """Revert the moderator's last decision; the writer leases that photo back to them."""
    return Step([("undo_moderation", {"audit_id": audit_id})], [s for s in skipped if s != image_id])
