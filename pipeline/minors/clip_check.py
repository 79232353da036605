"""Image-side check with CLIP, for photos without captions, when CLIP weights are at hand.

Zero-shot: the photo's vector against prompts describing children and prompts describing everything else; the
score is the softmax probability mass of the child prompts. A photo scoring at or above the calibrated
threshold goes to review; below it, it is cleared. The threshold is calibrated on hand-labelled photos for a
target recall (`python -m pipeline calibrate-minors`) and stored per encoder in `settings`.

These machines have no CLIP weights, so this path is tested for its mechanics on a randomly initialised model;
no threshold calibrated here means anything.
"""

from __future__ import annotations

import numpy as np

from db import embeddings as vectors_store
from db import settings as settings_store
from db.database import Database
from pipeline.embed import embed
from pipeline.encoders.base import Encoder

CHILD_PROMPTS = ("a photo of a child", "a photo of a baby", "a photo of a toddler", "a photo of a little girl",
                 "a photo of a little boy", "a photo of kids playing", "a photo of a young teenager")
OTHER_PROMPTS = ("a photo of an adult", "a photo of a man", "a photo of a woman", "a photo of adults",
                 "a photo with no people", "a photo of an animal", "a photo of food", "a photo of a street",
                 "a photo of a room", "a photo of a vehicle", "a photo of a landscape")
LOGIT_SCALE = 100.0


class ClipChildCheck:
    def __init__(self, encoder: Encoder, threshold: float) -> None:
        self.encoder, self.threshold = encoder, threshold
        self.prompts = encoder.encode_texts(list(CHILD_PROMPTS + OTHER_PROMPTS))
        self.id = f"clip-child-{encoder.id}-t{threshold:.4f}"

    def scores(self, photo_vectors: np.ndarray) -> np.ndarray:
        logits = LOGIT_SCALE * photo_vectors @ self.prompts.T
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities[:, : len(CHILD_PROMPTS)].sum(axis=1)


def calibrate(scores: np.ndarray, shows_child: np.ndarray, target_recall: float) -> float:
    """The highest threshold that still sends ``target_recall`` of the child photos to review."""
    child_scores = np.sort(np.asarray(scores)[np.asarray(shows_child, bool)])
    if len(child_scores) == 0:
        raise ValueError("calibration needs photos labelled as showing a child")
    allowed_misses = int(np.floor(len(child_scores) * (1 - target_recall) + 1e-9))
    return float(child_scores[allowed_misses])


def settings_key(encoder: Encoder) -> str:
    return f"minors_clip_threshold:{encoder.id}"


def stored_check(db: Database, encoder: Encoder) -> ClipChildCheck:
    with db.cursor() as cur:
        calibration = settings_store.get(cur, settings_key(encoder))
    if calibration is None:
        raise ValueError(f"no calibrated threshold for {encoder.id}: run `python -m pipeline calibrate-minors` "
                         "with the same --model/--pretrained first")
    return ClipChildCheck(encoder, calibration["threshold"])


def calibrate_on_labels(db: Database, encoder: Encoder, shows_child: dict[str, bool], target_recall: float,
                        *, quiet: bool = False) -> dict:
    """Score the labelled photos, pick the threshold for ``target_recall``, store it for ``encoder``."""
    embed(db, encoder, quiet=quiet)
    vectors = vectors_store.vectors_of(db, encoder.id, list(shows_child))
    ids = sorted(vectors)
    if not ids:
        raise ValueError("none of the labelled photos has a vector; ingest the labelled dataset first")
    scores = ClipChildCheck(encoder, 0.0).scores(np.stack([vectors[i] for i in ids]))
    truth = np.array([shows_child[i] for i in ids])
    threshold = calibrate(scores, truth, target_recall)
    caught = scores >= threshold
    calibration = {"threshold": threshold, "target_recall": target_recall, "photos": len(ids),
                   "positives": int(truth.sum()), "recall": float(caught[truth].mean()),
                   "review_share": float(caught.mean())}
    with db.write() as cur:
        settings_store.put(cur, settings_key(encoder), calibration)
    return calibration
