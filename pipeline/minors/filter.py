"""Filter stage: reads `images`, `captions`, stored perception (and cached detector counts), writes
`minors_decisions`.

Per photo, fail-closed:
1. any caption with a sure child match -> ``excluded``;
2. else any doubtful match -> ``pending_review``;
3. else, with captions -> ``cleared``, unless the image layer (image_layer.py) sees a face estimated under 16
   (a child face included) -> ``pending_review`` (rule ``captions-cleared-face-looks-young``): the captions and the
   age model disagree, and both are fallible (the age model put a girl at 32 and an adult at 15), so a moderator
   settles it rather than the weaker signal excluding on its own.
4. no captions, with the image layer (``filter`` uses it by default, thresholds from image_thresholds.json): a face
   of at least 64 px under 13 -> ``excluded``; a face under 16, any person box or face above the calibrated
   thresholds -> ``pending_review``; nothing seen -> ``cleared``; never perceived, unreadable, or replaced since it
   was perceived -> ``pending_review`` (rule ``no-captions-not-perceived``).
5. no captions, with CLIP weights at hand (``filter --clip-pretrained``): the calibrated zero-shot child score
   (clip_check.py) sends the photo to review or clears it.
6. no captions otherwise -> ``pending_review`` until a moderator decides. With the OpenCV people detector switched
   on (``filter --detector``) a readable photo in which it finds nobody is ``cleared``. It is off by default: on
   COCO-mini it cleared 16 of 80 uncaptioned photos, 4 of which show people (none labelled a child, 2 labelled
   unsure), which fails a fail-closed legal filter. Perception supersedes it; it is kept for machines without the
   perception weights.
With the image layer and CLIP or the detector together, an uncaptioned photo is cleared only when every one of
them clears it; the stricter status wins. The image layer's evidence goes under ``"image"`` in the reasons (format in
image_layer.py), beside the caption rules' usual keys.

Re-running never overwrites a moderator's decision about the photo's current bytes; rule decisions are always
re-evaluated under the current rule-set version (lexicon.RULE_SET_VERSION plus the image-side checks, the image
layer named by its thresholds' id). A photo whose bytes changed since a moderator decided it is decided again by
the rules (fail closed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from db import embeddings as vectors_store
from db import minors as store
from db.database import Database
from pipeline.embed import embed
from pipeline.minors import lexicon
from pipeline.minors.clip_check import ClipChildCheck
from pipeline.minors.detector import PeopleDetector
from pipeline.minors.image_layer import CHILD_FACE, NOBODY, PEOPLE, YOUNG_FACE, ImageLayer
from pipeline.progress import bar

EXCLUDED, CLEARED, PENDING = "excluded", "cleared", "pending_review"
SEVERITY = {CLEARED: 0, PENDING: 1, EXCLUDED: 2}
IMAGE_RULES = {NOBODY: (CLEARED, "no-captions-nobody-seen"), PEOPLE: (PENDING, "no-captions-people-seen"),
               YOUNG_FACE: (PENDING, "no-captions-young-face"), CHILD_FACE: (EXCLUDED, "no-captions-child-face")}


@dataclass
class FilterReport:
    version: str
    statuses: Counter = field(default_factory=Counter)
    rules: Counter = field(default_factory=Counter)
    moderated_kept: int = 0
    moderated_superseded: int = 0


def decide_from_captions(caption_ids: list[str], texts: list[str]) -> tuple[str, dict]:
    """Status and reasons from the photo's captions (at least one)."""
    found = []
    for caption_id, text in zip(caption_ids, texts):
        for match in lexicon.find(text):
            found.append({"caption_id": caption_id, "caption": text, **match.as_dict()})
    strengths = {m["strength"] for m in found}
    if "child" in strengths:
        return EXCLUDED, {"rule": "caption-child-words", "matches": found}
    if strengths:
        return PENDING, {"rule": "caption-doubtful-words", "matches": found}
    return CLEARED, {"rule": "captions-without-child-words", "captions": len(texts)}


