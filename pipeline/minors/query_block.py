"""Legal block on queries about children: the same lexicon and traps as the caption filter.

A query with any child or doubtful match is refused with a legal notice and no photos, and logged in
`blocked_queries`. Doubtful words block too: a query cannot be sent to a moderator, so it fails closed ("a girl
on a beach" and "a minor" are refused; "a young woman on a beach" is not). The lexicon reads the query as a person
would (lexicon.py, textfold.py), so spelling tricks block like the plain word: ``chi\\u200bld`` (zero-width space),
``chіld`` (Cyrillic i), fullwidth or styled letters, ``c h i l d``, ``ch.ild``, ``k1ds``. Baby and young animals stay
searchable: "a baby elephant", "a kid goat", "a goat and her kid"; so do "a young man throwing a frisbee" and
"minor league baseball".
"""

from __future__ import annotations

from dataclasses import dataclass

from db import minors as store
from db.database import Database
from pipeline.minors import lexicon

LEGAL_NOTICE = ("This search cannot be run: in some of the countries we serve, photos of children under 16 must "
                "not be shown, so queries about children are not answered. The query was logged.")


@dataclass(frozen=True)
class QueryCheck:
    blocked: bool
    matches: list[lexicon.Match]


def check(query: str) -> QueryCheck:
    matches = lexicon.find(query)
    return QueryCheck(bool(matches), matches)


def log(db: Database, query: str, result: QueryCheck, user: str | None) -> None:
    with db.write() as cur:
        store.log_blocked_query(cur, query, [m.as_dict() for m in result.matches], user, lexicon.RULE_SET_VERSION)
