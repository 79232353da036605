"""Reader for the Flickr8k text layout (Hodosh et al. 2013): token file, expert and crowd judgments, splits.

The photos are usually absent (1 GB, not shipped here); if a user has them in one of ``IMAGE_FOLDERS`` they are
scanned, otherwise every image is stored with status ``missing`` and the annotations are kept.
"""

from __future__ import annotations

from pathlib import Path

from db.validation import CROWD, EXPERT, FLICKR_CAPTIONS, SPLIT_LIST
from pipeline.images import list_image_files
from pipeline.readers import DatasetPlan, stage_file

LAYOUT = "flickr8k"
TOKENS = "Flickr8k.token.txt"
EXPERTS = "ExpertAnnotations.txt"
CROWD_FILE = "CrowdFlowerAnnotations.txt"
SPLITS = {"train": "Flickr_8k.trainImages.txt", "dev": "Flickr_8k.devImages.txt", "test": "Flickr_8k.testImages.txt"}
IMAGE_FOLDERS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")
# Flickr8k photos are Flickr files named <photo id>_<secret>.jpg; anything else comes from outside the set.
IMAGE_PATTERN = r"\d+_[0-9a-f]+\.jpg"
IMAGE_RULE = "Flickr8k photos are named <photo id>_<hex secret>.jpg"


def detect(root: Path) -> bool:
    return any((root / name).is_file() for name in (TOKENS, EXPERTS, CROWD_FILE))


def read(root: Path) -> DatasetPlan:
    plan = DatasetPlan(LAYOUT, IMAGE_PATTERN, IMAGE_RULE)
    sources = [(name, spec, {}) for name, spec in ((TOKENS, FLICKR_CAPTIONS), (EXPERTS, EXPERT), (CROWD_FILE, CROWD))]
    sources += [(name, SPLIT_LIST, {"split": split}) for split, name in SPLITS.items()]
    for name, spec, params in sources:
        if (staged := stage_file(root, name, spec, **params)) is not None:
            plan.staged.append(staged)
    for folder in IMAGE_FOLDERS:
        plan.image_files.extend(list_image_files(root, folder, None))
    return plan
