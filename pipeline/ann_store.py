"""The saved FAISS index of an encoder's vectors, beside the database, kept current with the vector set.

Above ANN_ABOVE vectors the search answers from pipeline.ann_index instead of the exact index. Building one takes
minutes to an hour (10M rows on 2 cores), so it is saved in ``<database>.index/<encoder>/`` with the vector-set
version it covers (db.embeddings.vector_set_version) and reused by every process that searches: the CLI, each
dashboard, ``python -m pipeline index``. When the vectors changed since, it is brought up to date in place: the
vectors stored after the saved version's newest are appended (a photo's replaced vector retires its old row), no
retraining; when that does not account for every vector (some were deleted) or the saved files do not match
(other encoder, corrupt, half-written), it is rebuilt, and the reason is logged. Exclusions need nothing here: the
search checks every answer against ``visible_images`` (pipeline.search.Searcher.visible_top).

One process writes an index folder at a time (an exclusive lock file beside it); readers need no lock: a save
publishes a new generation with one rename (see ann_index). On storage where nothing can be written beside the
database, a saved index that is current is still used, and otherwise one is built in a temporary folder for this
process alone (logged), so search still answers.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from db import embeddings as store
from db.database import Database
from pipeline.ann_index import AnnIndex, AnnIndexMismatch

ANN_ABOVE = 1_000_000  # benchmarks/ann.py: the exact index's p95 passes ~30 ms at about a million 384-d rows


def index_folder(db_path: Path, encoder_id: str) -> Path:
    """``<db>.index/<readable encoder name>-<hash>``: the hash keeps two ids that clean to the same name apart."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id)[:60]
    return Path(f"{db_path}.index") / f"{readable}-{hashlib.sha256(encoder_id.encode()).hexdigest()[:10]}"


def ensure(db: Database, encoder_id: str, *, quiet: bool = True,
           log: Callable[[str], None] = print) -> AnnIndex | None:
    """The saved index of ``encoder_id`` made current now (``python -m pipeline index``, and ``embed`` after it
    stored vectors), so no search waits for a build; None when the encoder has ANN_ABOVE vectors or fewer (the
    search builds the exact index in memory then, nothing is saved)."""
    version = store.vector_set_version(db, encoder_id)
    if version[0] <= ANN_ABOVE:
        return None
    return open_current(db, encoder_id, version, log=log, quiet=quiet)


def _version_json(version: tuple[int, datetime | None]) -> list:
    count, newest = version
    return [int(count), newest.isoformat() if newest is not None else None]


def open_current(db: Database, encoder_id: str, version: tuple[int, datetime | None],
                 log: Callable[[str], None] = print, quiet: bool = True) -> AnnIndex:
    """The FAISS index of ``encoder_id``'s vectors at ``version``: loaded when saved at that version, else
    brought up to date or rebuilt (under the folder's lock) and saved."""
    folder = index_folder(Path(db.path), encoder_id)
    dim = store.vector_dim(db, encoder_id)
    wanted = _version_json(version)
    found = _load(folder, encoder_id, dim)
    if found is not None and found[1] == wanted:
        return found[0]
    if found is not None:
        found[0].close()
    try:
        lock = _writer_lock(folder)
    except OSError as error:  # read-only storage, or no permission beside the database
        scratch = Path(tempfile.mkdtemp(prefix="studio-ann-"))
        log(f"{folder}: cannot save a search index there ({error}); building one in {scratch} for this process only")
        index = AnnIndex.build(_chunks(db, encoder_id, version[0], quiet), folder=scratch, dim=dim)
        weakref.finalize(index, shutil.rmtree, scratch, True)  # its files go with it
        return index
    with lock:
        found = _load(folder, encoder_id, dim, log)  # another process may have brought it up to date meanwhile
        if found is not None and found[1] == wanted:
            return found[0]
        if found is not None:
            index, saved = found
            reason = _bring_up_to_date(db, encoder_id, index, saved, version, quiet)
            if reason is None:
                index.save(encoder_id, wanted)
                log(f"{folder}: search index brought up to date ({len(index):,} vectors)")
                return index
            index.close()
        else:
            reason = "no saved index"
        log(f"{folder}: building the search index of {version[0]:,} vectors ({reason}); this takes a while")
        return _rebuild(db, encoder_id, version, folder, dim, quiet)


def _load(folder: Path, encoder_id: str, dim: int,
          log: Callable[[str], None] | None = None) -> tuple[AnnIndex, list] | None:
    try:
        return AnnIndex.load(folder, encoder=encoder_id, dim=dim)
    except AnnIndexMismatch as error:
        if log is not None and (folder / "meta.json").exists():
            log(str(error))
        return None


def _chunks(db: Database, encoder_id: str, total: int, quiet: bool, created_after: datetime | None = None):
    """The encoder's vectors in chunks, with a progress bar of vectors read unless ``quiet``."""
    chunks = store.vector_chunks(db, encoder_id, created_after=created_after)
    with tqdm(total=total, unit="vectors", desc=f"index {encoder_id}", disable=quiet) as bar:
        for ids, vectors in chunks:
            yield ids, vectors
            bar.update(len(ids))


def _bring_up_to_date(db: Database, encoder_id: str, index: AnnIndex, saved: list,
                      version: tuple[int, datetime | None], quiet: bool) -> str | None:
    """Append the vectors stored after the saved version's newest (retiring the rows they replace); None when
    the index then holds exactly the vectors stored now, else why it must be rebuilt."""
    if saved[1] is None:
        return "the saved index has no version time"
    since = datetime.fromisoformat(saved[1])
    for ids, vectors in _chunks(db, encoder_id, max(0, version[0] - saved[0]), quiet, created_after=since):
        index.retire(ids)
        index.append([(ids, vectors)])
    if len(index) != version[0]:
        return (f"{len(index):,} vectors after adding the new ones, {version[0]:,} stored: some were deleted "
                "since the index was saved")
    return None


def _rebuild(db: Database, encoder_id: str, version: tuple[int, datetime | None], folder: Path,
             dim: int, quiet: bool) -> AnnIndex:
    """Build beside the folder and swap it in with renames: a reader still holding the old rows file keeps
    reading it (it is unlinked, not truncated), and a crash leaves the old folder or none, never a mix."""
    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    index = AnnIndex.build(_chunks(db, encoder_id, version[0], quiet), folder=building, dim=dim)
    index.generation = time.time_ns()  # never a generation number a reader of the old folder may still expect
    index.save(encoder_id, _version_json(version))
    index.close()
    retired = folder.with_name(folder.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    if folder.exists():
        os.replace(folder, retired)
    os.replace(building, folder)
    shutil.rmtree(retired, ignore_errors=True)
    loaded, _ = AnnIndex.load(folder, encoder=encoder_id, dim=dim)
    return loaded


@contextmanager
def _locked(descriptor: int) -> Iterator[None]:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # waits for another process's update or build
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _writer_lock(folder: Path):
    """The exclusive lock of ``folder``'s one writer; OSError when nothing can be written there."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return _locked(os.open(folder.with_name(folder.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o644))
