"""The offline encoder's fast path: ONNX Runtime gives the torch model's logits, and its export cache is checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import photos
from pipeline.encoders import onnx_runtime
from pipeline.encoders.offline import _view, weights_path


def test_onnx_runtime_gives_the_torch_models_logits_on_a_real_photo(shared_data: Path) -> None:
    photo = sorted((shared_data / "coco-mini").rglob("*.jpg"))[0]
    image = photos.upright(photos.Image.open(photo)).convert("RGB")
    session = onnx_runtime.session(onnx_runtime.exported_model(weights_path()), threads=2)
    model = onnx_runtime.torch_model(weights_path())
    mean = torch.tensor(onnx_runtime.IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(onnx_runtime.IMAGENET_STD).view(1, 3, 1, 1) * 255
    for mode, side in (("full", 224), ("center", 224), ("full", 288)):  # the graph takes any size
        pixels = torch.stack([_view(image, mode, side)] * 2)
        with torch.inference_mode():
            expected = model((pixels.float() - mean) / std).numpy()
        got = onnx_runtime.logits(session, pixels.numpy())
        assert got.shape == (2, 1000) and got.dtype == np.float32
        assert np.abs(got - expected).max() < 1e-3, (mode, side)
        assert (got.argmax(1) == expected.argmax(1)).all()


def test_the_export_is_cached_by_weights_and_a_damaged_file_is_exported_again(tmp_path: Path, monkeypatch) -> None:
    exports = []

    def fake_export(model, args, path, **kwargs) -> None:
        exports.append(kwargs["input_names"])
        Path(path).write_bytes(b"graph %d" % len(exports))

    monkeypatch.setattr(torch.onnx, "export", fake_export)
    weights = tmp_path / "weights.pth"
    torch.save(onnx_runtime.torch_model(weights_path()).state_dict(), weights)
    first = onnx_runtime.exported_model(weights, tmp_path / "cache")
    assert onnx_runtime.exported_model(weights, tmp_path / "cache") == first and len(exports) == 1
    assert onnx_runtime.sha256_of(weights)[:16] in first.name
    first.write_bytes(b"half a graph")  # a crash mid-write, a disk error, an edit
    again = onnx_runtime.exported_model(weights, tmp_path / "cache")
    assert again == first and len(exports) == 2 and again.read_bytes() == b"graph 2"
    assert not list((tmp_path / "cache").glob("*.part"))


@pytest.mark.parametrize("option", ["STUDIO_CACHE_DIR", "XDG_CACHE_HOME"])
def test_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch, option: str) -> None:
    monkeypatch.delenv("STUDIO_CACHE_DIR", raising=False)
    monkeypatch.setenv(option, str(tmp_path))
    assert onnx_runtime.cache_dir() == (tmp_path if option == "STUDIO_CACHE_DIR" else tmp_path / "with-sense")
