"""Features of (image, query) pairs, in named sets, from any encoder.

* ``image``: the photo vector, the query's text vector, their cosine and element-wise product. Needs the photo
  file (vectors from the embed stage); works for any uploaded photo. The vectors enter reduced to their first
  ``COMPONENTS`` principal components (of the photo vectors; photos and texts share one space), the product is
  taken in that reduced space, and the cosine uses the full vectors. Full 384-d blocks made ~1,150 columns, and
  the forest, boosting and MLP searches over them ran for many minutes on 2 cores (measured) for a gain ridge
  did not show. The basis is learned without any target and saved with the model for re-ranking.
* ``captions``: how the query compares with the photo's reference captions (the query's own caption excluded):
  see :mod:`pipeline.caption_features`. Needs captions, which uploaded photos do not have.
* ``image+captions``: both.

Every feature is finite: a photo without reference captions gets similarity features of 0 and ``ref_count`` 0,
so models see "no captions" rather than a missing value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import caption_features

TextEncode = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class FeatureSet:
    name: str
    uses_images: bool
    uses_captions: bool

    @property
    def zero_shot_score(self) -> str:
        """The one raw score the calibrated zero-shot model maps to relevance."""
        return "cosine" if self.uses_images else caption_features.ZERO_SHOT_SCORE


FEATURE_SETS = {fs.name: fs for fs in (
    FeatureSet("image", uses_images=True, uses_captions=False),
    FeatureSet("captions", uses_images=False, uses_captions=True),
    FeatureSet("image+captions", uses_images=True, uses_captions=True),
)}


class FeatureError(ValueError):
    """Features cannot be computed for these pairs; the message names the pairs and the reason."""


COMPONENTS = 32


def fit_basis(photo_vectors: np.ndarray, components: int = COMPONENTS) -> np.ndarray:
    """The top principal directions of the photo vectors, (d, k): no target involved."""
    centred = photo_vectors - photo_vectors.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    return directions[: min(components, len(directions))].T.astype(np.float32)


def feature_set(name: str) -> FeatureSet:
    if name not in FEATURE_SETS:
        raise FeatureError(f"unknown feature set {name!r}; choose one of: {', '.join(FEATURE_SETS)}")
    return FEATURE_SETS[name]


@dataclass
class PairFeatures:
    """Computes one feature set for pairs (image_id, query_id, query_text).

    ``photo_vectors`` maps image ids to L2-normalised vectors of the same encoder as ``encode`` (image sets);
    ``references`` holds (image_id, caption_id, text) of the photos' captions (caption sets) and ``gallery``
    the reference captions the query is compared against beyond the pair's own photo (caption sets)."""

    feature_set: FeatureSet
    encode: TextEncode
    photo_vectors: Mapping[str, np.ndarray] | None = None
    references: pd.DataFrame | None = None
    gallery: caption_features.Gallery | None = None
    basis: np.ndarray | None = None  # (d, COMPONENTS) projection for the image set; see fit_basis

    def __call__(self, pairs: pd.DataFrame, query_vectors: np.ndarray | None = None,
                 parts: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
        """Features of ``pairs``; ``query_vectors`` (one row per pair) when the caller already encoded them.
        ``parts`` lets feature sets of the same pairs and sources share work: the caller passes one dict to
        each set's builder, and the image and caption blocks are computed by the first set needing them."""
        if query_vectors is None:
            query_vectors = self.encode(pairs["query_text"].tolist())
        parts = {} if parts is None else parts
        blocks = []
        if self.feature_set.uses_images:
            if "image" not in parts:
                parts["image"] = self._image_part(pairs["image_id"].tolist(), query_vectors)
            blocks.append(parts["image"])
        if self.feature_set.uses_captions:
            if self.references is None or self.gallery is None:
                raise FeatureError("caption features need the photos' reference captions and a gallery")
            if "captions" not in parts:
                parts["captions"] = caption_features.compute(pairs, query_vectors, self.references, self.encode,
                                                             self.gallery).reset_index(drop=True)
            blocks.append(parts["captions"])
        features = pd.concat(blocks, axis=1)
        bad = ~np.isfinite(features.to_numpy(np.float64)).all(axis=1)
        if bad.any():
            first = pairs.iloc[int(np.flatnonzero(bad)[0])]
            raise FeatureError(f"{int(bad.sum())} pair(s) got NaN or infinite features (first: image "
                               f"{first['image_id']}, query {first['query_id']}); the encoder returned bad vectors")
        return features

    def _image_part(self, image_ids: list[str], query_vectors: np.ndarray) -> pd.DataFrame:
        vectors = self.photo_vectors or {}
        absent = sorted({i for i in image_ids if i not in vectors})
        if absent:
            raise FeatureError(f"{len(absent)} photo(s) have no vector for this encoder (first: {absent[0]}); "
                               "run `python -m pipeline embed`, or choose the 'captions' feature set")
        photos = np.stack([vectors[i] for i in image_ids]).astype(np.float32)
        dim = photos.shape[1]
        if query_vectors.shape[1] != dim:
            raise FeatureError(f"photo vectors have {dim} dimensions but text vectors {query_vectors.shape[1]}: "
                               "they come from different encoders")
        if self.basis is None or self.basis.shape[0] != dim:
            raise FeatureError("the image feature set needs a projection basis of the encoder's dimension "
                               "(features.fit_basis on photo vectors)")
        photo_part, text_part = photos @ self.basis, query_vectors @ self.basis
        block = np.hstack([(photos * query_vectors).sum(axis=1, keepdims=True), photo_part, text_part,
                           photo_part * text_part])
        names = ["cosine"] + [f"{part}_{i}" for part in ("img", "txt", "prod") for i in range(self.basis.shape[1])]
        return pd.DataFrame(block, columns=names, index=range(len(image_ids)))
