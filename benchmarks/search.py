"""Search latency and memory on synthetic vectors, against DuckDB SQL, plus text-encoding latency per backend.

    .venv/bin/python benchmarks/search.py [--sizes 10000 100000 1000000] [--queries 200] [--skip-text]

For each size N, a fresh subprocess builds a VectorIndex over N random unit 512-d vectors (streamed in chunks,
as the Searcher does from DuckDB) and times `top_k(query, 10)` (text encoding excluded): p50 / p95 over
--queries random queries, resident memory (steady and peak), and the overlap of its top-10 with exact float32
top-10. The same queries then run as DuckDB SQL (`array_cosine_similarity ... ORDER BY ... LIMIT 10`) over a
table of the same vectors: the baseline to beat. Goal at 1M on 2 cores: p95 <= 40 ms, memory <= 1.5 GB,
overlap >= 0.99.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIM, CHUNK, SQL_QUERIES = 512, 32_768, 10


def _rss_mb() -> float:
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20


def _chunks(rows: int, seed: int):
    rng = np.random.default_rng(seed)
    for start in range(0, rows, CHUNK):
        block = rng.standard_normal((min(CHUNK, rows - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        yield [f"p{i}" for i in range(start, start + len(block))], block


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    return statistics.median(seconds) * 1e3, float(np.percentile(seconds, 95)) * 1e3


def measure_index(rows: int, queries: int) -> dict:
    """Runs inside the subprocess for one size."""
    import torch

    from pipeline.vector_index import VectorIndex

    torch.set_num_threads(2)
    start_rss = _rss_mb()
    index = VectorIndex.build(_chunks(rows, 0), rows=rows)
    rng = np.random.default_rng(1)
    query_vectors = rng.standard_normal((queries, DIM)).astype(np.float32)
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    for q in query_vectors[:5]:  # warm-up
        index.top_k(q, 10)
    seconds, results = [], []
    for q in query_vectors:
        began = time.perf_counter()
        results.append(index.top_k(q, 10))
        seconds.append(time.perf_counter() - began)
    steady_rss = _rss_mb()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50, p95 = _percentiles(seconds)
    # Exact float32 reference, streamed from a fresh copy of the data (not timed, after memory was read).
    best = [[] for _ in range(queries)]
    for ids, block in _chunks(rows, 0):
        scores = block @ query_vectors.T
        for qi in range(queries):
            top = np.argpartition(-scores[:, qi], 10)[:10]
            best[qi] = sorted(best[qi] + [(float(scores[t, qi]), ids[t]) for t in top], reverse=True)[:10]
    overlap = statistics.mean(len({i for i, _ in got} & {i for _, i in want}) / 10 for got, want in zip(results, best))
    return {"rows": rows, "quantized": index.quantized, "p50_ms": p50, "p95_ms": p95, "overlap": overlap,
            "rss_mb": steady_rss, "peak_rss_mb": peak_rss, "start_rss_mb": start_rss}


def measure_duckdb(rows: int) -> dict:
    import duckdb
    import pyarrow as pa

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        con.execute(f"CREATE TABLE v (id VARCHAR, vector FLOAT[{DIM}])")
        for ids, block in _chunks(rows, 0):
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), DIM)
            con.register("chunk", pa.table({"id": ids, "vector": vectors}))
            con.execute("INSERT INTO v SELECT id, vector FROM chunk")
            con.unregister("chunk")
        rng = np.random.default_rng(1)
        seconds = []
        for _ in range(SQL_QUERIES + 1):
            q = rng.standard_normal(DIM).astype(np.float32)
            q /= np.linalg.norm(q)
            began = time.perf_counter()
            con.execute(f"SELECT id, array_cosine_similarity(vector, ?::FLOAT[{DIM}]) AS s FROM v "
                        "ORDER BY s DESC LIMIT 10", [q.tolist()]).fetchall()
            seconds.append(time.perf_counter() - began)
        con.close()
    p50, p95 = _percentiles(seconds[1:])
    return {"rows": rows, "p50_ms": p50, "p95_ms": p95}


def text_latency() -> list[tuple[str, float, float]]:
    from pipeline.encoders import load_encoder

    queries = ["a dog running on a beach", "two children playing football in a park", "a red car on a bridge",
               "a plate with pizza and salad", "people waiting for a train at night"] * 6
    rows = []
    for name, encoder in (("offline (MiniLM)", load_encoder("offline")),
                          ("openclip ViT-B-32 (random weights)", load_encoder("openclip", pretrained=None))):
        encoder.encode_texts(queries[:2])
        seconds = []
        for q in queries:
            began = time.perf_counter()
            encoder.encode_texts([q])
            seconds.append(time.perf_counter() - began)
        rows.append((name, *_percentiles(seconds)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--child", choices=["index", "duckdb"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement in a fresh process, so memory figures are this index's alone
        result = measure_index(args.rows, args.queries) if args.child == "index" else measure_duckdb(args.rows)
        print(json.dumps(result))
        return
    print(f"{'vectors':>9}  {'index':<9} {'p50 ms':>7} {'p95 ms':>7} {'top10 overlap':>13} {'RSS MB':>7} "
          f"{'peak MB':>7} | {'DuckDB SQL p50':>14} {'p95 ms':>7}")
    for rows in args.sizes:
        run = lambda child: json.loads(subprocess.run(  # noqa: E731
            [sys.executable, __file__, "--child", child, "--rows", str(rows), "--queries", str(args.queries)],
            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        index, sql = run("index"), run("duckdb")
        kind = "int8+rr" if index["quantized"] else "float32"
        print(f"{rows:>9,}  {kind:<9} {index['p50_ms']:>7.1f} {index['p95_ms']:>7.1f} {index['overlap']:>13.3f} "
              f"{index['rss_mb']:>7.0f} {index['peak_rss_mb']:>7.0f} | {sql['p50_ms']:>14.1f} {sql['p95_ms']:>7.1f}")
    if not args.skip_text:
        print("\ntext encoding, one query at a time:")
        for name, p50, p95 in text_latency():
            print(f"  {name:<36} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")


if __name__ == "__main__":
    main()
