"""Retrieval metrics by hand, and the offline encoder on the real COCO-mini (the quality goals, guarded): the bridge
alone, then with the detected objects of the perceive stage (issue #13's goals, all photos and val2017 alone)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from builders import ingest
from db import embeddings as store
from db.database import Database
from pipeline import perceive
from pipeline.bridge import current_encoder, current_offline_encoder, fit
from pipeline.encoders.offline import Bridge
from pipeline.evaluate_retrieval import (CAPTION, CATEGORY, UNSEEN_SPLIT, caption_metrics, evaluate,
                                         mean_average_precision)
from pipeline.minors.filter import run_filter
from pipeline.perception import PERCEIVER_ID
from pipeline.search import Searcher


def test_caption_metrics_by_hand() -> None:
    scores = np.array([[0.9, 0.1, 0.0],    # own photo (0) first
                       [0.5, 0.4, 0.3],    # own photo (1) second
                       [0.2, 0.3, 0.3]])   # own photo (2) tied for first: the tie counts against it -> rank 2
    got = caption_metrics(scores, np.array([0, 1, 2]))
    assert got["recall@1"] == pytest.approx(1 / 3)
    assert got["recall@5"] == got["recall@10"] == 1.0
    assert got["mrr"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert got["ndcg@10"] == pytest.approx((1 + 2 / math.log2(3)) / 3)


def test_mean_average_precision_by_hand() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    relevant = np.array([[True, False, True, False], [False, False, False, True]])
    # query 1: hits at ranks 1 and 3 -> (1 + 2/3) / 2; query 2: hit at rank 1 -> 1
    assert mean_average_precision(scores, relevant) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


@pytest.fixture(scope="module")
def coco(tmp_path_factory, shared_data: Path) -> Database:
    db = Database(tmp_path_factory.mktemp("coco") / "coco.duckdb")
    ingest(db, shared_data / "coco-mini")
    yield db
    db.close()


def test_offline_encoder_on_coco_mini(coco: Database) -> None:
    """Zero-shot and cross-fitted bridge over all 239 photos; random ranking gives Recall@10 = 0.04."""
    zero_shot = current_offline_encoder(coco)
    assert zero_shot.bridge.id == Bridge().id
    [caption, category, *_] = evaluate(coco, zero_shot, quiet=True)
    assert (caption.protocol, category.protocol) == (CAPTION, CATEGORY)
    assert caption.details["queries"] == 795 and caption.details["photos"] == 239
    assert caption.metrics["recall@10"] >= 0.70 and caption.metrics["mrr"] >= 0.38
    [fitted, *_] = evaluate(coco, zero_shot, cross_fit=True, quiet=True)
    assert fitted.details["cross_fit_folds"] == 5
    # One view (full224 + mirror, issue #14) instead of three: the bridge alone lost a little (MRR 0.453 -> 0.427,
    # R@1 0.283 -> 0.259); with the detected objects, what search uses, it gained (R@1 0.429 -> 0.436).
    assert fitted.metrics["recall@10"] >= 0.75 and fitted.metrics["mrr"] >= 0.41
    assert fitted.metrics["recall@1"] >= 0.25
    stored = store.retrieval_metrics(coco)
    unseen = {f"{CAPTION}/{UNSEEN_SPLIT}", f"{CATEGORY}/{UNSEEN_SPLIT}"}  # val2017 photos alone, stored beside
    assert set(stored["protocol"]) == {CAPTION, CATEGORY} | unseen and len(stored) == 2 * 2 * (5 + 1)


def test_fitted_bridge_becomes_current_and_searchable(coco: Database) -> None:
    fitted = fit(coco, quiet=True)
    bridge, report = fitted.bridge, fitted.report
    assert bridge.fitted_on["photos"] == 159 and bridge.fitted_on["captions"] == 795
    assert report.from_cached_features == 239 and report.embedded == 0  # re-projected, not re-decoded
    assert "not_chosen" in fitted.objects.chosen_by and fitted.fused.not_perceived == 239  # never perceived here
    encoder = current_offline_encoder(coco)
    assert encoder.bridge.id == bridge.id
    run_filter(coco, detector=None, quiet=True)  # search shows cleared photos only
    hits = Searcher(coco, encoder).search("a giraffe standing next to a tree", k=5).hits
    giraffes = {image_id for (image_id,) in coco.fetch_all(
        "SELECT image_id FROM objects WHERE category = 'giraffe' AND dataset = 'coco-mini'")}
    assert giraffes and hits[0].image_id in giraffes


def test_goals_with_detected_objects_cross_fitted(coco: Database, shared_weights: Path) -> None:
    """Issue #13's goals, cross-fitted (R@1 >= 0.35, R@10 >= 0.85, category mAP >= 0.50; measured 0.429, 0.908,
    0.511), and the same figures on val2017 photos alone, which the detector (trained on train2017) never saw."""
    perceive.perceive(coco, perceive.Perceiver(shared_weights), quiet=True)
    encoder = current_encoder(coco)
    assert encoder.objects is not None and encoder.objects.perceiver == PERCEIVER_ID
    results = {r.protocol: r for r in evaluate(coco, encoder, cross_fit=True, quiet=True)}
    caption, category = results[CAPTION], results[CATEGORY]
    assert caption.details["photos"] == 239 and caption.details["photos_perceived"] == 239
    assert len(caption.details["object_weights"]) == 5 and "+objects" in caption.encoder
    assert caption.metrics["recall@1"] >= 0.35 and caption.metrics["recall@10"] >= 0.85
    assert category.metrics["map"] >= 0.50
    unseen = results[f"{CAPTION}/{UNSEEN_SPLIT}"]
    assert (unseen.details["photos"], unseen.details["queries"]) == (159, 395) and "val2017" in unseen.details["split"]
    assert unseen.metrics["recall@1"] >= 0.35 and results[f"{CATEGORY}/{UNSEEN_SPLIT}"].metrics["map"] >= 0.45
