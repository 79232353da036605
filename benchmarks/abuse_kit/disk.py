"""Full disk: a small tmpfs holding the database (and the claim, users and journal files beside it), and a
file-size limit (RLIMIT_FSIZE) as the fallback where mounting is not allowed.

Held: a stage that runs out of space ends with a one-line ``error:`` (exit 1 or 2; never a traceback, a signal or
the CLI's "unexpected" catch-all) and the data stored before is still there and readable; a read-only stage
(``status``) still answers on a full disk; a users file or a journal is never left half-written or silently
short of an entry.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from abuse_kit import build, judge
from abuse_kit.core import Attempt, Ctx, quick_only
from abuse_kit.judge import Broke

MOUNTS: set[Path] = set()
SMALL = "flickr8k-x"


@contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[bool]:
    """A tmpfs of ``size_kb`` at ``path``; yields False (and mounts nothing) where mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        yield False
        return
    MOUNTS.add(path)
    try:
        yield True
    finally:
        unmount(path)


def unmount(path: Path) -> None:
    judge.release()  # an open connection to a database there would keep the mount busy
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
    MOUNTS.discard(path)


def cleanup() -> None:
    """Never leave a tmpfs mounted, whatever happened."""
    for path in list(MOUNTS):
        unmount(path)


def fill(folder: Path) -> None:
    """Take every free byte of the file system holding ``folder``."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        for chunk in (1 << 16, 4096, 512, 1):
            block = b"\0" * chunk
            try:
                while True:
                    handle.write(block)
            except OSError:
                continue


def _big(ctx: Ctx) -> Path:
    """The full Flickr8k text files (100k lines): far more than the small disk holds."""
    def make(tmp: Path) -> Path:
        shutil.copytree(ctx.data / "flickr8k-text", tmp / "big")
        return tmp / "big"
    return ctx.fixture("disk-big", make)


def _db_size(ctx: Ctx) -> int:
    """Bytes of a database holding the small dataset (sizes the tmpfs)."""
    def make(tmp: Path) -> int:
        db = tmp / "probe.duckdb"
        judge.ok(ctx.ingest(build.flickr_dir(tmp / SMALL), db))
        return db.stat().st_size
    return ctx.fixture("disk-db-size", make)


def _mounted(ctx: Ctx, tmp: Path, spare_kb: int):
    """Mount a disk that holds the small dataset's database plus ``spare_kb``; ingest the small dataset there."""
    size_kb = _db_size(ctx) // 1024 + spare_kb
    return small_disk(tmp / "disk", size_kb)


def _small_ingested(ctx: Ctx, tmp: Path, disk: Path) -> tuple[Path, dict]:
    db = disk / "studio.duckdb"
    res = ctx.ingest(build.flickr_dir(tmp / SMALL), db)
    if res.rc != 0:
        raise RuntimeError(f"the small dataset does not fit on the test disk: {judge.error_line(res)}")
    return db, judge.dataset_counts(db, SMALL)


def _still_there(db: Path, before: dict) -> None:
    now = judge.dataset_counts(db, SMALL)
    if now != before:
        raise Broke(f"data stored before the full disk changed: {now} vs {before}")


def _needs_mount(mounted: bool) -> None:
    if not mounted:
        raise Broke("cannot mount a tmpfs here (not root?); the file-size-limit attempt covers the database")


def ingest_fills_disk(ctx: Ctx, tmp: Path) -> str:
    with _mounted(ctx, tmp, 1024) as mounted:
        _needs_mount(mounted)
        db, before = _small_ingested(ctx, tmp, tmp / "disk")
        res = ctx.ingest(_big(ctx), db, timeout=300)
        if res.rc == 0:
            raise RuntimeError("the big dataset fitted on the small disk: the attempt needs a smaller disk")
        return "tmpfs: " + _data_then_message(res, db, before)


def _data_then_message(res, db: Path, before: dict) -> str:
    """Judge in this order: no crash, the earlier data, then the error line (so a reason says what survived)."""
    judge.severe(res)
    _still_there(db, before)
    try:
        return f"{judge.refused(res)[:100]}; earlier data intact"
    except Broke as exc:
        raise Broke(f"earlier data intact, but {exc}") from None


def stage_on_full_disk(stage: list[str], *, read_only: bool) -> callable:
    def run(ctx: Ctx, tmp: Path) -> str:
        with _mounted(ctx, tmp, 512) as mounted:
            _needs_mount(mounted)
            db, before = _small_ingested(ctx, tmp, tmp / "disk")
            fill(tmp / "disk")
            argv = [a.replace("{small}", str(build.flickr_dir(tmp / "other" / "flickr8k-y"))) for a in stage]
            res = ctx.cli(*argv, "--db", str(db), "--quiet", timeout=120)
            (tmp / "disk" / "filler").unlink()
            if read_only:
                judge.severe(res)
                _still_there(db, before)
                judge.ok(res)
                return "tmpfs: answered on a full disk"
            if res.rc == 0:
                judge.no_crash(res)
                _still_there(db, before)
                return "tmpfs: finished (it needed no space)"
            return "tmpfs: " + _data_then_message(res, db, before)
    return run


