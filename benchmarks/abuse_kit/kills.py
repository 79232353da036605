"""Kill -9 at 10 moments of each stage: 5%, 15%, ... 95% of the stage's uninterrupted duration.

Data: COCO-k (12 captioned and 3 uncaptioned COCO-mini photos, copied to /tmp) and the first tenth of each
Flickr8k text file. Each stage starts from the state the previous stage's uninterrupted reference run left, and
that reference run gives the stage's duration and the table counts it leaves.

Held, after each kill: the database opens (``status`` exits 0; no file at all is fine when the kill came before
the first ingest created it), every dataset's rows belong to exactly one ``ok`` ingest run (no half-written
dataset), and re-running the stage finishes and leaves the same table counts as the uninterrupted run.
``embed`` runs with the random-weight open_clip ViT-S-32 encoder: the offline encoder spends about a minute per
start encoding its 1,000 class prompts on 2 busy cores, and what a kill can break (the batch commits) is the same
code for every encoder. Not killed, because one run takes too long here to be killed and re-run ten times
within the pass's time budget: ``fit-bridge`` and ``train`` (a minute or more each with the offline encoder) and
``evaluate-retrieval`` (25-30 s even with the random encoder; its 10 kills and re-runs cost 7 minutes).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from abuse_kit import build, judge
from abuse_kit.core import Attempt, Ctx
from abuse_kit.judge import Broke

LOGS = ("ingest_runs", "schema_migrations")
FRACTIONS = [0.05 + 0.1 * i for i in range(10)]
QUICK_FRACTIONS = [0.15, 0.55, 0.85]
QUICK_STAGES = ("ingest", "filter")


def _data(ctx: Ctx) -> Path:
    def make(tmp: Path) -> Path:
        root = tmp / "data"
        build.coco_from_mini(ctx.data / "coco-mini", root / "coco-k", captioned=12, uncaptioned=3)
        flickr = root / "flickr8k-text"
        flickr.mkdir()
        for source in (ctx.data / "flickr8k-text").glob("*.txt"):
            lines = source.read_bytes().split(b"\n")
            (flickr / source.name).write_bytes(b"\n".join(lines[: len(lines) // 10]) + b"\n")
        return root
    return ctx.fixture("kill-data", make)


def copy_db(source: Path | None, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        for suffix in ("", ".wal"):
            extra = source.with_name(source.name + suffix)
            if extra.exists():
                shutil.copy2(extra, target.with_name(target.name + suffix))
    return target


# Stage name -> (arguments after the stage, the stage whose reference run is the starting state).
OPENCLIP = ["--encoder", "openclip", "--model", "ViT-S-32", "--pretrained", "none"]
STAGES = {
    "ingest": (["ingest", "--data", "{data}"], None),
    "re-ingest": (["ingest", "--data", "{data}", "--force"], "ingest"),
    "filter": (["filter"], "ingest"),
    "embed": (["embed", *OPENCLIP, "--batch-size", "4"], "filter"),
}


def _argv(ctx: Ctx, stage: str, db: Path) -> list[str]:
    args = [a.replace("{data}", str(_data(ctx))) for a in STAGES[stage][0]]
    return [*args, "--db", str(db), "--quiet"]


def _reference(ctx: Ctx, stage: str) -> dict:
    """The uninterrupted run: its database (the next stage's start), duration and counts."""
    def make(tmp: Path) -> dict:
        before = STAGES[stage][1]
        db = copy_db(_reference(ctx, before)["db"] if before else None, tmp / "ref.duckdb")
        res = ctx.cli(*_argv(ctx, stage, db), timeout=600)
        judge.ok(res)
        return {"db": db, "seconds": res.seconds, "counts": judge.table_counts(db, LOGS)}
    return ctx.fixture(f"kill-ref-{stage}", make)


def _start_db(ctx: Ctx, stage: str, target: Path) -> Path:
    before = STAGES[stage][1]
    return copy_db(_reference(ctx, before)["db"] if before else None, target)


def _kill_at(ctx: Ctx, stage: str, db: Path, fraction: float, seconds: float) -> str:
    """Start the stage, SIGKILL it at ``fraction`` of ``seconds``; say what happened."""
    handle = ctx.runner.start(_argv(ctx, stage, db))
    time.sleep(max(0.0, fraction * seconds - (time.monotonic() - handle.started)))
    handle.kill()
    res = handle.wait(60)
    if res.signal is None:
        judge.no_crash(res)
        return f"finished before the kill (exit {res.rc}, {res.seconds:.1f}s)"
    return f"killed at {res.seconds:.1f}s"


def _after_kill(ctx: Ctx, db: Path) -> None:
    """The database opens and no dataset is half-written."""
    if not db.exists():
        return
    res = ctx.cli("status", "--db", str(db), "--wait", "5", timeout=60)
    judge.no_crash(res)
    if res.rc == 1 and "no datasets yet" in res.out:
        return  # killed before the first migration committed: the file is as empty as before the first run
    if res.rc != 0:
        raise Broke(f"the database does not open after the kill: {judge.error_line(res) or res.out[:120]}")
    judge.consistent(db)


def _same_counts(db: Path, ref: dict) -> None:
    now = judge.table_counts(db, LOGS)
    diff = {t: (now.get(t), n) for t, n in ref["counts"].items() if now.get(t) != n}
    diff.update({t: (n, None) for t, n in now.items() if t not in ref["counts"]})
    if diff:
        shown = ", ".join(f"{t} {a} vs {b}" for t, (a, b) in sorted(diff.items())[:4])
        raise Broke(f"after the re-run, counts differ from an uninterrupted run: {shown}")


def fresh_kill(stage: str, fraction: float, quick: bool) -> Attempt:
    def run(ctx: Ctx, tmp: Path) -> str:
        ref = _reference(ctx, stage)
        db = _start_db(ctx, stage, tmp / "db.duckdb")
        what = _kill_at(ctx, stage, db, fraction, ref["seconds"])
        _after_kill(ctx, db)
        res = ctx.cli(*_argv(ctx, stage, db), timeout=600)
        judge.ok(res)
        judge.consistent(db)
        _same_counts(db, ref)
        return f"{what} of {ref['seconds']:.1f}s; re-run gives the uninterrupted counts"
    return Attempt("kill", f"{stage} at {fraction:.0%}", run, quick=quick)


def attempts() -> list[Attempt]:
    return [fresh_kill(stage, f, quick=stage in QUICK_STAGES and any(abs(f - q) < 1e-9 for q in QUICK_FRACTIONS))
            for stage in STAGES for f in FRACTIONS]
