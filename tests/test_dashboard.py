"""The dashboard shell and its Overview page: sign-in and role routing through AppTest on a database built by
the real pipeline, the rejects browser, the database hand-over to a pipeline stage, plus overview.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dashboard import context, overview
from dashboard_support import DATA, MODERATOR, PRODUCT, frame_with_column, open_app, plotly_values
from db import users
from db.database import Database
from db.shared import SharedDatabase, pipeline_claim
from db.users import User
from pipeline.cli import main as pipeline_main

# Two Flickr8k-text datasets: "tiny-flickr" has one malformed line and one bad image name, "clean-flickr" none.
TINY = {
    "Flickr8k.token.txt": "1000268201_693b08cb0e.jpg#0\tA child climbing stairs .\n"
                          "1000268201_693b08cb0e.jpg#1\tA girl going into a wooden building .\n"
                          "1001773457_577c3a7d70.jpg#0\tA black dog and a spotted dog are fighting\n"
                          "this line is bad\n",
    "ExpertAnnotations.txt": "1000268201_693b08cb0e.jpg\t1000268201_693b08cb0e.jpg#0\t1\t2\t3\n"
                             "1001773457_577c3a7d70.jpg\t1000268201_693b08cb0e.jpg#1\t4\t4\t4\n"
                             "x.jpg\tx.jpg#0\t1\t1\t2\n",
    "CrowdFlowerAnnotations.txt": "1000268201_693b08cb0e.jpg\t1000268201_693b08cb0e.jpg#0\t0.333333\t1\t2\n",
}
CLEAN = {
    "Flickr8k.token.txt": "2000000000_abcdef.jpg#0\tA dog runs on the beach .\n",
    "ExpertAnnotations.txt": "2000000000_abcdef.jpg\t2000000000_abcdef.jpg#0\t4\t4\t3\n",
    "CrowdFlowerAnnotations.txt": "2000000000_abcdef.jpg\t2000000000_abcdef.jpg#0\t1.0\t3\t0\n",
}
EXPECTED_METRICS = {"Datasets": "2", "Images ok": "0", "Images missing": "3", "Images corrupt": "0",
                    "Captions": "4", "Ratings": "5"}


@pytest.fixture(scope="module")
def studio_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database built by the real pipeline CLI from the two tiny datasets above (once per module)."""
    root = tmp_path_factory.mktemp("dashboard")
    for name, files in (("tiny-flickr", TINY), ("clean-flickr", CLEAN)):
        (root / "data" / name).mkdir(parents=True)
        for file, text in files.items():
            (root / "data" / name / file).write_text(text, encoding="utf-8")
    db_path = root / "studio.duckdb"
    assert pipeline_main(["ingest", "--data", str(root / "data"), "--db", str(db_path), "--quiet"]) == 0
    return db_path


def run_app(monkeypatch: pytest.MonkeyPatch, db_path: Path | None, user: User | None = DATA):
    return open_app(monkeypatch, db_path, user)


