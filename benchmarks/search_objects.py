"""Latency of search with the "must show" object filter, against the same search without it.

    .venv/bin/python benchmarks/search_objects.py [--photos 100000] [--queries 50]

Builds a database of N synthetic visible photos (384-d unit vectors, a cleared minors decision each) with object
detections at three frequencies: 'person' in 40% of photos, 'dog' in 5%, 'giraffe' in 0.1%. Then it times
`Searcher.search` (text encoding excluded: the encoder returns a fixed random vector per query) for k=12 without a
filter and with must_show = person, dog, giraffe, and person + dog. The filter reads candidates from the index in
growing depth and checks them in SQL together with visibility, so a rare object costs more rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.database import Database  # noqa: E402
from db.embeddings import vectors_to_arrow  # noqa: E402
from pipeline.encoders.base import Encoder, l2_normalise  # noqa: E402
from pipeline.perception import PERCEIVER_ID  # noqa: E402
from pipeline.search import Searcher  # noqa: E402

DIM = 384
SHARES = {"person": 0.40, "dog": 0.05, "giraffe": 0.001}


class RandomQueries(Encoder):
    """Texts -> a random unit vector each (seeded by the text); photos are never encoded here."""

    id = feature_id = "bench-random"
    dim = DIM

    def preprocess(self, image):  # noqa: ANN001 - not used
        raise NotImplementedError

    def extract(self, batch):  # noqa: ANN001 - not used
        raise NotImplementedError

    def encode_texts(self, texts):  # noqa: ANN001
        return l2_normalise(np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(DIM)
                                      for t in texts]))


def build(path: Path, photos: int) -> None:
    rng = np.random.default_rng(0)
    ids = [f"b/{i}" for i in range(photos)]
    shas = [f"sha{i}" for i in range(photos)]
    vectors = l2_normalise(rng.standard_normal((photos, DIM)).astype(np.float32))
    now = datetime.now()
    with Database(path) as db, db.write() as cur:
        cur.execute("INSERT INTO datasets VALUES ('b', 'coco', '/nowhere', 'x', 1)")
        cur.register("p", pa.table({"id": ids, "sha": shas, "vector": vectors_to_arrow(vectors)}))
        cur.execute("INSERT INTO images SELECT id, 'b', id, id, NULL, 16, 16, sha, 'ok', NULL, true FROM p")
        cur.execute("INSERT INTO minors_decisions SELECT id, sha, 'cleared', '{}', 'bench', 'rule', NULL, ? FROM p",
                    [now])
        cur.execute("INSERT INTO embeddings SELECT id, ?, sha, vector, ? FROM p", [RandomQueries.id, now])
        rows = [(ids[i], shas[i], label) for label, share in SHARES.items()
                for i in np.flatnonzero(rng.random(photos) < share)]
        cur.register("d", pa.table({"id": [r[0] for r in rows], "sha": [r[1] for r in rows],
                                    "label": [r[2] for r in rows]}))
        cur.execute("INSERT INTO detections SELECT id, ?, sha, 'bench', 'object', label, 0.9, 0, 0, 8, 8, 8, NULL, NULL "
                    "FROM d", [PERCEIVER_ID])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.duckdb"
        build(path, args.photos)
        with Database(path, read_only=True) as db:
            searcher = Searcher(db, RandomQueries(), log_blocked=lambda *_: None)
            searcher.search("warm up the index", k=12)
            print(f"{args.photos:,} visible photos, {args.queries} queries, k=12 (text encoding excluded)")
            for labels in ([], ["person"], ["dog"], ["giraffe"], ["person", "dog"]):
                seconds, found = [], []
                for q in range(args.queries):
                    text = f"query {q}"
                    searcher.query_vector(text)  # cached: the timing is the search alone
                    started = time.perf_counter()
                    found.append(len(searcher.search(text, k=12, must_show=labels).hits))
                    seconds.append(time.perf_counter() - started)
                p50, p95 = statistics.median(seconds) * 1e3, float(np.percentile(seconds, 95)) * 1e3
                print(f"  must show {', '.join(labels) or '(nothing)':<14} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
                      f"hits per page {statistics.mean(found):.1f}")


if __name__ == "__main__":
    main()
