"""MobileNetV2 on ONNX Runtime: exported once from the torchvision model, cached, verified, run without spinning.

Why: on the 2-core machine ONNX Runtime ran MobileNetV2 several times faster than eager torch (and faster than a
frozen TorchScript graph) at the same batch and thread count; benchmarks/embed.py measures the stage against the
old eager-torch configuration in the same run. The exported graph takes the uint8 pixels the loader hands over and
normalises them itself, so the batch travels as bytes up to the session.

The export (torch.onnx's TorchScript exporter; it needs the ``onnx`` package) takes seconds, so its file is kept in
the user's cache folder under a name holding the weights' sha256 and the export settings, beside a ``.sha256`` file
of its own bytes. A file whose bytes no longer match (a crash mid-write, a disk error, an edit) is exported again,
never loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
OPSET = 17
EXPORT_VERSION = 1  # bump when the exported graph changes (inputs, normalisation, opset)
INPUT, OUTPUT = "pixels", "logits"


def cache_dir() -> Path:
    """$STUDIO_CACHE_DIR, else $XDG_CACHE_HOME/with-sense, else ~/.cache/with-sense."""
    if os.environ.get("STUDIO_CACHE_DIR"):
        return Path(os.environ["STUDIO_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "with-sense"


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _Normalised(torch.nn.Module):
    """uint8 NCHW pixels -> ImageNet-normalised float -> the classifier's logits (the graph that is exported)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels.float() - self.mean) / self.std)


def torch_model(weights: Path) -> torch.nn.Module:
    """The torchvision MobileNetV2 with ``weights``, in eval mode (the reference the exported graph must match)."""
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def exported_model(weights: Path, folder: Path | None = None) -> Path:
    """The ONNX file of MobileNetV2 with ``weights``, exported on first use and verified on every use."""
    folder = folder or cache_dir()
    path = folder / f"mobilenet_v2-{sha256_of(weights)[:16]}-v{EXPORT_VERSION}-opset{OPSET}.onnx"
    check = path.with_name(path.name + ".sha256")
    if path.is_file() and check.is_file() and check.read_text().strip() == sha256_of(path):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".onnx.part", delete=False) as part:
        partial = Path(part.name)
    try:
        torch.onnx.export(_Normalised(torch_model(weights)), (torch.zeros(1, 3, 224, 224, dtype=torch.uint8),),
                          str(partial), dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch"}})
        digest = sha256_of(partial)
        partial.chmod(0o644)  # a temporary file is private; the cache is readable like any exported file
        os.replace(partial, path)  # atomic: a concurrent reader sees the old file or the whole new one
    finally:
        partial.unlink(missing_ok=True)
    check.write_text(digest + "\n")
    return path


def session(model: Path, threads: int):
    """A CPU session with ``threads`` intra-op threads that sleep between runs (see pipeline/perceive.py: spinning
    threads starved the loader worker and the other networks on 2 cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def logits(session, pixels: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, H, W) -> float32 (N, 1000)."""
    return session.run(None, {INPUT: np.ascontiguousarray(pixels, dtype=np.uint8)})[0]
