"""Ingest throughput on a generated 1,000,000-row crowd file, validation included.

    .venv/bin/python benchmarks/ingest.py [--rows N] [--repeat K]

Times the whole `ingest` of a Flickr8k-layout folder holding only CrowdFlowerAnnotations.txt: framing, sniffing,
SQL validation (types, ranges, share consistency, references, duplicates), inserts, rejects and the relevance
stage, in one transaction. 0.1% of the rows are damaged so the reject path is exercised too. Goal: >= 300,000
rows/s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.database import Database  # noqa: E402
from pipeline.ingest import ingest_dataset  # noqa: E402
from pipeline.readers import flickr8k  # noqa: E402


def write_crowd_file(path: Path, rows: int, seed: int = 0) -> int:
    """Write ``rows`` lines; returns how many were deliberately damaged."""
    rng = random.Random(seed)
    images = [f"{1000000 + i}_{i:010x}.jpg" for i in range(max(rows // 6, 1))]
    damaged = 0
    lines = []
    for i in range(rows):
        image = images[i % len(images)]  # each image gets ~6 distinct queries: keys stay unique
        query = f"{images[(i + 7919 * (i // len(images))) % len(images)]}#{i % 5}"
        yes = rng.randint(0, 5)
        no = rng.randint(0 if yes else 1, 5)
        if i % 1000 == 999:
            damaged += 1
            lines.append(f"{image}\t{query}\t0.5\t{yes}\toops")
        else:
            lines.append(f"{image}\t{query}\t{yes / (yes + no):.6f}\t{yes}\t{no}")
    path.write_text("\n".join(lines) + "\n")
    return damaged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench-crowd"
        root.mkdir()
        damaged = write_crowd_file(root / flickr8k.CROWD_FILE, args.rows)
        seconds = []
        for attempt in range(args.repeat):
            with Database(Path(tmp) / f"bench{attempt}.duckdb") as db:
                start = time.perf_counter()
                result = ingest_dataset(db, root, flickr8k, quiet=True)
                seconds.append(time.perf_counter() - start)
            [count] = result.files
            assert count.read == args.rows and count.rejected >= damaged, count
        best, median = min(seconds), statistics.median(seconds)
        print(f"rows: {args.rows:,} (rejected {count.rejected:,}, accepted {count.accepted:,})")
        print(f"ingest seconds: best {best:.2f}, median {median:.2f} over {args.repeat} runs")
        print(f"rows/second: best {args.rows / best:,.0f}, median {args.rows / median:,.0f} (goal >= 300,000)")


if __name__ == "__main__":
    main()
