"""ANN index (pipeline.ann_index) vs exact top-10 on generated clustered 384-d vectors; VectorIndex beside it.

Usage: python benchmarks/ann.py ROWS [--folder /tmp/ann16] [--exact]
Vectors are 4096 centres + noise, normalised, generated chunk by chunk from seeds (never all in memory);
ground truth for held-out queries is computed by streaming the same chunks. Prints recall@10, p50/p95 per query,
RSS (steady, peak), build time, size on disk and `uptime` (other processes share the 2 cores).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.ann_index import AnnIndex  # noqa: E402
from pipeline.vector_index import VectorIndex  # noqa: E402

DIM, CENTRES, CHUNK, QUERIES = 384, 4096, 100_000, 200


def _centres() -> np.ndarray:
    return np.random.default_rng(12345).standard_normal((CENTRES, DIM)).astype(np.float32)


def _chunk(number: int, rows: int, centres: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1000 + number)
    out = centres[rng.integers(0, CENTRES, rows)] + 0.6 * rng.standard_normal((rows, DIM), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _chunks(total: int, centres: np.ndarray):
    for number, start in enumerate(range(0, total, CHUNK)):
        rows = min(CHUNK, total - start)
        yield [f"{start + i:010d}" for i in range(rows)], _chunk(number, rows, centres)


def _truth(total: int, queries: np.ndarray, centres: np.ndarray) -> list[set[str]]:
    best_scores = np.full((len(queries), 10), -2.0, np.float32)
    best_rows = np.zeros((len(queries), 10), np.int64)
    for number, start in enumerate(range(0, total, CHUNK)):
        scores = queries @ _chunk(number, min(CHUNK, total - start), centres).T
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        merged_s, merged_r = np.hstack([best_scores, scores]), np.hstack([best_rows, rows])
        top = np.argsort(-merged_s, axis=1, kind="stable")[:, :10]
        best_scores, best_rows = np.take_along_axis(merged_s, top, 1), np.take_along_axis(merged_r, top, 1)
    return [{f"{r:010d}" for r in row} for row in best_rows]


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def _measure(name: str, index, queries: np.ndarray, truth: list[set[str]]) -> None:
    times, hits = [], 0
    for query, expected in zip(queries, truth):
        started = time.perf_counter()
        got = index.top_k(query, 10)
        times.append((time.perf_counter() - started) * 1000)
        hits += len({i for i, _ in got} & expected)
    print(f"{name}: recall@10 {hits / (10 * len(queries)):.3f}  p50 {np.percentile(times, 50):.1f} ms  "
          f"p95 {np.percentile(times, 95):.1f} ms  RSS steady {_rss_mb():.0f} MB  "
          f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/ann16"))
    parser.add_argument("--exact", action="store_true", help="also measure VectorIndex (today's exact index)")
    args = parser.parse_args()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    centres = _centres()
    queries = _chunk(999_999, QUERIES, centres)  # held out: a seed no indexed chunk uses
    started = time.perf_counter()
    truth = _truth(args.rows, queries, centres)
    print(f"ground truth streamed in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    folder = args.folder / f"ann-{args.rows}"
    ann = AnnIndex.build(_chunks(args.rows, centres), folder=folder, rows=args.rows, dim=DIM)
    ann.save("bench", [args.rows, "bench"])
    size = sum(p.stat().st_size for p in folder.iterdir()) / 2**30
    print(f"ann build {time.perf_counter() - started:.0f} s, on disk {size:.2f} GB "
          f"(faiss {(folder / 'index.faiss').stat().st_size / 2**30:.2f} GB), params {ann.params}", flush=True)
    _measure("ann", ann, queries, truth)
    if args.exact:
        started = time.perf_counter()
        exact = VectorIndex.build(_chunks(args.rows, centres), rows=args.rows)
        print(f"exact build {time.perf_counter() - started:.0f} s (quantized={exact.quantized})", flush=True)
        _measure("exact VectorIndex", exact, queries, truth)
        exact.close()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
