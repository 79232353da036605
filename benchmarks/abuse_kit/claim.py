"""The pipeline claim a running dashboard reads to let go of the database (db/shared.py).

Held: a claim left behind whose process id now belongs to another, live process does not lock the dashboard out;
a second stage started while one runs does not overwrite or remove the running stage's claim; a killed stage's
claim does not outlive it. Checked through ``db.shared.running_claim`` and ``SharedDatabase.use``, what the
dashboard calls, in a Python process started in the project under test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from abuse_kit import build, judge
from abuse_kit.core import Attempt, Ctx
from abuse_kit.judge import Broke

PAUSE = "STUDIO_PAUSE_BEFORE_COMMIT"  # pipeline/ingest.py's test hook: pause just before COMMIT
DASHBOARD = r'''
import json, sys
from db.shared import SharedDatabase, running_claim
db = sys.argv[1]
claim = running_claim(db)
try:
    with SharedDatabase(db, linger_seconds=0).use():
        opened = True
    error = None
except Exception as exc:
    opened, error = False, f"{type(exc).__name__}: {exc}"
print(json.dumps({"claim": claim, "opened": opened, "error": error}, default=str))
'''


def _dashboard(ctx: Ctx, db: Path) -> dict:
    res = ctx.runner.python(DASHBOARD, str(db))
    if res.rc != 0:
        raise RuntimeError(f"dashboard snippet failed: {res.err.strip().splitlines()[-1:]}")
    return json.loads(res.out.strip().splitlines()[-1])


def _ingested(ctx: Ctx, tmp: Path) -> Path:
    db = tmp / "studio.duckdb"
    judge.ok(ctx.ingest(build.flickr_dir(tmp / "flickr8k-x"), db))
    return db


def reused_pid(ctx: Ctx, tmp: Path) -> str:
    db = _ingested(ctx, tmp)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        db.with_name(db.name + ".pipeline").write_text(json.dumps(
            {"pid": other.pid, "stage": "embed", "started": datetime.now().isoformat()}))
        seen = _dashboard(ctx, db)
    finally:
        other.kill()
        other.wait()
    if seen["claim"] is not None or not seen["opened"]:
        raise Broke("a stale claim naming a live, unrelated pid locks the dashboard out: "
                    f"{seen['error'] or seen['claim']}")
    return "stale claim ignored; the dashboard opens the database"


def _paused_ingest(ctx: Ctx, tmp: Path, db: Path):
    marker = tmp / "paused"
    handle = ctx.runner.start(["ingest", "--data", str(build.flickr_dir(tmp / "flickr8k-y")), "--db", str(db),
                               "--quiet"], env={PAUSE: str(marker)})
    deadline = time.monotonic() + 120
    while not marker.exists():
        if time.monotonic() > deadline:
            handle.kill()
            raise RuntimeError("the ingest never reached its pause before COMMIT")
        time.sleep(0.05)
    return handle


def second_stage(ctx: Ctx, tmp: Path) -> str:
    db = _ingested(ctx, tmp)
    first = _paused_ingest(ctx, tmp, db)
    try:
        second = ctx.cli("filter", "--db", str(db), "--wait", "1", "--quiet", timeout=60)
        judge.no_crash(second)
        seen = _dashboard(ctx, db)
    finally:
        first.kill()
        first.wait(30)
    claim = seen["claim"] or {}
    if claim.get("stage") != "ingest" or claim.get("pid") not in (first.pid, None):
        raise Broke(f"while ingest runs, a second stage (exit {second.rc}) left the claim as {claim or 'gone'}")
    return f"the running ingest keeps its claim; the second stage: {judge.error_line(second)[:70] or 'exit 0'}"


def killed_claim(ctx: Ctx, tmp: Path) -> str:
    db = _ingested(ctx, tmp)
    first = _paused_ingest(ctx, tmp, db)
    first.kill()
    first.wait(30)
    seen = _dashboard(ctx, db)
    if seen["claim"] is not None or not seen["opened"]:
        raise Broke(f"a killed stage's claim still locks the dashboard out: {seen['error'] or seen['claim']}")
    return "the killed stage's claim is gone"


def attempts() -> list[Attempt]:
    note = "#12.9: a claim whose pid belongs to another process blocks the dashboard; stages overwrite claims"
    return [
        Attempt("claim", "stale claim whose pid now belongs to another process", reused_pid, note),
        Attempt("claim", "second stage started while ingest runs", second_stage, note),
        Attempt("claim", "claim of a killed stage", killed_claim),
    ]
