"""Reader for COCO: ``annotations/captions_<split>.json``, ``instances_<split>.json`` and ``images/<split>/``.

JSON has no lines, so a rejected record is located by its section and 1-based index, e.g. file
``annotations/captions_val2017.json [annotations]``, line 17. Photos in the folders that no JSON lists (fresh
uploads) are images without captions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from db.validation import COCO_CAPTIONS, COCO_IMAGES, COCO_OBJECTS, FileSpec
from pipeline.images import list_image_files
from pipeline.lines import StagedRows, clip, stage_records
from pipeline.readers import DatasetPlan

LAYOUT = "coco"
IMAGE_PATTERN = r"\d+"
IMAGE_RULE = "COCO image ids are non-negative integers"
FieldsOf = Callable[[dict], "list[str] | str"]


def detect(root: Path) -> bool:
    annotations = root / "annotations"
    return annotations.is_dir() and (any(annotations.glob("captions_*.json")) or any(annotations.glob("instances_*.json")))


def image_name(path: Path) -> str:
    """COCO file names are the image id with leading zeros: 000000117425.jpg is image 117425."""
    return str(int(path.stem)) if path.stem.isdigit() else path.name


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _section(label: str, spec: FileSpec, records: Any, fields: FieldsOf, **params: str) -> StagedRows:
    """Stage one JSON array; ``fields`` returns a record's values, or a reason string to reject it outright."""
    if not isinstance(records, list):
        records = [records]
    staged, rejects = [], []
    for index, record in enumerate(records, start=1):
        if isinstance(record, dict):
            shown = json.dumps({k: v for k, v in record.items() if k != "segmentation"})
            values = fields(record)
        else:
            shown, values = json.dumps(record), "record is not a JSON object"
        if isinstance(values, str):
            rejects.append((index, clip(shown), values))
        else:
            staged.append((index, shown, values))
    rows = stage_records(label, spec, staged, **params)
    rows.python_rejects.extend(rejects)
    return rows


def _read_json(root: Path, path: Path) -> tuple[dict | None, StagedRows | None]:
    """The parsed document, or a one-record rejected stage saying why the file cannot be read."""
    label = path.relative_to(root).as_posix()
    try:
        document = json.loads(path.read_bytes())
        if not isinstance(document, dict):
            raise ValueError("top level is not an object")
        return document, None
    except (UnicodeDecodeError, ValueError) as exc:
        line = getattr(exc, "lineno", 1)
        broken = stage_records(label, COCO_IMAGES, [])
        broken.python_rejects.append((line, clip(path.read_bytes()[:200].decode("utf-8", "backslashreplace")), f"invalid JSON: {exc}"))
        return None, broken


def read(root: Path) -> DatasetPlan:
    plan = DatasetPlan(LAYOUT, IMAGE_PATTERN, IMAGE_RULE)
    for path in sorted((root / "annotations").glob("*_*.json")):
        kind, split = path.stem.split("_", 1)
        if kind not in ("captions", "instances"):
            continue
        document, broken = _read_json(root, path)
        label = path.relative_to(root).as_posix()
        if broken is not None:
            plan.staged.append(broken)
            continue
        plan.staged.append(
            _section(
                f"{label} [images]", COCO_IMAGES, document.get("images", []),
                lambda r: [_text(r.get("id")), _text(r.get("file_name")), _text(r.get("width")), _text(r.get("height"))],
                split=split, image_dir=f"images/{split}",
            )
        )
        if kind == "captions":
            plan.staged.append(
                _section(
                    f"{label} [annotations]", COCO_CAPTIONS, document.get("annotations", []),
                    lambda r: [_text(r.get("image_id")), _text(r.get("id")), _text(r.get("caption")).strip()],
                )
            )
        else:
            categories = {c.get("id"): c for c in document.get("categories", []) if isinstance(c, dict)}

            def object_fields(r: dict) -> list[str] | str:
                category = categories.get(r.get("category_id"))
                if category is None:
                    return f"unknown category_id {r.get('category_id')!r}"
                return [_text(r.get("image_id")), _text(r.get("id")), _text(category.get("name")),
                        _text(category.get("supercategory"))]

            plan.staged.append(_section(f"{label} [annotations]", COCO_OBJECTS, document.get("annotations", []), object_fields))
    images = root / "images"
    if images.is_dir():
        for folder in sorted(p for p in images.iterdir() if p.is_dir()):
            plan.image_files.extend(list_image_files(root, f"images/{folder.name}", folder.name, image_name))
    return plan
