"""Photo bytes as decided: read a photo, check it is the bytes the database recorded, decode it upright.

Why: a file can be replaced under the same name after ingest (``cp -p``, ``rsync -t``, a restored backup keep its
size and mtime). The minors decision covers the sha256 of the bytes the ingest scanned, so every place that
shows, embeds or analyses a photo reads it through :func:`read_verified`: bytes with another sha256 are never
used, whatever the file is called. And every decode goes through :func:`upright`, so a photo taken sideways
(EXIF orientation 5-8) is measured, embedded and shown the way its camera meant it.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image, ImageOps

DISPLAY_MAX_SIDE = 1600  # larger photos are scaled down for the dashboard: a browser shows no more


class PhotoUnavailable(RuntimeError):
    """The photo cannot be used: its file is gone, unreadable, or not the bytes that were decided."""


def read_verified(path: str | Path, sha256: str | None) -> bytes:
    """The file's bytes when their sha256 is ``sha256``; PhotoUnavailable (with the reason) otherwise."""
    if not sha256:
        raise PhotoUnavailable(f"{path}: no recorded sha256 (photo missing or corrupt at ingest)")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PhotoUnavailable(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise PhotoUnavailable(f"{path}: the file changed since it was ingested and decided (sha256 differs); "
                               "run `python -m pipeline ingest` and `python -m pipeline filter` again")
    return data


def upright(image: Image.Image) -> Image.Image:
    """The photo turned as its EXIF orientation says; a photo with an unreadable EXIF block is left as it is."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, ZeroDivisionError):
        return image


def open_verified(path: str | Path, sha256: str | None, draft_side: int | None = None) -> Image.Image:
    """The decided bytes of a photo, decoded and upright (loaded; the file is not kept open).

    ``draft_side``: a JPEG is decoded at the smallest 1/2, 1/4 or 1/8 scale that keeps both sides at least this
    long (the decoder skips the work; a 24-megapixel upload decodes several times faster), other formats in full.
    """
    try:
        with Image.open(io.BytesIO(read_verified(path, sha256))) as image:
            if draft_side:
                image.draft("RGB", (draft_side, draft_side))
            image.load()
            return upright(image)
    except PhotoUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any decode failure is this photo's problem only
        raise PhotoUnavailable(f"{path}: cannot decode ({exc})") from exc


def display_bytes(path: str | Path, sha256: str | None, max_side: int = DISPLAY_MAX_SIDE) -> bytes | None:
    """An upright JPEG of the decided bytes for a page to show, or None when they cannot be had."""
    try:
        image = open_verified(path, sha256)
    except PhotoUnavailable:
        return None
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