def users_on_full_disk(ctx: Ctx, tmp: Path) -> str:
    with _mounted(ctx, tmp, 256) as mounted:
        _needs_mount(mounted)
        users = tmp / "disk" / "users.json"
        first = ctx.cli("add-user", "alice", "--role", "data", "--users", str(users), "--password-stdin",
                        stdin=b"correct horse battery\n")
        judge.ok(first)
        fill(tmp / "disk")
        res = ctx.cli("add-user", "bob", "--role", "moderator", "--users", str(users), "--password-stdin",
                      stdin=b"another good password\n")
        judge.severe(res)
        try:
            stored = json.loads(users.read_text())
        except (OSError, ValueError) as exc:
            raise Broke(f"users file damaged by a full disk: {exc}") from exc
        names = set(stored.get("users", stored))
        if "alice" not in names:
            raise Broke("the existing user was lost")
        if res.rc == 0 and "bob" not in names:
            raise Broke("add-user said it added bob, but the users file does not hold him")
        if res.rc == 0:
            judge.no_crash(res)
            return "tmpfs: added; users file intact"
        try:
            return f"tmpfs: {judge.refused(res)[:100]}; users file intact"
        except Broke as exc:
            raise Broke(f"users file intact, but {exc}") from None


JOURNAL = r'''
import inspect, json, sys
from pathlib import Path
from db.shared import SharedDatabase
from db import write_queue
db, users = Path(sys.argv[1]), Path(sys.argv[2])
params = inspect.signature(write_queue.WriteQueue.__init__).parameters
args = [users] if "users_file" in params else []
try:
    queue = write_queue.WriteQueue(SharedDatabase(db), *args)
except OSError as exc:
    print(json.dumps({"refused": f"queue: {exc}"})); sys.exit(0)
try:
    key = queue.submit("blocked_query", {"query": "a child", "user": "alice"}, "alice")
except Exception as exc:
    print(json.dumps({"refused": f"{type(exc).__name__}: {exc}"})); sys.exit(0)
journal = write_queue.journal_path(db)
text = journal.read_text() if journal.exists() else ""
print(json.dumps({"key": key, "journalled": key in text}))
'''


def journal_on_full_disk(ctx: Ctx, tmp: Path) -> str:
    with _mounted(ctx, tmp, 512) as mounted:
        _needs_mount(mounted)
        db, _ = _small_ingested(ctx, tmp, tmp / "disk")
        users = tmp / "disk" / "users.json"
        judge.ok(ctx.cli("add-user", "alice", "--role", "moderator", "--users", str(users), "--password-stdin",
                         stdin=b"correct horse battery\n"))
        fill(tmp / "disk")
        res = ctx.runner.python(JOURNAL, str(db), str(users), timeout=60)
        if res.rc != 0:
            raise RuntimeError(f"journal snippet failed: {res.err.strip().splitlines()[-1:]}")
        answer = json.loads(res.out.strip().splitlines()[-1])
        if "refused" in answer:
            return f"tmpfs: submit refused: {answer['refused'][:90]}"
        if not answer["journalled"]:
            raise Broke("submit returned a key but the journal does not hold the write (lost on a full disk)")
        return "tmpfs: journalled"


def fsize_limit(ctx: Ctx, tmp: Path) -> str:
    """The fallback where mounting is refused: a file-size limit on the ingest process (SIGXFSZ ignored)."""
    db, before = _small_ingested(ctx, tmp, tmp)
    res = ctx.ingest(_big(ctx), db, timeout=300, fsize=db.stat().st_size + (256 << 10))
    if res.rc == 0:
        raise RuntimeError("the big dataset fitted under the file-size limit")
    return "RLIMIT_FSIZE: " + _data_then_message(res, db, before)


def attempts() -> list[Attempt]:
    claim = "#12.11: status and search write a claim file"
    return quick_only([
        Attempt("disk", "database disk fills during ingest", ingest_fills_disk),
        Attempt("disk", "status on a full disk", stage_on_full_disk(["status"], read_only=True), claim),
        Attempt("disk", "ingest on a full disk (no room for the claim)",
                stage_on_full_disk(["ingest", "--data", "{small}"], read_only=False)),
        Attempt("disk", "filter on a full disk", stage_on_full_disk(["filter"], read_only=False)),
        Attempt("disk", "relevance on a full disk", stage_on_full_disk(["relevance"], read_only=False)),
        Attempt("disk", "users file on a full disk", users_on_full_disk),
        Attempt("disk", "write-queue journal on a full disk", journal_on_full_disk),
        Attempt("disk", "file-size limit during ingest", fsize_limit),
    ], {"database disk fills during ingest", "status on a full disk", "file-size limit during ingest"})
