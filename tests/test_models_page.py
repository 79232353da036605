"""The Model comparison page through AppTest on a database with real runs (two targets trained with the colour
encoder), the re-ranker choice as a journalled write, and comparison.py on small frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from builders import flickr_dir, ingest
from dashboard import comparison
from dashboard_support import DATA, MODERATOR, PRODUCT, frame_with_column, open_app, plotly_values
from db import embeddings
from db import models as model_store
from db.database import Database
from fakes import ColourEncoder
from pipeline import train
from pipeline.embed import embed
from test_train import colour_coco

COCO_TARGET, EXPERT_TARGET = "c/category-pairs", "f/expert"
FOLDS = 3
PAGE = "models_page.py"


def expert_flickr(root: Path) -> Path:
    """Twelve captioned Flickr photos, each rated by three experts against three captions: 36 expert pairs."""
    colours = ["red", "green", "blue"]
    names = [f"{1000000000 + i}_{i:010x}.jpg" for i in range(12)]
    tokens = [f"{name}#{k}\tA {colours[i % 3]} scene number {i} take {k} ." for i, name in enumerate(names)
              for k in range(2)]
    expert = [f"{name}\t{names[(i + d) % 12]}#0\t{1 + (i + d) % 4}\t{1 + (i + 2 * d) % 4}\t{1 + (i * d) % 4}"
              for i, name in enumerate(names) for d in range(3)]
    return flickr_dir(root, tokens=tokens, expert=expert, crowd=[])


@pytest.fixture(scope="module")
def models_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """COCO category pairs (image and caption features) and Flickr expert pairs (captions), each with the
    constant, zero-shot and ridge models over three folds, plus two retrieval metrics; built once."""
    root = tmp_path_factory.mktemp("models")
    path = root / "studio.duckdb"
    encoder = ColourEncoder()
    with Database(path) as db:
        ingest(db, colour_coco(root / "c"))
        ingest(db, expert_flickr(root / "f"))
        embed(db, encoder, workers=0, quiet=True)
        for kind, sets in (("category-pairs", ["image", "captions"]), ("expert", ["captions"])):
            prepared = train.prepare(db, encoder, target=kind, feature_set_names=sets, folds=FOLDS)
            train.train(db, encoder, prepared, ["zero-shot", "ridge"], artifacts=root / "models", threads=1,
                        quiet=True)
        with db.write() as cur:
            embeddings.save_metrics(cur, "colour-test", "coco-caption", {"recall@1": 0.25, "mrr": 0.5}, "c@1", {})
    return path


def runs_of(path: Path) -> pd.DataFrame:
    with Database(path) as db:
        return model_store.runs(db)


def run_id(path: Path, target: str, feature_set: str, model: str) -> str:
    runs = runs_of(path)
    return runs.loc[(runs["target"] == target) & (runs["feature_set"] == feature_set) & (runs["model"] == model),
                    "id"].iloc[0]


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def reranker_setting(path: Path) -> tuple[str | None, dict | None]:
    """The chosen run and the raw settings value (read-write: this process already holds the file so)."""
    with Database(path) as db:
        raw = db.fetch_all("SELECT value FROM settings WHERE key = ?", [model_store.RERANKER_KEY])
        return model_store.reranker(db), json.loads(raw[0][0]) if raw else None


# ------------------------------------------------------------------------------------------------------ page
def test_page_shows_runs_widgets_and_retrieval_metrics(monkeypatch: pytest.MonkeyPatch, models_db: Path) -> None:
    at = open_app(monkeypatch, models_db, page=PAGE)
    assert at.title[0].value == "Model comparison"
    runs = frame_with_column(at, "uses_captions")
    assert len(runs) == len(runs_of(models_db)) == 8
    captions = runs[runs["uses_captions"]]
    assert set(captions["feature_set"]) == {"captions"} and len(captions) == 4
    assert {"r2", "mse", "spearman", "tau_c_expert_1"} <= set(runs.columns)
    for key in ("models_target", "models_metric", "models_run", "models_reranker"):
        assert at.selectbox(key=key) is not None
    assert at.button(key="models_reranker_apply") is not None
    assert set(at.selectbox(key="models_target").options) == {COCO_TARGET, EXPERT_TARGET}
    assert at.selectbox(key="models_metric").options[:3] == ["r2", "mse", "spearman"]
    retrieval = frame_with_column(at, "recall@1")
    assert retrieval.to_dict("records")[0] | {"created": None} == {
        "encoder_name": "colour-test", "encoder": "colour-test", "data_version": "c@1", "recall@1": 0.25, "mrr": 0.5,
        "created": None}
    assert list(runs.columns[:3]) == ["run", "target", "r2"]  # the metrics come right after the run's name
    assert runs["serves_uncaptioned"].tolist() == (~runs["uses_captions"]).tolist()


def test_page_names_the_best_run_per_target_and_feature_set(monkeypatch: pytest.MonkeyPatch,
                                                             models_db: Path) -> None:
    at = open_app(monkeypatch, models_db, page=PAGE)
    best = frame_with_column(at, "best_model")
    runs = runs_of(models_db)
    assert sorted(zip(best["target"], best["feature_set"])) == [
        (COCO_TARGET, "captions"), (COCO_TARGET, "image"), (EXPERT_TARGET, "captions")]
    for row in best.itertuples():
        mine = runs[(runs["target"] == row.target) & (runs["feature_set"] == row.feature_set)]
        r2 = {model: json.loads(metrics)["r2"] for model, metrics in zip(mine["model"], mine["metrics"])}
        winner = max(r2, key=r2.get)
        assert row.best_model == comparison.model_label(winner) and row.r2 == pytest.approx(r2[winner])
        assert row.ahead_by == pytest.approx(r2[winner] - min(r2.values()))  # two candidates: zero-shot, ridge
        assert row.serves_uncaptioned == (row.feature_set == "image")


def test_bars_are_fold_means_with_fold_std(monkeypatch: pytest.MonkeyPatch, models_db: Path) -> None:
    at = open_app(monkeypatch, models_db, page=PAGE)
    at.selectbox(key="models_target").select(COCO_TARGET)
    at.selectbox(key="models_metric").select("mse")
    at.run()
    assert not at.exception
    runs = runs_of(models_db)
    expected = {}
    for run in runs[runs["target"] == COCO_TARGET].itertuples():
        values = pd.Series([fold["mse"] for fold in json.loads(run.fold_metrics)])
        assert len(values) == FOLDS
        expected[(run.feature_set, run.model)] = (values.mean(), values.std())
    bars = charts(at)[0]
    got = {(trace["name"], model): (mean, std) for trace in bars["data"]
           for model, mean, std in zip(plotly_values(trace["x"]), plotly_values(trace["y"]),
                                       plotly_values(trace["error_y"]["array"]))}
    assert got.keys() == expected.keys() and len(got) == 5  # constant/none + {zero-shot, ridge} x {image, captions}
    for key, (mean, std) in expected.items():
        assert got[key] == pytest.approx((mean, std)), key


def test_predicted_vs_actual_has_every_out_of_fold_pair(monkeypatch: pytest.MonkeyPatch, models_db: Path) -> None:
    ridge = run_id(models_db, COCO_TARGET, "image", "ridge")
    at = open_app(monkeypatch, models_db, page=PAGE)
    at.selectbox(key="models_target").select(COCO_TARGET).run()
    at.selectbox(key="models_run").select(ridge).run()
    assert not at.exception
    with Database(models_db) as db:
        stored = int(db.fetch_all("SELECT count(*) FROM model_predictions WHERE run_id = ?", [ridge])[0][0])
    scatter = next(trace for spec in charts(at) for trace in spec["data"] if trace.get("name") == "pairs")
    assert len(plotly_values(scatter["x"])) == len(plotly_values(scatter["y"])) == stored == 300
    # COCO pairs have no expert ratings: a caption explains the missing residual chart.
    assert any("no residual by expert score" in c.value for c in at.caption)


def test_residuals_by_expert_score_for_an_expert_run(monkeypatch: pytest.MonkeyPatch, models_db: Path) -> None:
    ridge = run_id(models_db, EXPERT_TARGET, "captions", "ridge")
    at = open_app(monkeypatch, models_db, page=PAGE)
    at.selectbox(key="models_target").select(EXPERT_TARGET).run()
    at.selectbox(key="models_run").select(ridge).run()
    assert not at.exception
    boxes = [trace for spec in charts(at) for trace in spec["data"] if trace["type"] == "box"]
    with Database(models_db) as db:
        expected = comparison.residuals_by_expert(model_store.predictions(db, ridge))
    assert sum(len(plotly_values(box["y"])) for box in boxes) == len(expected) == 36
    assert sorted(box["name"] for box in boxes) == sorted(str(s) for s in expected["expert_score"].unique())


def test_a_large_run_is_drawn_from_sql_counts_never_its_pairs(monkeypatch: pytest.MonkeyPatch,
                                                              models_db: Path) -> None:
    """Above SCATTER_LIMIT pairs the page reads counts, not predictions (200,000 points took seconds to read, draw
    and send): a density whose cells count every pair, and residual boxes whose statistics are the pairs'."""
    ridge = run_id(models_db, EXPERT_TARGET, "captions", "ridge")
    with Database(models_db) as db:
        scores = sorted(str(s) for s in comparison.residuals_by_expert(model_store.predictions(db, ridge))
                        ["expert_score"].unique())
    monkeypatch.setattr(comparison, "SCATTER_LIMIT", 20)
    monkeypatch.setattr(model_store, "predictions", lambda db, run_id: pytest.fail("read every prediction"))
    at = open_app(monkeypatch, models_db, page=PAGE)
    at.selectbox(key="models_target").select(COCO_TARGET).run()
    at.selectbox(key="models_run").select(run_id(models_db, COCO_TARGET, "image", "ridge")).run()
    assert not at.exception, [e.value for e in at.exception]
    [density] = [trace for spec in charts(at) for trace in spec["data"] if trace["type"] == "heatmap"]
    assert sum(plotly_values(density["z"])) == 300
    assert any("300 pairs, too many to draw one by one" in c.value for c in at.caption)
    assert any("no residual by expert score" in c.value for c in at.caption)

    at.selectbox(key="models_target").select(EXPERT_TARGET).run()
    at.selectbox(key="models_run").select(ridge).run()
    assert not at.exception, [e.value for e in at.exception]
    boxes = [trace for spec in charts(at) for trace in spec["data"] if trace["type"] == "box"]
    assert sorted(box["name"] for box in boxes) == scores and len(scores) > 1
    assert all("y" not in box for box in boxes)  # statistics only, no residual sent
    assert any("36 of 36 pairs have all three expert scores" in c.value for c in at.caption)


