"""Bad text files: one damaged line in a clean Flickr8k-text or With Sense folder, and whole damaged files.

Held, for one bad line: the ingest ends with exit 0 and an ``ok`` run; the file's lines read equal the lines in it
(minus a header); the bad line is the file's one reject, at its line number (or, where accepting it is fine, it is
accepted); every good row of every table is there (counts equal a clean ingest's). For a whole bad file: the
other files still load in full and every line read is accepted or rejected.
"""

from __future__ import annotations

from pathlib import Path

from abuse_kit import build, judge
from abuse_kit.build import CROWD, EXPERTS, FRESH, IMG, TOKENS, TRAIN
from abuse_kit.core import Attempt, Ctx, quick_only
from abuse_kit.judge import Broke

FLICKR = "flickr8k-x"
WS = "ws"


def _reference(ctx: Ctx, key: str, make) -> dict[str, int]:
    """Table counts of the clean dataset, ingested once."""
    def build_it(tmp: Path) -> dict[str, int]:
        data = make(tmp / (FLICKR if key == "flickr" else WS))
        db = tmp / "ref.duckdb"
        res = ctx.ingest(data, db)
        run = judge.ingested(res, db, data.name)
        bad = [e for e in run.counts["files"] if e["rejected"]]
        if bad:
            raise RuntimeError(f"the clean {key} dataset has rejects: {bad}")
        return judge.dataset_counts(db, data.name)
    return ctx.fixture(f"ref-{key}", build_it)


def _good_rows_kept(db: Path, dataset: str, ref: dict[str, int], accepted_extra: bool) -> None:
    now = judge.dataset_counts(db, dataset)
    for table in judge.DATA_TABLES:
        if now[table] < ref[table] or (not accepted_extra and now[table] != ref[table]):
            raise Broke(f"{table}: {now[table]} rows where the clean data gives {ref[table]}"
                        + (" (good rows lost)" if now[table] < ref[table] else ""))


def _fields(parts: list[str | bytes], sep: bytes = b"\t") -> bytes:
    return sep.join(p if isinstance(p, bytes) else p.encode() for p in parts)


def _judge_line(ctx: Ctx, tmp: Path, layout: str, file: str, lines: list, at: int, expect: str,
                header: int = 0, span: int = 1) -> str:
    """Ingest with ``lines`` as ``file`` (bad record on 1-based lines ``at`` .. ``at + span - 1``) and judge it."""
    if layout == "flickr":
        ref = _reference(ctx, "flickr", build.flickr_dir)
        data = build.flickr_dir(tmp / FLICKR, {file: lines})
    else:
        ref = _reference(ctx, "ws", build.withsense_dir)
        data = build.withsense_dir(tmp / WS)
        build.write_lines(data / file, lines)
    db = tmp / "db.duckdb"
    res = ctx.ingest(data, db)
    run = judge.ingested(res, db, data.name)
    entry = run.file(file)
    physical = len(lines) + span - 1 - header
    if entry["read"] != physical:
        raise Broke(f"{file}: {entry['read']} lines read, the file has {physical} (+{header} header)")
    rejects = judge.rejects(db, data.name, file)
    if expect == "reject" and entry["rejected"] != 1:
        raise Broke(f"{file}: {entry['rejected']} rejects, expected exactly the bad line"
                    + (f": {rejects[0][3][:80]}" if rejects else " (the bad line was accepted)"))
    if expect == "accept" and entry["rejected"]:
        raise Broke(f"{file}: a valid line was rejected: line {rejects[0][1]}: {rejects[0][3][:100]}")
    if entry["rejected"] > span:
        raise Broke(f"{file}: {entry['rejected']} rejects for one bad record: lines {[r[1] for r in rejects][:5]}")
    for _, line, _, reason in rejects:
        if not at <= (line or 0) < at + span:
            raise Broke(f"{file}: a reject at line {line}, the bad record is at line {at}")
        if not reason:
            raise Broke(f"{file}: reject without a reason")
    _good_rows_kept(db, data.name, ref, accepted_extra=entry["rejected"] == 0)
    return f"line {at} " + (f"rejected: {rejects[0][3][:90]}" if entry["rejected"] else "accepted")


def flickr_line(name: str, file: str, line: bytes | str, expect: str = "reject", *, at_end: bool = False,
                note: str = "", quick: bool = True) -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        lines = list(build.flickr_lines()[file])
        at = len(lines) + 1 if at_end else 3
        lines.insert(at - 1, line)
        return _judge_line(ctx, tmp, "flickr", file, lines, at, expect)
    return Attempt("text", f"flickr {file.split('.')[0]}: {name}", run, note, quick)


