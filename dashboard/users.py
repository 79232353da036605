"""The users file: who may sign in to the dashboard, with which role, and a salted PBKDF2 hash of the password.

A JSON file (``$STUDIO_USERS``, default ``users.json`` beside the database) written by
``python -m pipeline add-user``. Passwords are never stored; a user signed in through OIDC (st.login) is listed by
e-mail with ``"oidc": true`` and no password, and takes the role given here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ROLES = ("data", "moderator", "product")
USERS_ENV = "STUDIO_USERS"
ITERATIONS = 200_000
SCHEME = "pbkdf2_sha256"


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


def add(path: Path, name: str, role: str, password: str | None) -> None:
    """Add or replace a user; ``password`` None means an OIDC user (signs in with st.login, by e-mail)."""
    name = name.strip()
    if not name:
        raise UsersError("a user name is required")
    if role not in ROLES:
        raise UsersError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    if password is not None and len(password) < 8:
        raise UsersError("passwords need at least 8 characters")
    users = load(path)
    users[name] = {"role": role, "password": hash_password(password)} if password is not None else \
        {"role": role, "oidc": True}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"users": users}, indent=2) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def authenticate(users: dict[str, dict], name: str, password: str) -> User | None:
    """The user when the password matches; None otherwise (same answer for unknown names and bad passwords)."""
    entry = users.get((name or "").strip())
    if not entry or "password" not in entry or not password_matches(password or "", entry["password"]):
        return None
    return User(name.strip(), entry["role"])


def oidc_user(users: dict[str, dict], email: str | None) -> User | None:
    """The role of someone signed in through OIDC, when the users file lists their e-mail as an OIDC user."""
    entry = users.get((email or "").strip())
    if not entry or not entry.get("oidc"):
        return None
    return User(email.strip(), entry["role"])