def test_prediction_density_counts_every_pair_in_its_cell(models_db: Path) -> None:
    bins = 4
    for feature_set, model in (("image", "ridge"), ("none", "constant")):
        run = run_id(models_db, COCO_TARGET, feature_set, model)
        with Database(models_db) as db:
            pairs = model_store.predictions(db, run)
            density = model_store.prediction_density(db, run, bins)
            assert model_store.prediction_count(db, run) == len(pairs) == 300

        def cell(values: pd.Series) -> pd.Series:
            low, width = values.min(), values.max() - values.min()
            index = ((values - low) / width * bins).clip(upper=bins - 1).astype(int) if width else 0 * values
            return low + (index + 0.5) * width / bins

        expected = pairs.assign(actual=cell(pairs["actual"]), predicted=cell(pairs["predicted"])).groupby(
            ["actual", "predicted"]).size()
        got = density.set_index(["actual", "predicted"])["pairs"]
        assert got.to_dict() == pytest.approx(expected.to_dict()), feature_set


def test_a_constant_axis_is_one_cell_at_its_value(tmp_path: Path) -> None:
    with Database(tmp_path / "studio.duckdb") as db:
        with db.write() as cur:
            cur.execute("INSERT INTO model_predictions SELECT 'r', 'i' || k, 'q', k % 3, k / 9, 0.25 FROM range(10) t(k)")
        density = model_store.prediction_density(db, "r", 5)
    assert density["predicted"].tolist() == [0.25] * 5 and density["pairs"].tolist() == [2] * 5
    assert density["actual"].tolist() == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])


