"""The users file: who may sign in to the dashboard, with which role, and a salted PBKDF2 hash of the password.

A JSON file (``$STUDIO_USERS``, default ``users.json`` beside the database) written by
``python -m pipeline add-user``. Passwords are never stored; a user signed in through OIDC (st.login) is listed by
e-mail with ``"oidc": true`` and no password, and takes the role given here.

It lives in db/ because both the dashboard (sign-in) and the write queue (the role of each write, checked where
the write is applied) read it; :class:`UsersFile` re-reads it only when it changed, so both can afford to consult
it on every page run and every write, and a removed or demoted user loses access at once.

Names are typed by people and shown beside their decisions, so :func:`clean_text` holds them (and moderators'
reasons) to one rule: NFC, no control, format or line-break characters, a length limit. Two names that differ
only by case or Unicode normalisation are refused (:func:`name_key`); sign-in itself matches the NFC name exactly
(case-sensitive), which cannot be ambiguous once no two names share a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

ROLES = ("data", "moderator", "product")
USERS_ENV = "STUDIO_USERS"
ITERATIONS = 200_000
SCHEME = "pbkdf2_sha256"
NAME_LIMIT = 128  # room for the e-mail addresses OIDC users are listed by
REASON_LIMIT = 500
T = TypeVar("T")
# Checked against when the name is unknown (or has no password), so that answer costs one PBKDF2 run like any
# other: the salt is random and the digest matches no password.
_DUMMY_SALT = base64.b64encode(secrets.token_bytes(16)).decode()
_DUMMY_DIGEST = base64.b64encode(secrets.token_bytes(32)).decode()


class UsersError(ValueError):
    """The users file or an entry in it is unusable; the message names the file and what to fix."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def is_moderator(self) -> bool:
        return self.role == "moderator"


def users_path(db_path: str | Path) -> Path:
    """$STUDIO_USERS, else users.json beside the database."""
    return Path(os.environ.get(USERS_ENV) or Path(db_path).with_name("users.json"))


def clean_text(text: str, *, what: str, limit: int) -> str:
    """``text`` NFC-normalised, surrounding spaces trimmed; UsersError when it is empty, longer than ``limit``
    characters, or holds (anywhere, ends included) a control, format (zero-width, bidi), private-use or unassigned
    character or a line break: such characters hide what a name or reason says, or forge lines in logs and
    exports."""
    text = unicodedata.normalize("NFC", text or "")
    bad = sorted({c for c in text if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")})
    if bad:
        shown = ", ".join(f"U+{ord(c):04X}" for c in bad)
        raise UsersError(f"the {what} holds control, invisible or line-break characters ({shown}); type it again")
    text = text.strip()
    if not text:
        raise UsersError(f"a {what} is required")
    if len(text) > limit:
        raise UsersError(f"the {what} has {len(text)} characters; at most {limit} are allowed")
    return text


def check_name(name: str) -> str:
    """A user or moderator name by the rules of :func:`clean_text`."""
    return clean_text(name, what="user name", limit=NAME_LIMIT)


def name_key(name: str) -> str:
    """What two names share when they differ only by case or Unicode normalisation ("Ana" and "ＡＮＡ")."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{SCHEME}${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def load(path: Path) -> dict[str, dict]:
    """name -> entry; an absent file is an empty one (the dashboard then says how to add users)."""
    if not path.exists():
        return {}
    try:
        users = json.loads(path.read_text(encoding="utf-8")).get("users", {})
    except (ValueError, AttributeError) as exc:
        raise UsersError(f"{path}: not a users file ({exc}); recreate it with `python -m pipeline add-user`") from exc
    for name, entry in users.items():
        if not isinstance(entry, dict) or entry.get("role") not in ROLES:
            raise UsersError(f"{path}: user {name!r} needs a role, one of {', '.join(ROLES)}")
    return users


class WatchedFile(ABC, Generic[T]):
    """What :meth:`read` (a subclass's) makes of one file, read again only when the file's inode, size or
    modification time changed: a stat per call, so a dashboard can consult a shared file on every page run.
    Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value: T | None = None
        self._loaded = False

    @abstractmethod
    def read(self, path: Path) -> T:
        """The file's content, parsed; raises for an unusable file."""

    def get(self) -> T:
        """The content as :meth:`read` returned it (do not modify); what it raises for an unusable file."""
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if not self._loaded or stamp != self._stamp:
                # Read after the stat: what is cached is never older than its stamp, at worst newer (read again).
                self._value = self.read(self.path)
                self._stamp, self._loaded = stamp, True
            return self._value


class UsersFile(WatchedFile[dict[str, dict]]):
    """The users file of one path, re-read only when it changed, so the dashboard can re-check every session and
    the write queue every write."""

    def read(self, path: Path) -> dict[str, dict]:
        return load(path)

    def load(self) -> dict[str, dict]:
        """name -> entry as :func:`load` reads it (do not modify); UsersError when the file is unusable."""
        return self.get()

    def role_of(self, name: str) -> str | None:
        """The user's role now; None when the file does not list them."""
        entry = self.load().get(name)
        return entry["role"] if entry else None


def add(path: Path, name: str, role: str, password: str | None) -> str:
    """Add or replace a user; ``password`` None means an OIDC user (signs in with st.login, by e-mail). Returns the
    stored (NFC) name. A name that differs from another user's only by case or normalisation is refused."""
    name = check_name(name)
    if role not in ROLES:
        raise UsersError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if password is not None and len(password) < 8:
        raise UsersError("passwords need at least 8 characters")
    users = load(path)
    twins = [other for other in users if other != name and name_key(other) == name_key(name)]
    if twins:
        raise UsersError(f"{name!r} differs from the existing user {twins[0]!r} only by case or Unicode "
                         f"normalisation; use that name to replace the user, or pick a distinct one")
    users[name] = {"role": role, "password": hash_password(password)} if password is not None else \
        {"role": role, "oidc": True}
    write_private(path, json.dumps({"users": users}, indent=2) + "\n")
    return name


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file that is owner-only (0600) from its first byte, whatever the umask:
    the temporary file is created with that mode (O_EXCL, so it is a fresh file, never an older one's mode)."""
    tmp = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileExistsError:  # left by an add-user that died before its rename
        tmp.unlink()
        fd = os.open(tmp, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def authenticate(users: dict[str, dict], name: str, password: str) -> User | None:
    """The user when the password matches; None otherwise. Same answer and same cost (one PBKDF2 run) for an
    unknown name, an OIDC user and a wrong password, so the time taken does not tell which names exist."""
    name = unicodedata.normalize("NFC", (name or "").strip())
    entry = users.get(name)
    stored = entry.get("password") if entry else None
    if not isinstance(stored, str):
        password_matches(password or "", _dummy_hash(users))
        return None
    if not password_matches(password or "", stored):
        return None
    return User(name, entry["role"])


def _dummy_hash(users: dict[str, dict]) -> str:
    """A hash no password matches, with the rounds of the file's own hashes (ITERATIONS when it has none)."""
    rounds = next((entry["password"].split("$")[1] for entry in users.values()
                   if isinstance(entry.get("password"), str) and entry["password"].count("$") == 3), "")
    return f"{SCHEME}${rounds if rounds.isdigit() else ITERATIONS}${_DUMMY_SALT}${_DUMMY_DIGEST}"


def oidc_user(users: dict[str, dict], email: str | None) -> User | None:
    """The role of someone signed in through OIDC, when the users file lists their e-mail as an OIDC user."""
    entry = users.get((email or "").strip())
    if not entry or not entry.get("oidc"):
        return None
    return User(email.strip(), entry["role"])
