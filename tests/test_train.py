"""Train stage on a small COCO-style dataset with the colour encoder: folds, runs, artifacts, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from builders import coco_dir, ingest
from db import labels
from db import models as model_store
from db.database import Database
from fakes import ColourEncoder
from pipeline import caption_features, models, targets, train
from pipeline.embed import embed
from pipeline.features import FEATURE_SETS, FeatureError
from test_embed import solid

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
# red photos show a person, green ones a dog, blue ones both: categories correlate with colour.
CATEGORIES = {"red": [1], "green": [18], "blue": [1, 18]}


def colour_coco(root: Path, photos: int = 30) -> Path:
    names = list(COLOURS)
    images, captions, objects, files = [], [], [], {}
    for i in range(1, photos + 1):
        colour = names[i % 3]
        images.append({"id": i, "file_name": f"{i:012d}.png", "width": 16, "height": 16})
        files[f"{i:012d}.png"] = solid(COLOURS[colour])
        captions += [{"id": 10 * i, "image_id": i, "caption": f"A {colour} picture number {i}."},
                     {"id": 10 * i + 1, "image_id": i, "caption": f"Something {colour} is shown here."}]
        objects += [{"id": 100 * i + c, "image_id": i, "category_id": c} for c in CATEGORIES[colour]]
    return coco_dir(root, images=images, captions=captions, objects=objects, files=files)


@pytest.fixture
def coco(db: Database, tmp_path: Path) -> Database:
    ingest(db, colour_coco(tmp_path / "c"))
    embed(db, ColourEncoder(), workers=0, quiet=True)
    return db


def test_category_pairs_keep_photos_and_captions_on_one_side(coco: Database) -> None:
    target = targets.load(coco, targets.CATEGORY_PAIRS, folds=5)
    pairs = target.pairs
    assert target.name == "c/category-pairs"
    own = pairs[pairs["target"] == 1.0]
    assert len(own) == 60 and (own["image_id"] == own["query_id"].str.replace(r"^c/(\d+)\d$", r"c/\1", regex=True)).all()
    assert pairs["target"].between(0, 1).all() and (pairs.loc[pairs["target"] < 1, "target"] <= 0.8).all()
    # Every photo and every caption belongs to exactly one fold group.
    assert pairs.groupby("image_id")["group"].nunique().max() == 1
    assert pairs.groupby("query_id")["group"].nunique().max() == 1
    # Blue photos share one of their two categories with red ones: Jaccard 1/2, graded 0.4.
    assert np.isclose(pairs["target"], 0.4).any()


def test_judged_pairs_drop_queries_without_text(db: Database, tmp_path: Path) -> None:
    from builders import IMG_A, IMG_B, flickr_dir

    ingest(db, flickr_dir(tmp_path / "f", expert=[f"{IMG_A}\t{IMG_B}#0\t1\t1\t2", f"{IMG_B}\t{IMG_B}#0\t4\t4\t3",
                                                  f"{IMG_A}\t{IMG_A}#4\t3\t3\t3"]))  # #4: no such caption
    target = targets.load(db, "expert")
    assert len(target.pairs) == 2 and target.dropped == {"query caption absent from the source": 1}
    assert set(target.pairs["group"]) == set(target.pairs["image_id"])
    assert target.pairs.loc[target.pairs["query_id"].str.endswith(f"{IMG_B}#0"), "expert_1"].tolist() == [1, 4]


def _run_models(db: Database, tmp_path: Path, names: list[str], **options) -> list[train.RunSummary]:
    prepared = train.prepare(db, ColourEncoder(), target=targets.CATEGORY_PAIRS, **options)
    return train.train(db, ColourEncoder(), prepared, names, artifacts=tmp_path / "models", threads=1, quiet=True)


def test_training_registers_runs_with_folds_and_artifacts(coco: Database, tmp_path: Path) -> None:
    summaries = _run_models(coco, tmp_path, ["zero-shot", "ridge"], feature_set_names=["image"])
    assert [(s.model, s.feature_set) for s in summaries] == [("constant", "none"), ("zero-shot", "image"),
                                                              ("ridge", "image")]
    runs = model_store.runs(coco).set_index("model")
    assert model_store.run(coco, summaries[0].id)["beats_baseline"] is None  # the constant is the baseline
    ridge = runs.loc["ridge"]
    folds = json.loads(ridge["fold_metrics"])
    assert len(folds) == 5 and all({"r2", "mse", "spearman", "ndcg@10", "mrr", "beats_baseline"} <= set(f) for f in folds)
    # The colour encoder makes cosine nearly decisive: both models beat the constant on every fold.
    assert bool(ridge["beats_baseline"]) and bool(runs.loc["zero-shot", "beats_baseline"])
    assert json.loads(ridge["metrics"])["r2"] > 0.3
    assert json.loads(ridge["params"])["final"]["ridge__alpha"] in models._spec("ridge", "", 1).space["ridge__alpha"]
    assert not ridge["uses_captions"] and ridge["uses_images"]
    artifact = joblib.load(ridge["artifact"])
    assert artifact["feature_set"] == "image" and artifact["encoder_id"] == "colour-test"
    predictions = model_store.predictions(coco, ridge["id"])
    assert len(predictions) == ridge["pairs"] and predictions["fold"].nunique() == 5


def test_out_of_fold_predictions_never_come_from_a_model_that_saw_the_photo(coco: Database, tmp_path: Path) -> None:
    """Each pair is predicted by the fold model that held its group out: re-fitting on the other folds alone
    reproduces the stored predictions."""
    [_, ridge] = _run_models(coco, tmp_path, ["ridge"], feature_set_names=["image"])
    stored = model_store.predictions(coco, ridge.id)
    prepared = train.prepare(coco, ColourEncoder(), target=targets.CATEGORY_PAIRS, feature_set_names=["image"])
    X, pairs = prepared.features["image"], prepared.pairs
    held_out = prepared.folds == 2
    assert not set(pairs.loc[held_out, "image_id"]) & set(pairs.loc[~held_out, "image_id"])
    estimator, _ = models.fit("ridge", X[~held_out], pairs["target"][~held_out].to_numpy(),
                              pairs["group"][~held_out].to_numpy(), zero_shot_score="cosine")
    expected = models.predict(estimator, X[held_out])
    got = stored[stored["fold"] == 2].set_index(["image_id", "query_id"]).loc[
        list(zip(pairs.loc[held_out, "image_id"], pairs.loc[held_out, "query_id"])), "predicted"].to_numpy()
    assert np.allclose(got, expected)


def test_caption_features_train_and_are_flagged(coco: Database, tmp_path: Path) -> None:
    summaries = _run_models(coco, tmp_path, ["hist-gradient-boosting"], feature_set_names=["captions"])
    run = model_store.run(coco, summaries[1].id)
    assert run["uses_captions"] and not run["uses_images"] and run["feature_set"] == "captions"


def test_feedback_labels_join_training(coco: Database, tmp_path: Path) -> None:
    with coco.write() as cur:
        for i in range(1, 31):
            labels.add(cur, user="rita", query="a red photo", encoder="colour-test",
                       flag=labels.Flag(f"c/{i}", 1, 0.9, "relevant" if i % 3 == 1 else "not_relevant"))
    prepared = train.prepare(coco, ColourEncoder(), target=targets.CATEGORY_PAIRS, feature_set_names=["image"],
                             include_feedback=True)
    assert prepared.feedback_pairs == 30 and len(prepared.pairs) == len(prepared.target.pairs) + 30
    feedback_folds = prepared.folds[len(prepared.target.pairs):]
    assert (feedback_folds >= 0).all()  # every labelled photo is in the target, so it keeps its photo's fold
    summaries = train.train(coco, ColourEncoder(), prepared, ["ridge"], artifacts=tmp_path / "m", quiet=True)
    run = model_store.run(coco, summaries[1].id)
    assert run["feedback_pairs"] == 30 and run["pairs"] == len(prepared.target.pairs)


def test_feature_sets_share_their_blocks_and_equal_sets_computed_alone(coco: Database, monkeypatch) -> None:
    """prepare computes the caption block once for `captions` and `image+captions` (and the image block once for
    `image` and `image+captions`), and each set equals what its builder computes on its own."""
    calls = []
    compute = caption_features.compute
    monkeypatch.setattr(caption_features, "compute", lambda *a, **k: calls.append(1) or compute(*a, **k))
    prepared = train.prepare(coco, ColourEncoder(), target=targets.CATEGORY_PAIRS)
    assert list(prepared.features) == ["image", "captions", "image+captions"] and len(calls) == 1
    assert set(prepared.feature_seconds) == {"sources", "image", "captions", "image+captions"}
    for name, builder in prepared.builders.items():
        pd.testing.assert_frame_equal(prepared.features[name], builder(prepared.pairs))
    both = prepared.features["image+captions"]
    assert list(both.columns) == list(prepared.features["image"].columns) + list(prepared.features["captions"].columns)
    assert prepared.builders["image"].basis is prepared.builders["image+captions"].basis  # one basis, fitted once


def test_fits_in_worker_processes_equal_fits_one_after_another() -> None:
    """The fold fits of a slow model run in worker processes: same predictions and parameters as in-process."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(240, 4)), columns=list("abcd"))
    y = 1 / (1 + np.exp(-X["a"].to_numpy() - X["b"].to_numpy() ** 2)) + rng.normal(0, 0.05, 240)
    groups = np.repeat(np.arange(60), 4).astype(str)
    rows = [np.arange(240) % 3 != k for k in range(3)] + [None]
    held = [np.flatnonzero(np.arange(240) % 3 == k) for k in range(3)] + [None]
    alone = train._fit_all("hist-gradient-boosting", X, y, groups, rows, held, "a", threads=1)
    workers = train._fit_all("hist-gradient-boosting", X, y, groups, rows, held, "a", threads=2)
    for (left, left_params, _), (right, right_params, seconds) in zip(alone[:-1], workers[:-1]):
        np.testing.assert_array_equal(left, right)
        assert left_params == right_params and 0 < seconds["search"] < seconds["fit"]
    np.testing.assert_array_equal(alone[-1][0].predict(X), workers[-1][0].predict(X))  # the final fit's model
    assert models.is_slow("hist-gradient-boosting") and not models.is_slow("ridge")


