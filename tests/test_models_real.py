"""The model zoo on the real data: Flickr8k expert judgments (captions only) and COCO-mini category pairs.

Slow on purpose (a few minutes on 2 cores: every Flickr8k caption is encoded once for the caption gallery). The
thresholds sit a little under the figures `python -m pipeline train` prints, so a regression fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from builders import ingest
from db import models as model_store
from db.database import Database
from pipeline import rerank, train
from pipeline.bridge import current_offline_encoder
from pipeline.embed import embed
from pipeline.encoders.offline import Bridge


@pytest.fixture(scope="module")
def real(tmp_path_factory, shared_data: Path):
    db = Database(tmp_path_factory.mktemp("zoo") / "zoo.duckdb")
    ingest(db, shared_data / "flickr8k-text")
    ingest(db, shared_data / "coco-mini")
    encoder = current_offline_encoder(db).with_bridge(Bridge())
    embed(db, encoder, quiet=True)
    yield db, encoder, tmp_path_factory.mktemp("artifacts")
    db.close()


def test_flickr8k_expert_pairs_captions_only(real) -> None:
    db, encoder, artifacts = real
    prepared = train.prepare(db, encoder, target="expert")
    assert list(prepared.features) == ["captions"]  # no Flickr8k photo is here, so no image features
    assert len(prepared.target.pairs) == 5822 and prepared.target.dropped == {}
    # No photo in two folds.
    assert prepared.target.pairs.assign(fold=prepared.folds).groupby("image_id")["fold"].nunique().max() == 1
    summaries = train.train(db, encoder, prepared, ["zero-shot", "hist-gradient-boosting"], artifacts=artifacts,
                            quiet=True)
    by_model = {s.model: s for s in summaries}
    boosted = by_model["hist-gradient-boosting"].metrics
    assert boosted["r2"] >= 0.70 and boosted["tau_c_expert_2"] >= 0.62 and boosted["tau_c_expert_3"] >= 0.66
    assert by_model["zero-shot"].metrics["r2"] >= 0.65
    assert by_model["hist-gradient-boosting"].beats_baseline and by_model["zero-shot"].beats_baseline
    run = model_store.run(db, by_model["hist-gradient-boosting"].id)
    assert run["uses_captions"] and not run["uses_images"] and len(json.loads(run["fold_metrics"])) == 5


def test_tau_c_of_expert_1_cannot_reach_0_62(real) -> None:
    """Why the issue's tau-c goal is out of reach for expert 1: ranking the pairs by expert 1's own scores (the
    best any prediction can do, since pairs expert 1 tied count for nothing) gives tau-c 0.610."""
    db, _, _ = real
    scores = np.array([row[0] for row in db.fetch_all("SELECT expert_1 FROM expert_ratings")], dtype=float)
    assert len(scores) == 5822
    assert kendalltau(scores, scores, variant="c").statistic == pytest.approx(0.610, abs=0.001)


def test_coco_category_pairs_and_held_out_rerank(real) -> None:
    db, encoder, artifacts = real
    prepared = train.prepare(db, encoder, target="category-pairs", feature_set_names=["image", "captions"])
    summaries = train.train(db, encoder, prepared, ["zero-shot", "ridge"], artifacts=artifacts, quiet=True)
    ridge = {(s.model, s.feature_set): s for s in summaries}
    assert ridge[("ridge", "image")].beats_baseline and ridge[("ridge", "image")].metrics["r2"] >= 0.35
    assert ridge[("ridge", "captions")].metrics["r2"] >= 0.80
    result = rerank.evaluate(db, encoder, ridge[("ridge", "captions")].id)
    assert result.queries == 795 and 40 <= result.mean_gallery <= 56
    # Captions of the same photo paraphrase each other: caption features lift Recall@1 far above the encoder's.
    assert result.after["recall@1"] >= result.before["recall@1"] + 0.3

