"""Bad COCO JSON: one bad record in a clean COCO folder, or a whole bad annotation file.

Held, for one bad record: exit 0, an ``ok`` run, the record is its section's one reject at its 1-based index
(or, where accepting it is fine, accepted), every good row is there. A record whose value would be stored
changed (a caption that is a list stored as the text "['a']", a boolean category id read as category 1) must be
rejected. For a whole bad file: the file is rejected with a reason, the other annotation file and the photos
still load in full, and nothing hangs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from abuse_kit import build, judge
from abuse_kit.core import Attempt, Ctx
from abuse_kit.judge import Broke

DS = "coco-x"
SPLIT = "val2017"


def reference(ctx: Ctx) -> dict[str, int]:
    def make(tmp: Path) -> dict[str, int]:
        data = build.coco_dir(tmp / DS)
        db = tmp / "ref.duckdb"
        run = judge.ingested(ctx.ingest(data, db), db, DS)
        if any(e["rejected"] for e in run.counts["files"]):
            raise RuntimeError(f"clean COCO data has rejects: {run.counts['files']}")
        return judge.dataset_counts(db, DS)
    return ctx.fixture("ref-coco", make)


def _label(kind: str, section: str | None = None) -> str:
    return f"annotations/{kind}_{SPLIT}.json" + (f" [{section}]" if section else "")


def record(name: str, kind: str, section: str, bad, expect: str = "reject", *, note: str = "",
           quick: bool = False) -> Attempt:
    """Append ``bad`` (a record, or a function of the clean records giving one) to ``kind``'s ``section``."""
    def run(ctx: Ctx, tmp: Path) -> str:
        ref = reference(ctx)
        docs = copy.deepcopy(build.coco_records())
        records = docs[kind][section]
        records.append(bad(records) if callable(bad) else bad)
        data = build.coco_dir(tmp / DS, docs)
        db = tmp / "db.duckdb"
        run = judge.ingested(ctx.ingest(data, db), db, DS)
        if section == "categories":
            return _category_judged(db, run, ref, expect)
        label = _label(kind, section)
        entry = run.file(label)
        if entry["read"] != len(records):
            raise Broke(f"{label}: {entry['read']} records read, it has {len(records)}")
        rejects = judge.rejects(db, DS, label)
        if expect == "reject" and entry["rejected"] != 1:
            raise Broke(f"{label}: {entry['rejected']} rejects, expected the bad record"
                        + (f": {rejects[0][3][:80]}" if rejects else " (it was accepted)"))
        if entry["rejected"] > 1:
            raise Broke(f"{label}: {entry['rejected']} rejects for one bad record")
        if rejects and rejects[0][1] != len(records):
            raise Broke(f"{label}: reject at record {rejects[0][1]}, the bad record is {len(records)}")
        now = judge.dataset_counts(db, DS)
        for table in judge.DATA_TABLES:
            if now[table] < ref[table] or (entry["rejected"] and now[table] != ref[table]):
                raise Broke(f"{table}: {now[table]} rows where the clean data gives {ref[table]}")
        return f"record {len(records)} " + (f"rejected: {rejects[0][3][:90]}" if rejects else "accepted")
    return Attempt("json", f"{kind} [{section}]: {name}", run, note, quick)


def _category_judged(db: Path, run: judge.Run, ref: dict, expect: str) -> str:
    """A bad category: reported (some reject of the instances file names it), the good objects all load."""
    rejects = [r for r in judge.rejects(db, DS) if r[0].startswith(_label("instances"))]
    now = judge.dataset_counts(db, DS)
    if now["objects"] != ref["objects"]:
        raise Broke(f"objects: {now['objects']} rows where the clean data gives {ref['objects']}")
    if expect == "reject" and not rejects:
        raise Broke("the bad category is not reported (no reject)")
    return "reported: " + rejects[0][3][:90] if rejects else "objects intact"


