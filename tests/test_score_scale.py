"""The cut-off slider's scale and the relevance marker (dashboard/score_scale.py), and the labels and calibrated
runs the Live search page feeds it (dashboard/live_search.py): plain numbers and a small database."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from dashboard import live_search, score_scale
from dashboard.score_scale import Marker
from db import labels
from db.database import Database
from db.write_queue import Write


def sigmoid_labels(threshold: float, n: int = 400, sharpness: float = 25.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.15, 0.66, n)
    relevant = rng.uniform(size=n) < 1 / (1 + np.exp(-sharpness * (scores - threshold)))
    return scores.tolist(), relevant.tolist()


def test_logistic_crossing_finds_where_relevance_crosses_one_half() -> None:
    marker = score_scale.logistic_crossing(*sigmoid_labels(0.40))
    assert marker is not None and marker.source == "labels"
    assert marker.score == pytest.approx(0.40, abs=0.02)
    assert "relevant /" in marker.detail


def test_logistic_crossing_needs_enough_of_each_verdict_and_a_rising_relation() -> None:
    assert score_scale.logistic_crossing([0.3, 0.4, 0.5, 0.6] * 2, [False, False, True, True] * 2) is None  # 4 each
    assert score_scale.logistic_crossing([0.3] * 6 + [0.6] * 6, [True] * 6 + [False] * 6) is None  # falling
    assert score_scale.logistic_crossing([0.4] * 12, [True, False] * 6) is None  # no spread


def test_perfectly_separated_labels_put_the_marker_between_the_classes() -> None:
    marker = score_scale.logistic_crossing([0.2, 0.25, 0.3, 0.32, 0.35] + [0.5, 0.52, 0.55, 0.6, 0.65],
                                           [False] * 5 + [True] * 5)
    assert marker is not None and 0.35 < marker.score < 0.5


def test_isotonic_crossing_reads_the_calibrated_map() -> None:
    x = np.linspace(0.1, 0.7, 200)
    fitted = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(x, np.clip((x - 0.1) / 0.6, 0, 1))
    marker = score_scale.isotonic_crossing(fitted.X_thresholds_, fitted.y_thresholds_, "run-1")
    assert marker is not None and marker.score == pytest.approx(0.40, abs=0.005) and "run-1" in marker.detail
    assert fitted.predict([marker.score])[0] == pytest.approx(0.5, abs=0.01)
    assert score_scale.isotonic_crossing([0.1, 0.5], [0.1, 0.3], "never") is None


def test_slider_bounds_follow_the_observed_scores_and_hold_the_markers() -> None:
    assert score_scale.slider_bounds(0.153, 0.662) == (0.15, 0.67)
    assert score_scale.slider_bounds(0.3, 0.5, [Marker(0.55, "labels", "")]) == (0.3, 0.55)
    low, high = score_scale.slider_bounds(0.4, 0.4)
    assert low < 0.4 < high
    assert score_scale.slider_bounds(float("nan"), float("nan")) == (-1.0, 1.0)


def test_first_below_no_good_match_and_pages() -> None:
    marker = Marker(0.3, "labels", "")
    assert score_scale.first_below([0.5, 0.4, 0.29, 0.2], marker) == 2
    assert score_scale.first_below([0.5, 0.4], marker) is None and score_scale.first_below([0.1], None) is None
    assert score_scale.no_good_match(0.29, marker) and not score_scale.no_good_match(0.3, marker)
    assert not score_scale.no_good_match(None, marker) and not score_scale.no_good_match(0.1, None)
    assert [score_scale.page_count(n, 12) for n in (0, 1, 12, 13, 23)] == [1, 1, 1, 2, 2]


def add_label(db: Database, user: str, query: str, image_id: str, verdict: str, score: float | None,
              encoder: str = "enc", key: str | None = None) -> None:
    with db.write() as cur:
        labels.add(cur, user=user, query=query, encoder=encoder, flag=labels.Flag(image_id, 1, score, verdict),
                   write_key=key)


def test_the_labels_marker_counts_each_reviewers_latest_verdict_once(db: Database) -> None:
    scores, relevant = sigmoid_labels(0.45, n=60, sharpness=60)
    for i, (score, rel) in enumerate(zip(scores, relevant)):
        add_label(db, "rita", f"q{i}", f"c/{i}", "relevant" if rel else "not_relevant", score)
    add_label(db, "rita", "q0", "c/0", "offensive", 0.9)  # the latest on q0 is now offensive: q0 leaves the fit
    add_label(db, "rita", "other", "c/1", "relevant", 0.1, encoder="enc + rerank r1")  # another score scale
    scored = labels.scored_verdicts(db, "enc")
    assert len(scored) == 59
    marker = live_search.labels_marker(db, "enc")
    assert marker is not None and marker.score == pytest.approx(0.45, abs=0.05)
    assert live_search.labels_marker(db, "other-encoder") is None


def test_no_calibrated_run_means_no_model_marker(db: Database) -> None:
    assert live_search.calibrated_run(db, "enc") is None and live_search.model_marker(None) is None
    assert live_search.label_encoder("enc", None) == "enc"
    assert live_search.label_encoder("enc", "r1") == "enc + rerank r1"


def test_card_flags_lay_queued_writes_and_undos_over_stored_ones(db: Database) -> None:
    add_label(db, "rita", "red", "c/1", "relevant", 0.5, key="k1")
    add_label(db, "rita", "red", "c/2", "relevant", 0.5, key="k2")
    add_label(db, "rita", "red", "c/2", "not_relevant", 0.5, key="k3")  # changed her mind
    add_label(db, "rita", "blue", "c/3", "relevant", 0.5, key="k4")  # another query
    add_label(db, "mona", "red", "c/3", "offensive", 0.5, key="k5")  # another reviewer
    flag = {"image_id": "c/3", "rank": 1, "score": 0.5, "verdict": "offensive", "comment": None}
    pending = [Write("k6", "label", "rita", "2026-12-04T00:00:00", {"query": "red", "encoder": "e", "flag": flag}),
               Write("k7", "undo_label", "rita", "2026-12-04T00:00:01", {"write_key": "k3"})]
    current = live_search.card_flags(db, pending, "rita", "red", ["c/1", "c/2", "c/3", "c/4"])
    assert {i: (f.verdict, f.state) for i, f in current.items()} == {
        "c/1": ("relevant", "saved"), "c/2": ("relevant", "saved"), "c/3": ("offensive", "queued")}
    undone = [*pending, Write("k8", "undo_label", "rita", "2026-12-04T00:00:02", {"write_key": "k6"})]
    assert "c/3" not in live_search.card_flags(db, undone, "rita", "red", ["c/3"])


def test_a_calibrated_run_of_the_encoder_gives_the_model_marker(db: Database, tmp_path) -> None:
    """A `zero-shot` run on the image features of this very encoder is an isotonic map of the cosine the page
    shows: its 0.5 crossing is the model marker."""
    from builders import ingest
    from fakes import ColourEncoder
    from pipeline import targets, train
    from pipeline.embed import embed
    from pipeline.minors.filter import run_filter
    from test_train import colour_coco

    ingest(db, colour_coco(tmp_path / "c"))
    run_filter(db, detector=None, quiet=True)
    embed(db, ColourEncoder(), workers=0, quiet=True)
    prepared = train.prepare(db, ColourEncoder(), target=targets.CATEGORY_PAIRS, feature_set_names=["image"])
    run_id = train.train(db, ColourEncoder(), prepared, ["zero-shot"], artifacts=tmp_path / "m", quiet=True)[-1].id
    run = live_search.calibrated_run(db, "colour-test")
    assert run is not None and run["id"] == run_id
    marker = live_search.model_marker(run)
    isotonic = joblib.load(run["artifact"])["estimator"].isotonic_
    assert marker is not None and marker.source == "model" and run_id in marker.detail
    assert isotonic.predict([marker.score])[0] == pytest.approx(0.5, abs=1e-6)  # where the map reaches 0.5
    assert isotonic.predict([marker.score - 0.01])[0] < 0.5
    assert live_search.calibrated_run(db, "another-encoder") is None