def test_residual_boxes_are_the_boxes_plotly_draws_from_the_pairs(models_db: Path) -> None:
    ridge = run_id(models_db, EXPERT_TARGET, "captions", "ridge")
    with Database(models_db) as db:
        residuals = comparison.residuals_by_expert(model_store.predictions(db, ridge))
        boxes = model_store.residual_boxes(db, ridge).set_index("expert_score")
    assert boxes["pairs"].sum() == len(residuals) == 36
    for score, group in residuals.groupby("expert_score"):
        values = group["residual"].to_numpy()
        q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
        inside = values[(values >= q1 - 1.5 * (q3 - q1)) & (values <= q3 + 1.5 * (q3 - q1))]
        assert boxes.loc[score, ["pairs", "q1", "median", "q3", "mean", "lowerfence", "upperfence", "outliers"]] \
            .tolist() == pytest.approx([len(values), q1, median, q3, values.mean(), inside.min(), inside.max(),
                                        len(values) - len(inside)]), score
    assert list(comparison.residual_boxes_figure(boxes.reset_index()).data[0].q1) == [boxes["q1"].iloc[0]]


def test_data_user_chooses_the_reranker_and_the_write_records_them(monkeypatch: pytest.MonkeyPatch,
                                                                   models_db: Path) -> None:
    ridge = run_id(models_db, COCO_TARGET, "image", "ridge")
    at = open_app(monkeypatch, models_db, user=DATA, page=PAGE)
    assert comparison.OFF in at.selectbox(key="models_reranker").options
    assert not any("/constant/" in option for option in at.selectbox(key="models_reranker").options)
    at.selectbox(key="models_reranker").select(ridge)
    at.button(key="models_reranker_apply").click().run()
    assert not at.exception and not at.error
    chosen, value = reranker_setting(models_db)
    assert chosen == ridge and value["chosen_by"] == DATA.name
    with Database(models_db) as db:
        users = db.fetch_all("SELECT user_name, error FROM applied_writes WHERE op = 'reranker'")
    assert (DATA.name, None) in users
    assert any(ridge in m.value for m in at.markdown if m.value.startswith("Search re-ranks with"))

    at.selectbox(key="models_reranker").select(comparison.OFF)
    at.button(key="models_reranker_apply").click().run()
    assert reranker_setting(models_db)[0] is None


