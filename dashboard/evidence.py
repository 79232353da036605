"""What the detectors saw, drawn on the photo for the Minors review page: person and face boxes with their score and
the estimated age, other objects lighter, so a moderator sees why a photo is held back (or was cleared).

Pure functions on bytes and rows (no Streamlit): the page caches :func:`annotated_photo` per path, sha256 and boxes.
Boxes are stored in pixels of the upright full-resolution photo (db/perception.py); the page shows the verified,
scaled-down display bytes (pipeline/photos.py), so every box is scaled by the display size over the perceived size.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from pipeline import photos

FACE, PERSON, OBJECT = "face", "person", "object"
COLOURS = {FACE: (230, 25, 75), PERSON: (255, 150, 0), OBJECT: (150, 190, 255)}
# Drawn when a decision carries no thresholds of its own: every stored face and person box (the stage stores
# faces from 0.3 and objects from 0.02), other objects only when fairly sure.
DEFAULT_MIN_SCORE = {FACE: 0.0, PERSON: 0.0, OBJECT: 0.3}
MAX_DRAWN = {FACE: 30, PERSON: 25, OBJECT: 15}
MAX_LABELLED = 10  # per group; in a crowd, more labels only cover each other (the table lists every box)


@dataclass(frozen=True)
class Box:
    """One detection to draw, in upright full-resolution pixels. Hashable: part of the page's cache key."""

    group: str  # FACE, PERSON or OBJECT
    label: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float
    size_px: float
    age: float | None

    @property
    def caption(self) -> str:
        """The label drawn on the box: "face 0.92 · age ~7", "person 0.81", "dog 0.55"."""
        text = f"{self.label} {self.score:.2f}"
        return text + (f" · age ~{round(self.age)}" if self.age is not None else "")


@dataclass(frozen=True)
class Evidence:
    """The boxes drawn on one photo, the perceived size they refer to, and how many qualifying boxes were left
    out (beyond MAX_DRAWN)."""

    width: int
    height: int
    boxes: tuple[Box, ...]
    not_drawn: int = 0


def group_of(kind: str, label: str) -> str:
    return FACE if kind == "face" else PERSON if label == PERSON else OBJECT


def select(detections: pd.DataFrame, width: int, height: int,
           min_score: Mapping[str, float] | None = None) -> Evidence:
    """The boxes worth drawing from one photo's detections (db.perception.detections_of rows): per group, those
    scoring at least ``min_score`` (default DEFAULT_MIN_SCORE), strongest first (faces with an age before those
    too small for one), at most MAX_DRAWN. Drawn in the order objects, persons, faces, so faces stay on top."""
    floors = {**DEFAULT_MIN_SCORE, **(min_score or {})}
    chosen: list[Box] = []
    not_drawn = 0
    rows = detections.sort_values("score", ascending=False)
    for group in (OBJECT, PERSON, FACE):
        boxes = [Box(group, str(r.label), float(r.score), float(r.x0), float(r.y0), float(r.x1), float(r.y1),
                     float(r.size_px), None if pd.isna(r.age) else float(r.age))
                 for r in rows.itertuples() if group_of(r.kind, r.label) == group and r.score >= floors[group]]
        if group == FACE:
            boxes.sort(key=lambda box: box.age is None)  # stable: by score within each part
        chosen += boxes[:MAX_DRAWN[group]]
        not_drawn += max(0, len(boxes) - MAX_DRAWN[group])
    return Evidence(int(width), int(height), tuple(chosen), not_drawn)


def thresholds_of(reasons: Mapping) -> dict[str, float]:
    """The image layer's thresholds a decision was made with (its reasons' "image" block), as minimum scores to
    draw: the boxes that counted for the decision. Empty when the decision carries none."""
    thresholds = (reasons.get("image") or {}).get("thresholds") or {}
    return {group: float(thresholds[group]) for group in (PERSON, FACE) if thresholds.get(group) is not None}