def _file(name: str, kind: str, damage, *, note: str = "", timeout: float = 60, quick: bool = False) -> Attempt:
    """``damage(path)`` ruins one annotation file; the other one and the photos must still load."""
    def run(ctx: Ctx, tmp: Path) -> str:
        ref = reference(ctx)
        data = build.coco_dir(tmp / DS)
        damage(data / "annotations" / f"{kind}_{SPLIT}.json")
        db = tmp / "db.duckdb"
        res = ctx.ingest(data, db, timeout=timeout)
        run = judge.ingested(res, db, DS)
        rejects = [r for r in judge.rejects(db, DS) if r[0].startswith(_label(kind))]
        if not rejects:
            raise Broke(f"{_label(kind)}: no reject for the broken file")
        now = judge.dataset_counts(db, DS)
        other = "captions" if kind == "instances" else "objects"
        if now[other] != ref[other]:
            raise Broke(f"{other}: {now[other]} rows where the clean data gives {ref[other]} (other file lost)")
        if now.get("images_ok") != ref.get("images_ok"):
            raise Broke(f"photos: {now.get('images_ok')} ok where the clean data gives {ref.get('images_ok')}")
        return f"file rejected: {rejects[0][3][:90]}"
    return Attempt("json", f"{kind} file: {name}", run, note, quick)


def _write(data: bytes):
    return lambda path: path.write_bytes(data)


def _nested(depth: int) -> bytes:
    doc = json.dumps(build.coco_records()["captions"]).encode()
    return doc[:-1] + b', "extra": ' + b"[" * depth + b"]" * depth + b"}"