@pytest.mark.parametrize("user", [PRODUCT, MODERATOR])
def test_other_roles_see_the_choice_read_only(monkeypatch: pytest.MonkeyPatch, models_db: Path, user) -> None:
    at = open_app(monkeypatch, models_db, user=user, page=PAGE)
    keys = {widget.key for widget in [*at.selectbox, *at.button]}
    assert "models_reranker" not in keys and "models_reranker_apply" not in keys
    assert "models_target" in keys  # every role sees the comparison itself
    assert any(m.value.startswith("Search re-ranks with") for m in at.markdown)


def test_an_altered_model_file_is_refused(monkeypatch: pytest.MonkeyPatch, models_db: Path) -> None:
    ridge = run_id(models_db, EXPERT_TARGET, "captions", "ridge")
    with Database(models_db) as db:
        artifact = Path(model_store.run(db, ridge)["artifact"])
    original = artifact.read_bytes()
    artifact.write_bytes(original + b"tampered")
    try:
        before = reranker_setting(models_db)
        at = open_app(monkeypatch, models_db, user=DATA, page=PAGE)
        at.selectbox(key="models_reranker").select(ridge)
        at.button(key="models_reranker_apply").click().run()
        assert not at.exception
        assert "does not match the sha256" in at.error[0].value
        assert reranker_setting(models_db) == before
    finally:
        artifact.write_bytes(original)


def test_empty_database_names_the_train_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    Database(tmp_path / "empty.duckdb").close()
    at = open_app(monkeypatch, tmp_path / "empty.duckdb", page=PAGE)
    message = at.info[0].value
    assert "python -m pipeline train" in message and str(tmp_path / "empty.duckdb") in message
    assert not at.get("plotly_chart") and not at.selectbox
    assert any("evaluate-retrieval" in c.value for c in at.caption)


# ------------------------------------------------------------------------------------------------ comparison.py
def _runs(rows: list[dict]) -> pd.DataFrame:
    defaults = {"uses_captions": False, "uses_images": True, "pairs": 10, "feedback_pairs": 0, "folds": 2,
                "beats_baseline": None, "train_seconds": 1.0, "predict_ms": 1.0, "created": None}
    return pd.DataFrame([defaults | row for row in rows])


