"""Image layer of the minors filter: what the perceive stage saw in a photo decides whether a photo without captions
can be cleared, and can hold back a captioned photo the lexicon cleared.

Rules, on the detections of the current perceiver made on the photo's current bytes (db/perception.py), only:
- *people*: a COCO ``person`` box (no other class counts: a teddy bear is not a person) with a score at or above
  ``person``, or a face at or above ``face``. Both thresholds are calibrated on hand-labelled photos
  (``python -m pipeline calibrate-perception --labels tests/data/minors_labels.csv``, see ``calibrate``) so that
  every labelled photo that shows people is still caught with both thresholds doubled (all but those with no
  person box and no face stored at any score, which no threshold reaches; the file lists them), and written to
  ``image_thresholds.json`` beside this module with the labels file's sha256, the figures and the perceiver id.
- *child face*: a face at or above ``face`` of at least EXCLUDE_FACE_PX estimated under EXCLUDE_AGE years (the
  filter excludes a photo without captions; a captioned one it sends to review).
- *young face*: a face at or above ``face`` with an age (the perceiver estimates one from REVIEW_FACE_PX up)
  under REVIEW_AGE years.
- *nobody*: none of the above. Age never clears a photo: a face of any age is a face, so *people*.
A photo the perceiver has no row for (never perceived, unreadable, or replaced since: sha256 changed) gets no
verdict, and the filter keeps it pending (fail closed).

Evidence, stored under the key ``"image"`` in the decision's reasons (minors_decisions.reasons, JSON)::

    {"verdict": "nobody" | "people" | "young-face" | "child-face" | "not-perceived",
     "perceiver": "<PERCEIVER_ID>",
     "thresholds": {"id": "<file id>", "person": 0.05, "face": 0.4, "exclude_age": 13, "exclude_face_px": 64,
                    "review_age": 16, "review_face_px": 32},
     "width": 640, "height": 480,                          # upright pixels the boxes refer to
     "best_person_score": 0.91, "best_face_score": 0.0,    # over every stored box, also those under the thresholds
     "persons": [{"score": 0.91, "box": [x0, y0, x1, y1]}, ...],       # at or above "person", best first
     "faces": [{"score": 0.8, "box": [...], "size_px": 70.0, "age": 8.2, "rule": "age-under-13"}, ...]}

``persons`` and ``faces`` list at most MAX_LISTED boxes each (with ``persons_total`` / ``faces_total`` counts);
a face's ``rule`` is ``age-under-13`` (excludes), ``age-under-16`` (review) or null; ``age`` is null for faces
too small to judge. "not-perceived" carries only verdict, perceiver and thresholds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from db import perception as perception_store
from db.database import Database

THRESHOLDS_FILE = Path(__file__).with_name("image_thresholds.json")
PERSON_LABEL = "person"
EXCLUDE_AGE, EXCLUDE_FACE_PX = 13.0, 64.0
REVIEW_AGE, REVIEW_FACE_PX = 16.0, 32.0
MARGIN = 0.5  # thresholds are this share of the tightest ones that still catch every labelled photo with people
MAX_LISTED = 20
LABEL_COLUMNS = ("image_id", "people", "child_under_16")  # of tests/data/minors_labels.csv

NOBODY, PEOPLE, YOUNG_FACE, CHILD_FACE, NOT_PERCEIVED = "nobody", "people", "young-face", "child-face", "not-perceived"


class ThresholdsError(ValueError):
    """The thresholds file is missing, unreadable, or calibrated for another perceiver."""


@dataclass(frozen=True)
class Thresholds:
    person: float
    face: float
    perceiver: str
    id: str  # sha256 prefix of the calibrated values and the perceiver: part of the rule-set version

    def as_dict(self) -> dict:
        return {"id": self.id, "person": self.person, "face": self.face, "exclude_age": EXCLUDE_AGE,
                "exclude_face_px": EXCLUDE_FACE_PX, "review_age": REVIEW_AGE, "review_face_px": REVIEW_FACE_PX}


def thresholds_id(person: float, face: float, perceiver: str) -> str:
    rules = {"exclude": [EXCLUDE_AGE, EXCLUDE_FACE_PX], "review": [REVIEW_AGE, REVIEW_FACE_PX]}
    text = json.dumps({"person": person, "face": face, "perceiver": perceiver, **rules}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def make_thresholds(person: float, face: float, perceiver: str) -> Thresholds:
    return Thresholds(person, face, perceiver, thresholds_id(person, face, perceiver))


@dataclass(frozen=True)
class Verdict:
    kind: str  # NOBODY, PEOPLE, YOUNG_FACE or CHILD_FACE
    evidence: dict


def _box(row) -> list[float]:
    return [round(float(row.x0), 1), round(float(row.y0), 1), round(float(row.x1), 1), round(float(row.y1), 1)]


def _age_rule(size_px: float, age: float | None) -> str | None:
    if age is None or np.isnan(age):
        return None
    if size_px >= EXCLUDE_FACE_PX and age < EXCLUDE_AGE:
        return "age-under-13"
    if size_px >= REVIEW_FACE_PX and age < REVIEW_AGE:
        return "age-under-16"
    return None


def judge(detections: pd.DataFrame, width: int, height: int, thresholds: Thresholds) -> Verdict:
    """The verdict on one perceived photo from its detections (db.perception.DETECTION_COLUMNS, any order)."""
    persons = detections[(detections["kind"] == "object") & (detections["label"] == PERSON_LABEL)]
    faces = detections[detections["kind"] == "face"]
    persons_seen = persons[persons["score"] >= thresholds.person].sort_values("score", ascending=False)
    faces_seen = faces[faces["score"] >= thresholds.face].sort_values("score", ascending=False)
    face_rows = []
    for face in faces_seen.itertuples():
        age = None if pd.isna(face.age) else float(face.age)
        face_rows.append({"score": round(float(face.score), 4), "box": _box(face),
                          "size_px": round(float(face.size_px), 1), "age": None if age is None else round(age, 1),
                          "rule": _age_rule(float(face.size_px), age)})
    rules = {f["rule"] for f in face_rows}
    kind = (CHILD_FACE if "age-under-13" in rules else YOUNG_FACE if "age-under-16" in rules
            else PEOPLE if len(persons_seen) or face_rows else NOBODY)
    face_rows.sort(key=lambda f: (f["rule"] is None, -f["score"]))  # the faces that fired a rule come first
    evidence = {
        "verdict": kind, "perceiver": thresholds.perceiver, "thresholds": thresholds.as_dict(),
        "width": int(width), "height": int(height),
        "best_person_score": round(float(persons["score"].max()), 4) if len(persons) else 0.0,
        "best_face_score": round(float(faces["score"].max()), 4) if len(faces) else 0.0,
        "persons": [{"score": round(float(p.score), 4), "box": _box(p)}
                    for p in persons_seen.head(MAX_LISTED).itertuples()],
        "persons_total": len(persons_seen), "faces": face_rows[:MAX_LISTED], "faces_total": len(face_rows),
    }
    return Verdict(kind, evidence)


class ImageLayer:
    """Verdicts from stored perception under calibrated thresholds."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self.id = f"image-{thresholds.id}"

    def not_perceived(self) -> dict:
        return {"verdict": NOT_PERCEIVED, "perceiver": self.thresholds.perceiver,
                "thresholds": self.thresholds.as_dict()}

    def verdicts(self, db: Database, image_ids: list[str]) -> dict[str, Verdict]:
        """Verdicts for the photos among ``image_ids`` whose current bytes the thresholds' perceiver saw."""
        perceiver = self.thresholds.perceiver
        perceived = perception_store.perceived_of(db, perceiver, image_ids)
        found = perception_store.detections_of(db, perceiver, list(perceived["image_id"]))
        by_photo = dict(tuple(found.groupby("image_id"))) if len(found) else {}
        empty = found.iloc[0:0]
        return {photo.image_id: judge(by_photo.get(photo.image_id, empty), photo.width, photo.height, self.thresholds)
                for photo in perceived.itertuples()}