def _with(file: str, index: int, value: str | bytes) -> bytes:
    parts: list[str | bytes] = list(FRESH[file])
    parts[index] = value
    return _fields(parts)


def _flickr_lines() -> list[Attempt]:
    e, c, t, s = EXPERTS, CROWD, TOKENS, TRAIN
    out = [flickr_line("control: a valid extra line", f, _fields(FRESH[f]), "accept", quick=True)
           for f in (e, c, t, s)]
    out += [
        flickr_line("4 columns", e, _fields(FRESH[e][:4])),
        flickr_line("6 columns", e, _fields(FRESH[e] + ["1"])),
        flickr_line("no tab at all", e, " ".join(FRESH[e])),
        flickr_line("empty score field", e, _with(e, 2, "")),
        flickr_line("empty image field", e, _with(e, 0, "")),
        flickr_line("score x", e, _with(e, 2, "x")),
        flickr_line("score 0x3", e, _with(e, 3, "0x3")),
        flickr_line("score nan", e, _with(e, 2, "nan")),
        flickr_line("score inf", e, _with(e, 2, "inf")),
        flickr_line("score 1e999", e, _with(e, 2, "1e999")),
        flickr_line("score -0", e, _with(e, 2, "-0")),
        flickr_line("score ' 3' (leading space)", e, _with(e, 2, " 3"), "either"),
        flickr_line("score 3.0", e, _with(e, 2, "3.0"), "either"),
        flickr_line("score 5 (out of range)", e, _with(e, 4, "5")),
        flickr_line("score 0 (out of range)", e, _with(e, 2, "0")),
        flickr_line("score 10**20 (overflows BIGINT)", e, _with(e, 2, "1" + "0" * 20)),
        flickr_line("score +2", e, _with(e, 2, "+2"), "either"),
        flickr_line("score with fullwidth digit", e, _with(e, 2, "\uff13")),
        flickr_line("duplicate key, same values", e, build.flickr_lines()[e][0], at_end=True),
        flickr_line("duplicate key, other values", e,
                    build.flickr_lines()[e][0].rsplit("\t", 1)[0] + "\t4", at_end=True),
        flickr_line("caption key of an unknown caption", e, _with(e, 1, f"{IMG[6]}#0")),
        flickr_line("caption key without #n", e, _with(e, 1, IMG[0])),
        flickr_line("caption key #x", e, _with(e, 1, f"{IMG[0]}#x")),
        flickr_line("image name outside the rule", e, _with(e, 0, "photo.png")),
        flickr_line("image name ../../etc/passwd", e, _with(e, 0, "../../etc/passwd")),
        flickr_line("image name with a bird prefix", e, _with(e, 0, "e667626_18933d713e.jpg")),
        flickr_line("invalid UTF-8 bytes", e, _with(e, 0, b"1000000_\xff\xfe.jpg")),
        flickr_line("NUL byte in a field", e, _with(e, 0, f"{IMG[5]}\x00".encode())),
        flickr_line("1 MB line", e, _with(e, 0, "9" * 1_000_000), quick=False),
        flickr_line("blank line", e, ""),
        flickr_line("whitespace-only line", e, "   "),
        flickr_line("tabs only", e, "\t\t\t\t"),
        flickr_line("bare CR inside the line", e, _with(e, 2, "2\r3")),
        flickr_line("share x", c, _with(c, 2, "x")),
        flickr_line("share nan", c, _with(c, 2, "nan")),
        flickr_line("share inf", c, _with(c, 2, "inf")),
        flickr_line("share -inf", c, _with(c, 2, "-inf")),
        flickr_line("share 1e999", c, _with(c, 2, "1e999")),
        flickr_line("share 1.5 (out of range)", c, _with(c, 2, "1.5")),
        flickr_line("share -0.1", c, _with(c, 2, "-0.1")),
        flickr_line("share '0,5' (decimal comma)", c, _with(c, 2, "0,5")),
        flickr_line("share 0x1p-1 (hex float)", c, _with(c, 2, "0x1p-1")),
        flickr_line("n_yes -1", c, _with(c, 3, "-1")),
        flickr_line("n_yes 1.5", c, _with(c, 3, "1.5")),
        flickr_line("n_no 10**25", c, _with(c, 4, "1" + "0" * 25)),
        flickr_line("no votes", c, _fields([IMG[5], f"{IMG[0]}#1", "0", "0", "0"])),
        flickr_line("share inconsistent with votes", c, _with(c, 2, "0.9")),
        flickr_line("NUL inside a caption", t, _fields([FRESH[t][0], "A red\x00 kite"]),
                    note="#12.11: a NUL inside a caption is stored"),
        flickr_line("empty caption", t, _fields([FRESH[t][0], ""])),
        flickr_line("whitespace caption", t, _fields([FRESH[t][0], "   "])),
        flickr_line("caption id without #n", t, _fields([IMG[5], "A kite ."])),
        flickr_line("caption id #0 without image", t, _fields(["#0", "A kite ."])),
        flickr_line("caption id #-1", t, _fields([f"{IMG[5]}#-1", "A kite ."])),
        flickr_line("caption id #1e3", t, _fields([f"{IMG[5]}#1e3", "A kite ."])),
        flickr_line("caption id with two #", t, _fields([f"{IMG[5]}#2#3", "A kite ."])),
        flickr_line("duplicate caption id, other text", t, _fields([f"{IMG[0]}#0", "Another text ."]), at_end=True),
        flickr_line("tab inside the caption (3 columns)", t, _fields([FRESH[t][0], "A kite", "over sand ."])),
        flickr_line("bare CR inside the caption", t, _fields([FRESH[t][0], "A kite\rover sand ."]), "either"),
        flickr_line("ANSI escape in the caption", t, _fields([FRESH[t][0], "A kite \x1b[2J\x1b[31mred ."]), "either"),
        flickr_line("unit separator \\x1f in the caption", t, _fields([FRESH[t][0], "A kite\x1fover sand ."]),
                    "either"),
        flickr_line("Latin-1 byte in the caption", t, _fields([FRESH[t][0], b"A caf\xe9 ."])),
        flickr_line("1 MB caption", t, _fields([FRESH[t][0], "a" * 1_000_000]), "either", quick=False),
        flickr_line("lone surrogate bytes (CESU)", t, _fields([FRESH[t][0], b"A \xed\xa0\x80 kite"])),
        flickr_line("overlong UTF-8 slash", t, _fields([FRESH[t][0], b"A \xc0\xaf kite"])),
        flickr_line("split: bird image", s, "e667626_18933d713e.jpg"),
        flickr_line("split: duplicate line", s, IMG[0], at_end=True),
        flickr_line("split: path", s, "../1000001_abc.jpg"),
        flickr_line("split: trailing space", s, IMG[6] + " ", "either"),
    ]
    return out


