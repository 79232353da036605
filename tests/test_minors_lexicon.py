"""The child lexicon: every word class, every trap class, decided deliberately."""

from __future__ import annotations

import pytest

from pipeline.minors.lexicon import find, verdict


def judged(text: str) -> str | None:
    return verdict(find(text))


@pytest.mark.parametrize("text", [
    "A child in a pink dress climbing stairs", "Two children playing in the sand", "a kid on a skateboard",
    "kids eating pizza", "A boy throwing a ball", "three boys on a bench", "a baby in a high chair",
    "two babies sleeping", "A toddler sits on a toilet", "an infant in a crib", "a newborn asleep",
    "schoolchildren crossing a street", "a schoolgirl with a backpack", "a little girl holding a bat",
    "A young girl on a pony", "a baby girl in pink", "the little ones at the table", "a 7-year-old on a bike",
    "a seven year old with a kite", "a fourteen-year-old skater", "a boy aged 12", "a little league game",
    "a child's hand on the glass", "the boy's face", "The kids' faces", "children’s smiles",
    "a baby in a stroller next to a dog",
])
def test_words_for_children_exclude(text: str) -> None:
    assert judged(text) == "child", [m.as_dict() for m in find(text)]


@pytest.mark.parametrize("text", [
    "two girls on a beach", "a girl riding a horse", "a teenager on a skateboard", "teens at a party",
    "a teenage skater", "students in a lecture hall", "a man and his son", "a crowd watching a game",
    "spectators in the stands", "a family having dinner", "a baseball game at night", "the children's book on a shelf",
    "kids' toys on the floor",
])
def test_doubt_goes_to_review(text: str) -> None:
    assert judged(text) == "doubt", [m.as_dict() for m in find(text)]


@pytest.mark.parametrize("text", [
    "a baby elephant walking with the herd", "A giraffe and her baby", "an elephant with its baby",
    "baby ducks in a pond", "a baby giraffe", "baby carrots on a plate", "a baby grand piano in a hall",
    "a baby blue car", "a teddy bear on a bed", "two teddy bears", "handled with kid gloves",
    "A young man throwing a frisbee", "a young woman reading", "a young lady with an umbrella",
    "a little dog on a couch", "a little cat", "a man with his girlfriend", "a cowboy on a horse",
    "cowgirls at the rodeo", "a busboy clearing a table", "a 25-year-old runner", "a man aged 40",
    "a bowl of baby spinach", "no kidding, a kidney bean salad", "a bouquet of baby's breath",
])
def test_traps_are_not_children(text: str) -> None:
    assert judged(text) is None, [m.as_dict() for m in find(text)]


def test_matches_carry_their_span_and_rule() -> None:
    [match] = find("Two dogs and a little girl on the grass.")
    assert (match.text, match.strength, match.rule) == ("little girl", "child", "young-girl")
    assert "Two dogs and a little girl on the grass."[match.start:match.end] == "little girl"
    assert match.as_dict()["span"] == [15, 26]


def test_a_trap_does_not_hide_a_real_child() -> None:
    assert judged("a boy feeding a baby elephant") == "child"
    assert judged("a teddy bear held by a toddler") == "child"
