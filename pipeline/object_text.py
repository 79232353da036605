"""Detected objects as text, fused into the offline encoder's photo vectors.

The offline encoder places a photo in the text space through ImageNet label names (the bridge). ImageNet has no
"person" and sees one dominant thing per photo, while captions say "two dogs", "a man riding a horse". The perceive
stage finds COCO-80 objects (YOLOX-Nano), so each photo also gets an *object mixture*: the MiniLM embeddings of
phrases like "a photo of two dogs." / "a photo of a person.", one per detected label with the count of confident
boxes, weighted by that label's best detection score, centred and normalised. The photo's vector is

    normalise(bridge vector + weight x object mixture)

with ``weight`` chosen by cross-fit on captions (pipeline/bridge.py), or ``DEFAULT_WEIGHT`` before any fit.

Photos the current perceiver has not seen (or whose detections are all below ``FLOOR``) get no object term: their
vector is the bridge vector alone, in the same space. The embed stage re-projects a photo once it is perceived, and
search cards say "not perceived" for it, so nothing claims objects that were never looked for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from db import perception
from db.database import Database
from pipeline.encoders.base import l2_normalise
from pipeline.perception.objects import COCO80

FLOOR = 0.05  # weaker detections are ignored; chosen on COCO-mini (0.02, 0.05, 0.1, 0.2, 0.3 tried, see README)
PRESENT = 0.3  # a box counts ("two dogs"), is shown on result cards and satisfies "must show" from this score
DEFAULT_WEIGHT = 1.0  # the object term's weight before a fit (zero-shot); measured on COCO-mini, see README
WEIGHT_GRID = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
TEMPLATE = "a photo of {}."
QUERY_CHUNK = 2048
_NUMBERS = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_PLURALS = {"person": "people", "sheep": "sheep", "mouse": "mice", "knife": "knives", "skis": "skis",
            "scissors": "scissors", "broccoli": "broccoli"}


def plural(label: str) -> str:
    if label in _PLURALS:
        return _PLURALS[label]
    return label + ("es" if label.endswith(("s", "sh", "ch", "x")) else "s")


def phrase(label: str, count: int) -> str:
    """'a photo of a dog.', 'a photo of an apple.', 'a photo of two people.', 'a photo of many sheep.'"""
    if count <= 1:
        return TEMPLATE.format(("an " if label[0] in "aeiou" else "a ") + label)
    return TEMPLATE.format(f"{_NUMBERS[count] if count < len(_NUMBERS) else 'many'} {plural(label)}")


@dataclass(frozen=True)
class Seen:
    """One COCO label in one photo: boxes from PRESENT up (0 when only weaker ones) and the best score."""

    label: str
    count: int
    score: float


@dataclass(frozen=True)
class PhotoObjects:
    """What the perceiver saw in one photo's current bytes; ``perceived`` False: it never looked."""

    perceived: bool
    seen: tuple[Seen, ...] = ()

    @property
    def shown(self) -> list[tuple[str, int]]:
        """(label, count) of confident detections, most boxes first: what a result card lists."""
        return [(s.label, s.count) for s in sorted(self.seen, key=lambda s: (-s.count, -s.score)) if s.count]

    def describe(self) -> str:
        if not self.perceived:
            return "not perceived yet"
        shown = self.shown
        return ", ".join(f"{label} ×{n}" if n > 1 else label for label, n in shown) if shown else "no objects detected"


NOT_PERCEIVED = PhotoObjects(False)


def summarise(detections: pd.DataFrame, perceived: set[str], image_ids: Sequence[str]) -> list[PhotoObjects]:
    """Per photo (in ``image_ids`` order): its object detections from FLOOR up, grouped by label."""
    objects = detections[(detections["kind"] == "object") & (detections["score"] >= FLOOR)]
    by_photo: dict[str, list[Seen]] = {}
    for (image_id, label), group in objects.groupby(["image_id", "label"], sort=True):
        scores = group["score"].to_numpy()
        by_photo.setdefault(image_id, []).append(Seen(label, int((scores >= PRESENT).sum()), float(scores.max())))
    return [PhotoObjects(True, tuple(by_photo.get(i, ()))) if i in perceived else NOT_PERCEIVED for i in image_ids]


def photo_objects(db: Database, perceiver: str, image_ids: Sequence[str]) -> list[PhotoObjects]:
    """What ``perceiver`` saw in each photo's current bytes, in ``image_ids`` order."""
    ids = list(image_ids)
    if not ids:
        return []
    perceived = perception.perceived_ids(db, perceiver, ids)
    return summarise(perception.detections_of(db, perceiver, ids), perceived, ids)


