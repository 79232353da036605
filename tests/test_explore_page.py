"""The Explore page through AppTest: the map draws visible photos only (an excluded one never, a withdrawn one gone
on the next run), the four colourings, the clicked photo with its captions, the stale-map warning, the labels
tables by reviewer, verdict and query, and the empty states naming the command to run. One real-browser test clicks
a point of the WebGL map (AppTest cannot) and sees its photo; screenshots in test-artifacts/explore/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from browser_support import ARTIFACTS, browser, serve, sign_in, VIEWPORT
from dashboard import explore
from dashboard_support import DATA, MODERATOR, PRODUCT, frame_with_column, open_app
from db import explore as store, labels, users
from db.database import Database
from fakes import ColourEncoder
from pipeline.cli import main as pipeline_main
from pipeline.embed import embed
from pipeline.minors import moderation
from pipeline.project import project
from test_search_objects import perceive_rows
from test_search_page import CHILD_PHOTO, colour_photos

ENCODER = "colour-test"
PAGE = "explore_page.py"
LABELS = [("ann", "red wall", "c/2", "relevant"), ("ann", "red wall", "c/5", "relevant"),
          ("ann", "blue room", "c/2", "offensive"), ("bob", "red wall", "c/3", "not_relevant"),
          ("bob", "boy", CHILD_PHOTO, "relevant")]


def build(root: Path, *, mapped: bool = True, labelled: bool = True, filtered: bool = True) -> Path:
    path = root / "studio.duckdb"
    assert pipeline_main(["ingest", "--data", str(colour_photos(root / "c")), "--db", str(path), "--quiet"]) == 0
    if filtered:
        assert pipeline_main(["filter", "--db", str(path), "--quiet"]) == 0
    with Database(path) as db:
        embed(db, ColourEncoder(), workers=0, quiet=True)
        if mapped:
            project(db, ENCODER, quiet=True)
        # detected: a dog and two people in c/6 (people win: more boxes), a cat below the cut-off in c/8
        perceive_rows(db, {CHILD_PHOTO: [("cat", 0.9)], "c/6": [("dog", 0.9), ("person", 0.8), ("person", 0.7)],
                           "c/12": [("dog", 0.8)], "c/8": [("cat", 0.1)], "c/3": []})
        with db.write() as cur:
            cur.executemany("INSERT INTO objects VALUES ('c', ?, ?, ?, ?)",
                            [["c/4", "dog", "animal", 2], ["c/4", "person", "person", 1],
                             ["c/7", "person", "person", 1], [CHILD_PHOTO, "cat", "animal", 1]])
            for user, query, image_id, verdict in LABELS if labelled else []:
                labels.add(cur, user=user, query=query, encoder=ENCODER, flag=labels.Flag(image_id, 1, 0.5, verdict))
    return path


@pytest.fixture(scope="module")
def explore_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("explore"))


def visible_ids(path: Path) -> set[str]:
    with Database(path) as db:
        return {row[0] for row in db.fetch_all("SELECT id FROM visible_images")}


def map_traces(at) -> list[dict]:
    charts = {c.proto.id.rsplit("-", 1)[-1]: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    return charts["explore_map"]["data"]


def drawn(at) -> dict[str, str]:
    """photo id -> the legend entry (colour group) it is drawn in."""
    return {image_id: trace["name"] for trace in map_traces(at) for image_id in trace["customdata"]}


def test_the_map_draws_every_visible_photo_and_never_an_excluded_one(monkeypatch, explore_db: Path) -> None:
    at = open_app(monkeypatch, explore_db, DATA, page=PAGE)
    points = drawn(at)
    assert set(points) == visible_ids(explore_db) and len(points) == 23 and CHILD_PHOTO not in points
    assert all(trace["type"] == "scattergl" for trace in map_traces(at))
    assert "Showing all 23 visible photos" in " ".join(c.value for c in at.caption)
    assert at.selectbox(key="explore_encoder").options == [f"{ENCODER} (24 vectors)"]


def test_colour_by_dataset_cluster_verdict_or_coco_object_annotated_or_detected(monkeypatch, explore_db: Path) -> None:
    at = open_app(monkeypatch, explore_db, DATA, page=PAGE)
    assert at.radio(key="explore_colour").options == list(explore.COLOUR_BY.values())
    assert set(drawn(at).values()) == {"c (23)"}
    at.radio(key="explore_colour").set_value("cluster").run()
    with Database(explore_db) as db:
        clusters = dict(db.fetch_all("SELECT image_id, cluster FROM photo_map"))
    assert {i: name.split(" (")[0] for i, name in drawn(at).items()} == {
        i: f"cluster {c}" for i, c in clusters.items() if i != CHILD_PHOTO}
    at.radio(key="explore_colour").set_value("verdict").run()
    points = drawn(at)  # c/2's latest verdict is "offensive"; the excluded photo's label is never drawn
    assert (points["c/2"], points["c/5"], points["c/3"], points["c/6"]) == (
        "offensive (1)", "relevant (1)", "not_relevant (1)", "(no label) (20)")
    at.radio(key="explore_colour").set_value("object").run()
    points = drawn(at)
    assert (points["c/4"], points["c/7"], points["c/6"]) == ("dog (1)", "person (1)", "(no label) (21)")
    assert not any(name.startswith("cat") for name in points.values())
    at.radio(key="explore_colour").set_value("detected").run()
    points = drawn(at)
    assert (points["c/6"], points["c/12"], points["c/8"], points["c/3"]) == (
        "person (1)", "dog (1)", "(no label) (21)", "(no label) (21)")
    assert not any(name.startswith("cat") for name in points.values())
    assert not at.exception


def test_past_the_cap_a_fixed_sample_of_visible_photos_is_drawn_and_the_page_says_so(
        monkeypatch, explore_db: Path) -> None:
    monkeypatch.setattr(explore, "MAX_POINTS", 10)
    at = open_app(monkeypatch, explore_db, DATA, page=PAGE)
    first = drawn(at)
    assert len(first) == 10 and set(first) < visible_ids(explore_db)
    assert "Showing a fixed sample of 10 of the 23 visible photos" in " ".join(c.value for c in at.caption)
    at.radio(key="explore_colour").set_value("cluster").run()
    assert set(drawn(at)) == set(first)  # the same photos on every run


def test_a_clicked_point_shows_its_photo_and_captions_and_an_excluded_id_shows_nothing(
        monkeypatch, explore_db: Path) -> None:
    at = open_app(monkeypatch, explore_db, PRODUCT, page=PAGE)
    assert not at.get("image") and "Click a point to see its photo." in [c.value for c in at.caption]
    # AppTest cannot click a plotly point: the page keeps the clicked id (explore.picked_id) in session state.
    at.session_state["explore_photo"] = "c/5"
    at.run()
    assert "**c/5**" in [m.value for m in at.markdown]
    assert len(at.get("image")) == 1 and "A blue wall, photo 5." in [c.value for c in at.caption]
    at.session_state["explore_photo"] = CHILD_PHOTO
    at.run()
    assert not at.get("image") and "This photo is no longer shown (not visible)." in [c.value for c in at.caption]
    assert not any("boy" in c.value for c in at.caption)


def test_picked_id_reads_the_clicked_point_of_plotly_selection_state() -> None:
    event = {"selection": {"points": [{"curve_number": 1, "point_index": 3, "customdata": "c/9"}],
                           "point_indices": [3], "box": [], "lasso": []}}
    assert explore.picked_id(event) == "c/9"
    event["selection"]["points"][0]["customdata"] = ["c/8"]
    assert explore.picked_id(event) == "c/8"
    assert explore.picked_id({"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}) is None
    assert explore.picked_id(None) is None


def test_labels_by_reviewer_verdict_and_query(monkeypatch, explore_db: Path) -> None:
    at = open_app(monkeypatch, explore_db, DATA, page=PAGE)
    assert [m.value for m in at.metric] == ["5", "2", "3"]
    reviewers = frame_with_column(at, "reviewer").set_index("reviewer")
    assert reviewers.loc["ann"].to_dict() == {"relevant": 2, "not_relevant": 0, "offensive": 1, "total": 3}
    assert reviewers.loc["bob"].to_dict() == {"relevant": 1, "not_relevant": 1, "offensive": 0, "total": 2}
    queries = frame_with_column(at, "query")
    assert queries["query"].tolist() == ["red wall", "blue room", "boy"] and queries["total"].tolist() == [3, 1, 1]
    verdicts = frame_with_column(at, "verdict").set_index("verdict")["total"].to_dict()
    assert verdicts == {"relevant": 3, "not_relevant": 1, "offensive": 1}


def test_a_withdrawn_photo_leaves_the_map_and_new_vectors_make_it_stale(monkeypatch, tmp_path: Path) -> None:
    path = build(tmp_path, labelled=False)
    at = open_app(monkeypatch, path, MODERATOR, page=PAGE)
    assert "c/6" in drawn(at) and not at.warning
    with Database(path) as db:
        moderation.decide(db, ["c/6"], "excluded", moderator="mona", reason="test")
        with db.write() as cur:
            cur.execute("UPDATE embeddings SET created = now() WHERE image_id = 'c/9'")  # re-embedded since
    at.run()
    assert "c/6" not in drawn(at) and len(drawn(at)) == 22
    assert "Run `python -m pipeline project --encoder colour-test`" in at.warning[0].value
    assert "No labels yet" in " ".join(i.value for i in at.info)


def test_without_a_map_the_page_names_the_command(monkeypatch, tmp_path: Path) -> None:
    path = build(tmp_path, mapped=False)
    at = open_app(monkeypatch, path, DATA, page=PAGE)
    assert f"Run `python -m pipeline project --db {path}`" in at.info[0].value
    assert "explore_map" not in [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")]
    with Database(path) as db:
        assert store.map_infos(db) == []


# The page's WebGL map in the browser: every drawn point's photo id and its position on the screen.
POINTS_ON_SCREEN = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  const box = gd.querySelector('.draglayer .nsewdrag').getBoundingClientRect();
  const layout = gd._fullLayout;
  return gd._fullData.flatMap(trace => trace.customdata.map((id, i) => (
    {id: id, x: box.left + layout.xaxis.l2p(trace.x[i]), y: box.top + layout.yaxis.l2p(trace.y[i])})));
}"""


