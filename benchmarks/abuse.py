"""Hostile attempts against the pipeline CLI; each one held or broke, with a one-line reason.

    .venv/bin/python benchmarks/abuse.py [--quick] [--only KIND[,KIND]] [--data /work/shared/data]
                                         [--project DIR] [--match TEXT] [--spawn] [--keep]

Kinds: text (bad text files), json (bad COCO JSON), photos (bad photo files), links (symlinks, hidden files,
odd entries in image folders), kill (SIGKILL at 10 moments of each stage), disk (full disk, file-size limit),
cli (bad command-line input), claim (the pipeline claim the dashboard reads).

Every attempt runs the real CLI of the project under test (``--project``, default this checkout) as its own
process on a temp folder with its own database, and judges the exit code, stderr (never a traceback) and the
database it leaves. Each module of benchmarks/abuse_kit/ says what "held" means for its kind. Prints one line per
attempt, then `attempts N, held H, broke B` and the same per kind; exits 1 if anything broke.
``--project /work/base`` measures another checkout (e.g. the code before a fix) with this harness.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from abuse_kit import claim, cli, coco_json, disk, kills, links, photos, text  # noqa: E402
from abuse_kit import judge  # noqa: E402
from abuse_kit.core import Ctx, run_attempt, scratch_dir, summary  # noqa: E402
from abuse_kit.runner import Runner  # noqa: E402

KINDS = {"text": text, "json": coco_json, "photos": photos, "links": links, "kill": kills, "disk": disk,
         "cli": cli, "claim": claim}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("--project", type=Path, default=here, help="project root under test (default: this one)")
    parser.add_argument("--data", type=Path, default=here.parent / "shared" / "data",
                        help="shared data (COCO-mini photos for the kill and embed attempts)")
    parser.add_argument("--quick", action="store_true", help="a subset: 3 kill moments, no slow attempts (< 3 min)")
    parser.add_argument("--only", help="comma-separated kinds: " + ", ".join(KINDS))
    parser.add_argument("--match", help="only attempts whose name contains this text")
    parser.add_argument("--spawn", action="store_true", help="start `python -m pipeline` per run (slow) "
                                                             "instead of forking a server that imported it once")
    parser.add_argument("--keep", action="store_true", help="keep every attempt's folder and print where")
    args = parser.parse_args()
    only = [k.strip() for k in args.only.split(",")] if args.only else list(KINDS)
    unknown = [k for k in only if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    # A SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so every finally block unmounts what it mounted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scratch = scratch_dir()
    runner = Runner(args.project.resolve(), scratch, spawn=args.spawn)
    runner.before_start = judge.release
    ctx = Ctx(runner, args.data.resolve(), args.quick, scratch, keep=args.keep)
    started = time.monotonic()
    outcomes = []
    print(f"abuse: project {args.project.resolve()}, scratch {scratch}", flush=True)
    try:
        for kind in only:
            for attempt in KINDS[kind].attempts():
                if args.quick and not attempt.quick:
                    continue
                if args.match and args.match not in attempt.name:
                    continue
                outcome = run_attempt(ctx, attempt)
                outcomes.append(outcome)
                print(f"{attempt.kind:<6} {outcome.verdict:<5} {attempt.name}: {outcome.reason}"
                      + (f"  [{attempt.note}]" if attempt.note and outcome.verdict != "HELD" else "")
                      + f"  ({outcome.seconds:.1f}s)", flush=True)
    finally:
        judge.release()
        runner.close()
        for module in set(KINDS.values()):
            cleanup = getattr(module, "cleanup", None)
            if cleanup:
                cleanup()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{summary(outcomes)}\n({time.monotonic() - started:.0f}s)")
    return 1 if any(o.verdict != "HELD" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