# ------------------------------------------------------------------------------------------- whole files
def _whole(name: str, make, check, note: str = "", quick: bool = True) -> Attempt:
    """``make(folder)`` damages a clean Flickr folder; ``check(ctx, db, run, ref)`` judges beyond the basics."""
    def run(ctx: Ctx, tmp: Path) -> str:
        ref = _reference(ctx, "flickr", build.flickr_dir)
        data = build.flickr_dir(tmp / FLICKR)
        make(data)
        db = tmp / "db.duckdb"
        res = ctx.ingest(data, db, timeout=60)
        run = judge.ingested(res, db, FLICKR)
        return check(ctx, db, run, ref, res)
    return Attempt("text", f"flickr file: {name}", run, note, quick)


def _others_full(db: Path, ref: dict, spared: tuple[str, ...]) -> None:
    now = judge.dataset_counts(db, FLICKR)
    for table in ("captions", "expert_ratings", "crowd_ratings"):
        if table not in spared and now[table] != ref[table]:
            raise Broke(f"{table}: {now[table]} rows where the clean data gives {ref[table]}")


def _all_read(file: str, lines: int, rejected: int | None = None):
    def check(ctx, db, run, ref, res) -> str:
        entry = run.file(file)
        if lines is not None and entry["read"] != lines:
            raise Broke(f"{file}: {entry['read']} lines read, expected {lines}")
        if rejected is not None and entry["rejected"] != rejected:
            raise Broke(f"{file}: {entry['rejected']} rejected, expected {rejected}")
        spared = {TOKENS: ("captions", "expert_ratings", "crowd_ratings"), EXPERTS: ("expert_ratings",),
                  CROWD: ("crowd_ratings",)}.get(file, ())
        _others_full(db, ref, spared)
        return f"{file}: {entry['read']} read, {entry['rejected']} rejected; other files complete"
    return check


