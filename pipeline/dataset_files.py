"""What of a dataset folder may be read: regular files inside it, never a path that leads out of it.

A dataset folder is input like any other: a symlink in it may point at a file elsewhere on the machine (which
would then be stored, embedded and served as the dataset's own), at ``/``, at nothing, or at itself; a named
pipe would block a reader forever. So every file the readers and the image scan open goes through
:func:`read_inside`, and listings ask :func:`refusal` first, to report the entry with its reason.

A symlink whose target resolves inside the dataset folder is accepted: a dataset may link between its own
folders, and the bytes read are still the dataset's own. The containment check is done on the resolved path at
the moment of reading, so a link changed after listing is still caught.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# A file kept open for reading is a regular file; O_NONBLOCK only matters if a pipe was swapped in after the check.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class Refused(Exception):
    """A path of the dataset that may not be read; ``reason`` says why, for the reject."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def shown(text: str) -> str:
    """A file name as text that can be stored: bytes that are not UTF-8 appear as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def resolve_inside(root: Path, path: Path, *, folder: bool = False) -> Path:
    """The real path of ``path`` when it lies inside ``root`` and is a regular file (a folder when ``folder``)."""
    try:
        real = Path(os.path.realpath(path, strict=True))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused(f"symlink loop: {shown(path.name)} never resolves") from exc
        if exc.errno == errno.ENOENT and path.is_symlink():
            raise Refused(f"dangling symlink: its target {shown(os.readlink(path))} does not exist") from exc
        raise Refused(f"unreadable: {exc.strerror or exc}") from exc
    if not real.is_relative_to(os.path.realpath(root)):
        raise Refused(f"symlink points outside the dataset folder: {shown(str(real))}")
    try:
        mode = real.stat().st_mode
    except OSError as exc:
        raise Refused(f"unreadable: {exc.strerror or exc}") from exc
    if folder and not stat.S_ISDIR(mode):
        raise Refused("not a folder, not read")
    if not folder and not stat.S_ISREG(mode):
        raise Refused("not a regular file, not read")
    return real


def refusal(root: Path, path: Path, *, folder: bool = False) -> str | None:
    """Why ``path`` may not be read (see :func:`resolve_inside`), or None when it may."""
    try:
        resolve_inside(root, path, folder=folder)
    except Refused as exc:
        return exc.reason
    return None


def read_inside(root: Path, path: Path) -> bytes:
    """The bytes of a regular file inside ``root``; :class:`Refused` for anything else, OSError if unreadable."""
    real = resolve_inside(root, path)
    fd = os.open(real, _OPEN_FLAGS)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise Refused("not a regular file, not read")
        return file.read()