def run_filter(db: Database, *, detector: PeopleDetector | None, clip: ClipChildCheck | None = None,
               image: ImageLayer | None = None, quiet: bool = False) -> FilterReport:
    other_check = clip.id if clip else detector.id if detector else None
    checks = [c for c in (image.id if image else None, other_check) if c]
    report = FilterReport(f"{lexicon.RULE_SET_VERSION}+{'+'.join(checks) or 'no-image-check'}")
    photos = store.photos_to_decide(db)
    current = photos["moderated"] & ~photos["moderated_other_bytes"]
    report.moderated_kept = int(current.sum())
    report.moderated_superseded = int(photos["moderated_other_bytes"].sum())  # photo replaced since: decide again
    photos = photos[~current]
    uncaptioned = photos[photos["caption_ids"].map(len) == 0]
    readable = uncaptioned[uncaptioned["file_status"] == "ok"]
    clip_scores = _clip_scores(db, clip, readable["image_id"].tolist(), quiet) if clip else {}
    counts = _people_counts(db, detector, readable, quiet) if detector and not clip else {}
    verdicts = image.verdicts(db, photos["image_id"].tolist()) if image else {}
    rows = []
    for photo in photos.itertuples():
        verdict = verdicts.get(photo.image_id)
        if len(photo.caption_ids):
            status, reasons = decide_from_captions(list(photo.caption_ids), list(photo.caption_texts))
            if status == CLEARED and verdict and verdict.kind in (YOUNG_FACE, CHILD_FACE):
                status, reasons = PENDING, {**reasons, "rule": "captions-cleared-face-looks-young"}
        else:
            status, reasons = (_uncaptioned(photo.image_id, clip, clip_scores, detector, counts)
                               if other_check or not image else (None, None))
            if image:  # with another check too, the stricter status wins (the image layer's on a tie)
                seen, rule = (PENDING, "no-captions-not-perceived") if verdict is None else IMAGE_RULES[verdict.kind]
                if status is None or SEVERITY[seen] >= SEVERITY[status]:
                    status, reasons = seen, {"rule": rule}
        if image:
            reasons["image"] = verdict.evidence if verdict else image.not_perceived()
        sha = photo.sha256 if isinstance(photo.sha256, str) else None  # missing photos: no bytes (NaN in pandas)
        rows.append((photo.image_id, status, sha, reasons))
        report.statuses[status] += 1
        report.rules[reasons["rule"]] += 1
    with db.write() as cur:
        store.replace_rule_decisions(cur, rows, report.version)
    return report


def _uncaptioned(image_id: str, clip: ClipChildCheck | None, clip_scores: dict[str, float],
                 detector: PeopleDetector | None, counts: dict[str, np.ndarray]) -> tuple[str, dict]:
    """Status and reasons of a photo without captions from CLIP or the OpenCV detector, fail closed without them."""
    if image_id in clip_scores:
        score = float(clip_scores[image_id])
        status = PENDING if score >= clip.threshold else CLEARED
        return status, {"rule": "no-captions-clip-child-score" if status == PENDING else "no-captions-clip-no-child",
                        "check": clip.id, "score": round(score, 4), "threshold": clip.threshold}
    if image_id in counts:
        status = PENDING if detector.sees_people(counts[image_id]) else CLEARED
        return status, {"rule": "no-captions-people-detected" if status == PENDING else "no-captions-no-people",
                        "detector": detector.id, "detections": detector.describe(counts[image_id])}
    return PENDING, {"rule": "no-captions-fail-closed",
                     "why": "no caption and no image-side check (no detector, or the photo is not readable)"}


def _people_counts(db: Database, detector: PeopleDetector, photos, quiet: bool) -> dict[str, np.ndarray]:
    """Detector counts per photo, cached in `image_features` by photo bytes (the detector is slow)."""
    ids, cached = vectors_store.cached_features(db, detector.id, photos["image_id"].tolist())
    counts = dict(zip(ids, cached))
    todo = photos[~photos["image_id"].isin(counts)]
    for photo in bar(list(todo.itertuples()), desc="people detector", unit="photo", disable=quiet):
        found = detector.count(photo.path, photo.sha256)
        if found is None:
            continue  # unreadable now, or not the ingested bytes: stays fail-closed
        with db.write() as cur:
            vectors_store.save_features(cur, detector.id, [photo.image_id], [photo.sha256],
                                        found[None, :].astype(np.float32))
        counts[photo.image_id] = found
    return counts


def _clip_scores(db: Database, clip: ClipChildCheck, image_ids: list[str], quiet: bool) -> dict[str, float]:
    """Child scores from the encoder's photo vectors (computed by the embed stage where missing)."""
    embed(db, clip.encoder, quiet=quiet)
    vectors = vectors_store.vectors_of(db, clip.encoder.id, image_ids)
    ids = list(vectors)
    scores = clip.scores(np.stack([vectors[i] for i in ids])) if ids else []
    return dict(zip(ids, scores))
