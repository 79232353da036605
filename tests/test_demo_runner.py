"""The demo's background stages (pipeline/demo_runner.py): one process holding the claim, a status file the pages
read, a snapshot the pages read meanwhile, resuming after a kill, and what a second `./studio demo` does."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import stage_progress
from dashboard_support import MODERATOR, open_app
from db.database import Database
from db.shared import DatabaseBusy, SharedDatabase, pipeline_claim, running_claim, snapshot_path
from pipeline import cli, demo_runner, progress
from pipeline.demo_runner import DemoStage

PROJECT = Path(__file__).resolve().parent.parent
STAGES = (DemoStage("one", ("one",)), DemoStage("two", ("two",), needed=False), DemoStage("three", ("three",)))


def mark(db_path: str, name: str) -> None:
    """What a fake stage stores: one row naming it, committed."""
    with Database(db_path) as db, db.write() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS marks (name VARCHAR)")
        cur.execute("INSERT INTO marks VALUES (?)", [name])


def marks(db_path: Path) -> list[str]:
    with Database(db_path, read_only=True) as db:
        return [name for (name,) in db.fetch_all("SELECT name FROM marks ORDER BY name")]


def test_stages_run_in_order_with_progress_and_a_snapshot_of_the_stages_before(path: Path) -> None:
    seen: dict[str, object] = {}

    def run_stage(argv: list[str]) -> int:
        name, db_path = argv[0], argv[argv.index("--db") + 1]
        assert "--quiet" in argv
        with Database(snapshot_path(db_path), read_only=True) as snapshot:  # what pages read meanwhile
            seen[name] = [n for (n,) in snapshot.fetch_all(
                "SELECT name FROM marks ORDER BY name")] if name != "one" else "no marks table yet"
        for _ in progress.bar(range(3), desc=f"{name} photos", unit="photo", disable=True):
            pass
        status = demo_runner.read_status(db_path)
        running = status.stage(name)
        seen[f"{name} status"] = (running.state, running.done, running.total)
        mark(db_path, name)
        return 0

    with pipeline_claim(path, "demo-stages"):
        assert demo_runner.run(path, run_stage, stages=STAGES) == 0
    assert seen["two"] == ["one"] and seen["three"] == ["one", "two"]
    assert seen["one status"][0] == "running"
    status = demo_runner.read_status(path)
    assert [(s.name, s.state, s.done, s.total) for s in status.stages] == [
        ("one", "done", 3, 3), ("two", "done", 3, 3), ("three", "done", 3, 3)]
    assert status.finished and all(s.seconds is not None for s in status.stages)
    assert marks(path) == ["one", "three", "two"]
    assert not snapshot_path(path).exists()  # gone when the run ends: pages read the real file again


def test_a_failed_stage_stops_the_needed_ones_after_it_but_an_optional_failure_does_not(path: Path) -> None:
    def optional_fails(argv: list[str]) -> int:
        if argv[0] == "two":
            print("error: the weights are missing", file=sys.stderr)
            return 2
        mark(argv[argv.index("--db") + 1], argv[0])
        return 0

    assert demo_runner.run(path, optional_fails, stages=STAGES) == 0
    states = {s.name: (s.state, s.message) for s in demo_runner.read_status(path).stages}
    assert states["two"] == ("failed", "error: the weights are missing") and states["three"][0] == "done"
    ran: list[str] = []
    assert demo_runner.run(path, lambda argv: ran.append(argv[0]) or 0, stages=STAGES) == 0
    assert ran == ["two", "three"]  # `three` reads what `two` writes: it runs again after it

    def needed_fails(argv: list[str]) -> int:
        return 1 if argv[0] == "one" else 0

    other = path.with_name("other.duckdb")
    Database(other).close()
    assert demo_runner.run(other, needed_fails, stages=STAGES) == 1
    states = {s.name: s.state for s in demo_runner.read_status(other).stages}
    assert states == {"one": "failed", "two": "not run", "three": "not run"}


KILLED_RUN = """
import sys, time
sys.path.insert(0, {project!r})
from db.database import Database
from db.shared import pipeline_claim
from pipeline import demo_runner, progress
from pipeline.demo_runner import DemoStage

def run_stage(argv):
    db_path = argv[argv.index("--db") + 1]
    if argv[0] == "two":
        bar = progress.bar(total=10, desc="two photos", unit="photo", disable=True)
        bar.update(4)
        print("in two", flush=True)
        time.sleep(120)
    with Database(db_path) as db, db.write() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS marks (name VARCHAR)")
        cur.execute("INSERT INTO marks VALUES (?)", [argv[0]])
    return 0

stages = {stages!r}
with pipeline_claim({db!r}, "demo-stages"):
    demo_runner.run({db!r}, run_stage, stages=[DemoStage(*s) for s in stages])
