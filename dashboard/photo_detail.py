"""Everything the full-size view of a search result shows about one photo, read in one block: its file, captions,
detected objects, the labels reviewers gave it, and (for moderators only) its minors decision.

Why here and not in the page: the visibility check and the role rule are the parts that must not slip. A photo
that is not visible now gets no detail at all (the view says it is no longer shown), and the minors decision is
read only when the viewer is a moderator, so no other role's page ever holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from db import labels, perception, reads
from db.database import Database
from pipeline.object_text import PRESENT

MODERATOR = "moderator"


@dataclass(frozen=True)
class PhotoDetail:
    image_id: str
    file: dict[str, tuple[str, str]]  # {image_id: (path, sha256)}: what photo_view.photo takes
    captions: list[str]
    objects: pd.DataFrame  # label, score, boxes of the current perceiver, score PRESENT or more, best first
    labels: pd.DataFrame  # newest labels any reviewer gave the photo
    minors: dict | None  # the minors decision: only ever read for a moderator


def read(db: Database, image_id: str, role: str, perceiver: str) -> PhotoDetail | None:
    """The photo's detail, or None when it is not visible now (excluded, pending, bytes changed, gone)."""
    file = reads.visible_photo_files(db, [image_id])
    if image_id not in file:
        return None
    detections = perception.detections_of(db, perceiver, [image_id])
    objects = detections[(detections["kind"] == "object") & (detections["score"] >= PRESENT)]
    return PhotoDetail(
        image_id, file, reads.visible_captions_of(db, [image_id]).get(image_id, []),
        objects[["label", "score"]].reset_index(drop=True), labels.on_photo(db, image_id),
        reads.minors_decision(db, image_id) if role == MODERATOR else None)
