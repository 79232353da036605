"""Text as the child lexicon reads it: what a person reads as "child" becomes the ASCII word "child".

Captions and queries can hide a word from a regular expression while a reader (or the text encoder, whose
tokenizer drops some invisible characters) still sees it: ``chi\\u200bld`` (zero-width space), ``chіld`` (Cyrillic
і), ``ｃｈｉｌｄ`` (fullwidth), ``chïld``, ``c h i l d``. The lexicon therefore matches on folded views of the text,
each keeping, for every character, the span of the original text it came from: matches report spans into the
ORIGINAL text (the moderator page highlights ``caption[start:end]``).

``fold`` (every caption and query):

* characters of Unicode category C are dropped (format: zero-width space/joiner/non-joiner, word joiner, soft
  hyphen, BOM, bidi marks and overrides, tag characters; controls other than whitespace; lone surrogates; private
  use; unassigned), and so are the Hangul filler letters, which render as nothing;
* every whitespace character becomes a space;
* NFKD compatibility decomposition, then combining marks are dropped: this is NFKC's folding (fullwidth,
  mathematical, circled, superscript letters, ligatures) plus removal of diacritics and overlays (``chïld``,
  "zalgo" text, enclosing circles);
* confusable letters become their Latin look-alike (Cyrillic, Greek, Armenian, Latin small capitals and IPA
  letters, see CONFUSABLES); curly and other apostrophes become ``'``, dashes become ``-``.

``join`` (a second view, only where it differs; the lexicon reports matches from both):

* a digit, ``@`` or ``$`` between two letters is read as the letter it imitates (``k1d``, ``b0y``, ``ch1ld``);
* 1-3 punctuation marks between two letters are dropped (``ch.ild``, ``ch-ild``, ``k_i_d``, ``pre-teen``);
* 3 or more single letters separated by spaces or punctuation are joined (``c h i l d``, ``k . i . d``); a
  leading ``a`` before 3 or more letters stays apart, read as the article (``a k i d`` -> ``a kid``);
* a letter written 3 or more times in a row counts once (``kiiiids``, ``boyyy``).

Not covered, deliberately: a word split by a space into pieces longer than one letter (``chi ld``, ``ch i ld``);
those read as other words to the text encoder too. A ``1`` is read as ``i``, never ``l`` (``chi1d`` passes). An
elongated double letter (``teeeen`` reads ``ten``). A spaced-out word starting with ``a`` and no article before it
(``a d o l e s c e n t``). Text written right-to-left with override marks (the marks are dropped, the letters are
kept in stored order). Whole words in another script are folded too, so genuine Cyrillic ``тот`` reads ``tot``:
a false match in text the English-only lexicon is not meant for, costing a review, never a cleared child.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# Look-alikes of Latin letters (after NFKD, so accented forms such as Cyrillic ё are covered by their base letter).
CONFUSABLES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "ь": "b", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ү": "y",
    "ѵ": "v", "ɡ": "g", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ү": "Y", "Ӏ": "I", "Ԛ": "Q", "Ԝ": "W",
    "Һ": "H", "Ь": "b",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Armenian
    "օ": "o", "ս": "u", "հ": "h", "ց": "g", "ո": "n",
    # Latin small capitals, IPA and other look-alikes that NFKD leaves alone
    "ı": "i", "ɩ": "i", "ɪ": "i", "ɨ": "i", "ʟ": "l", "ł": "l", "ƚ": "l", "ɑ": "a", "ᴀ": "a", "ʙ": "b", "ᴄ": "c",
    "ᴅ": "d", "đ": "d", "ð": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h", "ħ": "h", "ᴊ": "j", "ᴋ": "k", "ᴍ": "m",
    "ɴ": "n", "ᴏ": "o", "ø": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y",
    "ᴢ": "z", "Ø": "O", "Ł": "L", "Đ": "D",
    # apostrophes and dashes
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u02bc": "'", "\u02b9": "'", "\u2032": "'", "\u00b4": "'",
    "`": "'", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\ufe63": "-",
})
INVISIBLE_LETTERS = {"\u115f", "\u1160", "\u3164", "\uffa0"}  # Hangul fillers: letters that render as nothing
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})

_UNTOUCHED = re.compile(r"[\x20-\x5f\x61-\x7e]*")  # printable ASCII but the backtick: folding changes nothing
_LETTER = r"[^\W\d_]"
_SEPARATOR = r"(?:[^\w\s']|_)"
# Each pattern starts with what it looks for and checks the letter before with a look-behind: several times faster.
_LEET_INSIDE = re.compile(rf"[013457@$](?<={_LETTER}.)(?={_LETTER})")
_PUNCTUATION_INSIDE = re.compile(rf"{_SEPARATOR}(?<={_LETTER}.){_SEPARATOR}{{0,2}}(?={_LETTER})")
_SINGLE_LETTERS = re.compile(rf"\b(?<!'){_LETTER}(?![\w'])(?:(?:\s|{_SEPARATOR}){{1,3}}{_LETTER}(?![\w'])){{2,}}")
_GAP = re.compile(rf"(?:\s|{_SEPARATOR})+")
_REPEATED = re.compile(r"(\w)\1{2,}", re.IGNORECASE)


@dataclass(frozen=True)
class Folded:
    """A view of a text: ``text`` and, per character of it, the original span it stands for."""

    text: str
    starts: Sequence[int]
    ends: Sequence[int]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of ``text[start:end]`` (end > start)."""
        return self.starts[start], self.ends[end - 1]


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    if ch.isspace():
        return " "
    if unicodedata.category(ch)[0] == "C" or ch in INVISIBLE_LETTERS:
        return ""
    pieces = unicodedata.normalize("NFKD", ch.translate(CONFUSABLES))  # translated first: NFKD splits "´" in two
    return "".join(p for p in pieces if unicodedata.category(p)[0] not in "MC").translate(CONFUSABLES)


