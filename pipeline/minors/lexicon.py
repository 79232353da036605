"""English words and phrases for people under 16, and the traps around them.

Each match says how sure it is:

* ``child`` - the words name a person under 16: child/children, kid(s), boy(s), baby/babies, toddler, infant,
  newborn, tot, youngster, schoolchildren, schoolboy/schoolgirl, little/young/baby girl, little one(s),
  little league, boy scout(s), "7-year-old" / "seven year old" / "aged 12" with an age under 16.
* ``doubt`` - the words may or may not name someone under 16, so a moderator decides: girl(s) alone (caption
  writers call young women girls), teen/teenager/teenage/adolescent (13-19 spans the line), youth, student,
  pupil, son, daughter, juniors, possessive object phrases ("children's book", "kids' menu"), and bystander
  scenes where children are often in the picture but not in the caption (crowd, audience, spectators, fans,
  gathering, family, parade, festival, carnival, playground, classroom, and sports games and matches).

Traps, decided deliberately and never matched: baby animals ("baby elephant", "a giraffe and her baby"),
baby food and things ("baby carrots", "baby grand piano", "baby blue", "baby doll", "baby's breath"), "teddy
bear", "kid gloves", "kidding", adult compounds (girlfriend, boyfriend, cowboy, cowgirl, showgirl, cover girl,
busboy, tomboy), "young man/woman/lady/adult", "little dog" and other "little" + non-person, and ages 16 and up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULE_SET_VERSION = "lexicon-2026-11-23.1"

NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
ANIMALS = (
    "animals? elephants? giraffes? zebras? bears? birds? ducks? ducklings? chicks? chickens? cows? calf calves "
    "goats? sheep lambs? horses? foals? pony ponies dogs? pupp(?:y|ies) cats? kittens? seals? monkeys? gorillas? "
    "pandas? penguins? deer fawns? rhinos? hippos? lions? tigers? owls? turtles? pigs? piglets? rabbits? "
    "bunn(?:y|ies) squirrels? foxes? fox wolf wolves kangaroos? koalas? dolphins? whales? sharks? alligators? "
    "crocodiles? snakes? camels? llamas? donkeys? ostriches? ostrich swans? goose geese cubs?"
).split()
ANIMAL = "(?:" + "|".join(ANIMALS) + ")"
BABY_THINGS = ("carrots?|spinach|corn|tomato(?:es)?|potato(?:es)?|back ribs|bok choy|greens|lettuce|arugula|kale|"
               "grand(?: piano)?|blue|pink|powder|dolls?|bella|face")

# (pattern, strength, rule). Order matters only for overlaps: traps are masked before anything else matches.
TRAPS = [
    rf"\bbab(?:y|ies)(?:'s)?\s+{ANIMAL}\b",
    rf"\b{ANIMAL}\b[^.]{{0,40}}?\b(?:its|her|their|his|a|the)\s+(?:own\s+)?bab(?:y|ies)\b",
    rf"\b{ANIMAL}\s+(?:and|with)\s+(?:a\s+|her\s+|its\s+)?bab(?:y|ies)\b",
    rf"\bbab(?:y|ies)\s+(?:{BABY_THINGS})\b",
    r"\bbaby'?s\s+breath\b",
    r"\bteddy\s+bears?\b",
    r"\bkid\s+gloves?\b",
    r"\b(?:girlfriends?|boyfriends?|cowboys?|cowgirls?|showgirls?|busboys?|tomboys?|homeboys?|cover\s+girls?)\b",
    r"\bgirls'?\s+night\b",
]
PATTERNS: list[tuple[str, str, str]] = [
    (r"\b(?:little|young|baby|small|teenage|school)\s+girls?(?:'s|')?\b", "child", "young-girl"),
    (r"\b(?:little|young|small)\s+(?:ones?|kids?|boys?|child|children)(?:'s|')?\b", "child", "little-one"),
    (r"\blittle\s+league\b", "child", "little-league"),
    (r"\bboy\s+scouts?\b", "child", "boy-scout"),
    (r"\b(?:children|kids|child|kid|bab(?:y|ies)|boys?)(?:'s|')?\s+(?:books?|toys?|menus?|rooms?|museum|hospital|"
     r"clothes|clothing|shoes|furniture|party|section|store|shop)\b", "doubt", "possessive-object"),
    (r"\b(?:children|childrens|child|kids?|kiddos?|toddlers?|infants?|newborns?|bab(?:y|ies)|tots?|youngsters?|"
     r"preschoolers?|kindergart(?:e)?ners?|schoolchild(?:ren)?|schoolkids?|schoolboys?|schoolgirls?|boys?)"
     r"(?:'s|')?(?=\W|$)", "child", "child-noun"),
    (r"\bgirls?(?:'s|')?(?=\W|$)", "doubt", "girl-may-be-adult"),
    (r"\b(?:teens?|teenagers?|teenaged|teenage|adolescents?|youths?|students?|pupils?|sons?|daughters?|"
     r"juniors?)(?:'s|')?(?=\W|$)", "doubt", "age-unclear"),
    (r"\b(?:crowds?|gathering|audience|spectators?|fans|bleachers|parade|festival|carnival|famil(?:y|ies)|"
     r"playground|classroom|(?:baseball|soccer|football|basketball|tennis|hockey|volleyball|softball|frisbee)\s+"
     r"(?:games?|matche?s?|tournaments?))\b", "doubt", "bystander-scene"),
]
AGE = re.compile(
    r"\b(?:(?P<num>\d{1,3})|(?P<word>" + "|".join(NUMBER_WORDS) + r"))[\s-]*(?:years?|yrs?|yr)[\s-]*olds?\b"
    r"|\baged?\s+(?:(?P<num2>\d{1,3})|(?P<word2>" + "|".join(NUMBER_WORDS) + r"))\b",
    re.IGNORECASE,
)
_TRAPS = [re.compile(p, re.IGNORECASE) for p in TRAPS]
_PATTERNS = [(re.compile(p, re.IGNORECASE), strength, rule) for p, strength, rule in PATTERNS]


@dataclass(frozen=True)
class Match:
    text: str  # the words as written
    start: int  # span in the text
    end: int
    strength: str  # "child" or "doubt"
    rule: str

    def as_dict(self) -> dict:
        return {"text": self.text, "span": [self.start, self.end], "strength": self.strength, "rule": self.rule}


def find(text: str) -> list[Match]:
    """Child-word matches in ``text``, traps excluded, no two matches overlapping, in text order."""
    original, text = text, text.replace("\u2019", "'")  # curly apostrophes: same length, spans stay valid
    taken = [False] * len(text)
    for trap in _TRAPS:
        for m in trap.finditer(text):
            taken[m.start() : m.end()] = [True] * (m.end() - m.start())
    matches: list[Match] = []

    def claim(start: int, end: int, strength: str, rule: str) -> None:
        if not any(taken[start:end]):
            taken[start:end] = [True] * (end - start)
            matches.append(Match(original[start:end], start, end, strength, rule))

    for m in AGE.finditer(text):
        raw = m.group("num") or m.group("num2")
        word = (m.group("word") or m.group("word2") or "").lower()
        age = int(raw) if raw else NUMBER_WORDS.get(word, 99)
        if age < 16:
            claim(m.start(), m.end(), "child", "age-under-16")
        else:
            taken[m.start() : m.end()] = [True] * (m.end() - m.start())  # "20-year-old": an adult, not a match
    for pattern, strength, rule in _PATTERNS:
        for m in pattern.finditer(text):
            claim(m.start(), m.end(), strength, rule)
    return sorted(matches, key=lambda match: match.start)


def verdict(matches: list[Match]) -> str | None:
    """'child' if any match is sure, 'doubt' if any match is doubtful, None if no match."""
    strengths = {m.strength for m in matches}
    return "child" if "child" in strengths else "doubt" if strengths else None