def test_fit_reports_its_search_share() -> None:
    X = pd.DataFrame({"cosine": np.linspace(0, 1, 60), "other": np.tile([0.0, 1.0], 30)})
    seconds = {}
    models.fit("ridge", X, X["cosine"].to_numpy(), np.arange(60) % 6, zero_shot_score="cosine", seconds=seconds)
    assert 0 < seconds["search"] < seconds["fit"]
    models.fit("zero-shot", X, X["cosine"].to_numpy(), np.arange(60) % 6, zero_shot_score="cosine", seconds=seconds)
    assert seconds["search"] == 0 and seconds["fit"] > 0



@pytest.mark.parametrize("name", ["ridge", "hist-gradient-boosting", "random-forest", "mlp"])
def test_search_on_an_array_chooses_and_fits_what_the_named_frame_would(name: str) -> None:
    """models.fit searches on a plain array (speed) and refits the choice on the named frame: the same parameters
    and predictions as scikit-learn's own search and refit on the frame, and the column names serving checks."""
    from sklearn.model_selection import GridSearchCV, GroupKFold, RandomizedSearchCV

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(180, 5)), columns=["cosine", "b", "c", "d", "e"])
    y = np.clip(0.5 + 0.3 * X["cosine"] - 0.2 * X["b"] * X["c"] + rng.normal(0, 0.05, 180), 0, 1).to_numpy()
    groups = np.repeat(np.arange(45), 4).astype(str)
    estimator, params = models.fit(name, X, y, groups, zero_shot_score="cosine", threads=1)
    spec = models._spec(name, "cosine", 1)
    inner = GroupKFold(n_splits=models.INNER_FOLDS)
    reference = (RandomizedSearchCV(spec.estimator, spec.space, n_iter=spec.draws, cv=inner, random_state=models.SEED,
                                    scoring="neg_mean_squared_error") if spec.randomized else
                 GridSearchCV(spec.estimator, spec.space, cv=inner, scoring="neg_mean_squared_error"))
    reference.fit(X, y, groups=groups)
    assert params == models._plain(reference.best_params_)
    np.testing.assert_allclose(estimator.predict(X), reference.best_estimator_.predict(X), rtol=1e-12, atol=1e-12)
    assert list(estimator.feature_names_in_) == list(X.columns)


