"""Training targets: (image, query) pairs with a 0..1 relevance and the group that keeps an image on one side.

* ``expert`` / ``crowd`` / ``any``: pairs a dataset's judges rated (Flickr8k, With Sense), target = the aggregated
  `relevance` (pipeline/relevance.py), kept with every judgment for the metrics. Group = the rated photo.
* ``category-pairs`` (a COCO dataset): each caption with its own photo (relevance 1) and with other photos graded
  by the COCO object categories they share: 0.8 x Jaccard(categories of the caption's photo, of the other photo).
  Photos are dealt into folds first and a caption is paired only with photos of its own photo's fold, so neither
  a photo nor a caption ever sits on both sides of a split. Half of a caption's other photos are the ones sharing
  most categories (graded middle values), half are drawn at random (mostly 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from db import embeddings as store
from db import models as model_store
from db.database import Database

JUDGED = ("expert", "crowd", "any")
CATEGORY_PAIRS = "category-pairs"
KINDS = (*JUDGED, CATEGORY_PAIRS)
OTHER_PHOTO_WEIGHT = 0.8  # a photo sharing every category with the caption's own photo still ranks below it
DEFAULT_OTHER_PHOTOS = 4


class TargetError(ValueError):
    """The target cannot be built from what the database holds; the message says what to run."""


@dataclass
class Target:
    name: str  # '<dataset>/<kind>'
    dataset: str
    kind: str
    pairs: pd.DataFrame  # image_id, query_id, query_text, target, group (+ judgment columns)
    data_version: str
    dropped: dict[str, int] = field(default_factory=dict)  # why pairs could not be used -> how many


def load(db: Database, kind: str, dataset: str | None = None, *, folds: int = 5,
         other_photos: int = DEFAULT_OTHER_PHOTOS, seed: int = 0) -> Target:
    if kind not in KINDS:
        raise TargetError(f"unknown target {kind!r}; choose one of: {', '.join(KINDS)}")
    dataset = dataset or _default_dataset(db, kind)
    if kind == CATEGORY_PAIRS:
        pairs, dropped = category_pairs(db, dataset, folds, other_photos, seed), {}
    else:
        pairs, dropped = _judged(db, dataset, kind)
    return Target(f"{dataset}/{kind}", dataset, kind, pairs, store.data_version(db, dataset), dropped)


def _default_dataset(db: Database, kind: str) -> str:
    needs = "objects" if kind == CATEGORY_PAIRS else ("expert" if kind == "any" else kind)
    found = model_store.datasets_with(db, needs)
    if not found:
        what = "COCO object labels" if kind == CATEGORY_PAIRS else f"{needs} judgments"
        raise TargetError(f"target {kind!r}: no dataset with {what}; run `python -m pipeline ingest` first")
    return found[0]


def _judged(db: Database, dataset: str, kind: str) -> tuple[pd.DataFrame, dict[str, int]]:
    pairs = model_store.judged_pairs(db, dataset, kind)
    if pairs.empty:
        raise TargetError(f"dataset {dataset!r} has no pairs with {kind} judgments; "
                          "run `python -m pipeline ingest` (and `relevance`) first")
    unknown = pairs["query_text"].isna()
    pairs = pairs[~unknown].reset_index(drop=True)
    pairs["group"] = pairs["image_id"]
    return pairs, ({"query caption absent from the source": int(unknown.sum())} if unknown.any() else {})


def category_pairs(db: Database, dataset: str, folds: int, other_photos: int, seed: int) -> pd.DataFrame:
    captions = store.captions_of_readable_photos(db, dataset)
    objects = store.objects_of_readable_photos(db, dataset)
    photos = model_store.readable_photos(db, dataset)
    if captions.empty or objects.empty:
        raise TargetError(f"target {CATEGORY_PAIRS!r} needs captioned photos with object labels in {dataset!r}; "
                          "ingest a COCO dataset with its photos first")
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(photos, rng.permutation(len(photos)) % folds))
    categories = objects.groupby("image_id")["category"].agg(frozenset).to_dict()
    by_fold: dict[int, list[str]] = {}
    for photo in photos:
        by_fold.setdefault(fold_of[photo], []).append(photo)
    rows = []
    for caption_id, own, text in captions[["caption_id", "image_id", "text"]].itertuples(index=False):
        own_categories = categories.get(own, frozenset())
        others = [p for p in by_fold[fold_of[own]] if p != own]
        grades = np.array([_jaccard(own_categories, categories.get(p, frozenset())) for p in others])
        closest = [others[i] for i in np.argsort(-grades, kind="stable")[: other_photos // 2]]
        rest = [p for p in others if p not in closest]
        drawn = [rest[i] for i in rng.choice(len(rest), min(len(rest), other_photos - len(closest)), replace=False)]
        rows.append((own, caption_id, text, 1.0, fold_of[own]))
        for photo in closest + drawn:
            grade = OTHER_PHOTO_WEIGHT * _jaccard(own_categories, categories.get(photo, frozenset()))
            rows.append((photo, caption_id, text, grade, fold_of[own]))
    pairs = pd.DataFrame(rows, columns=["image_id", "query_id", "query_text", "target", "group"])
    pairs["group"] = "fold-" + pairs["group"].astype(str)
    return pairs


def _jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0
