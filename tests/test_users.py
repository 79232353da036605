"""db/users.py and the text people type that the studio stores under their name: sign-in costs the same whether
the name exists or not, the users file is owner-only from its first byte, names are normalised and two names that
read alike are refused, moderator names and reasons follow the same rule."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from builders import coco_dir, ingest
from db import users
from db.database import Database
from db.users import User
from pipeline.cli import main as pipeline_main
from pipeline.minors import moderation
from test_embed import solid

ROUNDS = 1_000  # cheap hashes for the tests; the cost under test is the count of PBKDF2 runs and their rounds


@pytest.fixture
def pbkdf2_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rounds of every PBKDF2 run from now on."""
    runs: list[int] = []
    real = hashlib.pbkdf2_hmac

    def counted(name: str, password: bytes, salt: bytes, rounds: int, *args) -> bytes:
        runs.append(rounds)
        return real(name, password, salt, rounds, *args)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counted)
    return runs


def test_an_unknown_name_costs_what_a_wrong_password_costs(pbkdf2_runs: list[int]) -> None:
    """One PBKDF2 run with the file's own rounds, whatever the name: the answer's timing names nobody."""
    known = {"rita": {"role": "product", "password": users.hash_password("rita-secret-1", iterations=ROUNDS)},
             "sso@example.com": {"role": "data", "oidc": True}}
    pbkdf2_runs.clear()
    attempts = [("rita", "rita-secret-2"), ("nobody", "rita-secret-1"), ("sso@example.com", "x"), ("", ""),
                ("ri\u200bta", "rita-secret-1"), ("rita", "rita-secret-1")]
    answers = []
    for name, password in attempts:
        before = len(pbkdf2_runs)
        answers.append(users.authenticate(known, name, password))
        assert pbkdf2_runs[before:] == [ROUNDS], name
    assert answers == [None] * 5 + [User("rita", "product")]


