"""Approximate cosine top-K for tens of millions of photos: IVF + product quantisation, exact re-rank.

The exact index (pipeline.vector_index) scans every row per query; at 10M x 384 that is 15 GB of float32 or
4 GB of int8 per query, neither fits the 3 GB / 30 ms budget. Here a query visits ``nprobe`` inverted lists of
48-byte PQ codes (an HNSW coarse quantiser, so assigning 10M rows is minutes, not hours on 2 cores), then the
best ``max(MIN_CANDIDATES, 8 * wanted)`` candidates are re-scored with their exact float32 rows read with pread
from a file on disk (vector_index._RowFile: not a memory map, see its docstring). Scores returned are therefore
exact cosines; only which rows reach the re-rank is approximate (recall measured by benchmarks/ann.py).
Ids are kept as one fixed-width numpy string array (a Python list of 10M str is ~1 GB).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

from pipeline.vector_index import _RowFile

FORMAT = 1
TRAIN_SAMPLE = 200_000
HNSW_NEIGHBOURS = 32
MIN_CANDIDATES = 256  # PQ distances are coarse: re-ranking 256 exact rows is ~0.1 ms of pread from page cache


class AnnIndexMismatch(ValueError):
    """A saved index that must not answer: other encoder / dim / version, or files inconsistent."""


def _params(rows: int, dim: int) -> dict:
    """nlist ~ 4 sqrt(n) lists; PQ with 8-dimensional sub-vectors (48 bytes a row at 384-d), 8 bits a code
    when the training sample is large enough to fill 256 centroids, 4 bits below (small test sets)."""
    m = next(m for m in range(max(1, dim // 8), 0, -1) if dim % m == 0)
    nlist = max(1, min(int(4 * np.sqrt(rows)), rows // 39))
    return {"nlist": nlist, "m": m, "nbits": 8 if rows >= 256 * 39 else 4, "nprobe": min(nlist, 64)}


class AnnIndex:
    """Same interface as VectorIndex for the search: ``top_k(query, k, offset)``, ``len``, ``ids``."""

    def __init__(self, folder: Path, faiss_index, ids: np.ndarray, dim: int, params: dict) -> None:
        self.folder = Path(folder)
        self._faiss = faiss_index
        self.ids = ids
        self.dim = dim
        self.params = params
        self._faiss.nprobe = params["nprobe"]
        self._rows = _RowFile(self.folder / "rows.f32", dim)

    @classmethod
    def build(cls, chunks: Iterable[tuple[list[str], np.ndarray]], *, folder: Path, rows: int, dim: int) -> AnnIndex:
        """Stream (ids, vectors) chunks to ``folder``/rows.f32, train on the first TRAIN_SAMPLE rows, add all
        rows in blocks read back from the file: float32 rows are never all in memory."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ids: list[np.ndarray] = []
        with open(folder / "rows.f32", "wb") as out:
            for chunk_ids, vectors in chunks:
                out.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
                ids.append(np.asarray(chunk_ids, dtype=str))
        all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=str)
        if len(all_ids) != rows:
            raise ValueError(f"{folder}: expected {rows} rows, chunks gave {len(all_ids)}")
        params = _params(rows, dim)
        quantiser = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexIVFPQ(quantiser, dim, params["nlist"], params["m"], params["nbits"],
                                 faiss.METRIC_INNER_PRODUCT)
        reader = _RowFile(folder / "rows.f32", dim)
        index.train(reader.rows(np.linspace(0, rows - 1, min(rows, TRAIN_SAMPLE)).astype(np.int64)))
        data = np.memmap(folder / "rows.f32", np.float32, "r", shape=(rows, dim))  # one sequential pass
        for start in range(0, rows, 65_536):
            block = np.ascontiguousarray(data[start : start + 65_536])
            index.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
        del data
        reader.close()
        return cls(folder, index, all_ids, dim, params)

    def __len__(self) -> int:
        return len(self.ids)

    def top_k(self, query: np.ndarray, k: int, offset: int = 0) -> list[tuple[str, float]]:
        """Rows ranked ``offset`` .. ``offset + k - 1`` by exact cosine among the ANN candidates; ties by row."""
        wanted = min(offset + k, len(self.ids))
        if wanted <= offset:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        pool = min(len(self.ids), max(MIN_CANDIDATES, 8 * wanted))
        _, labels = self._faiss.search(query, pool)
        candidates = np.sort(labels[0][labels[0] >= 0])  # sorted: sequential reads
        exact = self._rows.rows(candidates) @ query[0]
        order = np.lexsort((candidates, -exact))[offset:wanted]
        return [(str(self.ids[candidates[i]]), float(exact[i])) for i in order]

    def save(self, encoder: str, version: list) -> None:
        """faiss file, ids and meta written beside rows.f32 under temporary names, then renamed: a crash leaves
        the old meta (so a reader rebuilds), never a meta describing half-written files."""
        faiss.write_index(self._faiss, str(self.folder / "index.faiss.tmp"))
        np.save(self.folder / "ids.tmp.npy", self.ids)
        meta = {"format": FORMAT, "encoder": encoder, "dim": self.dim, "rows": len(self.ids),
                "version": version, "params": self.params}
        (self.folder / "meta.json.tmp").write_text(json.dumps(meta))
        os.replace(self.folder / "index.faiss.tmp", self.folder / "index.faiss")
        os.replace(self.folder / "ids.tmp.npy", self.folder / "ids.npy")
        os.replace(self.folder / "meta.json.tmp", self.folder / "meta.json")

    @classmethod
    def load(cls, folder: Path, *, encoder: str, dim: int) -> tuple[AnnIndex, list]:
        """The saved index and the vector-set version it covers; AnnIndexMismatch (naming the file and reason)
        when it belongs to another encoder or dim, or its files disagree, so the caller rebuilds."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("format") != FORMAT or meta.get("encoder") != encoder or meta.get("dim") != dim:
                raise AnnIndexMismatch(f"{folder}/meta.json: for encoder {meta.get('encoder')!r} dim "
                                       f"{meta.get('dim')}, wanted {encoder!r} dim {dim}: rebuilding")
            ids = np.load(folder / "ids.npy")
            index = faiss.read_index(str(folder / "index.faiss"))
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            if isinstance(error, AnnIndexMismatch):
                raise
            raise AnnIndexMismatch(f"{folder}: unreadable saved index ({error}): rebuilding") from error
        row_count = (folder / "rows.f32").stat().st_size // (dim * 4) if (folder / "rows.f32").exists() else -1
        if not (len(ids) == index.ntotal == row_count == meta["rows"]) or index.d != dim:
            raise AnnIndexMismatch(f"{folder}: {len(ids)} ids, {index.ntotal} indexed, {row_count} rows on disk, "
                                   f"meta says {meta['rows']}: rebuilding")
        return cls(folder, index, ids, dim, meta["params"]), meta["version"]

    def close(self) -> None:
        self._rows.close()

    def remove_files(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
