"""ANN index (pipeline.ann_index) vs exact top-10 on generated clustered 384-d vectors; VectorIndex beside it.

Usage: python benchmarks/ann.py ROWS [--folder /tmp/ann16] [--exact] [--candidates 2048,512] [--cold]
Vectors are 4096 centres + noise, normalised, generated chunk by chunk from seeds (never all in memory);
ground truth for held-out queries (top-10 and how many rows score at or above each CUT_OFFS) is computed by
streaming the same chunks. Prints recall@10, p50/p95 per query, RSS (steady, peak), build time, size on disk, the
time to load the saved index, an incremental update (UPDATE_ROWS new rows, a tenth as many replaced) against the
build, the error of the sampled count estimate, and `uptime` (other processes share the 2 cores).
`--candidates` measures the ANN index with each number of exact re-ranked candidates (ann_index.MIN_CANDIDATES;
the first is the code's default); `--cold` (root) drops the page cache before each measurement and measures again
warm: a dashboard just started reads its rows from disk. The ground truth is kept in the folder for the next run.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline import ann_index  # noqa: E402
from pipeline.ann_index import AnnIndex  # noqa: E402
from pipeline.vector_index import VectorIndex  # noqa: E402

DIM, CENTRES, CHUNK, QUERIES = 384, 4096, 100_000, 200
CUT_OFFS = (0.05, 0.1)
UPDATE_ROWS = 10_000


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


def _truth(total: int, queries: np.ndarray, centres: np.ndarray) -> tuple[list[set[str]], np.ndarray]:
    """Exact top-10 ids per query, and per query and cut-off how many rows score at or above it."""
    counts = np.zeros((len(queries), len(CUT_OFFS)), np.int64)
    best_scores = np.full((len(queries), 10), -2.0, np.float32)
    best_rows = np.zeros((len(queries), 10), np.int64)
    for number, start in enumerate(range(0, total, CHUNK)):
        scores = queries @ _chunk(number, min(CHUNK, total - start), centres).T
        counts += np.stack([(scores >= cut).sum(axis=1) for cut in CUT_OFFS], axis=1)
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        merged_s, merged_r = np.hstack([best_scores, scores]), np.hstack([best_rows, rows])
        top = np.argsort(-merged_s, axis=1, kind="stable")[:, :10]
        best_scores, best_rows = np.take_along_axis(merged_s, top, 1), np.take_along_axis(merged_r, top, 1)
    return [{f"{r:010d}" for r in row} for row in best_rows], counts


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def _drop_page_cache() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


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


def _measure_estimates(ann: AnnIndex, queries: np.ndarray, counts: np.ndarray) -> None:
    """How far the sample's estimate of the rows at or above each cut-off is from the exact count, and its time."""
    times, errors = [], []
    for query, exact in zip(queries, counts):
        started = time.perf_counter()
        scores = ann.sample_scores(query)
        estimates = [float((scores >= cut).mean()) * len(ann) for cut in CUT_OFFS]
        times.append((time.perf_counter() - started) * 1000)
        errors.append([abs(e - x) / len(ann) for e, x in zip(estimates, exact)])
    worst = np.max(errors, axis=0)
    print(f"count estimate from {len(ann.sample_scores(queries[0])):,} sampled rows: "
          f"p95 {np.percentile(times, 95):.1f} ms, "
          + ", ".join(f"cut-off {cut}: worst error {w:.2%} of the rows (mean share above "
                      f"{counts[:, i].mean() / len(ann):.1%})" for i, (cut, w) in enumerate(zip(CUT_OFFS, worst))),
          flush=True)


def _measure_update(ann: AnnIndex, centres: np.ndarray, rows: int) -> None:
    """An incremental update as the search makes one: a tenth of UPDATE_ROWS photos get new vectors (their old
    rows retired), the rest are new photos; then saved as a new generation."""
    replaced = [f"{i:010d}" for i in range(0, rows, max(1, rows // (UPDATE_ROWS // 10)))][: UPDATE_ROWS // 10]
    new = [f"n{i:09d}" for i in range(UPDATE_ROWS - len(replaced))]
    started = time.perf_counter()
    retired = ann.retire(replaced)
    added = ann.append([(replaced + new, _chunk(777_777, UPDATE_ROWS, centres))])
    ann.save("bench", [rows + len(new), "bench-updated"])
    print(f"ann update: {retired:,} rows retired, {added:,} appended, saved in {time.perf_counter() - started:.1f} s "
          f"(live rows {len(ann):,})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/ann16"))
    parser.add_argument("--exact", action="store_true", help="also measure VectorIndex (today's exact index)")
    parser.add_argument("--candidates", default=str(ann_index.MIN_CANDIDATES),
                        help="comma-separated numbers of re-ranked candidates to measure")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each measurement (root)")
    args = parser.parse_args()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    centres = _centres()
    queries = _chunk(999_999, QUERIES, centres)  # held out: a seed no indexed chunk uses
    started = time.perf_counter()
    kept = args.folder / f"truth-{args.rows}.pickle"
    if kept.exists():
        truth, counts = pickle.loads(kept.read_bytes())
        print(f"ground truth read from {kept}", flush=True)
    else:
        truth, counts = _truth(args.rows, queries, centres)
        args.folder.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(pickle.dumps((truth, counts)))
        print(f"ground truth streamed in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    folder = args.folder / f"ann-{args.rows}"
    ann = AnnIndex.build(_chunks(args.rows, centres), folder=folder, dim=DIM)
    ann.save("bench", [args.rows, "bench"])
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**30
    print(f"ann build {time.perf_counter() - started:.0f} s, on disk {size:.2f} GB "
          f"(faiss {(folder / f'gen-{ann.generation}' / 'index.faiss').stat().st_size / 2**30:.2f} GB), "
          f"params {ann.params}", flush=True)
    for candidates in [int(c) for c in args.candidates.split(",")]:
        ann_index.MIN_CANDIDATES = candidates
        if args.cold:
            _drop_page_cache()
            _measure(f"ann, {candidates} candidates, cold page cache", ann, queries, truth)
        _measure(f"ann, {candidates} candidates" + (", warm" if args.cold else ""), ann, queries, truth)
    _measure_estimates(ann, queries, counts)
    ann.close()
    started = time.perf_counter()
    ann, _ = AnnIndex.load(folder, encoder="bench", dim=DIM)
    print(f"ann load from disk {time.perf_counter() - started:.1f} s", flush=True)
    _measure_update(ann, centres, args.rows)
    ann.close()
    if args.exact:
        started = time.perf_counter()
        exact = VectorIndex.build(_chunks(args.rows, centres), rows=args.rows)
        print(f"exact build {time.perf_counter() - started:.0f} s (quantized={exact.quantized})", flush=True)
        if args.cold:
            _drop_page_cache()
            _measure("exact VectorIndex, cold page cache", exact, queries, truth)
        _measure("exact VectorIndex" + (", warm" if args.cold else ""), exact, queries, truth)
        exact.close()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