def test_worker_fits_load_neither_torch_nor_the_database() -> None:
    """Fold fits run in worker processes, which import the function they are given: its module must not pull in
    torch, transformers or DuckDB (about 3 s of start-up per worker, paid by every training call)."""
    import subprocess
    import sys

    code = ("import sys; import pipeline.models; "
            "print(sorted(m for m in ('torch', 'transformers', 'duckdb', 'db') if m in sys.modules))")
    root = Path(__file__).resolve().parent.parent
    loaded = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"

# ------------------------------------------------------------------------------------------------ refusals
def _nothing_changed(db: Database, before: int) -> bool:
    return int(db.fetch_all("SELECT count(*) FROM model_runs")[0][0]) == before


def test_refusals_come_before_any_work_and_keep_stored_runs(coco: Database, tmp_path: Path) -> None:
    _run_models(coco, tmp_path, ["ridge"], feature_set_names=["image"])
    before = int(coco.fetch_all("SELECT count(*) FROM model_runs")[0][0])
    with pytest.raises(models.ModelError, match=r"unknown model\(s\) 'xgboost'; choose from: constant"):
        models.check_names(["ridge", "xgboost"])
    few = targets.load(coco, targets.CATEGORY_PAIRS).pairs[:20]
    with pytest.raises(train.TrainingError, match="20 usable pairs, too few for 5 folds"):
        train._check_pairs(targets.Target("c/x", "c", "x", few, "v"), 5)
    three_photos = targets.load(coco, targets.CATEGORY_PAIRS).pairs.assign(group=lambda f: f.index % 3)
    with pytest.raises(train.TrainingError, match="pairs cover 3 photo group"):
        train._check_pairs(targets.Target("c/x", "c", "x", three_photos, "v"), 5)
    with pytest.raises(train.TrainingError, match="too few for 40 folds"):
        train.prepare(coco, ColourEncoder(), target=targets.CATEGORY_PAIRS, folds=40)
    with pytest.raises(train.TrainingError, match="at least 2"):
        train.prepare(coco, ColourEncoder(), target=targets.CATEGORY_PAIRS, folds=1)
    with pytest.raises(targets.TargetError, match="unknown target"):
        train.prepare(coco, ColourEncoder(), target="likes")
    with pytest.raises(targets.TargetError, match="no dataset with expert judgments"):
        train.prepare(coco, ColourEncoder(), target="expert")
    assert _nothing_changed(coco, before)


