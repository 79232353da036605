"""Perception cost per photo: the `perceive` stage end to end, and each network on photos decoded beforehand.

    .venv/bin/python benchmarks/perceive.py [--data ../shared/data/coco-mini] [--threads 2] [--weights DIR]

1. `perceive` stage on a fresh database holding the dataset: list photos, read and check their bytes, decode
   (in a thread ahead), the three networks, write rows in per-batch transactions. Prints photos/s and s/photo
   (goal: at most 0.15 s per photo on the 2-core machine).
2. The same photos decoded beforehand: seconds per photo of decoding, objects (YOLOX-Nano), faces (YuNet) and ages.
3. A plain float32 matmul's GFLOP/s in the same run: when the machine is loaded by other work this figure drops
   too, so compare it between runs before comparing photos/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.database import Database  # noqa: E402
from pipeline import photos  # noqa: E402
from pipeline.ingest import ingest_dataset  # noqa: E402
from pipeline.layouts import DEFAULT_DATA, detect  # noqa: E402
from pipeline.perceive import DECODE_SIDE, Perceiver, perceive  # noqa: E402
from pipeline.perception.faces import faces_with_ages  # noqa: E402


def matmul_gflops(side: int = 1024, repeats: int = 5) -> float:
    a, b = np.random.rand(side, side).astype(np.float32), np.random.rand(side, side).astype(np.float32)
    a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * side**3 * repeats / (time.perf_counter() - began) / 1e9


def timed(function, items) -> tuple[float, list]:
    began = time.perf_counter()
    results = [function(item) for item in items]
    return (time.perf_counter() - began) / max(len(items), 1), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "coco-mini")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights")
    args = parser.parse_args()
    perceiver = Perceiver(args.weights, threads=args.threads)
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}, "
          f"matmul float32: {matmul_gflops():.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp, Database(Path(tmp) / "bench.duckdb") as db:
        ingest_dataset(db, args.data, detect(args.data), quiet=True)
        rows = db.fetch_all("SELECT path, sha256 FROM images WHERE status = 'ok' ORDER BY id")
        report = perceive(db, perceiver, quiet=True)
    rate = report.perceived / report.seconds
    print(f"perceive stage: {report.perceived} photos in {report.seconds:.1f}s = {rate:.2f} photos/s, "
          f"{report.seconds / report.perceived:.3f} s/photo (goal <= 0.15), threads {args.threads}")
    decode, pixels = timed(
        lambda r: np.asarray(photos.open_verified(args.data / r[0], r[1], DECODE_SIDE).convert("RGB")), rows)
    objects, _ = timed(perceiver.objects.detect, pixels)
    faces, _ = timed(lambda rgb: faces_with_ages(perceiver.faces, perceiver.ages, rgb), pixels)
    print(f"per photo, decoded beforehand: decode {decode:.3f}s, objects {objects:.3f}s, faces+ages {faces:.3f}s, "
          f"networks together {objects + faces:.3f}s")
    print(f"load average after: {os.getloadavg()[0]:.2f}, matmul float32: {matmul_gflops():.1f} GFLOP/s")


if __name__ == "__main__":
    main()
