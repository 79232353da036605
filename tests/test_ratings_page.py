"""The Ratings EDA page through AppTest on a database built by the real pipeline (ingest, then the minors filter
so one photo is visible), checked against SQL written here independently of db/eda.py; plus the agreement
statistics of dashboard/ratings.py against published examples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import pytest
from streamlit.testing.v1 import AppTest

from builders import IMG_A, IMG_B, IMG_C, flickr_dir, image_bytes
from dashboard import ratings
from dashboard_support import DATA, PRODUCT, frame_with_column, open_app, plotly_values
from db import database, eda, labels
from db.database import Database
from pipeline.cli import main as pipeline_main

PAGE = "ratings_page.py"
DOG, CAT = "2000000000_abcdef.jpg", "3000000000_abcdef.jpg"

# "alpha": photos A and B on disk; the minors filter clears B (dogs) and excludes A (a child). C has no file.
ALPHA_TOKENS = [
    f"{IMG_A}#0\tA child in a pink dress is climbing up a set of stairs .",
    f"{IMG_A}#1\tA girl going into a wooden building .",
    f"{IMG_B}#0\tA black dog and a spotted dog are fighting",
    f"{IMG_C}#0\tA little girl covered in paint sits in front of a painted rainbow .",
]
ALPHA_EXPERT = [f"{IMG_A}\t{IMG_B}#0\t1\t1\t2", f"{IMG_B}\t{IMG_B}#0\t4\t4\t3", f"{IMG_C}\t{IMG_B}#0\t1\t2\t2",
                f"{IMG_A}\t{IMG_A}#0\t4\t4\t4", f"{IMG_B}\t{IMG_A}#1\t1\t1\t1", f"{IMG_C}\t{IMG_A}#0\t3\t2\t4"]
ALPHA_CROWD = [f"{IMG_A}\t{IMG_A}#0\t1\t3\t0", f"{IMG_B}\t{IMG_B}#0\t0.666667\t2\t1",
               f"{IMG_C}\t{IMG_C}#0\t0.333333\t1\t2", f"{IMG_B}\t{IMG_A}#0\t0\t0\t3"]
# "beta": no photo files at all; a query whose caption line is absent (the cat's).
BETA_TOKENS = [f"{DOG}#0\tA dog runs on the beach ."]
BETA_EXPERT = [f"{DOG}\t{DOG}#0\t4\t4\t3", f"{CAT}\t{DOG}#0\t1\t1\t1", f"{DOG}\t{CAT}#0\t1\t2\t1"]
BETA_CROWD = [f"{DOG}\t{DOG}#0\t1.0\t3\t0"]

# The page's pairs, written independently of db/eda.py: every expert or crowd judgment, by dataset and expert sum.
PAIRS_SQL = """
    SELECT coalesce(e.dataset, c.dataset) AS dataset, e.expert_1 + e.expert_2 + e.expert_3 AS expert_sum,
           e.expert_1, e.expert_2, e.expert_3, c.share, r.relevance
    FROM expert_ratings e FULL JOIN crowd_ratings c USING (image_id, query_id)
    LEFT JOIN relevance r ON r.image_id = coalesce(e.image_id, c.image_id)
                         AND r.query_id = coalesce(e.query_id, c.query_id)
"""


@pytest.fixture(scope="module")
def studio_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two Flickr8k-text datasets ingested and filtered by the real CLI, once per module."""
    root = tmp_path_factory.mktemp("ratings")
    alpha = flickr_dir(root / "data" / "alpha", tokens=ALPHA_TOKENS, expert=ALPHA_EXPERT, crowd=ALPHA_CROWD)
    (alpha / "Images").mkdir()
    for name in (IMG_A, IMG_B):
        (alpha / "Images" / name).write_bytes(image_bytes())
    flickr_dir(root / "data" / "beta", tokens=BETA_TOKENS, expert=BETA_EXPERT, crowd=BETA_CROWD)
    db_path = root / "studio.duckdb"
    assert pipeline_main(["ingest", "--data", str(root / "data"), "--db", str(db_path), "--quiet"]) == 0
    assert pipeline_main(["filter", "--db", str(db_path), "--quiet"]) == 0
    with Database(db_path) as db:
        visible = {row[0] for row in db.fetch_all("SELECT id FROM visible_images")}
    assert visible == {f"alpha/{IMG_B}"}
    return db_path


