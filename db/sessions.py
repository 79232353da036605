"""Sessions that survive a reload: a signed, expiring token the browser keeps as a cookie, and sign-outs that
every process sees.

Why: the dashboard keeps the signed-in user in Streamlit's per-connection session, which a reload, a bookmark or
a shared link starts afresh. The token lets a new connection sign the same person in again without a password:
it names the user, when it was issued, when it expires and a random session id, signed with HMAC-SHA256 under a
server secret ($STUDIO_SESSION_SECRET, else a random key in a 0600 file beside the users file, made on first use).
It grants no role: the role is read from the users file whenever the token is used, so a removed user is refused
and a changed role applies at once.

Signing out records the time per user in a small JSON file beside the users file (written whole and renamed into
place, under a lock), and a token issued at or before that time is refused by every process that reads it: a
stolen or forgotten cookie dies with the sign-out, everywhere. No Streamlit here; dashboard/signin.py keeps the
token in the cookie and re-checks the session on every page run.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from db.users import User, WatchedFile, write_private

SECRET_ENV = "STUDIO_SESSION_SECRET"
HOURS_ENV = "STUDIO_SESSION_HOURS"
DEFAULT_HOURS = 12.0
COOKIE = "studio_session"
SECRET_MIN_CHARS = 32
CLOCK_SKEW_SECONDS = 60.0  # a token "issued" later than this after now was not issued by this clock


EXPIRED = "Your session expired; sign in again."


class SessionError(ValueError):
    """A token that signs nobody in, or an unusable secret or setting; the message, a sentence for the person
    signing in, says which and why."""


@dataclass(frozen=True)
class Claims:
    """What a token says: who, issued and expiring when (Unix seconds), and a random id for this session."""
    name: str
    issued_at: float
    expires_at: float
    session_id: str


def secret_path(users_file: Path) -> Path:
    """The generated secret: ``users.json.session-secret`` beside ``users.json``."""
    return users_file.with_name(users_file.name + ".session-secret")


def signed_out_path(users_file: Path) -> Path:
    """The sign-out times: ``users.json.signed-out`` beside ``users.json``."""
    return users_file.with_name(users_file.name + ".signed-out")


def session_seconds() -> float:
    """Token life: $STUDIO_SESSION_HOURS (a number of hours > 0), else 12 h."""
    text = os.environ.get(HOURS_ENV, "").strip()
    if not text:
        return DEFAULT_HOURS * 3600
    try:
        hours = float(text)
    except ValueError:
        hours = float("nan")
    if not 0 < hours < 24 * 366:
        raise SessionError(f"${HOURS_ENV} must be a number of hours above 0 (and under a year); got {text!r}")
    return hours * 3600


def load_secret(users_file: Path) -> bytes:
    """$STUDIO_SESSION_SECRET (at least 32 characters), else the secret file beside the users file, created
    (0600 from its first byte, complete before it appears: written aside and hard-linked into place) when absent.
    Two processes that both create it agree: the second link fails and that one reads the first's."""
    text = os.environ.get(SECRET_ENV, "")
    if text:
        if len(text) < SECRET_MIN_CHARS:
            raise SessionError(f"${SECRET_ENV} has {len(text)} characters; use at least {SECRET_MIN_CHARS} "
                               "random ones (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return text.encode("utf-8")
    path = secret_path(users_file)
    if not path.exists():
        aside = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        write_private(aside, secrets.token_hex(32) + "\n")
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < SECRET_MIN_CHARS:
        raise SessionError(f"{path}: the session secret is missing or too short; delete the file (a new one is "
                           "made, and everyone signs in again) or set ${SECRET_ENV}")
    return text.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode("utf-8", "surrogatepass"), hashlib.sha256).digest())


def issue(secret: bytes, name: str, now: float, life_seconds: float) -> tuple[str, Claims]:
    """A new token for ``name``: ``<base64url JSON claims>.<base64url HMAC-SHA256 of them>``, cookie-safe."""
    claims = Claims(name, now, now + life_seconds, secrets.token_hex(16))
    payload = {"u": claims.name, "iat": claims.issued_at, "exp": claims.expires_at, "sid": claims.session_id}
    body = _b64(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return f"{body}.{_signature(secret, body)}", claims


def verify(secret: bytes, token: str, now: float) -> Claims:
    """The claims of a token this secret signed, not expired; SessionError otherwise. The signature is compared
    in constant time before anything in the token is parsed."""
    body, dot, signature = (token or "").partition(".")
    if not dot or not hmac.compare_digest(signature.encode("utf-8", "surrogatepass"),
                                          _signature(secret, body).encode("ascii")):
        raise SessionError("The saved session is not signed by this server; sign in again.")
    try:
        payload = json.loads(_unb64(body))
        claims = Claims(str(payload["u"]), float(payload["iat"]), float(payload["exp"]), str(payload["sid"]))
    except (ValueError, KeyError, TypeError) as exc:  # only a holder of the secret could sign such a body
        raise SessionError(f"The saved session is malformed ({exc}); sign in again.") from exc
    if now >= claims.expires_at:
        raise SessionError(EXPIRED)
    if claims.issued_at > now + CLOCK_SKEW_SECONDS:
        raise SessionError("The saved session was issued in the future (is the clock right?); sign in again.")
    return claims


def _read_sign_outs(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    try:
        times = json.loads(path.read_text(encoding="utf-8"))["signed_out"]
        return {str(name): float(at) for name, at in times.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SessionError(f"{path}: not a sign-out file ({exc}); delete it (sessions signed out before "
                           "then would be valid again until they expire) or restore it") from exc


class SignOuts(WatchedFile[dict[str, float]]):
    """When each user last signed out (Unix seconds), in a JSON file shared by every process; re-read only when
    it changed, so a page run can consult it for a stat."""

    def read(self, path: Path) -> dict[str, float]:
        return _read_sign_outs(path)

    def times(self) -> dict[str, float]:
        """name -> last sign-out (do not modify); SessionError when the file is unusable."""
        return self.get()

    def revoked(self, claims: Claims) -> bool:
        """Whether the user signed out at or after the token was issued."""
        signed_out = self.times().get(claims.name)
        return signed_out is not None and claims.issued_at <= signed_out

    def sign_out(self, name: str, now: float) -> None:
        """Record that ``name`` signed out at ``now``: every token issued until then is refused from now on.
        Read-modify-write under an exclusive lock file, so two processes signing users out lose neither."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            times = _read_sign_outs(self.path)
            times[name] = max(now, times.get(name, 0.0))
            write_private(self.path, json.dumps({"signed_out": times}, indent=2) + "\n")


def session_user(claims: Claims, known: dict[str, dict], sign_outs: SignOuts, now: float) -> User:
    """The user a valid session signs in, with their role in the users file now; SessionError when it expired,
    they signed out since it was issued, or the users file no longer lists them."""
    if now >= claims.expires_at:
        raise SessionError(EXPIRED)
    if sign_outs.revoked(claims):
        raise SessionError(f"{claims.name} signed out (in this window or another); sign in again.")
    entry = known.get(claims.name)
    if entry is None:
        raise SessionError(f"{claims.name} is no longer in the users file, so this session was signed out.")
    return User(claims.name, entry["role"])
