"""A tiny deterministic encoder, so stage tests run in milliseconds without any weights."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from pipeline.encoders.base import Encoder, l2_normalise


class ColourEncoder(Encoder):
    """Photo vector = its mean colour (+ a constant); text vector = colour words it names."""

    dim = 4
    COLOURS = {"red": 0, "green": 1, "blue": 2}

    def __init__(self, fail_on_batch: int | None = None) -> None:
        self.id = self.feature_id = "colour-test"
        self.batches = 0
        self.fail_on_batch = fail_on_batch

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0)

    def extract(self, batch: torch.Tensor) -> np.ndarray:
        self.batches += 1
        if self.fail_on_batch is not None and self.batches == self.fail_on_batch:
            raise RuntimeError("simulated crash")
        means = batch.mean(dim=(1, 2)).numpy()
        return np.hstack([means, np.full((len(means), 1), 0.1, np.float32)])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            vector = np.full(self.dim, 0.01, np.float32)
            for word, column in self.COLOURS.items():
                if word in text.lower():
                    vector[column] = 1.0
            vector[3] += int(hashlib.md5(text.encode()).hexdigest(), 16) % 7 / 1000
            rows.append(vector)
        return l2_normalise(np.array(rows).reshape(-1, self.dim))