def load(path: Path = THRESHOLDS_FILE, perceiver: str | None = None) -> ImageLayer:
    """The layer from a thresholds file; ``perceiver`` (the current PERCEIVER_ID) must be the one calibrated."""
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
        thresholds = make_thresholds(float(stored["person"]), float(stored["face"]), str(stored["perceiver"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ThresholdsError(f"image thresholds {path}: cannot read them ({exc}); run `python -m pipeline "
                              "calibrate-perception --labels tests/data/minors_labels.csv` on a perceived database")
    if perceiver is not None and thresholds.perceiver != perceiver:
        raise ThresholdsError(f"image thresholds {path} were calibrated for perceiver {thresholds.perceiver}, not the "
                              f"current {perceiver}: run `python -m pipeline calibrate-perception --labels CSV`")
    return ImageLayer(thresholds)


# --- calibration -------------------------------------------------------------------------------------------------


def read_labels(path: Path, dataset: str, columns: tuple[str, ...] = LABEL_COLUMNS,
                ) -> tuple[dict[str, dict[str, str]], str]:
    """image id -> {column: value} for ``columns`` after image_id (people: yes/no, child_under_16: yes/no/unsure),
    and the file's sha256. One reader for every labels file use: this calibration, the CLIP one and the benchmark."""
    try:
        data = Path(path).read_bytes()
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--labels {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from exc
    missing = set(columns) - set(rows[0] if rows else ())
    if missing:
        names = ", ".join(columns[:-1]) + " and " + columns[-1]
        raise ValueError(f"--labels {path}: needs a header with the columns {names} "
                         f"(missing: {', '.join(sorted(missing))})")
    labels = {f"{dataset}/{r['image_id']}": {c: r[c] for c in columns[1:]} for r in rows}
    return labels, hashlib.sha256(data).hexdigest()


def best_scores(detections: pd.DataFrame, image_ids: list[str]) -> pd.DataFrame:
    """Per photo (every id in ``image_ids``): the best person-box score and the best face score, 0 where none."""
    persons = detections[(detections["kind"] == "object") & (detections["label"] == PERSON_LABEL)]
    faces = detections[detections["kind"] == "face"]
    frame = pd.DataFrame({"image_id": image_ids})
    frame["person"] = frame["image_id"].map(persons.groupby("image_id")["score"].max()).fillna(0.0)
    frame["face"] = frame["image_id"].map(faces.groupby("image_id")["score"].max()).fillna(0.0)
    return frame.set_index("image_id")


def caught(scores: pd.DataFrame, person: float, face: float) -> pd.Series:
    """Photos that would not be cleared: a person box or a face at or above its threshold."""
    return (scores["person"] >= person) | (scores["face"] >= face)


def beyond_reach(scores: pd.DataFrame) -> list[str]:
    """Photos with no person box and no face stored at all: no threshold can hold them back."""
    return sorted(scores.index[(scores["person"] <= 0) & (scores["face"] <= 0)])


def calibrate(scores: pd.DataFrame, shows_people: pd.Series, margin: float = MARGIN) -> tuple[float, float]:
    """(person, face) thresholds such that, with both divided by ``margin`` (doubled at 0.5), every photo showing
    people is still caught (caught when either score reaches its threshold), except those beyond any threshold
    (no box, no face: see ``beyond_reach``); among such pairs, the one that clears the most photos showing nobody,
    and of those the lowest face threshold (the more cautious).

    Candidate face thresholds are the faces' scores on the labelled photos, ``margin`` times those on the people
    photos, and 1.0; for each, the person threshold is ``margin`` times the lowest best person score among the
    people photos that the face threshold, divided by ``margin``, does not catch. Faces are weaker evidence than
    person boxes here: YuNet finds faces on bears, dogs, donuts and toasters, so where person boxes already catch
    every photo with people, the face threshold settles above the false faces rather than at a margin below the
    real ones."""
    people = scores[shows_people.reindex(scores.index).fillna(False).astype(bool)]
    reachable = people.drop(beyond_reach(people))
    if reachable.empty:
        raise ValueError("no labelled photo with people has a person box or a face stored: nothing to calibrate on")
    nobody = scores.drop(people.index)
    best = None
    candidates = set(scores["face"][scores["face"] > 0]) | set(margin * reachable["face"][reachable["face"] > 0])
    for face in sorted(candidates | {1.0}):
        not_by_faces = reachable[reachable["face"] < face / margin]
        lowest = float((not_by_faces if len(not_by_faces) else reachable)["person"].min())
        if lowest <= 0:
            continue  # a photo only its face catches would be lost: this face threshold is too high
        person = math.floor(margin * lowest * 1e6) / 1e6  # rounded down: the margin holds after rounding
        cleared = int((~caught(nobody, person, face)).sum())
        if best is None or cleared > best[0]:
            best = (cleared, (person, math.floor(face * 1e6) / 1e6))
    if best is None:
        raise ValueError("photos with people that only a face catches score too low for any face threshold with "
                         f"the margin {margin}")
    return best[1]


def figures(scores: pd.DataFrame, labels: dict[str, dict[str, str]], person: float, face: float) -> dict:
    """Recall on "shows people" at the thresholds and at twice them, and what each clears."""
    people = pd.Series({i: labels[i]["people"] == "yes" for i in scores.index})
    result = {"photos": len(scores), "photos_with_people": int(people.sum()),
              "people_beyond_reach": beyond_reach(scores[people]),
              "lowest_best_person_score_among_people_with_a_box":
                  round(float(scores.loc[people & (scores["person"] > 0), "person"].min()), 4),
              "lowest_best_face_score_among_people_with_faces":
                  round(float(scores.loc[people & (scores["face"] > 0), "face"].min()), 4)}
    for name, factor in (("at_thresholds", 1.0), ("at_twice", 2.0)):
        held = caught(scores, factor * person, factor * face)
        result[name] = {"recall_people": round(float(held[people].mean()), 4),
                        "people_missed": sorted(people.index[people & ~held]),
                        "nobody_cleared": int((~held[~people]).sum()), "nobody_photos": int((~people).sum())}
    return result


def calibrate_on_labels(db: Database, labels_path: Path, dataset: str, perceiver: str,
                        out: Path = THRESHOLDS_FILE, margin: float = MARGIN) -> dict:
    """Calibrate on the labelled photos the perceiver saw, write the thresholds file, return what it holds."""
    labels, labels_sha = read_labels(labels_path, dataset)
    perceived = perception_store.perceived_of(db, perceiver, list(labels))
    if perceived.empty:
        raise ValueError(f"none of the {len(labels)} labelled photos ({dataset}) was perceived by {perceiver}: "
                         "ingest them and run `python -m pipeline perceive` first")
    ids = list(perceived["image_id"])
    scores = best_scores(perception_store.detections_of(db, perceiver, ids), ids)
    shows_people = pd.Series({i: labels[i]["people"] == "yes" for i in ids})
    person, face = calibrate(scores, shows_people, margin)
    stored = {"person": person, "face": face, "perceiver": perceiver, "id": thresholds_id(person, face, perceiver),
              "margin": margin, "labels": str(labels_path), "labels_sha256": labels_sha, "dataset": dataset,
              "labelled_photos": len(labels), "labelled_photos_not_perceived": len(labels) - len(ids),
              "figures": figures(scores, labels, person, face)}
    Path(out).write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    return stored
