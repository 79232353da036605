"""Reader stage: one module per source layout, each turning a dataset folder into a :class:`DatasetPlan`.

A reader only reads: it stages rows and lists image files. Validation and storage happen in db/ (via the ingest
runner), so a new layout is one new module here plus a line in ``READERS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipeline.images import ImageFile
from pipeline.lines import StagedRows


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
