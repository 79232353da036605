"""Search latency with and without re-ranking, on a database built by `./studio demo` (or the pipeline stages).

    .venv/bin/python benchmarks/rerank.py --db studio.duckdb RUN_ID [RUN_ID ...]

Queries are COCO-mini captions (distinct texts, so no query hits a cache); each is searched once to warm up the
index and the encoder, then timed. Prints p50 / p95 milliseconds per search of the top 10, text encoding included.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.database import Database  # noqa: E402
from db.embeddings import captions_of_readable_photos  # noqa: E402
from pipeline.bridge import current_offline_encoder  # noqa: E402
from pipeline.minors import query_block  # noqa: E402
from pipeline.rerank import Reranker  # noqa: E402
from pipeline.search import Searcher  # noqa: E402


def timed(searcher: Searcher, queries: list[str], rerank: bool) -> tuple[float, float]:
    searcher.search("warm up the index", rerank=rerank)
    took = []
    for query in queries:
        started = time.perf_counter()
        searcher.search(query, k=10, rerank=rerank)
        took.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(took, 50)), float(np.percentile(took, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_ids", nargs="+")
    parser.add_argument("--db", default="studio.duckdb")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    with Database(args.db, read_only=True) as db:
        encoder = current_offline_encoder(db)
        texts = captions_of_readable_photos(db, "coco-mini")["text"].drop_duplicates()
        texts = texts[[not query_block.check(text).blocked for text in texts]]  # blocked ones never reach ranking
        queries = texts.sample(min(args.queries, len(texts)), random_state=0).tolist()
        p50, p95 = timed(Searcher(db, encoder), queries, rerank=False)
        print(f"{'no re-ranking':<70} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
        for run_id in args.run_ids:
            started = time.perf_counter()
            reranker = Reranker(db, run_id, encoder)
            loaded = time.perf_counter() - started
            p50, p95 = timed(Searcher(db, encoder, reranker), queries, rerank=True)
            print(f"{run_id:<70} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (loaded in {loaded:.1f}s)")


if __name__ == "__main__":
    main()
