"""dashboard/queue_flow.py: every rule code the minors filter can write has a plain-English sentence (the codes are
read out of pipeline/minors/, so a new rule without a sentence fails here), the reasons a key press records, and the
writes each step makes."""

from __future__ import annotations

import re
from pathlib import Path

from dashboard import queue_flow
from pipeline.minors import lexicon

MINORS = Path(__file__).resolve().parent.parent / "pipeline" / "minors"


def codes_in(pattern: str, *files: str) -> set[str]:
    return {m for name in files for m in re.findall(pattern, (MINORS / name).read_text())}


def test_every_decision_rule_the_filter_writes_has_a_sentence() -> None:
    rules = codes_in(r'"((?:no-)?captions?-[a-z0-9-]+)"', *[p.name for p in MINORS.glob("*.py")])
    assert len(rules) >= 14 and "no-captions-fail-closed" in rules
    assert rules == set(queue_flow.RULE_SENTENCES)  # none missing, none made up
    assert queue_flow.RULE_SENTENCES["no-captions-fail-closed"] == \
        "No captions to check, so it is held until a person looks."


def test_every_caption_word_rule_and_face_rule_has_words() -> None:
    claimed = codes_in(r'"(?:child|doubt)",\s*"([a-z0-9-]+)"', "lexicon.py")  # PATTERNS and the age rule
    word_rules = {rule for _, _, rule in lexicon.PATTERNS} | claimed
    assert "age-under-16" in word_rules and word_rules == set(queue_flow.WORD_RULES)
    face_rules = codes_in(r'return "(age-under-\d+)"', "image_layer.py")
    assert face_rules == set(queue_flow.FACE_RULES) == {"age-under-13", "age-under-16"}


def test_plain_reasons_say_the_rule_the_words_and_the_faces() -> None:
    reasons = {"rule": "caption-doubtful-words", "matches": [
        {"caption": "Two girls by a wall", "text": "girls", "span": [4, 9], "rule": "girl-may-be-adult"}],
        "image": {"faces": [{"rule": "age-under-16"}, {"rule": None}, {"rule": "age-under-16"}]}}
    lines = queue_flow.plain_reasons(reasons)
    assert lines[0].startswith("A caption uses words that may mean a child")
    assert lines[1] == 'Words: "girls" ("girl", often said of women)'
    assert lines[2] == "Faces: 2 × a face estimated under 16"
    moderated = {"moderator_reason": "adult", "rule_evidence": {"rule": "no-captions-fail-closed"}}
    assert queue_flow.plain_reasons(moderated) == [queue_flow.RULE_SENTENCES["no-captions-fail-closed"],
                                                   "Last moderator's reason: adult"]


def test_a_key_press_records_a_reason_and_no_decision_defaults_to_exclude() -> None:
    assert queue_flow.reason_for("cleared", None, "") == "No child under 16 visible"
    assert queue_flow.reason_for("excluded", None, "  ") == "Child under 16 visible"
    assert queue_flow.reason_for("excluded", "Baby or toddler", "") == "Baby or toddler"
    assert queue_flow.reason_for("cleared", "Adults only", " a statue ") == "a statue"
    assert set(queue_flow.KEYS.values()) == {"A", "X", "S", "U"} and not {"C", "R"} & set(queue_flow.KEYS.values())


def test_steps_write_the_decision_and_the_claim_together() -> None:
    step = queue_flow.decide_step("c/1", "cleared", "adults", ["c/4"])
    assert step.ops == [("moderate", {"image_ids": ["c/1"], "status": "cleared", "reason": "adults"}),
                        ("claim_next", {"skip": ["c/4"]})]
    assert queue_flow.skip_step("c/1", ["c/1", "c/4"]).ops == [("claim_next", {"skip": ["c/4", "c/1"]})]
    undo = queue_flow.undo_step(7, "c/1", ["c/1", "c/4"])
    assert undo.ops == [("undo_moderation", {"audit_id": 7})] and undo.skip == ["c/4"]