def test_metric_bars_take_the_newest_run_and_skip_nan_folds() -> None:
    folds = lambda *r2: json.dumps([{"fold": i, "r2": v, "pairs": 5} for i, v in enumerate(r2)])  # noqa: E731
    runs = _runs([
        {"id": "t/new", "target": "t", "model": "ridge", "feature_set": "image", "metrics": '{"r2": 0.5}',
         "fold_metrics": folds(0.4, 0.6, math.nan)},
        {"id": "t/old", "target": "t", "model": "ridge", "feature_set": "image", "metrics": '{"r2": 0.1}',
         "fold_metrics": folds(0.0, 0.2)},
        {"id": "u/x", "target": "u", "model": "ridge", "feature_set": "image", "metrics": '{"r2": 0.9}',
         "fold_metrics": folds(0.9, 0.9)},
    ])
    bars = comparison.metric_bars(runs, "t", "r2")
    assert bars[["run_id", "folds", "pooled", "min", "max"]].to_dict("records") == [
        {"run_id": "t/new", "folds": 2, "pooled": 0.5, "min": 0.4, "max": 0.6}]
    assert bars.at[0, "mean"] == pytest.approx(0.5) and bars.at[0, "std"] == pytest.approx(math.sqrt(0.02))
    assert comparison.fold_metric_keys(runs, "t") == ["r2"]  # counts such as pairs are no metric


def test_residuals_use_the_rounded_mean_of_the_three_experts() -> None:
    predictions = pd.DataFrame({
        "actual": [0.0, 1.0, 0.5, 0.2], "predicted": [0.25, 0.5, 0.5, 0.2],
        "expert_1": [1, 4, 2, None], "expert_2": [1, 4, 3, None], "expert_3": [2, 3, 3, None],
    })
    residuals = comparison.residuals_by_expert(predictions)
    assert residuals.to_dict("records") == [{"expert_score": 1, "residual": 0.25},
                                            {"expert_score": 4, "residual": -0.5},
                                            {"expert_score": 3, "residual": 0.0}]
    figure = comparison.residuals_figure(residuals)
    assert [trace.name for trace in figure.data] == ["1", "3", "4"]


def test_reranker_problem_checks_run_model_and_file(tmp_path: Path) -> None:
    assert "no model run" in comparison.reranker_problem(None, "t/x")
    assert "constant" in comparison.reranker_problem({"id": "t/c", "model": "constant"}, "t/c")
    missing = {"id": "t/r", "model": "ridge", "artifact": str(tmp_path / "gone.joblib"), "artifact_sha256": "0"}
    assert "missing" in comparison.reranker_problem(missing, "t/r")
    assert comparison.reranker_choices(_runs([{"id": "a/c", "model": "constant"}, {"id": "a/r", "model": "ridge"}])) \
        == [comparison.OFF, "a/r"]
    assert comparison.chosen_run_id(comparison.OFF) is None and comparison.chosen_run_id("a/r") == "a/r"


def test_retrieval_tables_have_one_table_per_protocol() -> None:
    metrics = pd.DataFrame({"encoder": ["e", "e", "e"], "protocol": ["p", "p", "q"],
                            "metric": ["mrr", "recall@1", "mrr"],
                            "value": [0.5, 0.2, 0.7], "data_version": ["v", "v", "v"],
                            "created": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]), "details": "{}"})
    tables = comparison.retrieval_tables(metrics)
    assert list(tables) == ["p", "q"]
    assert tables["p"][["encoder", "mrr", "recall@1"]].to_dict("records") == [
        {"encoder": "e", "mrr": 0.5, "recall@1": 0.2}]
    assert tables["p"].at[0, "created"] == pd.Timestamp("2024-01-02")


def test_retrieval_metrics_come_in_reading_order() -> None:
    names = ["ndcg@10", "recall@10", "map", "recall@5", "mrr", "recall@1", "zeta"]
    metrics = pd.DataFrame({"encoder": "e", "protocol": "p", "metric": names, "value": 0.5, "data_version": "v",
                            "created": pd.Timestamp("2024-01-01"), "details": "{}"})
    table = comparison.retrieval_tables(metrics)["p"]
    assert list(table.columns) == ["encoder_name", "recall@1", "recall@5", "recall@10", "mrr", "map", "ndcg@10",
                                   "zeta", "data_version", "created", "encoder"]


@pytest.mark.parametrize(("encoder_id", "label"), [
    ("offline-zs-t3-k50-full224", "offline zero-shot bridge (T=3, top 50), full224 + mirror"),
    ("offline-fit-0a1b2c3d4e-center224+full224-noflip", "offline fitted bridge, center224+full224 no mirror"),
    ("offline-zs-t3-k50+obj-0d5d6fba6b-full224", "offline zero-shot bridge (T=3, top 50) + objects, full224 + mirror"),
    ("offline-fit+objects-full224 (5-fold cross-fit, object weight by inner cross-fit)",
     "offline fitted bridge + objects, full224 + mirror (5-fold cross-fit)"),
    ("openclip-ViT-B-32-laion2b_s34b_b79k", "open_clip ViT-B-32-laion2b_s34b_b79k"),
    ("openclip-RN50-random", "open_clip RN50, random weights (mechanics only)"),
    ("colour-test", "colour-test"),
])
def test_encoder_ids_read_in_words(encoder_id: str, label: str) -> None:
    assert comparison.encoder_label(encoder_id) == label


