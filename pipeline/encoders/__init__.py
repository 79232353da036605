"""Encoder backends behind one interface (base.Encoder), chosen by name.

``offline`` (default) runs on weights shipped in registry packages; ``openclip`` needs CLIP weights (a hub
download or a local checkpoint).
"""

from __future__ import annotations

from pipeline.encoders.base import Encoder, WeightsUnavailable

BACKENDS = ("offline", "openclip")
DEFAULT = "offline"


def load_encoder(name: str = DEFAULT, *, bridge=None, model: str | None = None, pretrained: str | None = "default",
                 image_size: int | None = None) -> Encoder:
    """Build an encoder by backend name; unknown names and missing weights raise with what to do."""
    if name == "offline":
        from pipeline.encoders.offline import OfflineEncoder

        return OfflineEncoder(bridge)
    if name == "openclip":
        from pipeline.encoders.openclip import DEFAULT_MODEL, DEFAULT_PRETRAINED, OpenClipEncoder

        tag = DEFAULT_PRETRAINED if pretrained == "default" else pretrained
        return OpenClipEncoder(model or DEFAULT_MODEL, tag, image_size)
    raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "DEFAULT", "Encoder", "WeightsUnavailable", "load_encoder"]