def test_the_users_file_is_private_from_its_first_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the usual umask 022, no file add-user writes is ever readable by others, not even for a moment:
    the mode is observed whenever a file of the folder is opened, chmod-ed or renamed."""
    path = tmp_path / "users.json"
    (tmp_path / "users.json.tmp").write_text("left by a crashed add-user")  # a stale temporary file, 0644
    modes: list[tuple[str, int]] = []
    real_open, real_chmod, real_replace = os.open, os.chmod, os.replace

    def mode(target) -> int:
        return os.stat(target).st_mode & 0o777

    def watched_open(file, flags, *args, **kwargs):
        fd = real_open(file, flags, *args, **kwargs)
        modes.append(("open", os.fstat(fd).st_mode & 0o777))
        return fd

    def watched_chmod(file, *args, **kwargs):
        modes.append(("chmod", mode(file)))
        return real_chmod(file, *args, **kwargs)

    def watched_replace(source, target, *args, **kwargs):
        modes.append(("replace", mode(source)))
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "open", watched_open)
    monkeypatch.setattr(os, "chmod", watched_chmod)
    monkeypatch.setattr(os, "replace", watched_replace)
    old_umask = os.umask(0o022)
    try:
        users.add(path, "rita", "product", None)
        users.add(path, "mona", "moderator", None)
    finally:
        os.umask(old_umask)
    assert modes and {m for _, m in modes} == {0o600}, modes
    assert mode(path) == 0o600 and sorted(p.name for p in tmp_path.iterdir()) == ["users.json"]
    assert set(users.load(path)) == {"rita", "mona"}


@pytest.mark.parametrize("name", ["ri\nta", "rita\r", "ri\tta", "ri\x00ta", "ri\u200bta", "\u202eatir", "ri\u2028ta",
                                  "ri\x1bta"])
def test_add_user_refuses_control_and_invisible_characters(tmp_path: Path, name: str,
                                                           capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "users.json"
    assert pipeline_main(["add-user", name, "--role", "data", "--oidc", "--users", str(path)]) == 2
    assert "control, invisible or line-break characters" in capsys.readouterr().err
    assert not path.exists()


def test_add_user_normalises_names_and_refuses_names_that_read_alike(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "users.json"
    assert pipeline_main(["add-user", "  Jose\u0301 ", "--role", "data", "--oidc", "--users", str(path)]) == 0
    assert "add-user: Jos\u00e9 (data)" in capsys.readouterr().out
    assert list(users.load(path)) == ["Jos\u00e9"]  # stored as NFC: one way to write it
    for twin in ("jos\u00e9", "JOSE\u0301", "\uff2a\uff4f\uff53\u00e9"):  # case, decomposed, full-width
        assert pipeline_main(["add-user", twin, "--role", "moderator", "--oidc", "--users", str(path)]) == 2
        assert "only by case or Unicode normalisation" in capsys.readouterr().err
    assert pipeline_main(["add-user", "Jose\u0301", "--role", "moderator", "--oidc", "--users", str(path)]) == 0
    assert users.load(path) == {"Jos\u00e9": {"role": "moderator", "oidc": True}}  # the same name: replaced


def test_names_have_a_length_limit(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users.add(path, "n" * users.NAME_LIMIT, "data", None)
    with pytest.raises(users.UsersError, match=f"at most {users.NAME_LIMIT}"):
        users.add(path, "m" * (users.NAME_LIMIT + 1), "data", None)


def test_sign_in_matches_the_normalised_name(tmp_path: Path) -> None:
    """The form may send the decomposed spelling; the name is matched after NFC, case-sensitively."""
    known = {"Jos\u00e9": {"role": "data", "password": users.hash_password("long-enough-1", iterations=ROUNDS)}}
    assert users.authenticate(known, " Jose\u0301", "long-enough-1") == User("Jos\u00e9", "data")
    assert users.authenticate(known, "jos\u00e9", "long-enough-1") is None


def test_the_users_file_is_read_again_only_after_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "users.json"
    users.add(path, "rita", "product", None)
    cached = users.UsersFile(path)
    reads: list[Path] = []
    real_load = users.load
    monkeypatch.setattr(users, "load", lambda p: reads.append(p) or real_load(p))
    assert cached.role_of("rita") == "product" and cached.role_of("rita") == "product"
    assert len(reads) == 1
    users.add(path, "rita", "moderator", None)
    reads.clear()  # add() read it too
    assert cached.role_of("rita") == "moderator" and cached.role_of("rita") == "moderator" and len(reads) == 1
    path.unlink()
    assert cached.role_of("rita") is None


# ------------------------------------------------------------------------------ moderator names and reasons
@pytest.fixture
def one_photo(tmp_path: Path) -> Database:
    db = Database(tmp_path / "studio.duckdb")
    root = coco_dir(tmp_path / "c", images=[{"id": 1, "file_name": "000000000001.png", "width": 16, "height": 16}],
                    captions=[{"id": 1, "image_id": 1, "caption": "A red wall."}],
                    files={"000000000001.png": solid((200, 0, 0))})
    ingest(db, root)
    yield db
    db.close()


@pytest.mark.parametrize("moderator, reason, message", [
    ("mo\u200bna", "a grown-up", "moderator name holds control, invisible"),
    ("mona\n", "a grown-up", "moderator name holds control, invisible or line-break characters \\(U\\+000A\\)"),
    ("  mona ", " a grown-up ", None),  # surrounding spaces are trimmed, as before
    ("mona", "fine\nforged: second line", "reason holds control, invisible or line-break"),
    ("mona", "tab\there", "reason holds control"),
    ("mona", "x" * (users.REASON_LIMIT + 1), f"at most {users.REASON_LIMIT}"),
    ("m" * (users.NAME_LIMIT + 1), "a grown-up", f"at most {users.NAME_LIMIT}"),
])
def test_moderator_names_and_reasons_follow_the_typed_text_rule(one_photo: Database, moderator: str, reason: str,
                                                               message: str | None) -> None:
    if message is None:
        assert moderation.decide(one_photo, ["c/1"], "excluded", moderator=moderator, reason=reason) == 1
        return
    with pytest.raises(moderation.ModerationError, match=message):
        moderation.decide(one_photo, ["c/1"], "excluded", moderator=moderator, reason=reason)
    assert one_photo.fetch_all("SELECT count(*) FROM moderation_audit")[0][0] == 0


def test_moderation_stores_the_normalised_name_and_reason(one_photo: Database) -> None:
    moderation.decide(one_photo, ["c/1"], "excluded", moderator=" Jose\u0301 ", reason=" Cafe\u0301 sign ")
    assert one_photo.fetch_all("SELECT moderator, reason FROM moderation_audit") == [("Jos\u00e9", "Caf\u00e9 sign")]