def test_best_runs_skip_the_constant_and_rank_by_pooled_r2() -> None:
    folds = lambda *r2: json.dumps([{"fold": i, "r2": v} for i, v in enumerate(r2)])  # noqa: E731
    created = pd.Timestamp("2026-12-03 21:17")
    runs = _runs([
        {"id": "t/c", "target": "t", "model": "constant", "feature_set": "none", "metrics": '{"r2": 0.0}',
         "fold_metrics": folds(0.0, 0.0)},
        {"id": "t/r", "target": "t", "model": "ridge", "feature_set": "captions", "metrics": '{"r2": 0.7}',
         "fold_metrics": folds(0.6, 0.8), "uses_captions": True, "created": created},
        {"id": "t/h", "target": "t", "model": "hist-gradient-boosting", "feature_set": "captions",
         "metrics": '{"r2": 0.75}', "fold_metrics": folds(0.7, 0.8), "uses_captions": True, "created": created},
        {"id": "t/old", "target": "t", "model": "ridge", "feature_set": "image", "metrics": '{"r2": 0.9}',
         "fold_metrics": folds(0.9, 0.9)},
        {"id": "t/z", "target": "t", "model": "zero-shot", "feature_set": "image", "metrics": '{"r2": NaN}',
         "fold_metrics": folds(math.nan)},
    ]).iloc[[0, 1, 2, 4, 3]]  # newest first: the NaN zero-shot is newer than the old ridge
    best = comparison.best_runs(runs).drop(columns=["r2_fold_sd"])
    assert best.to_dict("records") == [
        {"target": "t", "feature_set": "captions", "best_model": "Gradient boosting", "r2": 0.75,
         "r2_fold_mean": pytest.approx(0.75), "folds": 2, "runner_up": "Ridge", "ahead_by": pytest.approx(0.05),
         "serves_uncaptioned": False, "run": "Gradient boosting on captions, 03 Dec 21:17", "id": "t/h"},
        {"target": "t", "feature_set": "image", "best_model": "Ridge", "r2": 0.9, "r2_fold_mean": 0.9, "folds": 2,
         "runner_up": "", "ahead_by": pytest.approx(math.nan, nan_ok=True), "serves_uncaptioned": True,
         "run": "Ridge on image", "id": "t/old"}]


def test_runs_table_keeps_each_runs_values_together_whatever_the_index() -> None:
    runs = _runs([{"id": f"t/{m}", "target": "t", "model": m, "feature_set": "image", "metrics": f'{{"r2": {r2}}}',
                   "fold_metrics": "[]", "train_seconds": seconds}
                  for m, r2, seconds in (("ridge", 0.5, 1.0), ("mlp", 0.6, 9.0))]).set_axis([7, 3])
    table = comparison.runs_table(runs, "t/mlp")
    assert table[["id", "r2", "train_seconds", "reranks_search"]].to_dict("records") == [
        {"id": "t/ridge", "r2": 0.5, "train_seconds": 1.0, "reranks_search": False},
        {"id": "t/mlp", "r2": 0.6, "train_seconds": 9.0, "reranks_search": True}]
    assert table["run"].tolist() == ["Ridge on image", "MLP on image"]


def test_best_runs_skip_a_run_whose_r2_is_null() -> None:
    """A metric stored as JSON null is no candidate (it once reached math.isfinite and raised)."""
    runs = _runs([
        {"id": "t/r", "target": "t", "model": "ridge", "feature_set": "image", "metrics": '{"r2": 0.4}',
         "fold_metrics": "[]"},
        {"id": "t/m", "target": "t", "model": "mlp", "feature_set": "image", "metrics": '{"r2": null}',
         "fold_metrics": "[]"},
    ])
    best = comparison.best_runs(runs)
    assert best[["best_model", "runner_up"]].to_dict("records") == [{"best_model": "Ridge", "runner_up": ""}]
