"""Stages that only read run on read-only storage (issue #12 item 11): `status`, `models` and `search` open the file
read-only when no claim can be written beside it; a blocked query is still refused, and the CLI says it could not
be logged."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from db import shared
from pipeline.cli import main


@contextmanager
def read_only_storage(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``folder`` seen through a read-only bind mount (as root, as CI runs); elsewhere the claim's open fails with
    EROFS the way a read-only mount makes it fail, and the file stays writable underneath."""
    view = folder.with_name(folder.name + "-ro")
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True).returncode == 0
    if mounted:
        mounted_ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True)
        assert mounted_ro.returncode == 0, mounted_ro.stderr
        try:
            with pytest.raises(OSError):
                (view / "probe").write_text("x")
            yield view
        finally:
            subprocess.run(["umount", str(view)], check=True)
        return
    real_open = os.open

    def open_on_read_only_storage(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    shutil.rmtree(view)
    monkeypatch.setattr(shared.os, "open", open_on_read_only_storage)
    yield folder


def test_status_models_and_search_run_on_read_only_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    from test_train import colour_coco

    store = tmp_path / "store"
    db = str(store / "s.duckdb")
    colour_coco(tmp_path / "c")
    for stage in (["ingest", "--data", str(tmp_path / "c")], ["filter"]):
        assert main([*stage, "--db", db, "--quiet"]) == 0
    capsys.readouterr()
    with read_only_storage(store, monkeypatch) as view:
        db = str(view / "s.duckdb")
        assert main(["status", "--db", db]) == 0
        assert "c " in capsys.readouterr().out
        assert main(["models", "--db", db]) == 1  # no runs yet: says so, as on writable storage
        assert "no model runs yet" in capsys.readouterr().out
        assert main(["search", "kids at the beach", "--db", db, "--user", "olga"]) == 3
        out, err = capsys.readouterr()
        assert "children under 16" in out and "was not logged" in err and "Traceback" not in err
        assert main(["relevance", "--db", db]) == 2  # a writing stage says why it cannot run
        assert "must be writable" in capsys.readouterr().err
