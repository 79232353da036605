"""COCO-80 objects with YOLOX-Nano on ONNX Runtime.

The network takes one 416x416 BGR image, letterboxed (scaled to fit, placed top-left, padded with 114, no
normalisation), and returns a raw head of 3,549 anchors (strides 8, 16 and 32): grid offsets and log sizes, an
objectness and 80 class scores. A box's score is objectness x class score. Boxes are kept from ``SCORE_FLOOR`` up,
after NMS per class, so that thresholds are chosen later (the minors filter calibrates its own) from stored scores
rather than baked in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIDE = 416
STRIDES = (8, 16, 32)
PAD_VALUE = 114
SCORE_FLOOR = 0.02
NMS_IOU = 0.45
MAX_BOXES = 100
INPUT_SHAPE, OUTPUT_SHAPE = [1, 3, SIDE, SIDE], [1, 3549, 85]
COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)


@dataclass(frozen=True)
class Box:
    label: str
    score: float
    x0: float
    y0: float
    x1: float
    y1: float


def _grid() -> tuple[np.ndarray, np.ndarray]:
    cells, strides = [], []
    for stride in STRIDES:
        side = SIDE // stride
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        cells.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        strides.append(np.full((side * side, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


class ObjectDetector:
    """One ONNX Runtime session; ``detect`` takes an upright RGB uint8 array and returns boxes in its pixels."""

    def __init__(self, path: Path, model_id: str, threads: int = 2) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see perceive.py
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or list(inputs[0].shape) != INPUT_SHAPE or list(outputs[0].shape) != OUTPUT_SHAPE:
            raise ValueError(f"{path}: input {[i.shape for i in inputs]} / output {[o.shape for o in outputs]}, "
                             f"expected {INPUT_SHAPE} -> {OUTPUT_SHAPE} (YOLOX-Nano COCO-80 at {SIDE})")
        self.input_name = inputs[0].name
        self.model_id = model_id
        self.cells, self.strides = _grid()

    def detect(self, rgb: np.ndarray) -> list[Box]:
        import cv2

        height, width = rgb.shape[:2]
        ratio = min(SIDE / height, SIDE / width)
        resized = cv2.resize(rgb, (max(1, round(width * ratio)), max(1, round(height * ratio))),
                             interpolation=cv2.INTER_LINEAR)
        canvas = np.full((SIDE, SIDE, 3), PAD_VALUE, np.uint8)
        canvas[: resized.shape[0], : resized.shape[1]] = resized[:, :, ::-1]  # RGB -> BGR
        pixels = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        head = self.session.run(None, {self.input_name: pixels})[0][0]
        return self._decode(head, ratio, width, height)

    def _decode(self, head: np.ndarray, ratio: float, width: int, height: int) -> list[Box]:
        import cv2

        scores = head[:, 4:5] * head[:, 5:]
        anchors, classes = np.nonzero(scores >= SCORE_FLOOR)
        if anchors.size == 0:
            return []
        centres = (head[anchors, :2] + self.cells[anchors]) * self.strides[anchors]
        sizes = np.exp(np.minimum(head[anchors, 2:4], 10.0)) * self.strides[anchors]
        corners = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / ratio
        corners = np.clip(corners, 0, [width, height, width, height])
        kept_scores = scores[anchors, classes]
        xywh = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
        keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), kept_scores.tolist(), classes.tolist(), SCORE_FLOOR, NMS_IOU)
        keep = sorted(np.asarray(keep, dtype=int).reshape(-1), key=lambda i: -kept_scores[i])[:MAX_BOXES]
        return [Box(COCO80[classes[i]], float(kept_scores[i]), *map(float, corners[i])) for i in keep]
