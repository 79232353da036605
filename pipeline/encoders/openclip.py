"""OpenCLIP backend: one model for photos and texts (default ViT-B-32 / laion2b_s34b_b79k).

``pretrained`` is an open_clip tag (downloaded by open_clip from its hub on first use, when the machine is
online), a local checkpoint path, or None for random weights. Random weights prove the mechanics only (this is
what the tests here run, as no CLIP weights can be downloaded on these machines); they say nothing of quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.encoders.base import Encoder, WeightsUnavailable, l2_normalise

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
BATCH = 64


class OpenClipEncoder(Encoder):
    def __init__(self, model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED,
                 image_size: int | None = None) -> None:
        import open_clip

        if pretrained and (pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")) or "/" in pretrained):
            if not Path(pretrained).is_file():
                raise WeightsUnavailable(f"open_clip checkpoint {pretrained} does not exist")
        try:
            self.model, _, self._preprocess = open_clip.create_model_and_transforms(
                model, pretrained=pretrained, force_image_size=image_size)
        except Exception as exc:  # open_clip raises RuntimeError/OSError/HF errors when weights can't be fetched
            raise WeightsUnavailable(
                f"open_clip {model} / {pretrained}: weights unavailable ({type(exc).__name__}: {exc}). Pass "
                "--pretrained PATH to a local checkpoint, or use --encoder offline on machines without internet."
            ) from exc
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model)
        self.dim = int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") else \
            int(self.model.encode_text(self.tokenizer(["x"])).shape[1])
        tag = "random" if pretrained is None else Path(pretrained).name
        self.id = f"openclip-{model}-{tag}" + (f"-{image_size}px" if image_size else "")
        self.feature_id = self.id

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self._preprocess(image.convert("RGB"))

    @torch.inference_mode()
    def extract(self, batch: torch.Tensor) -> np.ndarray:
        return l2_normalise(self.model.encode_image(batch).float().numpy())

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        chunks = [self.model.encode_text(self.tokenizer(list(texts[i : i + BATCH]))).float().numpy()
                  for i in range(0, len(texts), BATCH)]
        return l2_normalise(np.concatenate(chunks)) if chunks else np.zeros((0, self.dim), np.float32)