def attempts() -> list[Attempt]:
    image = lambda **kw: lambda recs: {  # noqa: E731
        "id": 99, "file_name": "000000000099.jpg", "width": 32, "height": 24, **kw}
    cap = lambda **kw: lambda recs: {"image_id": 1, "id": 999, "caption": "A kite over a beach.", **kw}  # noqa: E731
    obj = lambda **kw: lambda recs: {"image_id": 2, "id": 777, "category_id": 18, **kw}  # noqa: E731
    cat = lambda **kw: {"id": 5, "name": "kite", "supercategory": "sports", **kw}  # noqa: E731
    out = [
        record("control: valid extra caption", "captions", "annotations", cap(), "accept", quick=True),
        record("control: valid extra image", "captions", "images", image(), "accept", quick=True),
        record("record is a string", "captions", "images", "x", quick=True),
        record("record is a list", "captions", "annotations", [1, "a"]),
        record("record is null", "captions", "annotations", None),
        record("record is a number", "instances", "annotations", 7),
        record("id is a list", "captions", "images", image(id=[1, 2]), quick=True),
        record("id is a dict", "captions", "images", image(id={"a": 1})),
        record("id is 1.5", "captions", "images", image(id=1.5)),
        record("id is 99.0", "captions", "images", image(id=99.0), "either"),
        record("id is true", "captions", "images", image(id=True)),
        record("id is null", "captions", "images", image(id=None)),
        record("id missing", "captions", "images", lambda r: {"file_name": "x.jpg", "width": 3, "height": 3}),
        record("id is 10**30", "captions", "images", image(id=10 ** 30)),
        record("id is -5", "captions", "images", image(id=-5)),
        record("id is the string '99'", "captions", "images", image(id="99"), "either"),
        record("id is '0x10'", "captions", "images", image(id="0x10")),
        record("id is NaN", "captions", "images", image(id=float("nan"))),
        record("width 0", "captions", "images", image(width=0)),
        record("width -1", "captions", "images", image(width=-1)),
        record("width 1e400 (inf)", "captions", "images", image(width=float("inf"))),
        record("width '640' string", "captions", "images", image(width="640"), "either"),
        record("duplicate image record", "captions", "images", lambda r: dict(r[0])),
        record("file_name ../../../etc/passwd", "captions", "images", image(file_name="../../../etc/passwd"), "either"),
        record("caption is a number", "captions", "annotations", cap(caption=5),
               note="strict: a caption that is not a string is rejected, not stored as its str()"),
        record("caption is a list", "captions", "annotations", cap(caption=["a dog"]),
               note="strict: a caption that is not a string is rejected, not stored as its str()"),
        record("caption is a dict", "captions", "annotations", cap(caption={"en": "a dog"}),
               note="strict: a caption that is not a string is rejected, not stored as its str()"),
        record("caption is null", "captions", "annotations", cap(caption=None)),
        record("caption is empty", "captions", "annotations", cap(caption="")),
        record("caption with NUL", "captions", "annotations", cap(caption="A kite\u0000 over sand"),
               note="#12.11: a NUL inside a caption is stored", quick=True),
        record("caption 1 MB", "captions", "annotations", cap(caption="a" * 1_000_000), "either"),
        record("caption of an unknown image", "captions", "annotations", cap(image_id=4242)),
        record("caption image_id is a list", "captions", "annotations", cap(image_id=[1])),
        record("caption image_id is true", "captions", "annotations", cap(image_id=True)),
        record("caption id duplicate", "captions", "annotations", cap(id=102)),
        record("caption id missing", "captions", "annotations", lambda r: {"image_id": 1, "caption": "A kite."}),
        record("category_id is a list", "instances", "annotations", obj(category_id=[18]),
               note="#12.10: ends the whole dataset's ingest", quick=True),
        record("category_id is a dict", "instances", "annotations", obj(category_id={"id": 18}),
               note="#12.10: ends the whole dataset's ingest"),
        record("category_id unknown", "instances", "annotations", obj(category_id=77)),
        record("category_id null", "instances", "annotations", obj(category_id=None)),
        record("category_id true (== 1 in Python)", "instances", "annotations", obj(category_id=True),
               note="strict: a boolean is not category 1"),
        record("category_id 18.0", "instances", "annotations", obj(category_id=18.0), "either"),
        record("category_id '18' string", "instances", "annotations", obj(category_id="18"), "either"),
        record("object of an unknown image", "instances", "annotations", obj(image_id=4242)),
        record("category id is a list", "instances", "categories", cat(id=[5]),
               note="#12.10: ends the whole dataset's ingest", quick=True),
        record("category id is a dict", "instances", "categories", cat(id={"x": 5}),
               note="#12.10: ends the whole dataset's ingest"),
        record("category is a string", "instances", "categories", "kite"),
        record("category id duplicate, other name", "instances", "categories", cat(id=18, name="cat"),
               note="strict: a second category 18 must not silently rename the objects"),
        record("category without a name", "instances", "categories", lambda r: {"id": 5}, "either"),
    ]
    out += [
        _file("truncated JSON", "captions", lambda p: p.write_bytes(p.read_bytes()[:-40]), quick=True),
        _file("top level is an array", "captions", _write(b"[1, 2, 3]")),
        _file("top level is a string", "instances", _write(b'"hello"')),
        _file("0-byte file", "captions", _write(b"")),
        _file("trailing garbage", "instances", lambda p: p.write_bytes(p.read_bytes() + b" }{ x")),
        _file("invalid UTF-8 inside a string", "captions",
              lambda p: p.write_bytes(p.read_bytes().replace(b"A dog number 1", b"A d\xffg number 1", 1))),
        _file("deeply nested (100,000 levels)", "captions", _write(_nested(100_000)),
              note="a RecursionError must be one rejected file, not a refused dataset"),
        _file("is a directory", "instances", build.replace_with_folder, note="one unreadable file must not refuse the dataset"),
        _file("is a FIFO", "captions", build.replace_with_fifo, timeout=30, note="must not block on a FIFO"),
        _file("dangling symlink", "captions", lambda p: p.unlink() or p.symlink_to(p.parent / "gone.json"),
              note="#12.10"),
        _file("NaN literal as the document", "captions", _write(b"NaN")),
    ]
    return out