def test_single_valued_target_is_refused(coco: Database) -> None:
    pairs = targets.load(coco, targets.CATEGORY_PAIRS).pairs.assign(target=0.5)
    with pytest.raises(train.TrainingError, match="same relevance"):
        train._check_pairs(targets.Target("c/x", "c", "x", pairs, "v"), 5)


def test_nan_features_are_refused_naming_the_pair(coco: Database) -> None:
    class NaNText(ColourEncoder):
        def encode_texts(self, texts):
            vectors = super().encode_texts(texts)
            vectors[0, 0] = np.nan
            return vectors

    with pytest.raises(ValueError, match=r"returned NaN or infinite vectors for 1 text\(s\) \(first: 'A "):
        train.prepare(coco, NaNText(), target=targets.CATEGORY_PAIRS, feature_set_names=["image"])
    assert coco.fetch_all("SELECT count(*) FROM text_embeddings")[0][0] == 0  # nothing cached


def test_non_finite_features_are_refused_naming_the_pair(coco: Database) -> None:
    prepared = train.prepare(coco, ColourEncoder(), target=targets.CATEGORY_PAIRS, feature_set_names=["image"])
    features = train._builders(coco, ColourEncoder(), [FEATURE_SETS["image"]], prepared.pairs)["image"]
    features.photo_vectors = {k: np.full_like(v, np.inf) for k, v in features.photo_vectors.items()}
    with pytest.raises(FeatureError, match=r"NaN or infinite features \(first: image c/"), np.errstate(invalid="ignore"):
        features(prepared.pairs)


def test_image_features_need_vectors(db: Database, tmp_path: Path) -> None:
    ingest(db, colour_coco(tmp_path / "c"))  # no embed
    with pytest.raises(train.TrainingError, match="needs vectors of colour-test"):
        train.prepare(db, ColourEncoder(), target=targets.CATEGORY_PAIRS, feature_set_names=["image"])


def test_caption_gallery_is_the_judged_collection(db: Database, tmp_path: Path) -> None:
    """The gallery a photo is ranked against holds the captions of the photos the target's pairs cover, so
    captions of photos nobody judged (Flickr8k's 7,000 non-test photos: 35,000 captions) are never encoded."""
    from builders import IMG_C, flickr_dir

    class Recording(ColourEncoder):
        def encode_texts(self, texts):
            encoded.extend(texts)
            return super().encode_texts(texts)

    encoded: list[str] = []
    ingest(db, flickr_dir(tmp_path / "f"))  # judged: photos A and B; photo C has a caption and no judgment
    pairs = targets.load(db, "expert").pairs
    builder = train._builders(db, Recording(), [FEATURE_SETS["captions"]], pairs)["captions"]
    judged = set(pairs["image_id"])
    assert len(judged) == 2 and not any(IMG_C in photo for photo in judged)
    assert set(builder.gallery.photos) == judged
    assert encoded and not any("painted rainbow" in text for text in encoded)  # photo C's caption
