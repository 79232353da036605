"""Attempts, the context they run in, and the loop that runs and tallies them."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from abuse_kit import judge
from abuse_kit.judge import Broke
from abuse_kit.runner import Result, Runner


@dataclass
class Ctx:
    """What every attempt gets: the CLI runner, a fresh folder, the shared data, cached fixtures."""

    runner: Runner
    data: Path
    quick: bool
    scratch: Path
    keep: bool = False  # keep each attempt's folder (to look at what broke)
    _fixtures: dict = field(default_factory=dict)
    _count: int = 0

    def folder(self, name: str) -> Path:
        """A new empty folder for one attempt."""
        self._count += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)  # DuckDB reads a backslash in a path as a separator
        path = self.scratch / f"{self._count:03d}-{safe}"[:80]
        path.mkdir(parents=True)
        return path

    def fixture(self, key: str, make: Callable[[Path], object]):
        """Build once, share between attempts (callers copy what they change)."""
        if key not in self._fixtures:
            self._fixtures[key] = make(self.folder(f"fixture-{key}"))
        return self._fixtures[key]

    def cli(self, *argv, timeout: float = 120, **kwargs) -> Result:
        return self.runner.cli(*argv, timeout=timeout, **kwargs)

    def ingest(self, data: Path, db: Path, *extra: str, timeout: float = 120, **kwargs) -> Result:
        return self.cli("ingest", "--data", str(data), "--db", str(db), "--quiet", *extra, timeout=timeout, **kwargs)


@dataclass
class Attempt:
    kind: str
    name: str
    run: Callable[[Ctx, Path], str]  # returns why it held; raises Broke(reason)
    note: str = ""  # the issue item it checks, or what "held" means when that is debatable
    quick: bool = True  # part of --quick


def quick_only(attempts: list[Attempt], names: set[str]) -> list[Attempt]:
    """Mark which attempts ``--quick`` keeps (a sample of each kind's failure classes)."""
    unknown = names - {a.name for a in attempts}
    if unknown:
        raise ValueError(f"quick names that match no attempt: {sorted(unknown)}")
    for attempt in attempts:
        attempt.quick = attempt.name in names
    return attempts


@dataclass
class Outcome:
    attempt: Attempt
    verdict: str  # HELD | BROKE | ERROR (the harness itself failed)
    reason: str
    seconds: float


def run_attempt(ctx: Ctx, attempt: Attempt) -> Outcome:
    started = time.monotonic()
    tmp = ctx.folder(f"{attempt.kind}-{attempt.name}")
    try:
        reason = attempt.run(ctx, tmp)
        verdict = "HELD"
    except Broke as exc:
        verdict, reason = "BROKE", str(exc)
    except Exception as exc:  # noqa: BLE001 - a harness bug is reported, not hidden among the verdicts
        verdict, reason = "ERROR", f"harness: {type(exc).__name__}: {exc} | " + \
            traceback.format_exc().strip().splitlines()[-3].strip()
    finally:
        judge.release()
        if not ctx.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return Outcome(attempt, verdict, " ".join(str(reason).split())[:300], time.monotonic() - started)


def summary(outcomes: list[Outcome]) -> str:
    lines = []
    kinds = list(dict.fromkeys(o.attempt.kind for o in outcomes))
    for kind in kinds:
        counts = Counter(o.verdict for o in outcomes if o.attempt.kind == kind)
        lines.append(f"  {kind:<10} attempts {sum(counts.values()):>3}, held {counts['HELD']:>3}, "
                     f"broke {counts['BROKE']:>3}" + (f", harness errors {counts['ERROR']}" if counts["ERROR"] else ""))
    total = Counter(o.verdict for o in outcomes)
    head = f"attempts {len(outcomes)}, held {total['HELD']}, broke {total['BROKE']}" + \
        (f", harness errors {total['ERROR']}" if total["ERROR"] else "")
    return "\n".join([head, *lines])


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="abuse-"))