def fold(text: str) -> Folded:
    """The folded view of ``text`` (see the module docstring)."""
    if _UNTOUCHED.fullmatch(text):
        return Folded(text, range(len(text)), range(1, len(text) + 1))
    chars: list[str] = []
    starts: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        chars.append(folded)
        starts.extend([i] * len(folded))
    return Folded("".join(chars), starts, [start + 1 for start in starts])


def _edit(view: Folded, edits: list[tuple[int, int, str]]) -> Folded:
    """``view`` with each (start, end, replacement) applied; a replacement stands for the whole replaced span."""
    text: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    last = 0
    for start, end, replacement in edits:
        text.append(view.text[last:start])
        starts.extend(view.starts[last:start])
        ends.extend(view.ends[last:start])
        text.append(replacement)
        starts.extend([view.starts[start]] * len(replacement))
        ends.extend([view.ends[end - 1]] * len(replacement))
        last = end
    text.append(view.text[last:])
    starts.extend(view.starts[last:])
    ends.extend(view.ends[last:])
    return Folded("".join(text), starts, ends)


def _spaced_out(view: Folded) -> list[tuple[int, int, str]]:
    """Deletions of the gaps inside runs of single letters (``c h i l d``)."""
    edits = []
    for run in _SINGLE_LETTERS.finditer(view.text):
        gaps = list(_GAP.finditer(view.text, run.start(), run.end()))
        if view.text[run.start()] in "aA" and len(gaps) >= 3:
            gaps = gaps[1:]  # "a k i d": the article, then the word
        edits += [(gap.start(), gap.end(), "") for gap in gaps]
    return edits


def _leet(view: Folded) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group().translate(LEET)) for m in _LEET_INSIDE.finditer(view.text)]


def _punctuation_inside(view: Folded) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), "") for m in _PUNCTUATION_INSIDE.finditer(view.text)]


def _repeated(view: Folded) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(1)) for m in _REPEATED.finditer(view.text) if m.group(1).isalpha()]


def join(view: Folded) -> Folded | None:
    """The joined view of a folded text (see the module docstring), or None when it is the same text."""
    changed = False
    for step in (_leet, _punctuation_inside, _spaced_out, _repeated):
        edits = step(view)
        if edits:
            view, changed = _edit(view, edits), True
    return view if changed else None