def test_a_click_on_a_point_in_the_browser_shows_its_photo(tmp_path: Path, explore_db: Path) -> None:
    from playwright.sync_api import expect

    artifacts = ARTIFACTS / "explore"
    users.add(tmp_path / "users.json", "dana", "data", "explorer-secret-1")
    with serve(explore_db, tmp_path / "users.json", artifacts) as url, browser() as chromium:
        page = chromium.new_page(viewport=VIEWPORT)
        sign_in(page, url, "dana", "explorer-secret-1")
        page.get_by_role("link", name="Explore").click()
        expect(page.get_by_text("Click a point to see its photo.")).to_be_visible()
        # every trace drawn with its points: under load the chart can be caught mid-render, a trace without its
        # customdata yet (a fresh-clone CI run failed reading it once)
        page.wait_for_function("() => { const traces = document.querySelector('.js-plotly-plot')?._fullData; "
                               "return traces?.length > 0 && traces.every(t => t.customdata && t.x && t.y); }")
        points = page.evaluate(POINTS_ON_SCREEN)
        assert len(points) == 23 and CHILD_PHOTO not in {p["id"] for p in points}
        # photos of one colour share one spot (their vectors are equal): the click shows one of those at that spot
        target = points[0]
        there = {p["id"] for p in points if abs(p["x"] - target["x"]) + abs(p["y"] - target["y"]) < 3}
        page.mouse.move(target["x"], target["y"])
        page.mouse.click(target["x"], target["y"])
        shown = page.locator("[data-testid='stMarkdownContainer'] strong", has_text=re.compile(r"^c/[0-9]+$"))
        expect(shown).to_be_visible()
        assert shown.inner_text() in there
        expect(page.get_by_text(f"photo {shown.inner_text().split('/')[1]}.", exact=False)).to_be_visible()
        expect(page.locator("[data-testid='stImage'] img")).to_have_count(1)
        artifacts.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=artifacts / "clicked.png")


def test_before_the_minors_filter_no_photo_is_drawn_and_the_page_names_the_filter(monkeypatch, tmp_path: Path) -> None:
    path = build(tmp_path, filtered=False)
    with Database(path) as db:
        assert len(db.fetch_all("SELECT * FROM photo_map")) == 24  # mapped, but none visible yet
    at = open_app(monkeypatch, path, DATA, page=PAGE)
    assert "explore_map" not in [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")]
    assert f"`python -m pipeline filter --db {path}`" in " ".join(i.value for i in at.info)