def annotate(jpeg: bytes, evidence: Evidence) -> bytes:
    """The photo with each box outlined in its group's colour, the first MAX_LABELLED faces and persons labelled
    with their caption (JPEG)."""
    with Image.open(io.BytesIO(jpeg)) as opened:
        image = opened.convert("RGB")
    scale_x, scale_y = image.width / max(evidence.width, 1), image.height / max(evidence.height, 1)
    line = max(2, round(max(image.size) / 250))
    font = ImageFont.load_default(size=max(11, round(max(image.size) / 45)))
    draw = ImageDraw.Draw(image)
    labelled = {FACE: 0, PERSON: 0}
    for box in evidence.boxes:
        colour = COLOURS[box.group]
        rect = (box.x0 * scale_x, box.y0 * scale_y, box.x1 * scale_x, box.y1 * scale_y)
        draw.rectangle(rect, outline=colour, width=line if box.group != OBJECT else max(2, line // 2))
        if box.group == OBJECT or labelled[box.group] >= MAX_LABELLED:
            continue  # other objects: the outline only, so they stay in the background
        labelled[box.group] += 1
        left, top, right, bottom = draw.textbbox((0, 0), box.caption, font=font)
        x = min(max(rect[0], 0), max(image.width - (right - left) - 4, 0))
        y = rect[1] - (bottom - top) - 4 if rect[1] - (bottom - top) - 4 >= 0 else rect[1]
        draw.rectangle((x, y, x + right - left + 4, y + bottom - top + 4), fill=colour)
        draw.text((x + 2 - left, y + 2 - top), box.caption, fill=(0, 0, 0), font=font)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def annotated_photo(path: str, sha256: str, evidence: Evidence) -> bytes | None:
    """The verified display bytes of the photo with the evidence drawn on them; None when the photo cannot be
    shown (file gone, or not the bytes decided)."""
    jpeg = photos.display_bytes(path, sha256)
    return None if jpeg is None else annotate(jpeg, evidence)


def table(evidence: Evidence) -> pd.DataFrame:
    """The drawn boxes as rows for the page (faces first, strongest first within a group)."""
    order = {FACE: 0, PERSON: 1, OBJECT: 2}
    rows = sorted(evidence.boxes, key=lambda b: (order[b.group], -b.score))
    return pd.DataFrame({
        "what": [b.label for b in rows], "score": [round(b.score, 3) for b in rows],
        "size_px": [round(b.size_px) for b in rows],
        "age": [None if b.age is None else round(b.age, 1) for b in rows],
        "box": [f"{b.x0:.0f},{b.y0:.0f} – {b.x1:.0f},{b.y1:.0f}" for b in rows],
    })


def summary(evidence: Evidence) -> str:
    """One line under the photo: faces (with the youngest age), persons and other objects drawn."""
    faces = [b for b in evidence.boxes if b.group == FACE]
    persons = [b for b in evidence.boxes if b.group == PERSON]
    others = [b for b in evidence.boxes if b.group == OBJECT]
    parts = []
    if faces:
        ages = [b.age for b in faces if b.age is not None]
        youngest = f", youngest ~{round(min(ages))}" if ages else ", too small for an age"
        parts.append(f"{len(faces)} face(s){youngest}")
    if persons:
        parts.append(f"{len(persons)} person box(es), best {max(b.score for b in persons):.2f}")
    if others:
        parts.append(f"{len(others)} other object(s): " + ", ".join(sorted({b.label for b in others})))
    if evidence.not_drawn:
        parts.append(f"{evidence.not_drawn} weaker box(es) not drawn")
    return "; ".join(parts) or "no person, face or object found"


def by_photo(detections: pd.DataFrame, sizes: pd.DataFrame, reasons: Mapping[str, Mapping]) -> dict[str, Evidence]:
    """Evidence per perceived photo: ``sizes`` (db.perception.perceived_of: image_id, width, height) says which
    photos the perceiver saw; ``reasons`` gives each photo's decision reasons (for its thresholds)."""
    grouped = dict(tuple(detections.groupby("image_id"))) if len(detections) else {}
    empty = detections.iloc[0:0]
    return {row.image_id: select(grouped.get(row.image_id, empty), row.width, row.height,
                                 thresholds_of(reasons.get(row.image_id, {})))
            for row in sizes.itertuples()}
