"""Optional stage for online machines: fetch the COCO photos that a dataset's captions JSON lists.

``python -m pipeline download --data DIR`` reads ``DIR/annotations/captions_*.json`` and saves each listed
image's ``coco_url`` (else ``flickr_url``) to ``DIR/images/<split>/<file_name>``, skipping files already there.
Each file is written to a temporary name and renamed, so a killed download leaves no half-written photo. The
database is not touched: run ``ingest`` afterwards.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

GIVE_UP_AFTER = 5  # consecutive network failures before concluding the machine is offline


class DownloadError(RuntimeError):
    pass


@dataclass
class DownloadReport:
    fetched: int = 0
    present: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def planned_downloads(root: Path) -> list[tuple[str, Path]]:
    """(url, destination) for every image listed in the captions JSON files under ``root``."""
    plan = []
    for path in sorted((root / "annotations").glob("captions_*.json")):
        split = path.stem.split("_", 1)[1]
        try:
            images = json.loads(path.read_bytes()).get("images", [])
        except (ValueError, AttributeError) as exc:
            raise DownloadError(f"{path}: not a COCO captions file ({exc})") from exc
        for image in images:
            url = image.get("coco_url") or image.get("flickr_url")
            name = Path(str(image.get("file_name", ""))).name
            if url and name:
                plan.append((url, root / "images" / split / name))
    return plan


def download(root: Path, *, quiet: bool = False, timeout: float = 30,
             fetch: Callable[[str, float], bytes] | None = None) -> DownloadReport:
    """Fetch what is missing; stops with DownloadError when the network is unreachable."""
    fetch = fetch or _fetch
    plan = planned_downloads(root)
    if not plan:
        raise DownloadError(f"{root}: no annotations/captions_*.json listing images with a coco_url")
    report, consecutive_failures = DownloadReport(), 0
    for url, destination in tqdm(plan, desc="download", unit="img", disable=quiet):
        if destination.is_file() and destination.stat().st_size > 0:
            report.present += 1
            continue
        try:
            data = fetch(url, timeout)
        except (urllib.error.URLError, OSError) as exc:
            report.failed.append((destination.relative_to(root).as_posix(), f"{url}: {exc}"))
            consecutive_failures += 1
            if consecutive_failures >= GIVE_UP_AFTER and report.fetched == 0:
                raise DownloadError(f"cannot reach {url} ({exc}); is this machine online?") from exc
            continue
        consecutive_failures = 0
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, destination)
        report.fetched += 1
    return report


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - URLs from the user's JSON
        return response.read()
