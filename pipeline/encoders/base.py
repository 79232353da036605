"""The encoder interface every backend implements, and the errors they raise.

An encoder maps photos and texts into one vector space where cosine similarity means "this text describes this
photo". Vectors are L2-normalised float32, so cosine is a dot product.

Encoding a photo is split in two so that the costly part is done once per photo: ``extract`` runs the network
on a batch of decoded photos and returns *features*; ``project`` turns features into the final vectors. For
most encoders ``project`` is the identity; the offline encoder's learned bridge lives there, so a refitted
bridge re-projects cached features without decoding a single photo again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


class WeightsUnavailable(RuntimeError):
    """Raised with the missing file or package and how to get it."""


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Encoder(ABC):
    """A text/photo encoder. Subclasses set ``id`` (names the vector space) and ``dim``."""

    id: str
    dim: int
    feature_id: str  # names what `extract` returns; equals `id` when `project` is the identity
    # JPEGs are decoded at the smallest 1/2, 1/4 or 1/8 scale keeping both sides at least this long (None: full
    # size): decoding a 12-megapixel photo in full for a 224-pixel view is most of the work thrown away.
    draft_side: int | None = None

    @property
    def text_id(self) -> str:
        """Names the text side alone, so cached text vectors survive a change of the photo side."""
        return self.id

    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """An opened photo -> model input (one tensor, or one per test-time view). Runs in loader workers."""

    @abstractmethod
    def extract(self, batch) -> np.ndarray:
        """A collated batch of preprocessed photos -> float32 features, one row per photo."""

    def project(self, features: np.ndarray) -> np.ndarray:
        """Features -> L2-normalised vectors in the shared space."""
        return l2_normalise(features)

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> L2-normalised float32 vectors, one row per text."""

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Photos -> L2-normalised float32 vectors (convenience for small batches)."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = torch.stack([self.preprocess(image.convert("RGB")) for image in images])
        return self.project(self.extract(batch))
