"""The demo's background stages: everything after `ingest`, in one process, while the dashboard already answers.

``./studio demo`` runs `ingest`, starts this runner (``python -m pipeline demo-stages``) in the background and
opens the dashboard at once. The runner holds the pipeline claim for its whole run, so no other stage (and no
second demo) writes meanwhile, and runs :data:`DEMO_STAGES` in order, training last.

What the dashboard sees while the claim is held:
- the status file ``<db>.stages.json`` (written whole, by rename): each stage's state, seconds and, for the
  running one, its progress bar's count (pipeline/progress.py). The Overview page draws it; other pages say
  which stage they wait for.
- the snapshot ``<db>.snapshot`` (db/shared.py): a copy of the database as the last finished stage left it,
  which pages read while the real file is claimed. Writes (moderation, flags) are journalled by the write queue
  and land when the run ends.

Resuming: a stage is skipped when the status file says it finished on the same data (the datasets' ingest runs,
:func:`db.stages.data_signature`); a killed or failed stage runs again, and the stages that do per-photo work
(perceive, embed) go on from the photos they had committed. `./studio demo` again is how to resume.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from db import shared
from db.database import Database
from db.stages import data_signature
from pipeline import progress

STATUS_SUFFIX = ".stages.json"
LOG_SUFFIX = ".stages.log"
TICK_SECONDS = 0.5  # the status file is rewritten at most this often while a bar moves


@dataclass(frozen=True)
class DemoStage:
    name: str
    argv: tuple[str, ...]  # the stage's `python -m pipeline` arguments, without --db
    needed: bool = True  # a failure stops the run (perceive's does not: the filter then keeps photos pending; nor
    # project's: only the Explore page's map is missing)


DEMO_STAGES: tuple[DemoStage, ...] = (
    DemoStage("perceive", ("perceive",), needed=False),
    DemoStage("filter", ("filter",)),
    DemoStage("embed", ("embed", "--encoder", "auto")),
    DemoStage("fit-bridge", ("fit-bridge",)),
    DemoStage("project", ("project",), needed=False),  # after fit-bridge, so its fitted encoders' vectors are mapped
    DemoStage("evaluate-retrieval", ("evaluate-retrieval",)),
    DemoStage("train", ("train", "--models", "constant,zero-shot,ridge,hist-gradient-boosting")),
)

# What each stage makes usable, for the Overview page and the pages' waiting notices.
MAKES_USABLE = {
    "ingest": "Ratings EDA, the rejects browser",
    "perceive": "detected objects and faces (Minors review evidence, search by object)",
    "filter": "Minors review; photos cleared for search",
    "embed": "Live search",
    "fit-bridge": "better search ranking (fitted bridge)",
    "project": "Explore (embedding map)",
    "evaluate-retrieval": "retrieval figures",
    "train": "Models page, re-ranking",
}


@dataclass
class StageState:
    name: str
    state: str = "pending"  # pending | running | done | failed | skipped | not run
    started: str | None = None
    seconds: float | None = None
    message: str = ""
    desc: str = ""  # the running bar
    done: int = 0
    total: int | None = None
    unit: str = ""


@dataclass
class DemoStatus:
    pid: int
    started: str
    signature: str
    finished: str | None = None
    stages: list[StageState] = field(default_factory=list)

    def stage(self, name: str) -> StageState | None:
        return next((s for s in self.stages if s.name == name), None)


def status_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}{STATUS_SUFFIX}")


def log_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}{LOG_SUFFIX}")


def read_status(db_path: str | Path) -> DemoStatus | None:
    """The last demo run's status, or None when there is none (or it cannot be read: then the run is unknown)."""
    try:
        data = json.loads(status_path(db_path).read_text(encoding="utf-8"))
        stages = [StageState(**s) for s in data.pop("stages")]
        return DemoStatus(**data, stages=stages)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_status(db_path: str | Path, status: DemoStatus) -> None:
    shared.write_whole(status_path(db_path), json.dumps(asdict(status)))


def plan(previous: DemoStatus | None, signature: str, stages: Sequence[DemoStage] = DEMO_STAGES) -> DemoStatus:
    """A new run's status: the leading stages that finished on the same data before are skipped, the rest pending.
    Only a leading run of them: once a stage runs again (say `perceive`, which had failed), every later stage
    runs too, as they read what it writes."""
    finished: set[str] = set()
    if previous is not None and previous.signature == signature:
        for before in previous.stages:
            if before.state not in ("done", "skipped"):
                break
            finished.add(before.name)
    now = datetime.now().isoformat(timespec="seconds")
    return DemoStatus(os.getpid(), now, signature, stages=[
        StageState(s.name, "skipped" if s.name in finished else "pending",
                   message="finished in an earlier run on the same data" if s.name in finished else "")
        for s in stages])


