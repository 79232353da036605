"""Moderator decisions: confirm or overturn the filter, one photo or many at once, always with a reason.

Every change writes one `moderation_audit` row per photo (who, when, old status, new status, reason) in the
same transaction as the decision itself. The filter never overwrites a moderator's decision. The moderator's
name and the reason follow the users file's rule for typed text (db/users.py clean_text): NFC, no control,
invisible or line-break characters, a length limit; so the audit trail reads as what was typed.
"""

from __future__ import annotations

from collections.abc import Sequence

from db import minors as store
from db import users
from db.database import Database

STATUSES = store.STATUSES


class ModerationError(ValueError):
    pass


def decide(db: Database, image_ids: Sequence[str], status: str, *, moderator: str, reason: str) -> int:
    """Set ``status`` for these photos as ``moderator``; checks everything before writing anything."""
    ids = validate(db, image_ids, status, moderator=moderator, reason=reason)
    moderator, reason = checked_text(moderator, reason)
    with db.write() as cur:
        return store.moderate(cur, ids, status, moderator, reason)


def validate(db: Database, image_ids: Sequence[str], status: str, *, moderator: str, reason: str) -> list[str]:
    """The distinct photo ids, once status, moderator, reason and every id are known good; ModerationError
    otherwise. The dashboard checks with this before it queues a decision."""
    ids = list(dict.fromkeys(image_ids))
    if status not in STATUSES:
        raise ModerationError(f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    checked_text(moderator, reason)
    if not ids:
        raise ModerationError("no photos given")
    unknown = sorted(set(ids) - store.existing_images(db, ids))
    if unknown:
        raise ModerationError(f"unknown photo ids: {', '.join(unknown[:10])}")
    return ids


def checked_text(moderator: str, reason: str) -> tuple[str, str]:
    """The moderator's name and the reason as stored (stripped, NFC); ModerationError naming what is wrong."""
    try:
        return (users.clean_text(moderator, what="moderator name", limit=users.NAME_LIMIT),
                users.clean_text(reason, what="reason", limit=users.REASON_LIMIT))
    except users.UsersError as exc:
        raise ModerationError(str(exc)) from exc