def _named(file: str):
    """A file that cannot be read as text must be named: in an error line, the summary, or a reject."""
    def check(ctx, db, run, ref, res) -> str:
        mentioned = file in res.err or f"{file}:" in res.out or any(
            r[0] == file or file in (r[3] or "") for r in judge.rejects(db, FLICKR))
        if not mentioned:
            raise Broke(f"{file} is silently ignored: no reject, no error names it")
        others = {TOKENS: (), EXPERTS: ("expert_ratings",)}.get(file, ())
        _others_full(db, ref, ("captions", "expert_ratings", "crowd_ratings") if file == TOKENS else others)
        return f"{file} reported; the other files loaded"
    return check


def _tokens_text(expected_first: str):
    def check(ctx, db, run, ref, res) -> str:
        entry = run.file(TOKENS)
        if entry["rejected"]:
            raise Broke(f"{TOKENS}: {entry['rejected']} rejects on a clean file: "
                        f"{judge.rejects(db, FLICKR, TOKENS)[0][3][:80]}")
        texts = [r[0] for r in judge.query(db, "SELECT text FROM captions WHERE dataset = ? ORDER BY id", [FLICKR])]
        if any(t.endswith("\r") or t.startswith("\ufeff") for t in texts):
            raise Broke("captions stored with a trailing \\r or a BOM")
        if expected_first not in texts:
            raise Broke(f"first caption not stored as {expected_first!r}")
        _others_full(db, ref, ())
        return f"{entry['read']} captions, clean text"
    return check


def _rewrite(path: Path, transform) -> None:
    path.write_bytes(transform(path.read_bytes()))


def _whole_files() -> list[Attempt]:
    tokens = len(build.flickr_lines()[TOKENS])
    experts = len(build.flickr_lines()[EXPERTS])
    first = build.flickr_lines()[TOKENS][0].split("\t")[1]
    garbage = bytes((i * 73 + 11) % 256 for i in range(4096))
    return [
        _whole("empty expert file", lambda d: (d / EXPERTS).write_bytes(b""), _all_read(EXPERTS, 0, 0)),
        _whole("binary garbage as expert file", lambda d: (d / EXPERTS).write_bytes(garbage),
               _all_read(EXPERTS, garbage.count(b"\n") + (not garbage.endswith(b"\n")))),
        _whole("BOM before the token file", lambda d: _rewrite(d / TOKENS, lambda b: b"\xef\xbb\xbf" + b),
               _tokens_text(first)),
        _whole("CRLF token file", lambda d: _rewrite(d / TOKENS, lambda b: b.replace(b"\n", b"\r\n")),
               _tokens_text(first)),
        _whole("CRLF expert file", lambda d: _rewrite(d / EXPERTS, lambda b: b.replace(b"\n", b"\r\n")),
               _all_read(EXPERTS, experts, 0)),
        _whole("bare-CR (old Mac) expert file", lambda d: _rewrite(d / EXPERTS, lambda b: b.replace(b"\n", b"\r")),
               _all_read(EXPERTS, 1)),
        _whole("no final newline", lambda d: _rewrite(d / TOKENS, lambda b: b.rstrip(b"\n")),
               _all_read(TOKENS, tokens, 0)),
        _whole("UTF-16 token file", lambda d: _rewrite(d / TOKENS, lambda b: b.decode().encode("utf-16")),
               _all_read(TOKENS, None)),
        _whole("header line in the expert file",
               lambda d: _rewrite(d / EXPERTS, lambda b: b"image\tquery_id\texpert_1\texpert_2\texpert_3\n" + b),
               _all_read(EXPERTS, experts, 0)),
        _whole("10,000 duplicate lines", lambda d: _rewrite(d / EXPERTS, lambda b: b + b.splitlines(True)[0] * 10_000),
               _all_read(EXPERTS, experts + 10_000, 10_000), quick=False),
        _whole("token file is a directory", lambda d: build.replace_with_folder(d / TOKENS), _named(TOKENS),
               note="strict: a listed file that cannot be read is reported, not skipped"),
        _whole("expert file is a FIFO", lambda d: build.replace_with_fifo(d / EXPERTS), _named(EXPERTS),
               note="strict: never block on a FIFO; report it"),
        _whole("expert file is a dangling symlink", lambda d: (d / EXPERTS).unlink() or
               (d / EXPERTS).symlink_to(d / "nowhere.txt"), _named(EXPERTS)),
    ]


