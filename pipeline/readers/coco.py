"""Reader for COCO: ``annotations/captions_<split>.json``, ``instances_<split>.json`` and ``images/<split>/``.

JSON has no lines, so a rejected record is located by its section and 1-based index, e.g. file
``annotations/captions_val2017.json [annotations]``, line 17. Photos in the folders that no JSON lists (fresh
uploads) are images without captions.

JSON values come in any type, so each field is checked for its type before it is used: an id that is a list or
an object, a caption that is not a string, a category without a usable id is one reject naming the record's
field, never an exception that ends the dataset's ingest. Categories are a section of their own (their records
are counted and rejected like any other); an object of a rejected category is rejected with that reason. Fields
the studio does not store (bbox, area, segmentation) are not read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from db.validation import COCO_CAPTIONS, COCO_CATEGORIES, COCO_IMAGES, COCO_OBJECTS, FileSpec
from pipeline.dataset_files import refusal, shown
from pipeline.images import ImageFile, leads_to_folder, list_image_files, name_problem, skip_reason
from pipeline.lines import StagedRows, clip, stage_records, unread_file
from pipeline.readers import DatasetPlan, read_source

LAYOUT = "coco"
IMAGE_PATTERN = r"\d+"
IMAGE_RULE = "COCO image ids are non-negative integers"
SHOWN_VALUE = 60  # characters of a bad JSON value quoted in a reason
FieldsOf = Callable[[dict], "list[str]"]


class BadValue(Exception):
    """A record field of the wrong JSON type; the message is the reject reason."""


def detect(root: Path) -> bool:
    annotations = root / "annotations"
    return annotations.is_dir() and (any(annotations.glob("captions_*.json")) or any(annotations.glob("instances_*.json")))


def image_name(path: Path) -> str:
    """COCO file names are the image id with leading zeros: 000000117425.jpg is image 117425."""
    return str(int(path.stem)) if path.stem.isdigit() else path.name


def _quoted(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= SHOWN_VALUE else text[:SHOWN_VALUE] + "…"


def _integer(record: dict, key: str) -> str:
    """An id or a size as text for the SQL checks (which reject fractions and signs); absent is empty. A list,
    an object or a boolean has no text form worth checking: rejected here."""
    value = record.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadValue(f"{key} {_quoted(value)} is not an integer")
    return value if isinstance(value, str) else json.dumps(value)


def _string(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadValue(f"{key} {_quoted(value)} is not a string")
    return value


def _category_id(record: dict, key: str) -> int:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadValue(f"{key} {_quoted(value)} is not a non-negative integer")
    return value


def _section(label: str, spec: FileSpec, records: Any, fields: FieldsOf, **params: str) -> StagedRows:
    """Stage one JSON array; ``fields`` returns a record's values or raises :class:`BadValue` to reject it."""
    if not isinstance(records, list):
        records = [records]
    staged, rejects = [], []
    for index, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            rejects.append((index, clip(json.dumps(record)), "record is not a JSON object"))
            continue
        shown_record = json.dumps({k: v for k, v in record.items() if k != "segmentation"})
        try:
            staged.append((index, shown_record, fields(record)))
        except BadValue as exc:
            rejects.append((index, clip(shown_record), str(exc)))
    rows = stage_records(label, spec, staged, **params)
    rows.python_rejects.extend(rejects)
    return rows


def _read_json(root: Path, path: Path, label: str) -> tuple[dict | None, StagedRows | None]:
    """The parsed document, or a one-record rejected stage saying why the file cannot be read."""
    data = read_source(root, path)
    if isinstance(data, str):
        return None, unread_file(label, COCO_IMAGES, data)
    try:
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("top level is not an object")
        return document, None
    except RecursionError:
        line, reason = 1, "invalid JSON: nested too deeply"
    except ValueError as exc:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        line, reason = getattr(exc, "lineno", 1), f"invalid JSON: {exc}"
    broken = stage_records(label, COCO_IMAGES, [])
    broken.python_rejects.append((line, clip(data[:200].decode("utf-8", "backslashreplace")), reason))
    return None, broken


def _instances(plan: DatasetPlan, label: str, document: dict) -> None:
    """The [categories] and [annotations] sections of an instances file: objects carry their category's names."""
    categories: dict[int, dict] = {}
    rejected: set[int] = set()

    def category_fields(record: dict) -> list[str]:
        category_id = _category_id(record, "id")
        try:
            values = [str(category_id), _string(record, "name"), _string(record, "supercategory")]
        except BadValue:
            rejected.add(category_id)
            raise
        categories.setdefault(category_id, record)  # the first record of an id counts, as in the SQL checks
        return values

    def object_fields(record: dict) -> list[str]:
        category_id = record.get("category_id")
        if isinstance(category_id, bool) or not isinstance(category_id, int):
            raise BadValue(f"category_id {_quoted(category_id)} is not an integer")
        category = categories.get(category_id)
        if category is None:
            known = category_id in rejected
            raise BadValue(f"category_id {category_id} refers to a rejected category" if known
                           else f"unknown category_id {category_id}")
        return [_integer(record, "image_id"), _integer(record, "id"), _string(category, "name"),
                _string(category, "supercategory")]

    plan.staged.append(_section(f"{label} [categories]", COCO_CATEGORIES, document.get("categories", []),
                                category_fields))
    plan.staged.append(_section(f"{label} [annotations]", COCO_OBJECTS, document.get("annotations", []),
                                object_fields))


def _image_files(root: Path) -> list[ImageFile]:
    """Photos of every ``images/<split>/`` folder; anything else in ``images/`` is listed as skipped."""
    images = root / "images"
    if not os.path.lexists(images):
        return []
    if reason := refusal(root, images, folder=True):
        return [ImageFile("images/", "images/", None, reason)]
    files: list[ImageFile] = []
    with os.scandir(images) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if name_problem(entry) is None and leads_to_folder(entry):
                files.extend(list_image_files(root, f"images/{entry.name}", entry.name, image_name))
                continue
            path = f"images/{shown(entry.name)}"
            reason = skip_reason(root, entry) or "not in a split folder (images/<split>/), not read"
            files.append(ImageFile(path, path, None, reason))
    return files


def read(root: Path) -> DatasetPlan:
    plan = DatasetPlan(LAYOUT, IMAGE_PATTERN, IMAGE_RULE)
    for path in sorted((root / "annotations").glob("*_*.json")):
        kind, split = path.stem.split("_", 1)
        if kind not in ("captions", "instances"):
            continue
        label = shown(path.relative_to(root).as_posix())
        if label != path.relative_to(root).as_posix():
            plan.staged.append(unread_file(label, COCO_IMAGES, "file name is not valid UTF-8, not read"))
            continue
        document, broken = _read_json(root, path, label)
        if broken is not None:
            plan.staged.append(broken)
            continue
        plan.staged.append(
            _section(
                f"{label} [images]", COCO_IMAGES, document.get("images", []),
                lambda r: [_integer(r, "id"), _string(r, "file_name"), _integer(r, "width"), _integer(r, "height")],
                split=split, image_dir=f"images/{split}",
            )
        )
        if kind == "captions":
            plan.staged.append(
                _section(
                    f"{label} [annotations]", COCO_CAPTIONS, document.get("annotations", []),
                    lambda r: [_integer(r, "image_id"), _integer(r, "id"), _string(r, "caption").strip()],
                )
            )
        else:
            _instances(plan, label, document)
    plan.image_files.extend(_image_files(root))
    return plan