"""


def test_a_killed_run_says_where_it_stopped_and_the_next_run_resumes_without_redoing_finished_stages(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stages = [(s.name, s.argv, s.needed) for s in STAGES]
    script = KILLED_RUN.format(project=str(PROJECT), db=str(path), stages=stages)
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        lines = [runner.stdout.readline().strip() for _ in range(3)]
        assert lines == ["demo-stages: one", "demo-stages: two", "in two"]
        run = demo_runner.view(path)
        assert run.running and run.state_of("one") == "done" and run.state_of("two") == "running"
        assert demo_runner.check_second_demo(path, _free_port())[0] == demo_runner.CHECK_DASHBOARD_ONLY
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
    run = demo_runner.view(path)
    assert not run.running and run.stopped.name == "two"
    advice = stage_progress.resume_advice(run)
    assert "`two` stopped" in advice and "./studio demo" in advice
    assert marks(path) == ["one"]  # what the finished stage committed is kept

    ran: list[str] = []

    def resume(argv: list[str]) -> int:
        ran.append(argv[0])
        mark(argv[argv.index("--db") + 1], argv[0])
        return 0

    assert demo_runner.run(path, resume, stages=STAGES) == 0
    assert ran == ["two", "three"]  # `one` is not redone
    assert marks(path) == ["one", "three", "two"]
    assert demo_runner.read_status(path).stage("one").state == "skipped"


def test_new_data_reruns_every_stage(path: Path) -> None:
    ran: list[str] = []

    def record(argv: list[str]) -> int:
        ran.append(argv[0])
        return 0

    demo_runner.run(path, record, stages=STAGES)
    demo_runner.run(path, record, stages=STAGES)
    assert ran == ["one", "two", "three"]  # the second run skipped all three
    with Database(path) as db, db.write() as cur:  # what an ingest that loaded something leaves
        cur.execute("INSERT INTO datasets VALUES ('coco-mini', 'coco', '/data', 'abc', 7)")
    demo_runner.run(path, record, stages=STAGES)
    assert ran == ["one", "two", "three"] * 2
    # The file deleted and rebuilt: its ingest run ids start from 1 again, but nothing in it was done.
    path.unlink()
    with Database(path) as db, db.write() as cur:
        cur.execute("INSERT INTO ingest_runs (id, dataset, source, layout, started, status) "
                    "VALUES (7, 'coco-mini', '/data', 'coco', now(), 'ok')")
        cur.execute("INSERT INTO datasets VALUES ('coco-mini', 'coco', '/data', 'abc', 7)")
    demo_runner.run(path, record, stages=STAGES)
    assert ran == ["one", "two", "three"] * 3


def test_pages_read_the_snapshot_while_the_claim_is_held_and_writes_never_go_there(path: Path) -> None:
    mark(str(path), "before")
    shared = SharedDatabase(path, linger_seconds=0)
    with pipeline_claim(path, "demo-stages"):
        with pytest.raises(DatabaseBusy):  # no snapshot published yet
            with shared.use(snapshot_ok=True):
                pass
        from db.shared import publish_snapshot
        publish_snapshot(path)
        with shared.use(snapshot_ok=True) as db:
            assert db.fetch_all("SELECT name FROM marks") == [("before",)]
            assert db.read_only
        with pytest.raises(DatabaseBusy):  # the write queue's use: the real file or nothing
            with shared.use():
                pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_second_demo_is_refused_while_a_dashboard_serves_or_another_stage_writes(
        path: Path, capsys: pytest.CaptureFixture) -> None:
    port = _free_port()
    assert cli.main(["demo-check", "--db", str(path), "--port", str(port)]) == demo_runner.CHECK_FREE
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        busy_port = server.getsockname()[1]
        assert cli.main(["demo-check", "--db", str(path), "--port", str(busy_port)]) == demo_runner.CHECK_REFUSE
    assert "a demo is already running" in capsys.readouterr().err
    with pipeline_claim(path, "embed"):
        assert cli.main(["demo-check", "--db", str(path), "--port", str(port)]) == demo_runner.CHECK_REFUSE
    assert "`embed`" in capsys.readouterr().err
    with pipeline_claim(path, "demo: embed"):
        assert cli.main(["demo-check", "--db", str(path), "--port", str(port)]) == demo_runner.CHECK_DASHBOARD_ONLY
    assert "still running" in capsys.readouterr().err


def test_a_quiet_bar_still_reports_its_count() -> None:
    ticks: list[progress.Tick] = []
    with progress.listening(ticks.append):
        for _ in progress.bar(["a", "b"], desc="photos", unit="photo", disable=True):
            pass
        with progress.bar(total=5, desc="batches", disable=True) as bar:
            bar.update(2)
            bar.update(3)
    assert [(t.desc, t.done, t.total) for t in ticks] == [
        ("photos", 0, 2), ("photos", 1, 2), ("photos", 2, 2), ("batches", 0, 5), ("batches", 2, 5), ("batches", 5, 5)]
    progress.bar(total=1, disable=True).update(1)  # no listener: nothing to tell, no error


# A page's background work (the must-show recount) once opened the snapshot read-write as if it were the database.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_overview_shows_the_running_stage_and_other_pages_say_what_they_wait_for(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from db.shared import publish_snapshot

    status = demo_runner.plan(None, "sig")
    status.stages[0].state, status.stages[0].desc = "running", "perceive"
    status.stages[0].done, status.stages[0].total, status.stages[0].unit = 40, 239, "photo"
    demo_runner.write_status(path, status)
    with pipeline_claim(path, "demo: perceive"):
        publish_snapshot(path)
        at = open_app(monkeypatch, path, MODERATOR)
        assert "`perceive`: 40 of 239 photo" in " ".join(p.proto.text for p in at.get("progress"))
        assert "Pipeline stages" in " ".join(h.value for h in at.subheader)
        at.switch_page("minors_page.py").run()
        notices = " ".join(i.value for i in at.info)
        assert "waits for the background stage(s) `perceive` (running, 40/239 photo), `filter` (pending)" in notices
        for page, stages in (("search_page.py", "`filter` (pending), `embed` (pending), `fit-bridge` (pending)"),
                             ("models_page.py", "`evaluate-retrieval` (pending), `train` (pending)")):
            at.switch_page(page).run()
            assert not at.exception, [e.value for e in at.exception]
            assert f"waits for the background stage(s) {stages}" in " ".join(i.value for i in at.info), page
    # The process ended without finishing `perceive`: the Overview tells how to resume.
    at = open_app(monkeypatch, path, MODERATOR)
    assert any("`perceive` stopped" in e.value and "./studio demo" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert not running_claim(path)
    assert json.loads(demo_runner.status_path(path).read_text())["finished"] is None
