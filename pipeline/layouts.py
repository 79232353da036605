"""Where the data is and which reader understands each dataset folder."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.readers import Reader, coco, flickr8k, withsense

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
READERS: tuple[Reader, ...] = (withsense, flickr8k, coco)  # first match wins; With Sense is the most specific

WHERE_TO_GET_DATA = """\
No data directory found. Pass --data DIR or set STUDIO_DATA to a folder holding one or more datasets:
  - With Sense layout: train_dataset.csv, ExpertAnnotations.tsv, CrowdAnnotations.tsv, test_queries.csv,
    test_images.csv, train_images/, test_images/
  - Flickr8k text (Hodosh et al. 2013): Flickr8k.token.txt, ExpertAnnotations.txt, CrowdFlowerAnnotations.txt,
    Flickr_8k.*Images.txt - published with the Flickr8k dataset (search "Flickr8k dataset", University of Illinois)
  - COCO 2017 (cocodataset.org): annotations/captions_<split>.json, annotations/instances_<split>.json and
    images/<split>/*.jpg; `python -m pipeline download --data DIR` fetches the photos a captions JSON lists."""


class DataNotFound(RuntimeError):
    pass


def resolve_data_dir(option: str | None) -> Path:
    """--data, else STUDIO_DATA, else ../shared/data beside the project; otherwise say where to get data."""
    for candidate, origin in ((option, "--data"), (os.environ.get("STUDIO_DATA"), "STUDIO_DATA")):
        if candidate:
            path = Path(candidate).expanduser().resolve()
            if not path.is_dir():
                raise DataNotFound(f"{origin}: {path} is not a directory")
            return path
    if DEFAULT_DATA.is_dir():
        return DEFAULT_DATA
    raise DataNotFound(WHERE_TO_GET_DATA)


def detect(root: Path) -> Reader | None:
    return next((reader for reader in READERS if reader.detect(root)), None)


def discover(data_dir: Path) -> list[tuple[Path, Reader]]:
    """The data dir itself if it is a dataset, else each sub-folder that is one (sorted by name)."""
    reader = detect(data_dir)
    if reader is not None:
        return [(data_dir, reader)]
    found = [(p, r) for p in sorted(data_dir.iterdir()) if p.is_dir() and (r := detect(p)) is not None]
    if not found:
        raise DataNotFound(f"{data_dir}: no With Sense, Flickr8k or COCO dataset here or in its sub-folders.\n"
                           + WHERE_TO_GET_DATA.split("\n", 1)[1])
    return found
