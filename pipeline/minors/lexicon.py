"""English words and phrases for people under 16, and the traps around them.

Matching runs on folded views of the text (textfold.py: NFKC-style folding, invisible characters dropped,
confusable letters read as Latin, and a joined view for ``ch.ild``, ``c h i l d``, ``k1d``, ``kiiid``); every
match reports its span in the ORIGINAL text, so the moderator page highlights the words as written. English only:
words in other languages are not recognised (the text encoder is English too).

Each match says how sure it is:

* ``child`` - the words name a person under 16: child/children, kid(s), kiddie/kiddo, boy(s), baby/babies,
  toddler, infant, newborn, tot, tyke, youngster, bairn, rugrat, schoolchildren, schoolkid, schoolboy/schoolgirl,
  preschooler, kindergartner, grade schooler, middle schooler, 1st-8th grader (ages 6-14), preteen/pre-teen,
  tween(s) (10-12 by definition), prepubescent, little/young/younger/baby/small/wee/tiny girl, little/young/small/
  wee/tiny one(s), boy(s), kid(s), lad(s) and lass(es) (a "little lad" is a boy), little league, pee wee and t-ball,
  boy/girl/cub scouts, "7-year-old" / "seven year old" / "7 yo" / "aged 12" / "ages 5" with an age under 16, and
  any "N months old".
* ``doubt`` - the words may or may not name someone under 16, so a moderator decides: girl(s)/lass alone
  (caption writers call young women girls), lad(s) alone (British for young men), teen/teenager/adolescent,
  youth, student, pupil, son, daughter, grandchild/grandson/granddaughter, nephew, niece, stepchild, juniors,
  high schooler and 9th-12th grader (14-18 spans the line); "a minor"/"minors", "juvenile(s)", "underage" (the legal
  words mean under 18, which includes 16 and 17); little man/guy/lady/sister/brother/princess and "young
  people/person" (children or adults); possessive object phrases ("children's book", "kids' menu", "kiddie pool",
  "child-sized", "baby shower", "baby stroller", "baby bottle"); and bystander scenes where children are often in the picture but not in the
  caption (crowd, audience, spectators, fans, gathering, family, parade, festival, carnival, playground,
  classroom, nursery, daycare, kindergarten, preschool, stroller, pram, crib, high chair, playpen, sports games).

Traps, decided deliberately and never matched:

* baby animals: "baby elephant", "baby polar bear", "baby-goat", and "an elephant with its baby" / "a giraffe and
  her baby" / "a duck with her little ones" - but only when no person is named before the animal: in "a woman
  walking her dog with her baby" the baby is hers, so it still matches. "a dog and a baby" (an article, not a
  possessive) is a child: the article does not say whose baby it is.
* goat kids: "a kid goat", "kid goats", "goat kids", "kids (young goats)", "a goat and her kid" (with the same
  person rule). "a goat and a kid" is a child: a child with a goat is the usual petting-zoo photo.
* animals' ages and youth: "a 2-year-old horse", "a 6 month old puppy", "a juvenile eagle", "juvenile plumage".
* "minor" as an adjective or in music: "minor league", "minor injuries/damage/repairs/details...", "in A minor",
  "a C minor chord". "minor" before any other word still counts ("a minor fender bender" goes to review): the
  list of things that can be minor is open, and a review costs less than a cleared child.
* baby food and things ("baby carrots", "baby grand piano", "baby blue", "baby doll", "baby's breath"), "teddy
  bear", "kid gloves", "tater tots", "plant nursery", "kidding", adult compounds (girlfriend, boyfriend, cowboy,
  cowgirl, showgirl, cover girl, busboy, tomboy), "young man/woman/lady/adult", "little dog" and other "little" +
  non-person, and ages 16 and up ("a twenty-five-year-old" is 25, not 5).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from pipeline.minors import textfold

RULE_SET_VERSION = "lexicon-2026-12-03.1"

NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
ANIMALS = (
    "animals? elephants? giraffes? zebras? bears? birds? ducks? ducklings? chicks? chickens? cows? calf calves "
    "goats? sheep lambs? horses? foals? pony ponies dogs? pupp(?:y|ies) cats? kittens? seals? monkeys? gorillas? "
    "pandas? penguins? deer fawns? rhinos? hippos? lions? tigers? owls? turtles? pigs? piglets? rabbits? "
    "bunn(?:y|ies) squirrels? foxes? fox wolf wolves kangaroos? koalas? dolphins? whales? sharks? alligators? "
    "crocodiles? snakes? camels? llamas? donkeys? ostriches? ostrich swans? goose geese cubs? "
    "eagles? hawks? falcons? herons? egrets? gulls? seagulls? pelicans? robins? sparrows? pigeons? doves? crows? "
    "ravens? parrots? flamingos? storks? puffins? mallards? moose elk bison buffalo(?:es)? antelopes? otters? "
    "beavers? raccoons? hedgehogs? mice hamsters? bulls? oxen yaks? alpacas? boars? mammals? reptiles? fish "
    "frogs? lizards? chimps? chimpanzees? orangutans? baboons? lemurs? sloths?"
).split()
ANIMAL = "(?:" + "|".join(ANIMALS) + ")"
ANIMAL_KIND = ("(?:polar|black|brown|grizzly|sea|snow|bald|golden|gr[ae]y|white|wild|mountain|spotted|red|pygmy|"
               "african|asian|river|barn|farm|zoo|male|female)")
PERSON = (r"\b(?:m[ae]n|wom[ae]n|persons?|people|lad(?:y|ies)|girls?|boys?|guys?|moms?|mommy|mum|mothers?|dads?|"
          rf"fathers?|parents?|couples?|famil(?:y|ies)|wife|husband|he|she|someone|somebody)\b(?![\s-]+{ANIMAL}\b)")
BABY_THINGS = ("carrots?|spinach|corn|tomato(?:es)?|potato(?:es)?|back ribs|bok choy|greens|lettuce|arugula|kale|"
               "grand(?: piano)?|blue|pink|powder|dolls?|bella|face")
MINOR_THINGS = (
    "keys?|chords?|scales?|modes?|thirds?|sevenths?|triads?|details?|injur(?:y|ies)|damages?|repairs?|roles?|"
    "parts?|issues?|problems?|changes?|adjustments?|flaws?|scratch(?:es)?|dents?|cuts?|bruises?|accidents?|"
    "incidents?|collisions?|crash(?:es)?|roads?|streets?|characters?|differences?|errors?|mistakes?|offen[cs]es?|"
    "surgery|surgeries|ailments?|illness(?:es)?|wounds?|setbacks?|inconvenience|traffic|delays?|flooding|leaks?|"
    "fires?|tweaks?|variations?|points?|amounts?|degrees?|planets?|arcana|premise|prophets?|axis|repair work")


# Traps are masked before anything else matches. POSSESSED_YOUNG only where no person is named before it.
TRAPS = [
    rf"\bbab(?:y|ies)(?:'s)?[\s-]+(?:{ANIMAL_KIND}[\s-]+)?{ANIMAL}\b",
    rf"\bbab(?:y|ies)[\s-]+(?:{BABY_THINGS})\b",
    r"\bbaby'?s[\s-]+breath\b",
    r"\bkids?[\s-]+goats?\b",
    r"\bgoats?[\s-]+kids?\b",
    r"\bkids?\s*\(\s*(?:(?:young|baby)\s+)?goats?\s*\)",
    rf"\bjuveniles?[\s-]+(?:{ANIMAL_KIND}[\s-]+)?(?:{ANIMAL}|plumage|feathers?)\b",
    r"\bminor[\s-]+leagu(?:e|es|er|ers)\b",
    rf"\bminor[\s-]+(?:{MINOR_THINGS})\b",
    r"\bteddy[\s-]+bears?\b",
    r"\bkid[\s-]+(?:gloves?|leather)\b",
    r"\btater[\s-]+tots?\b",
    r"\b(?:plant|tree|garden)[\s-]+nurser(?:y|ies)\b",
    r"\b(?:girlfriends?|boyfriends?|cowboys?|cowgirls?|showgirls?|busboys?|tomboys?|homeboys?|cover[\s-]+girls?)\b",
    r"\bgirls'?[\s-]+night\b",
]
CASE_SENSITIVE_TRAPS = [  # the key of a piece: "in A minor" (a capital letter; "a minor" is a person)
    r"\bin\s+[A-G](?:[#b\u266d\u266f]|\s+(?:flat|sharp))?\s+[Mm]inor\b",
    r"\b[B-G](?:[#b\u266d\u266f]|\s+(?:flat|sharp))?\s+[Mm]inor\b",
]
POSSESSED_YOUNG = (rf"\b{ANIMAL}\b(?:\s+[\w'-]+){{0,3}}?\s+(?:its|her|their)\s+(?:(?:own|new|two|three|twin)\s+)?"
                   r"(?:bab(?:y|ies)|kids?|newborns?|(?:little|young|baby)\s+ones?)\b")
PATTERNS: list[tuple[str, str, str]] = [
    (r"\b(?:little|lil|li'l|young|younger|youngest|small|wee|tiny|baby|teenage|school)\s+girls?(?:'s|')?\b",
     "child", "young-girl"),
    (r"\b(?:little|lil|li'l|young|small|wee|tiny)\s+(?:ones?|kids?|boys?|child|children|lads?|laddies?|lass(?:es)?|"
     r"tots?|toddlers?)(?:'s|')?\b", "child", "little-one"),
    (r"\b(?:little|lil|li'l|wee)\s+(?:m[ae]n|guys?|lad(?:y|ies)|princess(?:es)?|princes?|budd(?:y|ies)|fellas?|"
     r"fellows?|dudes?|angels?|sisters?|brothers?|sis|bro|cousins?|persons?|people)\b"
     r"|\byoung\s+(?:people|persons?|folks?)\b", "doubt", "little-person"),
    (r"\blittle\s+league\b", "child", "little-league"),
    (r"\b(?:pee[\s-]?wee\s+(?:football|soccer|baseball|hockey|league|team)s?|t-?ball|tee[\s-]?ball)\b", "child",
     "youth-sport"),
    (r"\b(?:boy|girl|cub)\s+scouts?\b", "child", "scouts"),
    (r"\b(?:(?:children|kids|child|kid|bab(?:y|ies)|boys?)(?:'s|')?\s+(?:books?|toys?|menus?|rooms?|museum|hospital|"
     r"clothes|clothing|shoes|furniture|party|section|store|shop)"
     r"|kidd(?:ie|y)s?\s+(?:pools?|rides?|cars?|seats?)"
     r"|bab(?:y|ies)(?:'s)?\s+(?:showers?|bottles?|carriages?|strollers?|buggy|buggies|monitors?|formula|bibs?|gates?|"
     r"wipes|food|pools?|seats?)"
     r"|(?:child|kid|baby|toddler)s?[\s-](?:size|sized|friendly))\b", "doubt", "possessive-object"),
    (r"\b(?:pre[\s-]?teens?|pre[\s-]?teenagers?|pre[\s-]?adolescents?|tweens?|tweenagers?|pre[\s-]?pubescents?)"
     r"(?:'s|')?(?=\W|$)", "child", "preteen"),
    (r"\b(?:(?:grade|elementary|middle)[\s-]?schoolers?|(?:first|second|third|fourth|fifth|sixth|seventh|eighth|"
     r"1st|2nd|3rd|4th|5th|6th|7th|8th)[\s-]graders?)(?:'s|')?(?=\W|$)", "child", "grade-schooler"),
    (r"\b(?:children|childrens|childern|child|kids?|kidz|kiddos?|kidd(?:ie|y|ies)|toddlers?|infants?|newborns?|"
     r"bab(?:y|ies)|babes?\s+in\s+arms|tots?|tykes?|youngsters?|bairns?|rugrats?|pre-?schoolers?|"
     r"kindergart(?:e)?ners?|schoolchild(?:ren)?|school-?kids?|schoolboys?|schoolgirls?|boys?|boyz)"
     r"(?:'s|')?(?=\W|$)", "child", "child-noun"),
    (r"\b(?:girls?|gurls?|lass(?:es)?)(?:'s|')?(?=\W|$)", "doubt", "girl-may-be-adult"),
    (r"\b(?:minors?|juveniles?|under-?aged?)(?:'s|')?(?=\W|$)", "doubt", "legal-minor"),
    (r"\b(?:teens?|teenagers?|teenaged|teenage|adolescents?|pubescent|youths?|students?|pupils?|sons?|daughters?|"
     r"juniors?|lads?|laddies?|high[\s-]?schoolers?|(?:ninth|tenth|eleventh|twelfth|9th|10th|11th|12th)[\s-]graders?|"
     r"grand(?:child(?:ren)?|kids?|sons?|daughters?)|nephews?|nieces?|step(?:child(?:ren)?|kids?|sons?|daughters?))"
     r"(?:'s|')?(?=\W|$)", "doubt", "age-unclear"),
    (r"\b(?:crowds?|gathering|audience|spectators?|fans|bleachers|parade|festival|carnival|famil(?:y|ies)|"
     r"playground|classroom|nurser(?:y|ies)|day\s?cares?|kindergartens?|pre-?schools?|strollers?|prams?|"
     r"pushchairs?|high\s?chairs?|cribs?|playpens?|(?:baseball|soccer|football|basketball|tennis|hockey|volleyball|"
     r"softball|frisbee)\s+(?:games?|matche?s?|tournaments?))\b", "doubt", "bystander-scene"),
]


def _number(n: int) -> str:
    """An age as digits or words ("12", "seven", "twenty-five"), in groups suffixed ``n``."""
    return (rf"(?:(?P<tens{n}>{'|'.join(TENS)})[\s-]*)?(?P<word{n}>{'|'.join(NUMBER_WORDS)})(?!\w)"
            rf"|(?P<tensonly{n}>{'|'.join(TENS)})|(?P<num{n}>\d{{1,3}})")


AGE = re.compile(
    rf"\b(?:{_number(1)})[\s-]*(?:years?|yrs?|yr)[\s-]*olds?\b"
    rf"|\b(?P<num2>\d{{1,2}})\s?(?:yo|y/o|y\.o\.?)(?!\w)"
    rf"|\bage[ds]?\s+(?:{_number(3)})\b"
    rf"|\b(?P<months>\d{{1,3}}|{'|'.join(NUMBER_WORDS)}|a|an)[\s-]*months?[\s-]*olds?\b",
)
# Patterns are lower case and run on ASCII-lowered text: several times faster than re.IGNORECASE.
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ANIMAL_AFTER = re.compile(rf"[\s-]+(?:{ANIMAL_KIND}[\s-]+)?{ANIMAL}\b")
_TRAPS = [re.compile(p) for p in TRAPS]
_CASE_SENSITIVE_TRAPS = [re.compile(p) for p in CASE_SENSITIVE_TRAPS]
_POSSESSED_YOUNG = re.compile(POSSESSED_YOUNG)
_POSSESSIVE = re.compile(r"\b(?:its|her|their)\s")
_PERSON = re.compile(PERSON)
_PATTERNS = [(re.compile(p), strength, rule) for p, strength, rule in PATTERNS]
# Most captions name no child: one search for any pattern, and substrings every AGE match holds, skip the rest.
_ANY_PATTERN = re.compile("|".join(f"(?:{p})" for p, _, _ in PATTERNS))
_AGE_HINT = re.compile(r"olds?\b|\bage|\d\s?y")


@dataclass(frozen=True)
class Match:
    text: str  # the words as written
    start: int  # span in the original text
    end: int
    strength: str  # "child" or "doubt"
    rule: str

    def as_dict(self) -> dict:
        return {"text": self.text, "span": [self.start, self.end], "strength": self.strength, "rule": self.rule}


def find(text: str) -> list[Match]:
    """Child-word matches in ``text``, traps excluded, no two matches overlapping, in text order; spans index
    ``text`` itself. Both folded views are searched (see textfold.py); the plain view's matches come first."""
    plain = textfold.fold(text)
    joined = textfold.join(plain)
    matches: list[Match] = []
    for view in (plain, joined) if joined else (plain,):
        for start, end, strength, rule in _find_in(view.text):
            start, end = view.span(start, end)
            if not any(m.start < end and start < m.end for m in matches):
                matches.append(Match(text[start:end], start, end, strength, rule))
    return sorted(matches, key=lambda match: match.start)