def test_overview_page_shows_the_ingested_data(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    at = run_app(monkeypatch, studio_db)

    assert at.title[0].value == "With Sense studio"
    assert {m.label: m.value for m in at.metric} == EXPECTED_METRICS
    datasets = frame_with_column(at, "images_missing")
    assert list(datasets["dataset"]) == ["clean-flickr", "tiny-flickr"]
    # Twelve narrow count columns that fit a 1400 px window; the folder and run id are in the ingest runs table.
    assert list(datasets.columns) == ["dataset", "layout", "images", "images_ok", "images_missing", "images_corrupt",
                                      "captions", "expert_ratings", "crowd_ratings", "relevance_pairs",
                                      "object_labels", "rejects"]
    runs = frame_with_column(at, "status")
    assert set(runs["dataset"]) == {"clean-flickr", "tiny-flickr"} and set(runs["status"]) == {"ok"}

    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    bars = {(trace["name"], x, y) for trace in spec["data"]
            for x, y in zip(plotly_values(trace["x"]), plotly_values(trace["y"]))}
    assert bars == {("expected N columns (caption_id, text), found N", "tiny-flickr / Flickr8k.token.txt", 1),
                    ('image "…" is not a valid image name', "tiny-flickr / ExpertAnnotations.txt", 1)}


def test_file_table_follows_the_selected_dataset(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    at = run_app(monkeypatch, studio_db)
    select = at.selectbox(key="files_dataset")
    assert select.options == ["clean-flickr", "tiny-flickr"] and select.value == "clean-flickr"
    assert frame_with_column(at, "accepted")["rejected"].sum() == 0

    select.select("tiny-flickr")
    at.run()
    assert not at.exception
    files = frame_with_column(at, "accepted").set_index("file")
    assert files.loc["Flickr8k.token.txt"].to_dict() == {"read": 4, "accepted": 3, "rejected": 1}
    assert files.loc["ExpertAnnotations.txt"].to_dict() == {"read": 3, "accepted": 2, "rejected": 1}


def test_a_pipeline_stage_started_while_the_dashboard_is_up_gets_the_file(
        monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    """The dashboard holds the file between page runs (linger), yet a pipeline stage started now gets in: its
    claim file makes the shared database let go (db/shared.py), and the stage waits a bounded time for that."""
    run_app(monkeypatch, studio_db)
    assert context.shared_database(str(studio_db)).is_open  # still lingering after the page run
    stage = subprocess.run([sys.executable, "-m", "pipeline", "status", "--db", str(studio_db), "--wait", "30"],
                           capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    assert stage.returncode == 0, stage.stderr


def test_pages_say_a_pipeline_stage_is_writing(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    with pipeline_claim(studio_db, "train"):
        at = run_app(monkeypatch, studio_db)
    assert "`train`" in at.warning[0].value and "queued" in at.warning[0].value
    assert not at.metric
    assert not Path(str(studio_db) + ".pipeline").exists()


def test_a_database_held_by_another_process_shows_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    """A process without a claim (a DuckDB shell, say) holding the file: the page explains instead of failing."""
    path = tmp_path / "held.duckdb"
    Database(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
                               "sys.stdin.read(); c.close()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        at = run_app(monkeypatch, path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder exits when its stdin ends
        holder.wait(timeout=30)
    assert "Another process holds" in at.warning[0].value
    assert not at.metric


def test_missing_database_names_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = run_app(monkeypatch, tmp_path / "nothing.duckdb")
    message = at.info[0].value
    assert "python -m pipeline ingest" in message and "./studio demo" in message
    assert str(tmp_path / "nothing.duckdb") in message
    assert not at.metric and not at.dataframe


def test_default_database_is_studio_duckdb_in_the_working_directory(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    at = run_app(monkeypatch, None)
    assert "`studio.duckdb`" in at.info[0].value


def test_database_without_datasets_names_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    Database(tmp_path / "empty.duckdb").close()  # schema only
    at = run_app(monkeypatch, tmp_path / "empty.duckdb")
    assert "no datasets" in at.info[0].value and "python -m pipeline ingest" in at.info[0].value


def test_a_file_that_is_not_a_database_shows_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "junk.duckdb").write_text("not a database", encoding="utf-8")
    at = run_app(monkeypatch, tmp_path / "junk.duckdb")
    assert "junk.duckdb" in at.error[0].value


# ------------------------------------------------------------------------------------------------ overview.py
def test_db_path_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_DB", "/data/x.duckdb")
    assert context.db_path() == Path("/data/x.duckdb")
    monkeypatch.delenv("STUDIO_DB")
    assert context.db_path() == Path("studio.duckdb")
    monkeypatch.setenv("STUDIO_DB", "")
    assert context.db_path() == Path("studio.duckdb")


def test_how_to_build_passes_the_path_to_the_pipeline() -> None:
    assert "python -m pipeline ingest --db /d/s.duckdb" in context.how_to_build(Path("/d/s.duckdb"))


def test_load_snapshot_reads_everything(studio_db: Path) -> None:
    shared = SharedDatabase(studio_db, linger_seconds=0)
    with shared.use() as db:
        snapshot = overview.load_snapshot(db)
    assert list(snapshot.datasets["dataset"]) == ["clean-flickr", "tiny-flickr"]
    assert len(snapshot.runs) == 2 and snapshot.rejects["rejected"].sum() == 2
    assert snapshot.files["clean-flickr"][0] == 1 and snapshot.files["tiny-flickr"][0] == 2
    assert [f["file"] for f in snapshot.files["tiny-flickr"][1]][0] == "Flickr8k.token.txt"
    assert not shared.is_open  # no linger: closed when the block ended


def test_metric_totals_sum_over_datasets() -> None:
    frame = pd.DataFrame({"dataset": ["a", "b"], "images_ok": [1, 2], "images_missing": [3, 0],
                          "images_corrupt": [0, 1], "captions": [5, 6], "expert_ratings": [2, 0],
                          "crowd_ratings": [1, 4]})
    assert overview.metric_totals(frame) == {"datasets": 2, "images_ok": 3, "images_missing": 3,
                                             "images_corrupt": 1, "captions": 11, "expert_ratings": 2,
                                             "crowd_ratings": 5, "ratings": 7}
    assert set(overview.metric_totals(pd.DataFrame()).values()) == {0}


def test_rejects_figure_stacks_reason_classes_per_file() -> None:
    assert overview.rejects_figure(pd.DataFrame(columns=["dataset", "file", "reason_class", "rejected"])) is None
    rejects = pd.DataFrame({"dataset": ["a", "a", "b"], "file": ["f.txt", "f.txt", "f.txt"],
                            "reason_class": ["expected", "image", "expected"], "rejected": [3, 1, 2]})
    figure = overview.rejects_figure(rejects)
    assert figure is not None and figure.layout.barmode == "stack"
    bars = {(trace.name, x, y) for trace in figure.data for x, y in zip(trace.x, trace.y)}
    assert bars == {("expected", "a / f.txt", 3), ("image", "a / f.txt", 1), ("expected", "b / f.txt", 2)}


def test_file_counts_frame_has_fixed_columns() -> None:
    assert list(overview.file_counts_frame([]).columns) == overview.FILE_COLUMNS
    rows = [{"rejected": 1, "file": "t.txt", "accepted": 3, "read": 4}]
    assert overview.file_counts_frame(rows).to_dict("records") == [
        {"file": "t.txt", "read": 4, "accepted": 3, "rejected": 1}]


# ------------------------------------------------------------------------------------------- sign-in and roles
@pytest.fixture
def users_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "users.json"
    users.add(path, "rita", "product", "rita-secret-1")
    users.add(path, "mona", "moderator", "mona-secret-1")
    users.add(path, "sso@example.com", "data", None)
    monkeypatch.setenv(users.USERS_ENV, str(path))
    return path


def test_nobody_signed_in_sees_only_the_sign_in_form(monkeypatch: pytest.MonkeyPatch, studio_db: Path,
                                                     users_file: Path) -> None:
    at = run_app(monkeypatch, studio_db, user=None)
    assert at.title[0].value == "With Sense studio" and not at.metric and not at.dataframe
    at.text_input[0].input("rita")
    at.text_input[1].input("wrong password")
    at.button[0].click().run()
    assert at.error[0].value == "Unknown user name or wrong password."
    assert context.USER_KEY not in at.session_state

    at.text_input[1].input("rita-secret-1")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state[context.USER_KEY] == User("rita", "product")
    assert {m.label for m in at.metric} >= {"Datasets", "Ratings"}  # the Overview page
    assert "Signed in as **rita** (product)" in at.sidebar.caption[0].value

    at.sidebar.button[0].click().run()  # sign out
    assert context.USER_KEY not in at.session_state and not at.metric


def test_no_users_file_names_the_command(monkeypatch: pytest.MonkeyPatch, studio_db: Path, tmp_path: Path) -> None:
    monkeypatch.setenv(users.USERS_ENV, str(tmp_path / "none.json"))
    at = run_app(monkeypatch, studio_db, user=None)
    assert "python -m pipeline add-user" in at.info[0].value


def test_users_file_hashes_and_checks_passwords(users_file: Path) -> None:
    stored = json.loads(users_file.read_text())["users"]
    assert "rita-secret-1" not in users_file.read_text() and stored["rita"]["password"].startswith("pbkdf2_sha256$")
    known = users.load(users_file)
    assert users.authenticate(known, "rita", "rita-secret-1") == User("rita", "product")
    assert users.authenticate(known, "rita", "rita-secret-2") is None
    assert users.authenticate(known, "nobody", "rita-secret-1") is None
    assert users.authenticate(known, "sso@example.com", "") is None  # OIDC users have no password
    assert users.oidc_user(known, "sso@example.com") == User("sso@example.com", "data")
    assert users.oidc_user(known, "rita") is None
    assert oct(os.stat(users_file).st_mode & 0o777) == "0o600"
    with pytest.raises(users.UsersError, match="role must be one of"):
        users.add(users_file, "x", "admin", "long-enough-1")
    with pytest.raises(users.UsersError, match="at least 8"):
        users.add(users_file, "x", "data", "short")
    users_file.write_text('{"users": {"eve": {"role": "root"}}}')
    with pytest.raises(users.UsersError, match="eve"):
        users.load(users_file)


def test_add_user_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "u.json"
    assert pipeline_main(["add-user", "dana", "--role", "data", "--generate-password", "--users", str(path)]) == 0
    password = capsys.readouterr().out.strip().rsplit(" ", 1)[1]
    assert users.authenticate(users.load(path), "dana", password) == User("dana", "data")
    with pytest.raises(SystemExit):  # argparse refuses a role that does not exist
        pipeline_main(["add-user", "x", "--role", "root", "--oidc", "--users", str(path)])
    assert pipeline_main(["add-user", "sso@example.com", "--role", "moderator", "--oidc", "--users", str(path)]) == 0
    assert users.oidc_user(users.load(path), "sso@example.com") == User("sso@example.com", "moderator")


def test_each_role_gets_its_pages(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    """Every page renders for every role that has it (on a database with ratings but no photos or models)."""
    for user in (DATA, PRODUCT, MODERATOR):
        at = run_app(monkeypatch, studio_db, user)
        for page in ("home_page.py", "ratings_page.py", "models_page.py", "search_page.py"):
            at.switch_page(page).run()
            assert not at.exception, (user, page)
        if user.is_moderator:
            at.switch_page("minors_page.py").run()
            assert at.title[0].value == "Minors review"
        else:
            with pytest.raises(ValueError):
                at.switch_page("minors_page.py")


def test_rejects_browser_filters_by_file_and_text(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    at = run_app(monkeypatch, studio_db)
    rejects = frame_with_column(at, "raw")
    assert len(rejects) == 2 and set(rejects["file"]) == {"Flickr8k.token.txt", "ExpertAnnotations.txt"}
    assert "this line is bad" in set(rejects["raw"])
    at.selectbox(key="rejects_dataset").select("tiny-flickr").run()
    at.selectbox(key="rejects_file").select("ExpertAnnotations.txt").run()
    only = frame_with_column(at, "raw")
    assert list(only["line"]) == [3] and "not a valid image name" in only["reason"].iloc[0]
    at.selectbox(key="rejects_file").select("(all)").run()
    at.text_input(key="rejects_text").input("THIS LINE").run()
    assert list(frame_with_column(at, "raw")["raw"]) == ["this line is bad"]
    assert any("1 rejected lines match" in c.value for c in at.caption)
