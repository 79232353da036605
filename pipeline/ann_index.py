"""Approximate cosine top-K for tens of millions of photos: IVF + product quantisation, exact re-rank.

The exact index (pipeline.vector_index) scans every row per query; at 10M x 384 that is 15 GB of float32 or
4 GB of int8 per query, neither fits the 3 GB / 30 ms budget. Here a query visits ``nprobe`` inverted lists of
96-byte PQ codes (an HNSW coarse quantiser, so assigning 10M rows is minutes, not hours on 2 cores), then the
best ``max(MIN_CANDIDATES, 8 * wanted)`` candidates are re-scored with their exact float32 rows read with pread
from a file on disk (vector_index._RowFile: not a memory map, see its docstring). Scores returned are therefore
exact cosines; only which rows reach the re-rank is approximate (recall measured by benchmarks/ann.py).

Rows are append-only: a photo's new vector is a new row and its old row is *retired* (removed from the FAISS
lists, marked dead), so new photos are added without retraining or rewriting what is there. Ids are kept as one
fixed-width bytes array (a Python list of 10M str is ~1 GB). A fixed sample of rows (chosen by a hash of the
photo id, so it stays uniform as rows come and go) is held in memory (100 MB at 384-d) to estimate how many rows score
above a cut-off: counting exactly would read every row.

On disk (one folder per encoder): ``rows.f32`` (append-only), ``gen-N/`` (the FAISS file, ids, live mask and
sample rows of one saved state) and ``meta.json`` naming the current generation. A save writes a new generation
and then replaces meta.json, so a reader loads either the old or the new state, never a mix; rows.f32 only grows
while a folder lives, so a reader of an older generation still reads its rows.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import faiss
import numpy as np

from pipeline.vector_index import _RowFile

FORMAT = 2
TRAIN_SAMPLE = 200_000
HNSW_NEIGHBOURS = 32
HNSW_BREADTH = 128  # candidates the quantiser's graph search keeps: at least twice the lists it must return
MIN_CANDIDATES = 512  # PQ scores are coarse: see _params and benchmarks/ann.py for recall by candidates
ADD_BLOCK = 65_536
COUNT_SAMPLE = 65_536  # rows whose scores estimate a count above a cut-off: +-0.4% of the rows at 95%
LOAD_ATTEMPTS = 3


class AnnIndexMismatch(ValueError):
    """A saved index that must not answer: other encoder / dim / version, or files inconsistent."""


def _params(rows: int, dim: int) -> dict:
    """nlist ~ 4 sqrt(n) lists; PQ with 4-dimensional sub-vectors (96 bytes a row at 384-d: with 8-dimensional
    ones, 48 bytes, the exact top-10 of 10M rows was only among the best 2,048 PQ candidates, and reading 2,048
    rows from a cold disk takes ~75 ms; 96-byte codes are 0.96 GB at 10M, within the 3 GB budget), 8 bits a code
    when the training sample is large enough to fill 256 centroids, fewer below (small test sets: a code can
    not have more centroids than there are rows). Every ``sample_every``-th photo (by id hash) is in the
    counting sample. Needs 2 rows at least (the search uses it only above ann_store.ANN_ABOVE)."""
    if rows < 2:
        raise ValueError(f"an ANN index needs 2 rows at least, got {rows}")
    m = next(m for m in range(max(1, dim // 4), 0, -1) if dim % m == 0)
    nlist = max(1, min(int(4 * np.sqrt(rows)), rows // 39))
    nbits = 8 if rows >= 256 * 39 else min(4, int(np.log2(rows)))
    return {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": min(nlist, 64),
            "sample_every": max(1, rows // COUNT_SAMPLE)}


def _in_sample(ids: np.ndarray, every: int) -> np.ndarray:
    """Which ids belong to the counting sample: a hash of the id, so a photo's membership never changes."""
    if every == 1:
        return np.ones(len(ids), bool)
    return np.fromiter((zlib.crc32(i) % every == 0 for i in ids), bool, len(ids))


def _as_id_bytes(ids: Sequence[str]) -> np.ndarray:
    return np.asarray([i.encode() for i in ids], dtype=bytes)


