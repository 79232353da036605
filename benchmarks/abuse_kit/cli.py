"""Bad command-line input: options out of range, odd names, odd database paths, hostile queries, moderation
and users-file input.

Held: a bad value is refused before anything is written, exit 1 or 2, with an ``error:`` line that names the
option (or file) at fault; never a traceback or the CLI's "unexpected" catch-all. Where a value has a harmless
reading (``-k 0`` gives no photos, ``--name ''`` falls back to the folder's name) that reading is accepted too.
Queries use the random-weight open_clip ViT-S-32 encoder (3 s a run instead of about a minute for the offline
one), except the invalid UTF-8 query, which is also run once through the default offline encoder. Read-only
storage: ``status`` and ``search`` must still answer. Names and reasons: control characters, newlines, names
that differ only by Unicode normalisation or case, and unbounded lengths are refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

from abuse_kit import build, judge
from abuse_kit.core import Attempt, Ctx, quick_only
from abuse_kit.disk import small_disk
from abuse_kit.judge import Broke
from abuse_kit.kills import copy_db

DS = "coco-x"
OPENCLIP = ["--encoder", "openclip", "--model", "ViT-S-32", "--pretrained", "none"]
PASSWORD = b"correct horse battery\n"


def studio(ctx: Ctx, offline: bool = False, embedded: bool = True) -> Path:
    """A database with the small COCO set ingested, filtered and embedded (random open_clip, or offline)."""
    def make(tmp: Path) -> Path:
        db = tmp / "studio.duckdb"
        judge.ok(ctx.ingest(build.coco_dir(tmp / DS), db))
        judge.ok(ctx.cli("filter", "--db", str(db), "--quiet"))
        if embedded:
            judge.ok(ctx.cli("embed", *([] if offline else OPENCLIP), "--db", str(db), "--quiet", timeout=600))
        return db
    return ctx.fixture("studio-offline" if offline else "studio" if embedded else "studio-unembedded", make)


def _copy(ctx: Ctx, tmp: Path, offline: bool = False, embedded: bool = True) -> Path:
    return copy_db(studio(ctx, offline, embedded), tmp / "studio.duckdb")


def _hits(res) -> list[str]:
    return [ln for ln in res.out.splitlines() if ln.strip() and ln.split()[0].isdigit() and DS in ln]


# ---------------------------------------------------------------------------------------------- helpers
def refuse(name: str, argv: list, *mentions: str, db: bool = False, note: str = "", quick: bool = True,
           check=None) -> Attempt:
    """Run ``argv`` ({db}: a copy of the studio database, {data}: a small dataset); it must be refused."""
    def run(ctx: Ctx, tmp: Path) -> str:
        args = _fill(ctx, tmp, argv, db)
        res = ctx.cli(*args, timeout=300)
        line = judge.refused(res, *mentions)
        if check:
            check(ctx, tmp)
        return line[:110]
    return Attempt("cli", name, run, note, quick)


def _fill(ctx: Ctx, tmp: Path, argv: list, db: bool) -> list:
    copy = _copy(ctx, tmp, embedded="{db0}" not in argv) if db else tmp / "fresh.duckdb"
    data = build.flickr_dir(tmp / "flickr8k-x") if any(a == "{data}" for a in argv) else None
    (tmp / "empty").mkdir(exist_ok=True)
    named = {"{db}": str(copy), "{db0}": str(copy), "{data}": str(data), "{empty}": str(tmp / "empty")}
    return [named.get(a, a) if isinstance(a, str) else a for a in argv]


def harmless_or_refused(name: str, argv: list, harmless, *mentions: str, db: bool = True, note: str = "",
                        quick: bool = True) -> Attempt:
    """Refused naming the option, or accepted with the harmless reading ``harmless(ctx, tmp, res)`` checks."""
    def run(ctx: Ctx, tmp: Path) -> str:
        args = _fill(ctx, tmp, argv, db)
        res = ctx.cli(*args, timeout=300)
        judge.no_crash(res)
        if res.rc == 0:
            return harmless(ctx, tmp, res)
        return judge.refused(res, *mentions)[:110]
    return Attempt("cli", name, run, note, quick)


def _no_hits(ctx, tmp, res) -> str:
    if _hits(res):
        raise Broke(f"exit 0 with {len(_hits(res))} photos")
    return "no photos"


def _at_most_all(ctx, tmp, res) -> str:
    if len(_hits(res)) > 4:
        raise Broke(f"{len(_hits(res))} hits for 4 photos")
    return f"{len(_hits(res))} photos, all there are"


def _clean_query(ctx, tmp, res) -> str:
    return f"answered: {len(_hits(res))} photos" + (", with a note" if "note:" in res.out else "")


def _noted(ctx, tmp, res) -> str:
    if _hits(res):
        raise Broke(f"{len(_hits(res))} photos for an empty query")
    if "note:" not in res.out:
        raise Broke("exit 0, no photos and no message")
    return "a note: " + judge.first_line(res.out, "note:")[:90]


def _folder_name(ctx, tmp, res) -> str:
    names = [r[0] for r in judge.query(tmp / "fresh.duckdb", "SELECT id FROM datasets")]
    if names != ["flickr8k-x"]:
        raise Broke(f"datasets stored as {names}")
    return "fell back to the folder's name"


# --------------------------------------------------------------------------------------------- queries
def query(name: str, text, expect: str, *, note: str = "", offline: bool = False, quick: bool = True) -> Attempt:
    """``expect``: 'blocked' (legal notice, exit 3), 'answered' (photos), or 'clean' (no crash, any answer)."""
    def run(ctx: Ctx, tmp: Path) -> str:
        db = _copy(ctx, tmp, offline)
        res = ctx.cli("search", text, "--db", str(db), *([] if offline else OPENCLIP), "--quiet", timeout=600)
        judge.no_crash(res)
        if expect == "blocked":
            if res.rc != 3:
                raise Broke(f"not blocked: exit {res.rc}, {len(_hits(res))} photos")
            return "blocked with the legal notice"
        if expect == "answered":
            if res.rc != 0 or not _hits(res):
                raise Broke(f"refused an ordinary query: exit {res.rc}: {(res.out + res.err).strip()[:100]}")
            return f"{len(_hits(res))} photos"
        if res.rc not in (0, 2, 3):
            raise Broke(f"exit {res.rc}")
        return {0: f"answered ({len(_hits(res))} photos)", 3: "blocked"}.get(res.rc) or judge.refused(res)[:100]
    return Attempt("cli", f"search {name}", run, note, quick)


# --------------------------------------------------------------------------------------- odd databases
def db_is(name: str, make, argv: list[str], *, expect: str = "refused", note: str = "") -> Attempt:
    """``make(tmp) -> path`` builds the odd --db; the file must not be damaged."""
    def run(ctx: Ctx, tmp: Path) -> str:
        path = make(tmp)
        before = path.read_bytes() if path.is_file() else None
        args = [str(path) if a == "{db}" else str(build.flickr_dir(tmp / "flickr8k-x")) if a == "{data}" else a
                for a in argv]
        res = ctx.cli(*args, timeout=120)
        judge.no_crash(res)
        if before is not None and before and path.read_bytes() != before:
            raise Broke(f"{path.name} was changed by a stage that refused it")
        if expect == "either" and res.rc == 0:
            return "accepted"
        if expect == "no database" and res.rc == 1 and "no database" in res.out + res.err:
            return "says there is no database yet"
        return judge.refused(res)[:110]
    return Attempt("cli", name, run, note)


def _dir_db(tmp: Path) -> Path:
    (tmp / "dir.duckdb").mkdir()
    return tmp / "dir.duckdb"


def _text_db(tmp: Path) -> Path:
    (tmp / "notes.duckdb").write_text("these are my notes, not a database\n" * 100)
    return tmp / "notes.duckdb"


def _empty_db(tmp: Path) -> Path:
    (tmp / "empty.duckdb").write_bytes(b"")
    return tmp / "empty.duckdb"


def _bad_name_db(tmp: Path) -> Path:
    return Path(tmp / "x") .with_name("studio-\udcff.duckdb")


def read_only(stage: str) -> Attempt:
    """``status`` / ``search`` / ``models`` on a database whose folder is mounted read-only."""
    def run(ctx: Ctx, tmp: Path) -> str:
        with small_disk(tmp / "ro", 64 << 10) as mounted:
            if not mounted:
                raise Broke("cannot mount a tmpfs here to make read-only storage")
            db = copy_db(studio(ctx), tmp / "ro" / "studio.duckdb")
            if subprocess.run(["mount", "-o", "remount,ro", str(tmp / "ro")], capture_output=True).returncode:
                raise RuntimeError("remount read-only failed")
            argv = {"status": ["status"], "search": ["search", "a dog on a lawn", *OPENCLIP],
                    "models": ["models"], "ingest": ["ingest", "--data", str(build.flickr_dir(tmp / "f"))]}[stage]
            res = ctx.cli(*argv, "--db", str(db), "--quiet", timeout=300)
            if stage == "ingest":
                return judge.refused(res)[:110]
            if stage == "models":  # no runs yet: exit 1 with the "no model runs" line is its normal answer
                judge.ok(res, (0, 1))
                if "no model runs" not in res.out and res.rc:
                    raise Broke(f"exit {res.rc}: {judge.error_line(res)}")
                return "answered"
            judge.ok(res)
            if stage == "search" and not _hits(res):
                raise Broke("no photos")
            return "answered from read-only storage"
    note = "#12.11: status and search cannot run on read-only storage" if stage in ("status", "search") else ""
    return Attempt("cli", f"{stage} on read-only storage", run, note)


def locked(stage: list[str]) -> Attempt:
    """Another process holds the database read-write: a clear error within about --wait seconds."""
    def run(ctx: Ctx, tmp: Path) -> str:
        db = _copy(ctx, tmp)
        holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
                                   " print('held', flush=True); time.sleep(60)", str(db)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            holder.stdout.readline()
            args = [str(build.flickr_dir(tmp / "f")) if a == "{data}" else a for a in stage]
            started = time.monotonic()
            res = ctx.cli(*args, "--db", str(db), "--wait", "1", "--quiet", timeout=60)
            took = time.monotonic() - started
        finally:
            holder.kill()
            holder.wait()
        line = judge.refused(res, "lock", "another process", "in use", "busy", "running")
        if took > 20:
            raise Broke(f"took {took:.0f}s with --wait 1")
        return f"{line[:90]} ({took:.1f}s)"
    return Attempt("cli", f"{stage[0]} while another process holds the database", run)


# ------------------------------------------------------------------------------------------ moderation
def moderate(name: str, ids: list[str], moderator: str, reason: str, *mentions: str, ok: bool = False,
             note: str = "") -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        db = _copy(ctx, tmp)
        before = judge.query(db, "SELECT count(*) FROM moderation_audit")[0][0]
        res = ctx.cli("moderate", *ids, "--status", "excluded", "--moderator", moderator, "--reason", reason,
                      "--db", str(db), "--quiet")
        after = judge.query(db, "SELECT count(*) FROM moderation_audit")[0][0]
        if ok:
            judge.ok(res)
            if after != before + len(ids):
                raise Broke(f"{after - before} audit rows for {len(ids)} decisions")
            return "decided and audited"
        line = judge.refused(res, *mentions)
        if after != before:
            raise Broke(f"refused, yet {after - before} audit rows were written")
        return line[:110]
    return Attempt("cli", f"moderate: {name}", run, note)


# ---------------------------------------------------------------------------------------------- users
def add_user(name: str, first: str | None, second: str, *mentions: str, password: bytes = PASSWORD,
             note: str = "#12.8: add-user refuses control characters and newlines, normalises names (NFC) and "
                         "refuses a name that differs from an existing one only by normalisation or case",
             users_file=None) -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        users = users_file(tmp) if users_file else tmp / "users.json"
        if first is not None:
            judge.ok(ctx.cli("add-user", first, "--role", "data", "--users", str(users), "--password-stdin",
                             stdin=PASSWORD))
        before = users.read_bytes() if users.is_file() else None
        res = ctx.cli("add-user", second, "--role", "moderator", "--users", str(users), "--password-stdin",
                      stdin=password)
        judge.no_crash(res)
        if res.rc == 0 and first is not None and unicodedata.normalize("NFC", first) == second_nfc(second):
            names = list(json.loads(users.read_text()).get("users", {}))
            twins = [n for n in names if unicodedata.normalize("NFC", n).casefold() == second_nfc(second).casefold()]
            if len(twins) == 1 and twins[0] == unicodedata.normalize("NFC", first):
                return "normalised to the existing name and replaced that user (add-user's documented replace)"
            raise Broke(f"two users that look the same: {twins!r}")
        line = judge.refused(res, *mentions)
        if before is not None and users.read_bytes() != before:
            raise Broke("refused, yet the users file changed")
        return line[:110]
    return Attempt("cli", f"add-user: {name}", run, note)


def second_nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _users_dir(tmp: Path) -> Path:
    (tmp / "users.json").mkdir()
    return tmp / "users.json"


def _users_corrupt(tmp: Path) -> Path:
    (tmp / "users.json").write_text('{"users": {"alice": ')
    return tmp / "users.json"


def _labels(tmp_name: str, text: str):
    def make(tmp: Path) -> Path:
        (tmp / tmp_name).write_text(text)
        return tmp / tmp_name
    return make


def calibrate(name: str, labels, *mentions: str) -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        db = _copy(ctx, tmp)
        path = labels(tmp) if callable(labels) else labels
        res = ctx.cli("calibrate-minors", "--labels", str(path), "--clip-pretrained", "none", "--clip-model",
                      "ViT-S-32", "--dataset", DS, "--db", str(db), "--quiet", timeout=300)
        return judge.refused(res, *mentions)[:110]
    return Attempt("cli", f"calibrate-minors: {name}", run)


def attempts() -> list[Attempt]:
    nfc, nfd = unicodedata.normalize("NFC", "José"), unicodedata.normalize("NFD", "José")
    wait = "#12.11: --wait -1 and nan are accepted"
    name = "#12.11: a --name with /.. makes ids with /.."
    lexicon = "#12.4: the query block misses normalised and wider child words"
    control = "#12.8: moderator names and reasons are checked like user names, with a length limit"
    ingest = ["ingest", "--data", "{data}", "--db", "{db}", "--quiet"]
    return quick_only([
        refuse("unknown stage", ["explode"], "invalid choice", "explode"),
        refuse("no stage at all", [], "stage", "required"),
        refuse("--wait -1", [*ingest, "--wait", "-1"], "wait", note=wait),
        refuse("--wait nan", [*ingest, "--wait", "nan"], "wait", note=wait),
        refuse("--wait inf", [*ingest, "--wait", "inf"], "wait", note="strict: a bounded wait was asked for"),
        refuse("--wait abc", [*ingest, "--wait", "abc"], "wait"),
        refuse("--name a/../b", [*ingest, "--name", "a/../b"], "name", note=name),
        refuse("--name ../x", [*ingest, "--name", "../x"], "name", note=name),
        refuse("--name x/y", [*ingest, "--name", "x/y"], "name",
               note="strict: a '/' in a dataset name makes ids <dataset>/<name> ambiguous"),
        refuse("--name with a newline", [*ingest, "--name", "a\nb"], "name", note="strict: control characters"),
        harmless_or_refused("--name ''", [*ingest, "--name", ""], _folder_name, "name", db=False),
        harmless_or_refused("search -k 0", ["search", "a dog", "-k", "0", *OPENCLIP, "--db", "{db}"], _no_hits, "-k",
                            "k "),
        harmless_or_refused("search -k -5", ["search", "a dog", "-k", "-5", *OPENCLIP, "--db", "{db}"], _no_hits,
                            "-k", "k "),
        harmless_or_refused("search -k 10**9", ["search", "a dog", "-k", str(10 ** 9), *OPENCLIP, "--db", "{db}"],
                            _at_most_all, "-k", "k "),
        refuse("search -k abc", ["search", "a dog", "-k", "abc", "--db", "{db}"], "-k", db=True),
        refuse("embed --batch-size 0 (nothing to embed)",
               ["embed", *OPENCLIP, "--batch-size", "0", "--db", "{db}", "--quiet"], "batch", db=True),
        refuse("embed --batch-size -3 (nothing to embed)",
               ["embed", *OPENCLIP, "--batch-size", "-3", "--db", "{db}", "--quiet"], "batch", db=True),
        refuse("embed --batch-size 0 (4 photos to embed)", ["embed", *OPENCLIP, "--batch-size", "0", "--db", "{db0}",
                                                            "--quiet"], "batch", db=True),
        refuse("embed --workers -1 (4 photos to embed)", ["embed", *OPENCLIP, "--workers", "-1", "--db", "{db0}",
                                                          "--quiet"], "workers", db=True),
        refuse("embed --workers -1 (nothing to embed)",
               ["embed", *OPENCLIP, "--workers", "-1", "--db", "{db}", "--quiet"],
               "workers", db=True),
        refuse("evaluate-retrieval --folds 0", ["evaluate-retrieval", "--dataset", DS, "--folds", "0",
                                                "--db", "{db}", "--quiet"], "folds", db=True, quick=False),
        refuse("train --folds 1", ["train", "--models", "constant", "--targets", "category-pairs", "--dataset", DS,
                                   "--folds", "1", "--db", "{db}", "--quiet"], "folds", db=True, quick=False),
        refuse("embed --encoder bogus", ["embed", "--encoder", "bogus", "--db", "{db}"], "encoder", db=True),
        refuse("embed --pretrained /nonexistent.pt", ["embed", "--encoder", "openclip", "--model", "ViT-S-32",
                                                      "--pretrained", "/nonexistent.pt", "--db", "{db}", "--quiet"],
               "nonexistent.pt", db=True),
        db_is("--db is a directory (ingest)", _dir_db, ["ingest", "--data", "{data}", "--db", "{db}", "--quiet"]),
        db_is("--db is a directory (status)", _dir_db, ["status", "--db", "{db}"]),
        db_is("--db is a text file (ingest)", _text_db, ["ingest", "--data", "{data}", "--db", "{db}", "--quiet"]),
        db_is("--db is a text file (status)", _text_db, ["status", "--db", "{db}"]),
        db_is("--db is an empty file", _empty_db, ["ingest", "--data", "{data}", "--db", "{db}", "--quiet"],
              expect="either"),
        db_is("--db in a missing folder (status)", lambda tmp: tmp / "no" / "such" / "studio.duckdb",
              ["status", "--db", "{db}"], expect="no database"),
        db_is("--db name with invalid UTF-8", _bad_name_db, ["ingest", "--data", "{data}", "--db", "{db}", "--quiet"],
              expect="either"),
        read_only("status"),
        read_only("search"),
        read_only("models"),
        read_only("ingest"),
        locked(["status"]),
        locked(["ingest", "--data", "{data}"]),
        query("with invalid UTF-8 bytes (offline encoder)", b"chi\xffld", "clean", offline=True, quick=False,
              note="#12.11: a query with invalid UTF-8 bytes ends in a tokenizer TypeError"),
        query("with invalid UTF-8 bytes", b"a d\xffog", "clean"),
        harmless_or_refused("search ''", ["search", "", *OPENCLIP, "--db", "{db}"], _noted),
        harmless_or_refused("search of spaces", ["search", "   ", *OPENCLIP, "--db", "{db}"], _noted),
        harmless_or_refused("search of 100 KB", ["search", "dog " * 25_000, *OPENCLIP, "--db", "{db}"],
                            _clean_query, "query", "long"),
        query("chi<zero-width space>ld", "a chi\u200bld in a park", "blocked", note=lexicon),
        query("ch<Cyrillic i>ld", "a ch\u0456ld in a park", "blocked", note=lexicon),
        query("'preteen'", "a preteen on a bike", "blocked", note=lexicon),
        query("'tweens'", "tweens at a mall", "blocked", note=lexicon),
        query("'CHILD' (control)", "A CHILD PLAYING", "blocked"),
        query("'a kid goat' (must stay searchable)", "a kid goat", "answered", note=lexicon),
        query("'a baby elephant' (control)", "a baby elephant", "answered"),
        refuse("--data is missing", ["ingest", "--data", "/nonexistent/data", "--db", "{db}"], "nonexistent"),
        refuse("--data is a file", ["ingest", "--data", "/etc/hostname", "--db", "{db}"], "hostname"),
        refuse("--data has no dataset", ["ingest", "--data", "{empty}", "--db", "{db}"], "dataset"),
        moderate("control: a valid decision", [f"{DS}/1"], "mona", "duplicate of an excluded photo", ok=True),
        moderate("unknown photo id", [f"{DS}/999"], "mona", "because", "unknown"),
        moderate("empty reason", [f"{DS}/1"], "mona", "", "reason"),
        moderate("reason of spaces", [f"{DS}/1"], "mona", "   ", "reason"),
        moderate("reason with terminal escapes", [f"{DS}/1"], "mona", "ok\x1b[2J\x1b[31m", "reason", note=control),
        moderate("reason with a newline", [f"{DS}/1"], "mona", "ok\nforged: cleared by admin", "reason",
                 note=control),
        moderate("reason of 100,000 characters", [f"{DS}/1"], "mona", "x" * 100_000, "reason", note=control),
        moderate("moderator name with a newline", [f"{DS}/1"], "mona\nadmin", "because", "moderator", note=control),
        moderate("empty moderator name", [f"{DS}/1"], "", "because", "moderator"),
        refuse("moderate --status bogus", ["moderate", f"{DS}/1", "--status", "bogus", "--moderator", "m",
                                           "--reason", "r", "--db", "{db}"], "status", db=True),
        add_user("name with a newline", None, "alice\nadmin", "name"),
        add_user("name with a control character", None, "ali\x07ce", "name"),
        add_user("NFD twin of an NFC name", nfc, nfd, "name", "exists", "already"),
        add_user("case twin", "alice", "Alice", "name", "exists", "already"),
        add_user("name of 10,000 characters", None, "a" * 10_000, "name", "long",
                 note="strict: names get a length limit like moderators' names"),
        add_user("empty name", None, "", "name", note=""),
        add_user("7-character password", None, "carol", "password", password=b"short12\n", note=""),
        add_user("--users is a directory", None, "dave", "users", users_file=_users_dir, note=""),
        add_user("corrupt users file", None, "erin", "users", users_file=_users_corrupt, note=""),
        refuse("relevance --expert-weight nan", ["relevance", "--expert-weight", "nan", "--db", "{db}"], "weight",
               db=True),
        refuse("relevance --expert-weight -1", ["relevance", "--expert-weight", "-1", "--db", "{db}"], "weight",
               db=True),
        refuse("relevance --expert-weight inf", ["relevance", "--expert-weight", "inf", "--db", "{db}"], "weight",
               db=True),
        refuse("relevance with both weights 0", ["relevance", "--expert-weight", "0", "--crowd-weight", "0",
                                                 "--db", "{db}"], "weight", db=True),
        refuse("use-reranker of an unknown run", ["use-reranker", "no-such-run", "--by", "dana", "--db", "{db}"],
               "no-such-run", db=True, quick=False),
        refuse("use-reranker --by ''", ["use-reranker", "none", "--by", "", "--db", "{db}"], "by", db=True,
               note="strict: every choice records who made it"),
        refuse("calibrate-minors without --labels or --clip-pretrained", ["calibrate-minors", "--db", "{db}"],
               "labels", "clip-pretrained", db=True),
        calibrate("labels file missing", Path("/nonexistent/labels.csv"), "labels.csv"),
        calibrate("labels file without the header", _labels("labels.csv", "1,yes\n2,no\n"), "labels.csv",
                  "image_id"),
        refuse("train --models bogus", ["train", "--models", "bogus", "--db", "{db}"], "bogus", db=True),
        refuse("train --targets bogus", ["train", "--targets", "bogus", "--db", "{db}"], "bogus", db=True),
        refuse("evaluate-rerank of an unknown run", ["evaluate-rerank", "no-such-run", "--db", "{db}", "--quiet"],
               "no-such-run", db=True, quick=False),
        refuse("search --rerank without a re-ranker", ["search", "a dog", "--rerank", *OPENCLIP, "--db", "{db}"],
               "rerank", db=True),
        refuse("download without --data", ["download", "--db", "{db}"], "data"),
    ], {"unknown stage", "--wait -1", "--wait nan", "--name a/../b", "search -k -5", "status on read-only storage",
        "search on read-only storage", "search with invalid UTF-8 bytes", "search chi<zero-width space>ld",
        "search 'a kid goat' (must stay searchable)", "moderate: reason with a newline",
        "add-user: NFD twin of an NFC name",
        "add-user: case twin", "relevance --expert-weight nan", "--db is a text file (ingest)"})