class _ErrorLines:
    """Passes writes through to a stream and keeps the stage's `error: ...` lines for the status file."""

    def __init__(self, stream) -> None:
        self.stream, self.errors = stream, []

    def write(self, text: str) -> int:
        self.errors.extend(line for line in text.splitlines() if line.startswith("error:"))
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def run(db_path: str | Path, run_stage: Callable[[list[str]], int], *,
        stages: Sequence[DemoStage] = DEMO_STAGES) -> int:
    """Run the stages not yet finished on this data; the caller holds the pipeline claim. Returns 0 when every
    needed stage finished, else 1 (the status file says which stopped and why)."""
    with Database(db_path) as db:
        signature = data_signature(db)
    status = plan(read_status(db_path), signature, stages)
    write_status(db_path, status)
    shared.publish_snapshot(db_path)
    lock = threading.Lock()
    last_write = [0.0]
    failed_needed = False
    for stage, state in zip(stages, status.stages):
        if state.state == "skipped":
            continue
        if failed_needed:
            state.state, state.message = "not run", "an earlier stage failed"
            continue
        state.state, state.started = "running", datetime.now().isoformat(timespec="seconds")
        write_status(db_path, status)
        shared.update_claim(db_path, f"demo: {stage.name}")

        def on_tick(tick: progress.Tick, state: StageState = state) -> None:
            with lock:
                state.desc, state.done, state.total, state.unit = tick.desc, tick.done, tick.total, tick.unit
                if time.monotonic() - last_write[0] >= TICK_SECONDS or tick.done == tick.total:
                    last_write[0] = time.monotonic()
                    write_status(db_path, status)

        errors = _ErrorLines(sys.stderr)
        began = time.monotonic()
        print(f"demo-stages: {stage.name}", flush=True)
        stderr, sys.stderr = sys.stderr, errors
        try:
            with progress.listening(on_tick):
                code = run_stage([*stage.argv, "--db", str(db_path), "--quiet"])
        finally:
            sys.stderr = stderr
        with lock:
            state.seconds = round(time.monotonic() - began, 1)
            state.state = "done" if code == 0 else "failed"
            state.message = "; ".join(errors.errors) or ("" if code == 0 else f"exit code {code}")
            write_status(db_path, status)
        failed_needed = failed_needed or (code != 0 and stage.needed)
        shared.publish_snapshot(db_path)
    status.finished = datetime.now().isoformat(timespec="seconds")
    write_status(db_path, status)
    shared.remove_snapshot(db_path)
    return 1 if failed_needed else 0


# `demo-check` exit codes, read by the studio script.
CHECK_FREE, CHECK_REFUSE, CHECK_DASHBOARD_ONLY = 0, 3, 4


def check_second_demo(db_path: str | Path, port: int) -> tuple[int, str | None]:
    """What a second `./studio demo` should do: start (CHECK_FREE); refuse, because a dashboard already serves
    the port or another stage writes the database (CHECK_REFUSE); or only open the dashboard, because an earlier
    demo's background stages still run (CHECK_DASHBOARD_ONLY). With the reason to print."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return CHECK_REFUSE, (f"a demo is already running: something serves http://127.0.0.1:{port}; open it, "
                                  "or stop it before starting another demo")
    claim = shared.running_claim(db_path)
    if claim is None:
        return CHECK_FREE, None
    who = f"`{claim.get('stage')}` (pid {claim.get('pid')}, started {claim.get('started')})"
    if str(claim.get("stage", "")).startswith("demo"):
        return CHECK_DASHBOARD_ONLY, (f"the background stages of an earlier demo are still running on {db_path}: "
                                      f"{who}; opening the dashboard on them (progress on the Overview page and in "
                                      f"{log_path(db_path)})")
    return CHECK_REFUSE, f"the pipeline stage {who} is running on {db_path}; wait for it to finish"


@dataclass(frozen=True)
class RunView:
    """The last demo run as the dashboard tells it."""

    status: DemoStatus
    running: bool  # the runner still holds the claim
    stopped: StageState | None  # the stage that failed or was running when the process ended

    def state_of(self, stage: str) -> str:
        found = self.status.stage(stage)
        return found.state if found is not None else "done"


def view(db_path: str | Path) -> RunView | None:
    """The last demo run and whether its process still runs; None when no demo has run on this database."""
    status = read_status(db_path)
    if status is None:
        return None
    claim = shared.running_claim(db_path)
    running = claim is not None and str(claim.get("stage", "")).startswith("demo") and status.finished is None
    stopped = None
    if not running:
        stopped = next((s for s in status.stages if s.state in ("running", "failed")), None)
    return RunView(status, running, stopped)