class AnnIndex:
    """What the search reads of VectorIndex: ``top_k(query, k, offset)`` and ``len`` (live rows); plus
    :meth:`sample_scores` for estimates (instead of every row's score), and :meth:`append` / :meth:`retire` /
    :meth:`save` for updates."""

    def __init__(self, folder: Path, faiss_index, ids: np.ndarray, live: np.ndarray, sample: np.ndarray, dim: int,
                 params: dict, generation: int = 0) -> None:
        self.folder = Path(folder)
        self._faiss = faiss_index
        self._ids = ids
        self._live = live
        self._sample_rows = sample
        self.dim = dim
        self.params = params
        self.generation = generation
        self._rows = _RowFile(self.folder / "rows.f32", dim)
        self._sample = self._rows.rows(sample)

    @classmethod
    def build(cls, chunks: Iterable[tuple[list[str], np.ndarray]], *, folder: Path, dim: int) -> AnnIndex:
        """Stream (ids, vectors) chunks to ``folder``/rows.f32, train on TRAIN_SAMPLE rows spread over the file,
        add all rows in blocks read back with pread: float32 rows are never all in memory (nor mapped)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        id_parts: list[np.ndarray] = []
        with open(folder / "rows.f32", "wb") as out:
            for chunk_ids, vectors in chunks:
                out.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
                id_parts.append(_as_id_bytes(chunk_ids))
        ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=bytes)
        rows = len(ids)
        params = _params(rows, dim)
        quantiser = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexIVFPQ(quantiser, dim, params["nlist"], params["m"], params["nbits"],
                                 faiss.METRIC_INNER_PRODUCT)
        reader = _RowFile(folder / "rows.f32", dim)
        index.train(reader.rows(np.linspace(0, rows - 1, min(rows, TRAIN_SAMPLE)).astype(np.int64)))
        for start in range(0, rows, ADD_BLOCK):
            stop = min(rows, start + ADD_BLOCK)
            index.add_with_ids(reader.block(start, stop), np.arange(start, stop, dtype=np.int64))
        reader.close()
        sample = np.flatnonzero(_in_sample(ids, params["sample_every"]))
        return cls(folder, index, ids, np.ones(rows, bool), sample, dim, params)

    def __len__(self) -> int:
        return int(self._faiss.ntotal)

    @property
    def rows(self) -> int:
        """Rows in rows.f32 this index covers, retired ones included."""
        return len(self._ids)

    def image_id(self, row: int) -> str:
        return self._ids[row].decode()

    def top_k(self, query: np.ndarray, k: int, offset: int = 0) -> list[tuple[str, float]]:
        """Live rows ranked ``offset`` .. ``offset + k - 1`` by exact cosine among the ANN candidates; ties by row.

        A deep read (the search reads x4 deeper while too few answers are visible) can want more candidates than
        ``nprobe`` lists hold: then more lists are visited, up to all of them, so every live row is reachable."""
        wanted = min(offset + k, len(self))
        if wanted <= offset:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        pool = min(len(self), max(MIN_CANDIDATES, 8 * wanted))
        nlist = self.params["nlist"]
        nprobe = min(nlist, max(self.params["nprobe"], math.ceil(2 * pool * nlist / max(1, len(self)))))
        while True:
            breadth = faiss.SearchParametersHNSW(efSearch=max(HNSW_BREADTH, 2 * nprobe))  # finds nprobe lists
            _, labels = self._faiss.search(query, pool, params=faiss.SearchParametersIVF(
                nprobe=nprobe, quantizer_params=breadth))
            found = labels[0][labels[0] >= 0]
            if len(found) >= pool or nprobe == nlist:
                break
            nprobe = min(nlist, 4 * nprobe)
        candidates = np.sort(found)  # sorted: sequential reads
        exact = self._rows.rows(candidates) @ query[0]
        order = np.lexsort((candidates, -exact))[offset:wanted]
        return [(self.image_id(candidates[i]), float(exact[i])) for i in order]

    def sample_scores(self, query: np.ndarray) -> np.ndarray:
        """Cosines of the counting sample's live rows (about COUNT_SAMPLE of them): the share at or above a cut-off
        estimates the share of all rows, for totals and slider scales, never for ranking."""
        return self._sample @ np.asarray(query, dtype=np.float32).reshape(-1)

    def append(self, chunks: Iterable[tuple[list[str], np.ndarray]]) -> int:
        """Add rows (new photos or new vectors of known ones: :meth:`retire` their old rows first) without
        retraining: written to rows.f32 after the rows this index covers, then to the FAISS lists. Only the
        index's single writer calls this (pipeline.ann_store holds a lock)."""
        added = 0
        path = self.folder / "rows.f32"
        with open(path, "r+b") as out:
            out.truncate(self.rows * self.dim * 4)  # rows a crashed writer left past the saved state
            out.seek(0, os.SEEK_END)
            for chunk_ids, vectors in chunks:
                vectors = np.ascontiguousarray(vectors, dtype=np.float32)
                if vectors.shape[1:] != (self.dim,):
                    raise AnnIndexMismatch(f"{path}: vectors of dim {vectors.shape[1:]} for an index of dim {self.dim}")
                start = self.rows
                out.write(vectors.tobytes())
                out.flush()
                new_ids = _as_id_bytes(chunk_ids)
                self._ids = np.concatenate([self._ids, new_ids])
                self._live = np.concatenate([self._live, np.ones(len(new_ids), bool)])
                self._faiss.add_with_ids(vectors, np.arange(start, self.rows, dtype=np.int64))
                sampled = np.flatnonzero(_in_sample(new_ids, self.params["sample_every"])) + start
                self._sample_rows = np.concatenate([self._sample_rows, sampled])
                self._sample = np.concatenate([self._sample, vectors[sampled - start]])
                added += len(new_ids)
        return added

    def retire(self, image_ids: Sequence[str]) -> int:
        """Take the live rows of ``image_ids`` out of the answers (their vector was replaced or deleted)."""
        if not len(image_ids):
            return 0
        rows = np.flatnonzero(self._live & np.isin(self._ids, _as_id_bytes(image_ids)))
        if len(rows):
            self._faiss.remove_ids(rows.astype(np.int64))
            self._live[rows] = False
            keep = self._live[self._sample_rows]
            self._sample_rows, self._sample = self._sample_rows[keep], self._sample[keep]
        return len(rows)

    def save(self, encoder: str, version: list) -> None:
        """The state as generation N+1 (FAISS file, ids, live mask, sample rows), then meta.json replaced in one
        rename: a crash leaves the previous generation current. Older generations are removed afterwards; a
        reader that was between reading meta.json and a file of a removed generation retries (:meth:`load`)."""
        generation = self.generation + 1
        target = self.folder / f"gen-{generation}"
        shutil.rmtree(target, ignore_errors=True)  # left by a writer that crashed before its meta.json
        target.mkdir()
        faiss.write_index(self._faiss, str(target / "index.faiss"))
        np.save(target / "ids.npy", self._ids)
        np.save(target / "live.npy", self._live)
        np.save(target / "sample.npy", self._sample_rows)
        meta = {"format": FORMAT, "encoder": encoder, "dim": self.dim, "rows": self.rows, "live": len(self),
                "generation": generation, "version": version, "params": self.params}
        (self.folder / "meta.json.tmp").write_text(json.dumps(meta))
        os.replace(self.folder / "meta.json.tmp", self.folder / "meta.json")
        self.generation = generation
        for old in self.folder.glob("gen-*"):
            if old.name != target.name:
                shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, *, encoder: str, dim: int) -> tuple[AnnIndex, list]:
        """The saved index and the vector-set version it covers; AnnIndexMismatch (naming the file and reason)
        when there is none, it belongs to another encoder or dim, or its files disagree, so the caller rebuilds."""
        folder = Path(folder)
        for attempt in range(LOAD_ATTEMPTS):
            try:
                return cls._load_once(folder, encoder=encoder, dim=dim)
            except FileNotFoundError as error:  # a writer replaced the generation between our reads
                if attempt == LOAD_ATTEMPTS - 1 or not (folder / "meta.json").exists():
                    raise AnnIndexMismatch(f"{folder}: no saved index ({error})") from error
        raise AssertionError("unreachable")

    @classmethod
    def _load_once(cls, folder: Path, *, encoder: str, dim: int) -> tuple[AnnIndex, list]:
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except ValueError as error:
            raise AnnIndexMismatch(f"{folder}/meta.json: unreadable ({error}): rebuilding") from error
        if meta.get("format") != FORMAT or meta.get("encoder") != encoder or meta.get("dim") != dim:
            raise AnnIndexMismatch(f"{folder}/meta.json: format {meta.get('format')} for encoder "
                                   f"{meta.get('encoder')!r} dim {meta.get('dim')}, wanted format {FORMAT} for "
                                   f"{encoder!r} dim {dim}: rebuilding")
        generation = folder / f"gen-{meta['generation']}"
        try:
            index = faiss.read_index(str(generation / "index.faiss"))
            ids, live = np.load(generation / "ids.npy"), np.load(generation / "live.npy")
            sample = np.load(generation / "sample.npy")
        except FileNotFoundError:
            raise
        except (OSError, ValueError, RuntimeError) as error:
            raise AnnIndexMismatch(f"{generation}: unreadable saved index ({error}): rebuilding") from error
        row_bytes = (folder / "rows.f32").stat().st_size if (folder / "rows.f32").exists() else -1
        if (not (len(ids) == len(live) == meta["rows"]) or index.ntotal != int(live.sum())
                or index.ntotal != meta["live"] or row_bytes < meta["rows"] * dim * 4 or index.d != dim
                or (len(sample) and sample.max() >= len(ids))):
            raise AnnIndexMismatch(f"{generation}: {len(ids)} ids, {int(live.sum())} live, {index.ntotal} indexed, "
                                   f"{max(row_bytes, 0) // (dim * 4)} rows on disk; meta.json says {meta['rows']} "
                                   f"rows, {meta['live']} live: rebuilding")
        return cls(folder, index, ids, live, sample, dim, meta["params"], meta["generation"]), meta["version"]

    def close(self) -> None:
        self._rows.close()
