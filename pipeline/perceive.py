"""Perceive stage: reads `images`, writes `perceived_photos` and `detections` (objects, faces, ages).

Incremental like embed: only photos whose current bytes (sha256) have no result of the current perceiver are done,
in batches each committed on its own, so a killed run keeps what it finished and the next run goes on from there.
A photo is read through pipeline/photos.py (only the ingested bytes, upright); one that cannot be read or decoded
is reported and skipped, and gets no row, so the minors filter keeps it pending (fail closed). All weights are found
and checked (sha256, input and output shapes) before the first photo is read. Decoding runs in a thread ahead of
the detectors (PIL and OpenCV release the GIL).

Threads: by default ONNX Runtime's worker threads spin for a while after each run, waiting for the next. Here two
ONNX sessions, OpenCV's YuNet and the decoding thread take turns on the same cores, and the spinning threads of one
network starved the next: turning spinning off (objects.py, faces.py) took the stage from 0.313 to 0.150 s per
photo on the 2-core machine in back-to-back runs (benchmarks/perceive.py, loaded by other jobs both times).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from db import perception as store
from db.database import Database
from pipeline import photos
from pipeline.perception.faces import AgeEstimator, FaceDetector, faces_with_ages
from pipeline.perception.objects import ObjectDetector
from pipeline.perception.weights import KNOWN_WEIGHTS, PERCEIVER_ID, PerceptionWeightsError, locate_all
from pipeline.progress import bar

DEFAULT_BATCH = 16
# Large JPEGs are decoded at a reduced scale that keeps the shorter side at least this long: YOLOX looks at 416 px,
# YuNet at most 960 px, so full-size decoding of a 24-megapixel upload would be work thrown away. Boxes are
# stored in the photo's full upright pixels all the same.
DECODE_SIDE = 960


@dataclass
class Perception:
    """What one photo showed, in the pixels of the array it was given (the stage scales them to full size)."""

    width: int
    height: int
    detections: pd.DataFrame  # store.DETECTION_COLUMNS


class Perceiver:
    """The three networks, loaded and checked once. ``see`` takes an upright RGB uint8 array."""

    id = PERCEIVER_ID

    def __init__(self, weights: str | Path | None = None, threads: int = 2) -> None:
        paths = locate_all(weights)
        try:
            self.objects = ObjectDetector(paths["objects"], KNOWN_WEIGHTS["objects"].model_id, threads)
            self.faces = FaceDetector(paths["faces"], KNOWN_WEIGHTS["faces"].model_id)
            self.ages = AgeEstimator(paths["age"], KNOWN_WEIGHTS["age"].model_id, threads)
        except ValueError as exc:  # the right sha256 is checked first, so this is a wrong model under a known name
            raise PerceptionWeightsError(str(exc)) from exc

    def see(self, rgb: np.ndarray) -> Perception:
        rows = [(self.objects.model_id, "object", box.label, box.score, box.x0, box.y0, box.x1, box.y1,
                 min(box.x1 - box.x0, box.y1 - box.y0), None, None) for box in self.objects.detect(rgb)]
        rows += [(self.faces.model_id, "face", "face", face.score, face.x0, face.y0, face.x1, face.y1, face.size_px,
                  face.age, None if face.age is None else self.ages.model_id)
                 for face in faces_with_ages(self.faces, self.ages, rgb)]
        return Perception(rgb.shape[1], rgb.shape[0], pd.DataFrame(rows, columns=list(store.DETECTION_COLUMNS)))


@dataclass
class PerceiveReport:
    perceiver: str
    perceived: int = 0
    already_current: int = 0
    objects: int = 0
    faces: int = 0
    aged_faces: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    removed: int = 0
    seconds: float = 0.0

    def count(self, photo: dict, detections: pd.DataFrame) -> None:
        """Add one perceived photo (its `perceived_photos` row and detections) to the totals."""
        self.perceived += 1
        self.objects += photo["objects"]
        self.faces += photo["faces"]
        self.aged_faces += int(detections["age"].notna().sum())


def decode(path: str, sha256: str) -> np.ndarray | str:
    """Upright RGB pixels of the decided bytes (at most DECODE_SIDE), or the reason they cannot be had."""
    try:
        return np.asarray(photos.open_verified(path, sha256, DECODE_SIDE).convert("RGB"))
    except photos.PhotoUnavailable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a photo that fails to convert is that photo's problem only
        return f"{path}: cannot decode ({exc})"


def _decoded(rows: pd.DataFrame, threads: int) -> Iterator[tuple[int, np.ndarray | str]]:
    """(row index, upright RGB pixels or the reason they cannot be had), decoded ahead in a thread."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        yield from pool.map(lambda i: (i, decode(rows["path"].iat[i], rows["sha256"].iat[i])), range(len(rows)))


def seen_in_full_size(seen: Perception, width: int) -> pd.DataFrame:
    """The detections of a photo seen at a reduced size, in its full upright pixels (as stored)."""
    detections = seen.detections.copy()
    detections[["x0", "y0", "x1", "y1", "size_px"]] *= width / seen.width
    return detections


def perceived_row(image_id: str, sha: str, width: int, height: int, detections: pd.DataFrame,
                  seconds: float) -> dict:
    """The `perceived_photos` row of one photo."""
    kinds = detections["kind"]
    return {"image_id": image_id, "sha256": sha, "width": width, "height": height,
            "objects": int((kinds == "object").sum()), "faces": int((kinds == "face").sum()), "seconds": seconds}


def perceive(db: Database, perceiver: Perceiver, *, batch_size: int = DEFAULT_BATCH, quiet: bool = False,
             decode_threads: int = 1) -> PerceiveReport:
    started = time.perf_counter()
    report = PerceiveReport(perceiver.id)
    todo = store.photos_to_perceive(db, perceiver.id)
    done_photos: list[dict] = []
    found: list[pd.DataFrame] = []

    def commit() -> None:
        if done_photos:
            detections = pd.concat(found, ignore_index=True) if found else pd.DataFrame(
                columns=["image_id", "sha256", *store.DETECTION_COLUMNS])
            with db.write() as cur:
                store.save_perceived(cur, perceiver.id, pd.DataFrame(done_photos), detections)
            done_photos.clear()
            found.clear()

    with bar(total=len(todo), desc="perceive", unit="photo", disable=quiet) as progress:
        for index, pixels in _decoded(todo, decode_threads):
            image_id, sha = todo["image_id"].iat[index], todo["sha256"].iat[index]
            if isinstance(pixels, str):
                report.failed.append((image_id, pixels))
            else:
                began = time.perf_counter()
                seen = perceiver.see(pixels)
                width, height = int(todo["width"].iat[index]), int(todo["height"].iat[index])
                detections = seen_in_full_size(seen, width)
                done_photos.append(perceived_row(image_id, sha, width, height, detections,
                                                 time.perf_counter() - began))
                if len(detections):
                    found.append(detections.assign(image_id=image_id, sha256=sha))
                report.count(done_photos[-1], detections)
            progress.update(1)
            if len(done_photos) >= batch_size:
                commit()
        commit()
    with db.write() as cur:
        report.removed = store.delete_orphans(cur)
    report.already_current = store.perceived_count(db, perceiver.id) - report.perceived
    report.seconds = time.perf_counter() - started
    return report
