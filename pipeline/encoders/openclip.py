"""OpenCLIP backend: one model for photos and texts (default ViT-B-32 / laion2b_s34b_b79k).

``pretrained`` is an open_clip tag, a local checkpoint path, or None for random weights. Random weights prove the
mechanics only (this is what the tests here run, as no CLIP weights can be downloaded on these machines); they say
nothing of quality. ``$STUDIO_OPENCLIP_MODEL`` and ``$STUDIO_OPENCLIP_CHECKPOINT`` replace the default model and
weights, so every stage and the dashboard load the same local checkpoint.

A tag's weights are looked up in the local hub cache first, with the hub switched off: huggingface_hub retries an
unreachable hub for about a minute before it falls back to its cache. Only when they are not cached does the hub
get a short reachability probe, and only a reachable hub is asked to download them. So an offline machine learns
in seconds that the weights are unavailable (``--encoder auto`` then takes the offline encoder).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.encoders.base import Encoder, WeightsUnavailable, l2_normalise

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
MODEL_ENV = "STUDIO_OPENCLIP_MODEL"
CHECKPOINT_ENV = "STUDIO_OPENCLIP_CHECKPOINT"
PROBE_SECONDS = 3.0
BATCH = 64
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


class OpenClipUnavailable(WeightsUnavailable):
    """The weights could not be loaded; ``reason`` is the short why (for ``--encoder auto``'s one line)."""

    def __init__(self, model: str, pretrained: str | None, reason: str) -> None:
        self.reason = reason
        super().__init__(f"open_clip {model} / {pretrained}: weights unavailable ({reason}). Pass --pretrained PATH "
                         "to a local checkpoint, or use --encoder offline on machines without internet.")


def default_model() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def default_pretrained() -> str:
    return os.environ.get(CHECKPOINT_ENV) or DEFAULT_PRETRAINED


def is_checkpoint_path(pretrained: str) -> bool:
    return pretrained.endswith(CHECKPOINT_SUFFIXES) or "/" in pretrained or os.sep in pretrained


def hub_offline_setting() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub itself reads the variable once, when it is imported)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.is_offline_mode() or value.strip().lower() in {"1", "true", "yes", "on"}


@contextmanager
def hub_cache_only() -> Iterator[None]:
    """Make huggingface_hub answer from its local cache alone, at once, while open_clip looks for a tag's file
    (its ``is_offline_mode()`` reads this module constant on every call). open_clip logs a cache miss as an ERROR
    on the root logger; a miss is expected here and the caller reports it, so that line is held back."""
    from huggingface_hub import constants

    before, disabled = constants.HF_HUB_OFFLINE, logging.root.manager.disable
    constants.HF_HUB_OFFLINE = True
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
        logging.disable(disabled)


def hub_unreachable(timeout: float = PROBE_SECONDS) -> str | None:
    """Why the hub cannot be used for a download now, or None when it answers within ``timeout`` seconds.

    One request with no retries, in a daemon thread so that a hanging DNS lookup cannot hold the stage longer."""
    if hub_offline_setting():
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import constants

    outcome: list[str | None] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout)
            outcome.append(None)
        except urllib.error.HTTPError:  # an answer, even 4xx/5xx: the hub is reachable
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the reason given
            outcome.append(f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}")

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"the hub ({constants.ENDPOINT}) is unreachable: no answer within {timeout:g} s"
    return None if outcome[0] is None else f"the hub ({constants.ENDPOINT}) is unreachable ({outcome[0]})"


class OpenClipEncoder(Encoder):
    def __init__(self, model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED,
                 image_size: int | None = None) -> None:
        try:
            import open_clip
        except ImportError as exc:
            raise OpenClipUnavailable(model, pretrained, "the open_clip_torch package is not installed") from exc

        self.model, self._preprocess, self.source = _create(open_clip, model, pretrained, image_size)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model)
        self.dim = int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") else \
            int(self.model.encode_text(self.tokenizer(["x"])).shape[1])
        tag = "random" if pretrained is None else Path(pretrained).name
        self.id = f"openclip-{model}-{tag}" + (f"-{image_size}px" if image_size else "")
        self.feature_id = self.id

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._preprocess(image.convert("RGB"))

    def to(self, device: str) -> OpenClipEncoder:
        """Run on ``device`` ('cuda' on a Ray actor given a GPU, pipeline/ray_engine.py); inputs follow it and
        vectors come back to the CPU."""
        self.model.to(device)
        return self

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def extract(self, batch: torch.Tensor) -> np.ndarray:
        return l2_normalise(self.model.encode_image(batch.to(self._device)).float().cpu().numpy())

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        device = self._device
        chunks = [self.model.encode_text(self.tokenizer(list(texts[i : i + BATCH])).to(device)).float().cpu().numpy()
                  for i in range(0, len(texts), BATCH)]
        return l2_normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), np.float32)


def _create(open_clip, model: str, pretrained: str | None, image_size: int | None):
    """(model, preprocess, where the weights came from): random, a checkpoint file, the hub cache or a download.
    Raises OpenClipUnavailable with the short reason."""
    def create(weights: str | None):
        built, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=weights,
                                                                     force_image_size=image_size)
        return built, preprocess

    def unavailable(exc: Exception, prefix: str = "") -> OpenClipUnavailable:
        # open_clip raises RuntimeError/OSError/hub errors; the first line says enough
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return OpenClipUnavailable(model, pretrained, f"{prefix}{type(exc).__name__}: {first_line}")

    if pretrained is None:
        return (*create(None), "random weights")
    if is_checkpoint_path(pretrained):
        if not Path(pretrained).is_file():
            raise OpenClipUnavailable(model, pretrained, "the checkpoint file does not exist")
        try:
            return (*create(pretrained), "weights loaded from the file")
        except Exception as exc:  # noqa: BLE001 - a wrong architecture or a damaged file: say which
            raise unavailable(exc, "the checkpoint does not load: ") from exc
    try:
        with hub_cache_only():
            return (*create(pretrained), "weights loaded from the local cache")
    except Exception as cached_exc:  # noqa: BLE001 - not cached (or an unknown tag): maybe the hub has it
        if not open_clip.get_pretrained_cfg(model, pretrained):
            raise unavailable(cached_exc) from cached_exc
    why = hub_unreachable()
    if why:
        raise OpenClipUnavailable(model, pretrained, f"not in the local cache, and {why}")
    try:
        return (*create(pretrained), "weights downloaded from the hub")
    except Exception as exc:  # noqa: BLE001
        raise unavailable(exc, "download failed: ") from exc