def _age(m: re.Match) -> int:
    """The age in years an AGE match names (0 for months)."""
    if m.group("months"):
        return 0
    for n in (1, 3):
        if m.group(f"word{n}"):
            return TENS.get(m.group(f"tens{n}") or "", 0) + NUMBER_WORDS[m.group(f"word{n}")]
        if m.group(f"tensonly{n}"):
            return TENS[m.group(f"tensonly{n}")]
        if m.group(f"num{n}"):
            return int(m.group(f"num{n}"))
    return int(m.group("num2"))


def _find_in(view: str) -> list[tuple[int, int, str, str]]:
    """(start, end, strength, rule) of the matches in one folded view."""
    text = view.translate(_LOWER)
    ages = _AGE_HINT.search(text) is not None
    if not ages and not _ANY_PATTERN.search(text):
        return []
    taken = [False] * len(text)

    def mask(start: int, end: int) -> None:
        taken[start:end] = [True] * (end - start)

    for trap, searched in [(trap, text) for trap in _TRAPS] + [(trap, view) for trap in _CASE_SENSITIVE_TRAPS]:
        for m in trap.finditer(searched):
            mask(m.start(), m.end())
    if _POSSESSIVE.search(text):
        person = _PERSON.search(text)
        for m in _POSSESSED_YOUNG.finditer(text):
            if person is None or person.start() >= m.start():
                mask(m.start(), m.end())
    found: list[tuple[int, int, str, str]] = []

    def claim(start: int, end: int, strength: str, rule: str) -> None:
        if not any(taken[start:end]):
            mask(start, end)
            found.append((start, end, strength, rule))

    for m in AGE.finditer(text) if ages else ():
        animal = _ANIMAL_AFTER.match(text, m.end())
        if animal:
            mask(m.start(), animal.end())  # "a 2-year-old horse": an animal's age
        elif _age(m) < 16:
            claim(m.start(), m.end(), "child", "age-under-16")
        else:
            mask(m.start(), m.end())  # "20-year-old": an adult, not a match
    for pattern, strength, rule in _PATTERNS:
        for m in pattern.finditer(text):
            claim(m.start(), m.end(), strength, rule)
    return found


def verdict(matches: list[Match]) -> str | None:
    """'child' if any match is sure, 'doubt' if any match is doubtful, None if no match."""
    strengths = {m.strength for m in matches}
    return "child" if "child" in strengths else "doubt" if strengths else None
