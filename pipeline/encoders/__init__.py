"""Encoder backends behind one interface (base.Encoder), chosen by name.

``offline`` runs on weights shipped in registry packages; ``openclip`` needs CLIP weights (a local checkpoint, the
hub cache, or a download). ``auto`` (the default) is the best of the two this machine can run: open_clip when its
weights load, the offline encoder otherwise, and it says which and why (:func:`choose`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.encoders.base import Encoder, WeightsUnavailable

BACKENDS = ("offline", "openclip")
AUTO = "auto"
CHOICES = (AUTO, *BACKENDS)
DEFAULT = AUTO


def load_encoder(name: str = "offline", *, bridge=None, model: str | None = None, pretrained: str | None = "default",
                 image_size: int | None = None) -> Encoder:
    """Build an encoder by backend name; unknown names and missing weights raise with what to do.

    open_clip's model and weights default to $STUDIO_OPENCLIP_MODEL / $STUDIO_OPENCLIP_CHECKPOINT when set, else
    ViT-B-32 / laion2b_s34b_b79k; ``pretrained=None`` means random weights."""
    if name == "offline":
        from pipeline.encoders.offline import OfflineEncoder

        return OfflineEncoder(bridge)
    if name == "openclip":
        from pipeline.encoders.openclip import OpenClipEncoder, default_model, default_pretrained

        tag = default_pretrained() if pretrained == "default" else pretrained
        return OpenClipEncoder(model or default_model(), tag, image_size)
    raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class Choice:
    """The encoder ``auto`` settled on, its backend name, and why (the line the CLI prints)."""

    encoder: Encoder
    backend: str
    reason: str

    @property
    def line(self) -> str:
        return f"encoder: {self.backend} ({self.reason})"


def choose(offline: Callable[[], Encoder] | None = None, *, model: str | None = None,
           pretrained: str | None = "default", image_size: int | None = None) -> Choice:
    """open_clip when its weights load (a local checkpoint, the hub cache, or a download from a reachable hub),
    else the offline encoder built by ``offline`` (default: zero-shot bridge). On a machine without the weights
    and without the hub this costs the open_clip import and a probe of at most a few seconds, never a download
    attempt with retries (see openclip.py)."""
    from pipeline.encoders.openclip import default_model, default_pretrained, is_checkpoint_path

    name = model or default_model()
    weights = default_pretrained() if pretrained == "default" else pretrained
    what = f"open_clip {name}" + (" (random)" if weights is None else
                                  f" checkpoint {weights}" if is_checkpoint_path(weights) else f"/{weights}")
    try:
        encoder = load_encoder("openclip", model=name, pretrained=weights, image_size=image_size)
    except WeightsUnavailable as exc:
        why = getattr(exc, "reason", str(exc))
        encoder = offline() if offline is not None else load_encoder("offline")
        return Choice(encoder, "offline", f"{what} weights unavailable: {why}")
    return Choice(encoder, "openclip", f"{what}: {encoder.source}")


__all__ = ["AUTO", "BACKENDS", "CHOICES", "DEFAULT", "Choice", "Encoder", "WeightsUnavailable", "choose",
           "load_encoder"]