def expected_headline(db_path: Path, dataset: str | None = None, sums: tuple[int, int] | None = None) -> dict:
    """The metrics row as the page must show it, from SQL on the same database (``sums``: expert-sum range)."""
    low, high = sums or (None, None)
    where = "WHERE (? IS NULL OR dataset = ?) AND (? IS NULL OR expert_sum BETWEEN ? AND ?)"
    params = [dataset, dataset, low, low, high]
    with Database(db_path) as db:
        pairs, experts, crowd, mean_expert, mean_share, mean_target = db.fetch_all(
            f"SELECT count(*), count(expert_sum), count(share), avg(expert_sum / 3.0), avg(share), avg(relevance) "
            f"FROM ({PAIRS_SQL}) {where}", params)[0]
        scores = db.fetch_df(f"SELECT expert_1, expert_2, expert_3 FROM ({PAIRS_SQL}) {where} "
                             "AND expert_sum IS NOT NULL", params)
    alpha = ratings.krippendorff_alpha(scores.to_numpy(dtype=float), "ordinal")

    def shown(value: float | None) -> str:
        return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"

    return {"Judged pairs": f"{pairs:,}", "Expert-judged": f"{experts:,}", "Crowd-judged": f"{crowd:,}",
            "Mean expert score": shown(mean_expert), "Mean crowd share": shown(mean_share),
            "Mean target": shown(mean_target), "Krippendorff's α (ordinal)": shown(alpha)}


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures by the widget key they were drawn with (element ids end with the key)."""
    return {chart.proto.id.rsplit("-", 1)[-1]: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}



def test_headline_tiles_come_at_most_four_to_a_row(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    """Seven tiles in one row cut their labels short at 1400 px ("Mean expert s..."): no headline tile gets a
    column narrower than a quarter of the row."""
    at = open_app(monkeypatch, studio_db, user=PRODUCT, page=PAGE)
    holding = [column for column in at.columns if column.metric]
    assert len(holding) == len(at.metric) == 7
    assert min(column.weight for column in holding) == pytest.approx(1 / 4)

# ------------------------------------------------------------------------------------------------------ page
def test_page_renders_filters_charts_and_headline_matching_sql(monkeypatch: pytest.MonkeyPatch,
                                                                studio_db: Path) -> None:
    at = open_app(monkeypatch, studio_db, user=PRODUCT, page=PAGE)

    assert at.title[0].value == "Ratings EDA"
    assert at.selectbox(key="eda_dataset").options == ["(all)", "alpha", "beta"]
    assert tuple(at.select_slider(key="eda_score").value) == (1.0, 4.0)
    assert metrics(at) == {**expected_headline(studio_db), "Judged pairs": "11", "Expert-judged": "9"}
    figures = charts(at)
    assert {"eda_expert_chart", "eda_crowd_chart", "eda_versus_chart", "eda_target_chart"} <= set(figures)
    assert "not three identified experts" not in " ".join(c.value for c in at.caption)  # alpha's C is unsorted

    assert sum(sum(plotly_values(trace["y"])) for trace in figures["eda_target_chart"]["data"]) == 11
    crowd = figures["eda_crowd_chart"]["data"][0]
    bars = dict(zip(crowd["x"], plotly_values(crowd["y"])))
    assert bars == {"0.0–0.1": 1, "0.3–0.4": 1, "0.6–0.7": 1, "0.9–1.0": 2}  # 1.0 lands in the last bin


def test_filters_change_the_numbers_as_sql_does(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    at = open_app(monkeypatch, studio_db, page=PAGE)
    at.selectbox(key="eda_dataset").select("alpha").run()
    assert not at.exception
    assert metrics(at) == expected_headline(studio_db, "alpha")

    at.select_slider(key="eda_score").set_range(4 / 3, 3.0).run()  # means 1.33..3.00: expert sums 4..9
    assert not at.exception
    narrowed = metrics(at)
    assert narrowed == expected_headline(studio_db, "alpha", (4, 9))
    assert narrowed["Judged pairs"] == "3" and narrowed["Crowd-judged"] == "0"  # crowd-only pairs drop out
    assert narrowed["Mean crowd share"] == "n/a"

    at.selectbox(key="eda_dataset").select("beta").run()
    at.select_slider(key="eda_score").set_range(2.0, 3.0).run()
    assert not at.exception and not at.metric
    assert "No judged pair matches these filters" in at.info[0].value


def test_agreement_table_and_sorted_columns_note(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    at = open_app(monkeypatch, studio_db, page=PAGE)
    at.selectbox(key="eda_dataset").select("beta").run()
    table = frame_with_column(at, "statistic").set_index("statistic")["value"]
    scores = np.array([[4, 4, 3], [1, 1, 1], [1, 2, 1]], dtype=float)
    assert table["Krippendorff's α, interval"] == round(ratings.krippendorff_alpha(scores, "interval"), 3)
    assert table["All three experts agree"] == round(1 / 3, 3)
    assert table["At least two agree"] == 1.0


def test_query_drilldown_shows_scores_and_only_visible_photos(monkeypatch: pytest.MonkeyPatch,
                                                             studio_db: Path) -> None:
    at = open_app(monkeypatch, studio_db, page=PAGE)
    at.selectbox(key="eda_dataset").select("alpha").run()
    at.selectbox(key="eda_query").select(f"alpha/{IMG_A}#0").run()
    assert not at.exception
    by_query, by_photo = at.tabs
    pairs = by_query.dataframe[0].value.set_index("image_id")
    assert list(pairs.index) == [f"alpha/{IMG_A}", f"alpha/{IMG_C}", f"alpha/{IMG_B}"]  # best target first
    assert pairs.loc[f"alpha/{IMG_A}", ["expert_1", "expert_2", "expert_3"]].tolist() == [4, 4, 4]
    assert pairs.loc[f"alpha/{IMG_A}", "crowd_share"] == 1.0
    assert math.isnan(pairs.loc[f"alpha/{IMG_B}", "expert_mean"]) and pairs.loc[f"alpha/{IMG_B}", "crowd_share"] == 0

    assert len(by_query.image) == 1 and IMG_B in by_query.image[0].captions[0]  # B cleared; A excluded; C no file
    unavailable = [c.value for c in by_query.caption if "photo not available" in c.value]
    assert len(unavailable) == 2 and any(IMG_A in c for c in unavailable) and any(IMG_C in c for c in unavailable)


def test_photo_drilldown_lists_queries_and_hides_a_photo_the_filter_excluded(
        monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    at = open_app(monkeypatch, studio_db, page=PAGE)
    at.selectbox(key="eda_image").select(f"alpha/{IMG_A}").run()
    by_photo = at.tabs[1]
    queries = by_photo.dataframe[0].value
    assert set(queries["query_text"]) == {ALPHA_TOKENS[0].split("\t")[1], ALPHA_TOKENS[2].split("\t")[1]}
    assert not by_photo.image and by_photo.caption[0].value == "photo not available"

    at.selectbox(key="eda_image").select(f"alpha/{IMG_B}").run()
    assert len(at.tabs[1].image) == 1

    at.selectbox(key="eda_image").select(f"beta/{CAT}").run()  # a query whose caption the source lacks
    texts = at.tabs[1].dataframe[0].value
    assert texts["query_id"].tolist() == [f"beta/{DOG}#0"]
    at.selectbox(key="eda_dataset").select("beta").run()
    assert "(text absent)" in at.selectbox(key="eda_query").format_func(f"beta/{CAT}#0")


def test_a_label_from_live_search_shows_up(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    at = open_app(monkeypatch, studio_db, page=PAGE)
    assert any("No labels yet" in i.value for i in at.info)
    assert "Labels: offensive" not in metrics(at)

    with Database(studio_db) as db, db.write() as cur:
        labels.add(cur, user="dana", query="two dogs fighting", encoder="test", write_key="eda-test",
                   flag=labels.Flag(f"alpha/{IMG_B}", rank=1, score=0.9, verdict="offensive"))
    at.run()
    assert not at.exception
    assert metrics(at)["Labels: offensive"] == "1" and metrics(at)["Labels: relevant"] == "0"
    recent = frame_with_column(at, "verdict")
    assert recent[["query", "image_id", "verdict"]].values.tolist() == [["two dogs fighting", f"alpha/{IMG_B}",
                                                                        "offensive"]]
    at.selectbox(key="eda_dataset").select("beta").run()
    assert any("No labels yet" in i.value for i in at.info)  # the label is on an alpha photo


def test_empty_database_names_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    Database(tmp_path / "empty.duckdb").close()
    at = open_app(monkeypatch, tmp_path / "empty.duckdb", user=DATA, page=PAGE)
    assert "python -m pipeline ingest" in at.info[0].value
    assert not at.metric and not at.get("plotly_chart")
    assert "No labels yet" in at.info[1].value


def test_a_page_run_reads_aggregates_and_single_pages_never_the_rating_tables(
        monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    """Pages that scale: the charts come from the cube, the pickers and lists from one LIMITed page, the drill-downs
    from one query's or photo's pairs; no statement joins or scans the rating tables at page time."""
    at = open_app(monkeypatch, studio_db)  # the Overview page first; then only what the Ratings page runs
    seen: list[str] = []
    check = database.check_read_only
    monkeypatch.setattr(database, "check_read_only", lambda sql: (seen.append(sql), check(sql))[1])
    at.switch_page(PAGE).run()
    assert not at.exception and at.title[0].value == "Ratings EDA" and seen
    raw = [sql for sql in seen if any(t in sql for t in ("expert_ratings", "crowd_ratings", " relevance"))]
    assert raw == []
    for table in ("rated_queries", "rated_images"):
        reads = [sql for sql in seen if table in sql]
        assert reads and all("LIMIT" in sql for sql in reads), table
    assert all("GROUP BY" in sql or "LIMIT" in sql for sql in seen if "FROM labels" in sql)
    assert any("FROM rating_cube" in sql for sql in seen)


def test_pickers_search_in_sql_and_list_one_page(monkeypatch: pytest.MonkeyPatch, studio_db: Path) -> None:
    at = open_app(monkeypatch, studio_db, page=PAGE)
    assert at.selectbox(key="eda_query").value == f"alpha/{IMG_B}#0"  # by text: "A black dog ..." comes first
    at.text_input(key="eda_query_search").input("DOG").run()
    assert not at.exception
    assert at.selectbox(key="eda_query").options == ["A black dog and a spotted dog are fighting · 3 pairs",
                                                     "A dog runs on the beach . · 2 pairs"]
    at.text_input(key="eda_image_search").input("3000000000").run()
    assert at.selectbox(key="eda_image").options == [f"beta/{CAT} · 1 pairs"]
    at.text_input(key="eda_image_search").input("no such photo").run()
    assert "No judged photo matches." in [i.value for i in at.tabs[1].info]

    with Database(studio_db) as db:
        everything = eda.find_queries(db, None, None, limit=100)
        assert eda.find_queries(db, None, None, limit=2).equals(everything.head(2))  # the rank's first page
        assert eda.find_queries(db, "beta", None)["query_id"].tolist() == [f"beta/{DOG}#0", f"beta/{CAT}#0"]
        assert eda.find_images(db, "alpha", None, limit=2)["image_id"].tolist() == [f"alpha/{IMG_A}",
                                                                                    f"alpha/{IMG_B}"]
        total, first = eda.pairs_of_query(db, eda.PairFilter(), f"alpha/{IMG_B}#0", limit=2)
        assert (total, len(first)) == (3, 2) and first["image_id"].tolist() == [f"alpha/{IMG_B}", f"alpha/{IMG_C}"]
        total, narrowed = eda.pairs_of_query(db, eda.PairFilter(score_range=(3.0, 4.0)), f"alpha/{IMG_B}#0")
        assert (total, narrowed["image_id"].tolist()) == (1, [f"alpha/{IMG_B}"])


def test_labels_are_counted_and_paged_in_sql(tmp_path: Path, studio_db: Path) -> None:
    path = tmp_path / "labels.duckdb"
    path.write_bytes(studio_db.read_bytes())
    with Database(path) as db:
        with db.write() as cur:
            for number in range(5):
                labels.add(cur, user="dana", query=f"q{number}", encoder="test", write_key=f"k{number}",
                           flag=labels.Flag(f"alpha/{IMG_B}", rank=1, score=0.5, verdict="relevant"))
            labels.add(cur, user="dana", query="gone", encoder="test", write_key="k-gone",
                       flag=labels.Flag("nowhere/photo.jpg", rank=1, score=0.5, verdict="offensive"))
        counts = labels.verdict_counts(db)
        assert counts.values.tolist() == [["(unknown photo)", "offensive", 1], ["alpha", "relevant", 5]]
        assert labels.verdict_counts(db, "alpha")["labels"].sum() == 5
        assert labels.verdict_counts(db, "beta").empty
        pages = [eda.labels_page(db, "alpha", 2, offset) for offset in (0, 2, 4)]
        assert [page["query"].tolist() for page in pages] == [["q4", "q3"], ["q2", "q1"], ["q0"]]  # newest first


# ------------------------------------------------------------------------------------------------- statistics
NAN = float("nan")
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12 units, values 1..5,
# with missing values; published alpha nominal 0.743, ordinal 0.815, interval 0.849. Rows: units.
KRIPPENDORFF_2011 = np.array([
    [1, 1, NAN, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
    [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [NAN, 5, 5, 5], [NAN, NAN, 1, 1], [NAN, 3, NAN, NAN]])
# Fleiss (1971) as worked in Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters, 5 categories; kappa 0.210.
FLEISS_EXAMPLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])


@pytest.mark.parametrize(("metric", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_krippendorffs_published_example(metric: str, published: float) -> None:
    assert round(ratings.krippendorff_alpha(KRIPPENDORFF_2011, metric), 3) == published


def test_alpha_edge_cases() -> None:
    perfect = np.array([[1, 1, 1], [3, 3, 3], [4, 4, 4], [2, 2, NAN]])
    assert all(ratings.krippendorff_alpha(perfect, metric) == 1.0 for metric in ratings.METRICS)
    assert math.isnan(ratings.krippendorff_alpha(np.full((3, 3), 2.0)))  # no variation: undefined
    assert math.isnan(ratings.krippendorff_alpha(np.array([[1, NAN], [NAN, 2]])))  # no unit rated twice
    assert ratings.krippendorff_alpha(np.array([[1, 2], [2, 1]]), "nominal") < 0  # systematic disagreement
    with pytest.raises(ValueError, match="metric must be one of"):
        ratings.krippendorff_alpha(perfect, "ratio")


def test_weighted_units_equal_repeated_units() -> None:
    """The page computes alpha and kappa from distinct score triples weighted by their counts."""
    triples, counts = np.array([[1, 1, 2], [4, 4, 3], [2, 3, 4], [1, 1, 1]], dtype=float), np.array([5, 2, 1, 7])
    repeated = np.repeat(triples, counts, axis=0)
    for metric in ratings.METRICS:
        assert ratings.krippendorff_alpha(triples, metric, counts) == pytest.approx(
            ratings.krippendorff_alpha(repeated, metric))
    category_counts = np.stack([(triples == score).sum(axis=1) for score in ratings.SCORES], axis=1)
    repeated_counts = np.stack([(repeated == score).sum(axis=1) for score in ratings.SCORES], axis=1)
    assert ratings.fleiss_kappa(category_counts, counts) == pytest.approx(ratings.fleiss_kappa(repeated_counts))


def test_fleiss_kappa_matches_the_worked_example_and_edge_cases() -> None:
    assert round(ratings.fleiss_kappa(FLEISS_EXAMPLE), 3) == 0.210
    assert ratings.fleiss_kappa(np.array([[3, 0], [0, 3]])) == 1.0
    assert math.isnan(ratings.fleiss_kappa(np.array([[3, 0], [3, 0]])))
    with pytest.raises(ValueError, match="same number"):
        ratings.fleiss_kappa(np.array([[3, 0], [1, 1]]))


def test_agreement_of_score_patterns_flags_sorted_columns() -> None:
    import pandas as pd

    patterns = pd.DataFrame({"expert_1": [1, 2, 4], "expert_2": [1, 3, 4], "expert_3": [2, 3, 4], "pairs": [3, 1, 6]})
    result = ratings.agreement(patterns)
    assert result is not None and result.pairs == 10 and result.columns_sorted
    assert result.all_three_agree == 0.6 and result.two_agree == 1.0
    assert not ratings.agreement(patterns.assign(expert_1=[3, 2, 4])).columns_sorted
    assert ratings.agreement(patterns.head(0)) is None


def test_bars_draw_what_plotly_express_drew() -> None:
    """ratings.bars replaced px.bar (~60 ms a chart): the same traces in the same order, stacking and titles."""
    frame = pd.DataFrame({"verdict": ["offensive", "relevant", "relevant", "not_relevant"],
                          "dataset": ["b", "a", "zeta", "a"], "labels": [1, 2, 3, 4], "votes": [5, 6, 7, 8]})
    order = {"verdict": ["relevant", "not_relevant", "offensive"], "dataset": ["zeta", "a"]}
    titles = {"labels": "labels given", "dataset": "photo dataset"}
    new = ratings.bars(frame, "verdict", "labels", color="dataset", order=order, titles=titles, hover="votes",
                       barmode="stack", title="t")
    old = px.bar(frame, x="verdict", y="labels", color="dataset", category_orders=order, labels=titles,
                 hover_data=["votes"], barmode="stack", title="t")
    assert [(t.name, list(t.x), list(t.y), list(t.customdata[:, 0])) for t in new.data] == \
        [(t.name, list(t.x), list(t.y), list(t.customdata[:, 0])) for t in old.data] != []
    assert [t.name for t in new.data] == ["zeta", "a", "b"]  # ordered ones first, then the rest as they come
    for attribute in ("barmode", "title.text", "xaxis.title.text", "yaxis.title.text", "legend.title.text",
                      "xaxis.categoryarray"):
        assert new.layout[attribute] == old.layout[attribute], attribute
