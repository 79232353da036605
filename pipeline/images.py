"""Image scanning stage: hash, decode and measure photo files; corrupt ones are reported and skipped.

A photo is ``ok`` only when its bytes decode completely: zero-byte, truncated and non-image files are ``corrupt``
with the reason; files named by the annotations but absent on disk become ``missing`` later, in SQL.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

SCAN_THREADS = 4  # decoding releases the GIL; 4 threads keep 2 cores busy while others wait on disk


@dataclass(frozen=True)
class ImageFile:
    """A file found in an images folder: its key in the dataset, path relative to the root, split."""

    name: str
    path: str
    split: str | None


@dataclass(frozen=True)
class ImageScan:
    name: str
    path: str
    split: str | None
    status: str  # ok | corrupt
    reason: str | None
    width: int | None
    height: int | None
    sha256: str | None


def list_image_files(
    root: Path, folder: str, split: str | None, name_of: Callable[[Path], str] = lambda p: p.name
) -> list[ImageFile]:
    """Every regular file in ``root/folder`` (not only image suffixes: a stray file is reported, not ignored)."""
    directory = root / folder
    if not directory.is_dir():
        return []
    return [
        ImageFile(name_of(p), p.relative_to(root).as_posix(), split)
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.startswith(".")
    ]


def scan_one(root: Path, image: ImageFile) -> ImageScan:
    """Decode one file fully; never raises for bad content."""
    def corrupt(reason: str, digest: str | None = None) -> ImageScan:
        return ImageScan(image.name, image.path, image.split, "corrupt", reason, None, None, digest)

    try:
        data = (root / image.path).read_bytes()
    except OSError as exc:
        return corrupt(f"unreadable: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return corrupt("zero-byte file", digest)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # decodes every byte: truncated files fail here, unlike Image.verify()
                width, height = img.size
    except UnidentifiedImageError:
        return corrupt("not an image file", digest)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        kind = "truncated file" if "truncat" in str(exc).lower() else "cannot decode"
        return corrupt(f"{kind}: {exc}", digest)
    return ImageScan(image.name, image.path, image.split, "ok", None, width, height, digest)


def scan_images(root: Path, images: list[ImageFile], *, quiet: bool = False) -> list[ImageScan]:
    """Scan all files with a progress bar; results keep the input order."""
    if not images:
        return []
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        results = pool.map(lambda image: scan_one(root, image), images)
        return list(tqdm(results, total=len(images), desc=f"scan {root.name} images", unit="img", disable=quiet))