class PhraseVectors:
    """Text vectors of object phrases, each encoded once (80 labels x a few counts in all)."""

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.encode, self.known = encode, {}

    def __call__(self, phrases: Sequence[str]) -> np.ndarray:
        missing = sorted(set(phrases) - self.known.keys())
        if missing:
            self.known.update(zip(missing, self.encode(missing)))
        return np.stack([self.known[p] for p in phrases])


def object_mixtures(photos: Sequence[PhotoObjects], phrases: PhraseVectors, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(photos, dim) normalised, uncentred object mixtures, and which photos have one (a detection >= FLOOR)."""
    vectors = np.zeros((len(photos), dim), np.float32)
    has = np.array([bool(p.seen) for p in photos], dtype=bool)
    for row in np.flatnonzero(has):
        seen = photos[row].seen
        weights = np.array([s.score for s in seen], np.float32)
        vectors[row] = weights @ phrases([phrase(s.label, max(s.count, 1)) for s in seen])
    return np.where(has[:, None], l2_normalise(vectors), 0.0).astype(np.float32), has


def data_free_center(phrases: PhraseVectors) -> np.ndarray:
    """Mean of the 80 'a photo of a <label>.' vectors: the centre used before any fit (needs no photos)."""
    return phrases([phrase(label, 1) for label in COCO80]).mean(0)


def fitted_center(mixtures: np.ndarray, has: np.ndarray) -> np.ndarray | None:
    """Mean object mixture of the photos that have one (None when none has)."""
    return mixtures[has].mean(0).astype(np.float32) if has.any() else None


def fuse(bridge_vectors: np.ndarray, mixtures: np.ndarray, has: np.ndarray, weight: float,
         center: np.ndarray) -> np.ndarray:
    """Bridge vectors plus ``weight`` x the centred, normalised object mixture (none where a photo has none)."""
    objects = np.where(has[:, None], l2_normalise(mixtures - center), 0.0)
    return l2_normalise(bridge_vectors + weight * objects)


@dataclass(frozen=True)
class ObjectFusion:
    """How objects of ``perceiver`` join the bridge vector; ``chosen_by`` records how ``weight`` was chosen."""

    perceiver: str
    weight: float = DEFAULT_WEIGHT
    center: np.ndarray | None = None  # None: data_free_center
    chosen_by: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Content hash: the perceiver, weight, centre, FLOOR, PRESENT and the phrase template all shape vectors."""
        return "obj-" + hashlib.sha256(self.to_json().encode()).hexdigest()[:10]

    def to_json(self) -> str:
        return json.dumps({
            "perceiver": self.perceiver, "weight": self.weight, "floor": FLOOR, "present": PRESENT,
            "template": TEMPLATE,
            "center": None if self.center is None else [round(float(c), 6) for c in self.center],
            "chosen_by": self.chosen_by,
        })

    @classmethod
    def from_json(cls, text: str) -> ObjectFusion:
        data = json.loads(text)
        center = None if data["center"] is None else np.asarray(data["center"], np.float32)
        return cls(data["perceiver"], float(data["weight"]), center, data["chosen_by"])


def choose_weight(fits: Sequence[tuple[np.ndarray, np.ndarray | None, np.ndarray]], mixtures: np.ndarray,
                  has: np.ndarray, queries: np.ndarray, target: np.ndarray, default_center: np.ndarray,
                  grid: Sequence[float] = WEIGHT_GRID) -> tuple[float, dict[str, float]]:
    """The grid weight with the best mean caption MRR over held-out folds, and the MRR of every weight.

    ``fits``: per held-out fold, (bridge vectors of all photos from a bridge fitted without that fold, the object
    centre of its fitting photos, boolean mask of the fold's captions). Ties go to the smaller weight."""
    table = {}
    for weight in grid:
        mrr = []
        for vectors, center, scored in fits:
            gallery = fuse(vectors, mixtures, has, weight, default_center if center is None else center)
            rows = np.flatnonzero(scored)
            reciprocal = []
            for start in range(0, len(rows), QUERY_CHUNK):  # bounded memory on large caption sets
                chunk = rows[start : start + QUERY_CHUNK]
                scores = queries[chunk] @ gallery.T
                own = scores[np.arange(len(chunk)), target[chunk]]
                reciprocal.append(1.0 / (scores >= own[:, None]).sum(axis=1))
            mrr.append(float(np.mean(np.concatenate(reciprocal))))
        table[f"{weight:g}"] = round(float(np.mean(mrr)), 4)
    best = max(grid, key=lambda w: (table[f"{w:g}"], -w))
    return float(best), table
