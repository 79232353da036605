"""Exact cosine top-K over a fixed set of L2-normalised vectors, fast enough for a million photos on 2 cores.

Up to ``QUANTIZE_ABOVE`` rows the index is a float32 matrix and a query is one matrix-vector product. Above it,
a float32 scan is bound by memory bandwidth (2 GB per query at 1M x 512), so the index keeps an int8 copy
(per-row scale, 4x less to read) in fbgemm's packed layout and scores with its int8 kernel, then re-ranks the
best candidate rows with their exact float32 vectors, read from a file on disk. The float32 vectors never need
to fit in memory. benchmarks/search.py measures speed, memory, and the overlap of the result with
exact float32 top-10.
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

QUANTIZE_ABOVE = 200_000
QUANTIZE_BLOCK = 16_384
SHARD_ROWS = 131_072
PARALLEL_READS_ABOVE = 64
READ_THREADS = 8


def _pack(blocks: list[tuple[np.ndarray, np.ndarray]]):
    """fbgemm-packed int8 weight of the given row blocks (per-row scales, symmetric)."""
    codes = torch.from_numpy(np.concatenate([c for c, _ in blocks]))
    scales = torch.from_numpy(np.concatenate([s for _, s in blocks]).astype(np.float64))
    with warnings.catch_warnings():  # quantized tensors are deprecated upstream; torch is pinned (2.14.1)
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch._make_per_channel_quantized_tensor(codes, scales, torch.zeros(len(codes), dtype=torch.long), 0)
        return torch.ops.quantized.linear_prepack(quantized, None)
MIN_CANDIDATES = 100


class VectorIndex:
    def __init__(self, ids: list[str], vectors: np.ndarray) -> None:
        """Small index: everything in memory as float32."""
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        self.ids = list(ids)
        self.dim = int(vectors.shape[1]) if len(vectors) else 0
        self._exact = np.ascontiguousarray(vectors, dtype=np.float32)
        self._packed: list | None = None
        self._spill: tempfile.TemporaryDirectory | None = None

    @classmethod
    def build(cls, chunks: Iterable[tuple[list[str], np.ndarray]], *, rows: int) -> VectorIndex:
        """Build from (ids, vectors) chunks of ``rows`` rows in all; above QUANTIZE_ABOVE rows the index is
        quantized and streamed, never holding all float32 rows in memory."""
        return cls.build_with(chunks, quantize=rows > QUANTIZE_ABOVE)

    @classmethod
    def build_with(cls, chunks: Iterable[tuple[list[str], np.ndarray]], *, quantize: bool) -> VectorIndex:
        chunks = iter(chunks)
        if not quantize:
            parts = list(chunks)
            ids = [i for chunk_ids, _ in parts for i in chunk_ids]
            vectors = np.concatenate([v for _, v in parts]) if parts else np.zeros((0, 0), np.float32)
            return cls(ids, vectors)
        return cls._build_quantized(chunks)

    @classmethod
    def _build_quantized(cls, chunks) -> VectorIndex:
        """Rows are quantized as they stream in and packed into fbgemm shards of SHARD_ROWS rows, each packed
        as soon as it is full, so the peak is the packed int8 rows plus one shard, never their float32 size."""
        index = cls.__new__(cls)
        index._spill = tempfile.TemporaryDirectory(prefix="studio-index-")
        index.ids, index._packed = [], []
        pending: list[tuple[np.ndarray, np.ndarray]] = []  # (codes, scales) blocks of the shard being filled
        path = Path(index._spill.name) / "vectors.f32"
        with open(path, "wb") as spill:
            for chunk_ids, vectors in chunks:
                for start in range(0, len(vectors), QUANTIZE_BLOCK):  # small blocks: small temporaries
                    block = np.ascontiguousarray(vectors[start : start + QUANTIZE_BLOCK], dtype=np.float32)
                    scale = np.maximum(np.abs(block).max(axis=1), 1e-12) / 127.0
                    pending.append((np.round(block / scale[:, None]).astype(np.int8), scale))
                    spill.write(block.tobytes())
                    if sum(len(c) for c, _ in pending) >= SHARD_ROWS:
                        index._packed.append(_pack(pending))
                        pending = []
                index.ids.extend(chunk_ids)
        if pending:
            index._packed.append(_pack(pending))
        index.dim = int(vectors.shape[1])
        index._exact = _RowFile(path, index.dim)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def quantized(self) -> bool:
        return self._packed is not None

    def top_k(self, query: np.ndarray, k: int, offset: int = 0) -> list[tuple[str, float]]:
        """Rows ranked ``offset`` .. ``offset + k - 1`` by cosine with ``query`` (L2-normalised)."""
        wanted = min(offset + k, len(self.ids))
        if wanted <= offset:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if self._packed is None:
            scores = self._exact @ query
            if wanted < len(scores):
                # Every row tied with the last one wanted too: argpartition picks among ties arbitrarily, and
                # page 2 (a larger `wanted`) must not pick differently from page 1.
                kth = scores[np.argpartition(-scores, wanted - 1)[wanted - 1]]
                candidates = np.flatnonzero(scores >= kth)
            else:
                candidates = np.arange(len(scores))
            exact = scores[candidates]
        else:
            row = torch.from_numpy(query)[None]
            approximate = torch.cat([torch.ops.quantized.linear_dynamic(row, shard)[0] for shard in self._packed])
            pool = min(len(self.ids), max(MIN_CANDIDATES, 4 * wanted))
            candidates = np.sort(torch.topk(approximate, pool).indices.numpy())  # sorted: sequential reads
            exact = self._exact.rows(candidates) @ query
        order = np.lexsort((candidates, -exact))[offset:wanted]  # score desc, then row: stable pages
        return [(self.ids[candidates[i]], float(exact[i])) for i in order]

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Every row's cosine with ``query``, in row order: exact for the float32 index, the int8 kernel's
        approximation (off by about 0.01) for a quantized one, whose exact rows stay on disk. For counting and
        scales (pipeline.search.Searcher.count, score_range), never for ranking."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if self._packed is None:
            return self._exact @ query
        row = torch.from_numpy(query)[None]
        return torch.cat([torch.ops.quantized.linear_dynamic(row, shard)[0] for shard in self._packed]).numpy()

    def close(self) -> None:
        if self._spill is not None:
            self._exact.close()
            self._spill.cleanup()
            self._spill = None


@functools.cache
def _readers() -> ThreadPoolExecutor:
    """One pool of reading threads for every row file of the process (os.pread releases the GIL)."""
    return ThreadPoolExecutor(READ_THREADS, thread_name_prefix="row-reader")


class _RowFile:
    """float32 rows on disk, read with pread. Not a memory map on purpose: the kernel maps neighbouring pages on
    every fault of a map, so a few hundred random rows per query would pull the whole file into this process's
    resident memory within a few dozen queries (measured: +2 GB at 1M rows). pread leaves them in the page cache."""

    def __init__(self, path: Path, dim: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._row_bytes = dim * 4
        self._dim = dim
        # An index the search swapped out is dropped, not closed (a search may still read it): closing the file
        # when the index is collected frees its disk space (the folder is removed by its own finalizer).
        self._closer = weakref.finalize(self, os.close, self._fd)

    def rows(self, indexes: np.ndarray) -> np.ndarray:
        """The rows at ``indexes``; more than PARALLEL_READS_ABOVE are read by READ_THREADS threads at once (a
        cold disk serves ~13,000 random reads a second one at a time, about twice that with several in flight)."""
        out = np.empty((len(indexes), self._dim), np.float32)

        def read(part: range) -> None:
            for i in part:
                out[i] = np.frombuffer(os.pread(self._fd, self._row_bytes, int(indexes[i]) * self._row_bytes),
                                       np.float32)

        if len(indexes) > PARALLEL_READS_ABOVE:
            step = -(-len(indexes) // READ_THREADS)
            list(_readers().map(read, [range(i, min(i + step, len(indexes))) for i in range(0, len(indexes), step)]))
        else:
            read(range(len(indexes)))
        return out

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` .. ``stop - 1`` in one read (a sequential pass over the file)."""
        data = os.pread(self._fd, (stop - start) * self._row_bytes, start * self._row_bytes)
        return np.frombuffer(data, np.float32).reshape(-1, self._dim).copy()

    def close(self) -> None:
        self._closer()
