"""Image scanning stage: hash, decode and measure photo files; corrupt ones are reported and skipped.

A photo is ``ok`` only when its bytes decode completely: zero-byte, truncated and non-image files are ``corrupt``
with the reason; files named by the annotations but absent on disk become ``missing`` later, in SQL. Width and
height are the photo's as shown: EXIF orientations 5-8 (a camera held sideways) swap them, as
``PIL.ImageOps.exif_transpose`` does. An EXIF block that cannot be parsed leaves the photo as stored, the same
choice pipeline/photos.py makes when it shows the photo; the pixels decoded, so the photo is not corrupt.

Every entry of an image folder is accounted for. Files are scanned (not only image suffixes: a stray file is
reported, not ignored); a file symlink is read only if it stays inside the dataset folder (pipeline/dataset_files.py),
otherwise it is ``refused``. Hidden entries, sub-folders, folder symlinks, pipes and names that are not UTF-8 or
hold control characters are ``skipped``: not read, never an image, but one reject each with the reason.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from pipeline.dataset_files import Refused, read_inside, refusal, shown

SCAN_THREADS = 4  # decoding releases the GIL; 4 threads keep 2 cores busy while others wait on disk
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
EXIF_ORIENTATION = 0x0112
SIDEWAYS = frozenset({5, 6, 7, 8})  # orientations that turn the photo a quarter: width and height swap
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

# Scan statuses; the images table knows ok / missing / corrupt (a refused photo is 'missing', with its reason).
OK, CORRUPT, REFUSED, SKIPPED = "ok", "corrupt", "refused", "skipped"


@dataclass(frozen=True)
class ImageFile:
    """An entry found in an images folder: its key in the dataset, path relative to the root, split.

    ``skipped`` is the reason an entry is not read at all (a hidden file, a sub-folder): it is reported only.
    """

    name: str
    path: str
    split: str | None
    skipped: str | None = None


@dataclass(frozen=True)
class ImageScan:
    name: str
    path: str
    split: str | None
    status: str  # ok | corrupt | refused | skipped
    reason: str | None
    width: int | None
    height: int | None
    sha256: str | None


def leads_to_folder(entry: os.DirEntry) -> bool:
    """True for a folder or a symlink to one (the link is never followed to read; this only asks)."""
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop: not a folder; the scan refuses it with the reason
        return False


def name_problem(entry: os.DirEntry) -> str | None:
    """Why an entry is not read whatever it is: a name that is not UTF-8, holds control characters, or is hidden."""
    if shown(entry.name) != entry.name:
        return "file name is not valid UTF-8, not read"
    if _CONTROL.search(entry.name):
        return "file name holds control characters, not read"
    if entry.name.startswith("."):
        return "hidden folder, not read" if entry.is_dir(follow_symlinks=False) else "hidden file, not read"
    return None


def skip_reason(root: Path, entry: os.DirEntry) -> str | None:
    """Why an entry of an image folder is not a photo candidate, or None when it is one."""
    if problem := name_problem(entry):
        return problem
    if entry.is_dir(follow_symlinks=False):
        return "sub-folder, not read"
    if entry.is_symlink():
        if leads_to_folder(entry):  # never followed; say where it leads if that is outside
            return refusal(root, Path(entry.path), folder=True) or "symlink to a folder, not read"
        return None  # a link to a file: read only if it stays inside the dataset (checked when it is read)
    if not entry.is_file(follow_symlinks=False):
        return "not a regular file (pipe, socket or device), not read"
    return None


def list_image_files(
    root: Path, folder: str, split: str | None, name_of: Callable[[Path], str] = lambda p: p.name
) -> list[ImageFile]:
    """Every entry of ``root/folder``, photo candidates and skipped ones; a folder that may not be read (a
    symlink out of the dataset) is one skipped entry ``folder/``."""
    directory = root / folder
    if not os.path.lexists(directory):
        return []
    reason = refusal(root, directory, folder=True)
    if reason is not None:
        return [ImageFile(f"{folder}/", f"{folder}/", split, reason)]
    files = []
    with os.scandir(directory) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            path = f"{folder}/{shown(entry.name)}"
            if skipped := skip_reason(root, entry):
                files.append(ImageFile(path, path, split, skipped))
            else:
                files.append(ImageFile(name_of(Path(path)), path, split))
    return files


def _orientation(img: Image.Image) -> int | None:
    """The EXIF orientation tag, or None when there is none or the EXIF block cannot be parsed."""
    try:
        value = img.getexif().get(EXIF_ORIENTATION)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, ZeroDivisionError):
        return None
    return value if isinstance(value, int) else None


def scan_one(root: Path, image: ImageFile) -> ImageScan:
    """Decode one file fully; never raises for bad content or a path that may not be read."""
    def unread(status: str, reason: str, digest: str | None = None) -> ImageScan:
        return ImageScan(image.name, image.path, image.split, status, reason, None, None, digest)

    if image.skipped:
        return unread(SKIPPED, image.skipped)
    try:
        data = read_inside(root, root / image.path)
    except Refused as exc:
        return unread(REFUSED, exc.reason)
    except OSError as exc:
        return unread(CORRUPT, f"unreadable: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return unread(CORRUPT, "zero-byte file", digest)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()  # decodes every byte: truncated files fail here, unlike Image.verify()
                width, height = img.size
                if _orientation(img) in SIDEWAYS:
                    width, height = height, width
    except UnidentifiedImageError:
        return unread(CORRUPT, "not an image file", digest)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        kind = "truncated file" if "truncat" in str(exc).lower() else "cannot decode"
        return unread(CORRUPT, f"{kind}: {exc}", digest)
    return ImageScan(image.name, image.path, image.split, OK, None, width, height, digest)


def scan_images(root: Path, images: list[ImageFile], *, quiet: bool = False) -> list[ImageScan]:
    """Scan all files with a progress bar; results keep the input order."""
    if not images:
        return []
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        results = pool.map(lambda image: scan_one(root, image), images)
        return list(tqdm(results, total=len(images), desc=f"scan {root.name} images", unit="img", disable=quiet))