# --------------------------------------------------------------------------------------------- With Sense
def ws_line(name: str, file: str, line: str | bytes, expect: str = "reject", *, at: int = 3, header: int = 1,
            span: int = 1, note: str = "") -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        clean = build.withsense_dir(tmp / "clean")
        lines: list = (clean / file).read_bytes().decode().splitlines()
        lines.insert(at - 1, line)
        return _judge_line(ctx, tmp, "ws", file, lines, at, expect, header=header, span=span)
    return Attempt("text", f"withsense {file.split('.')[0]}: {name}", run, note)


def _ws() -> list[Attempt]:
    train = "train_dataset.csv"
    a, b, c = IMG[0], IMG[1], IMG[2]
    return [
        ws_line("control: valid quoted line", train, f'{a},{c}#5,"A cat, asleep, on a ""soft"" sofa"', "accept"),
        ws_line("malformed quoting", train, f'{a},{c}#5,"unterminated'),
        ws_line("4 columns", train, f"{a},{c}#5,A cat,extra"),
        ws_line("unknown caption image", train, f"{a},ghost.jpg#0,Nobody"),
        ws_line("query id without #n", train, f"{a},{c},A cat"),
        ws_line("empty query text", train, f"{a},{c}#5,"),
        ws_line("quoted newline (record over two lines)", train, f'{a},{c}#5,"A cat\nasleep"', "either", span=2),
        ws_line("unit separator inside quotes", train, f'{a},{c}#5,"A cat\x1fasleep"', "either"),
        ws_line("NUL in query text", train, f"{a},{c}#5,A cat\x00asleep"),
        ws_line("invalid UTF-8", train, f"{a},{c}#5,A cat ".encode() + b"\xff\xfe"),
        ws_line("image with a folder", "test_images.csv", "../etc/passwd"),
        ws_line("absolute image path", "test_images.csv", "/etc/passwd"),
        ws_line("Windows path", "test_images.csv", "C:\\photos\\x.jpg"),
        ws_line("test query without index", "test_queries.csv", "test99.jpg#0|A kite .|test99.jpg", "either"),
        ws_line("test query with text index", "test_queries.csv", "x|test99.jpg#0|A kite .|test99.jpg", "either"),
        ws_line("expert score 7", "ExpertAnnotations.tsv", f"{c}\t{b}#0\t7\t1\t1", at=2, header=0),
        ws_line("crowd 6 columns", "CrowdAnnotations.tsv", f"{c}\t{b}#0\t0\t0\t3\t9"),
    ]


def _ws_whole() -> list[Attempt]:
    def semicolons(ctx: Ctx, tmp: Path) -> str:
        ref = _reference(ctx, "ws", build.withsense_dir)
        data = build.withsense_dir(tmp / WS)
        text = (data / "ExpertAnnotations.tsv").read_text().replace("\t", ";")
        (data / "ExpertAnnotations.tsv").write_text(text)
        db = tmp / "db.duckdb"
        run = judge.ingested(ctx.ingest(data, db), db, WS)
        if run.file("ExpertAnnotations.tsv")["rejected"]:
            raise Broke("a ';'-separated expert file is not sniffed")
        _good_rows_kept(db, WS, ref, accepted_extra=False)
        return "sniffed ';' and loaded every row"

    def bom_header(ctx: Ctx, tmp: Path) -> str:
        ref = _reference(ctx, "ws", build.withsense_dir)
        data = build.withsense_dir(tmp / WS)
        _rewrite(data / "train_dataset.csv", lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"))
        db = tmp / "db.duckdb"
        run = judge.ingested(ctx.ingest(data, db), db, WS)
        entry = run.file("train_dataset.csv")
        if entry["rejected"] or entry["read"] != 3:
            raise Broke(f"BOM + CRLF + header: {entry}")
        _good_rows_kept(db, WS, ref, accepted_extra=False)
        return "BOM and CRLF handled, header found"

    return [Attempt("text", "withsense: ';'-separated expert file", semicolons),
            Attempt("text", "withsense: BOM + CRLF csv with header", bom_header)]


QUICK = {
    "flickr ExpertAnnotations: control: a valid extra line", "flickr ExpertAnnotations: 4 columns",
    "flickr ExpertAnnotations: score nan", "flickr ExpertAnnotations: invalid UTF-8 bytes",
    "flickr CrowdFlowerAnnotations: share inconsistent with votes", "flickr Flickr8k: NUL inside a caption",
    "flickr file: CRLF token file", "flickr file: token file is a directory",
    "withsense train_dataset: malformed quoting",
}


def attempts() -> list[Attempt]:
    return quick_only(_flickr_lines() + _whole_files() + _ws() + _ws_whole(), QUICK)
