"""Reader for the With Sense layout: train pairs, expert and crowd annotations, test queries and images.

Delimiters and headers are sniffed per file (the test files are often ``|``-separated and may carry a pandas
index column), never assumed.
"""

from __future__ import annotations

from pathlib import Path

from db.validation import CROWD, EXPERT, SPLIT_LIST, WITHSENSE_TEST_QUERIES, WITHSENSE_TRAIN
from pipeline.images import list_image_files
from pipeline.readers import DatasetPlan, stage_file

LAYOUT = "withsense"
FILES = (
    ("train_dataset.csv", WITHSENSE_TRAIN, {"split": "train"}),
    ("ExpertAnnotations.tsv", EXPERT, {}),
    ("CrowdAnnotations.tsv", CROWD, {}),
    ("test_queries.csv", WITHSENSE_TEST_QUERIES, {"split": "test"}),
    ("test_images.csv", SPLIT_LIST, {"split": "test"}),
)
IMAGE_FOLDERS = {"train_images": "train", "test_images": "test"}
# RE2 syntax; no control characters (tab, NUL, escape, C1) in a name.
IMAGE_PATTERN = r"(?i)[^/\\\x00-\x1f\x7f-\x9f]+\.(jpe?g|png|webp|bmp|gif|tiff?)"
IMAGE_RULE = "an image file name such as photo.jpg, without folders or control characters"


def detect(root: Path) -> bool:
    return any((root / name).is_file() for name in ("train_dataset.csv", "ExpertAnnotations.tsv", "CrowdAnnotations.tsv"))


def read(root: Path) -> DatasetPlan:
    plan = DatasetPlan(LAYOUT, IMAGE_PATTERN, IMAGE_RULE)
    for name, spec, params in FILES:
        if (staged := stage_file(root, name, spec, **params)) is not None:
            plan.staged.append(staged)
    for folder, split in IMAGE_FOLDERS.items():
        plan.image_files.extend(list_image_files(root, folder, split))
    return plan
