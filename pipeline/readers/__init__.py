"""Reader stage: one module per source layout, each turning a dataset folder into a :class:`DatasetPlan`.

A reader only reads: it stages rows and lists image files. Validation and storage happen in db/ (via the ingest
runner), so a new layout is one new module here plus a line in ``READERS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from db.validation import FileSpec
from pipeline.dataset_files import Refused, read_inside
from pipeline.images import ImageFile
from pipeline.lines import StagedRows, stage_text, unread_file


@dataclass
class DatasetPlan:
    """Everything a reader found in one dataset folder."""

    layout: str
    image_pattern: str  # regex every image name in the annotations must match
    image_rule: str  # the same rule in words, for reject reasons
    staged: list[StagedRows] = field(default_factory=list)
    image_files: list[ImageFile] = field(default_factory=list)


class Reader(Protocol):
    LAYOUT: str

    def detect(self, root: Path) -> bool: ...

    def read(self, root: Path) -> DatasetPlan: ...


def read_source(root: Path, path: Path) -> bytes | str:
    """The bytes of an annotation file, or the reason it may not be read (a symlink out of the dataset, a loop,
    a folder, a permission error): one reject of that file, never a refused dataset."""
    try:
        return read_inside(root, path)
    except Refused as exc:
        return exc.reason
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


def stage_file(root: Path, name: str, spec: FileSpec, **params: str) -> StagedRows | None:
    """``root/name`` staged for validation; None when there is no such entry."""
    path = root / name
    if not os.path.lexists(path):
        return None
    data = read_source(root, path)
    return unread_file(name, spec, data) if isinstance(data, str) else stage_text(data, name, spec, **params)
