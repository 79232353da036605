"""The optional download stage, against a server on 127.0.0.1 that the test runs."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest

from builders import image_bytes
from pipeline import download
from pipeline.cli import main


@pytest.fixture
def photo_server(tmp_path: Path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "000000000001.jpg").write_bytes(image_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def coco_listing(root: Path, base: str) -> Path:
    (root / "annotations").mkdir(parents=True)
    images = [{"id": 1, "file_name": "000000000001.jpg", "coco_url": f"{base}/000000000001.jpg"},
              {"id": 2, "file_name": "000000000002.jpg", "coco_url": f"{base}/000000000002.jpg"}]
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({"images": images, "annotations": []}))
    return root


def test_fetches_missing_photos_and_skips_present_ones(tmp_path: Path, photo_server: str) -> None:
    root = coco_listing(tmp_path / "coco", photo_server)
    report = download.download(root, quiet=True)
    assert (report.fetched, report.present) == (1, 0)
    assert [f for f, _ in report.failed] == ["images/val2017/000000000002.jpg"]  # 404 is reported, not fatal
    assert (root / "images/val2017/000000000001.jpg").read_bytes() == image_bytes()
    assert not list(root.rglob("*.part"))
    again = download.download(root, quiet=True)
    assert (again.fetched, again.present) == (0, 1)


def test_offline_machine_gets_a_clear_message(tmp_path: Path, capsys) -> None:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    images = [{"id": i, "file_name": f"{i}.jpg", "coco_url": f"http://127.0.0.1:9/{i}.jpg"} for i in range(8)]
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({"images": images}))
    assert main(["download", "--data", str(root), "--quiet"]) == 2
    assert "is this machine online?" in capsys.readouterr().err
