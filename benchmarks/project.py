"""The project stage (pipeline/project.py) at catalog scale, and the Explore page's read of the map.

    .venv/bin/python benchmarks/project.py --db COPY.duckdb [--encoder ID] [--sample 50000]
    .venv/bin/python benchmarks/project.py --synthetic 1000000 [--dim 64]

It WRITES the database (the map tables): give it a copy. ``--synthetic N`` builds a throwaway database of N random
unit vectors of ``--dim`` (no photos, so the page read finds none visible). Prints, for the encoder (default: the
one with most vectors): vectors and dimension; seconds to read the fitting sample, to fit (PCA + MiniBatchKMeans),
and for the whole stage, twice (forced: sample, fit, transform and write every vector in chunks; the second run
replaces the first's map); vectors/s; the process's peak memory; then the page's read of the map (visible photos
and a 20,000-point sample), its colour reads (latest verdict, main COCO object of the drawn photos) and a rerun on
unchanged vectors (already current).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db import embeddings as vector_store, explore as store  # noqa: E402
from db.database import Database  # noqa: E402
from pipeline import project  # noqa: E402

PAGE_POINTS = 20_000


def synthetic(path: Path, rows: int, dim: int) -> str:
    """A database holding ``rows`` random unit vectors of ``dim`` under encoder 'synthetic'."""
    rng = np.random.default_rng(0)
    with Database(path) as db:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            vectors = rng.standard_normal((n, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            ids = [f"synthetic/{i:08d}" for i in range(start, start + n)]
            with db.write() as cur:
                vector_store.save_photo_vectors(cur, "synthetic", None, ids, ids, vectors)
    return "synthetic"


def timed(call):
    began = time.perf_counter()
    result = call()
    return result, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="a COPY of a database with vectors (this writes to it)")
    parser.add_argument("--encoder")
    parser.add_argument("--sample", type=int, default=project.DEFAULT_SAMPLE)
    parser.add_argument("--synthetic", type=int, help="build a throwaway database of this many random vectors")
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    if bool(args.db) == bool(args.synthetic):
        parser.error("give --db COPY or --synthetic N")
    folder = tempfile.TemporaryDirectory() if args.synthetic else None
    path = Path(folder.name) / "synthetic.duckdb" if folder else Path(args.db)
    if args.synthetic:
        _, seconds = timed(lambda: synthetic(path, args.synthetic, args.dim))
        print(f"synthetic: {args.synthetic:,} x {args.dim} vectors written in {seconds:.1f}s")
    with Database(path) as db:
        encoder = args.encoder or vector_store.encoders_with_vectors(db).sort_values("photos")["encoder_id"].iloc[-1]
        count, _ = vector_store.vector_set_version(db, encoder)
        (_, sample), read_s = timed(lambda: store.fitting_sample(db, encoder, args.sample, 0))
        fitted, fit_s = timed(lambda: project.fit(sample, 0))
        print(f"encoder {encoder}: {count:,} vectors of {sample.shape[1]}-d; fitting sample {len(sample):,} read in "
              f"{read_s:.2f}s, fitted in {fit_s:.2f}s ({fitted.kmeans.n_clusters} clusters, axes keep "
              f"{fitted.explained:.0%} of the variance)")
        for _ in range(2):
            what = "replacing the stored map" if store.map_info(db, encoder) else "no map stored yet"
            report, stage_s = timed(lambda: project.project(db, encoder, sample=args.sample, force=True, quiet=True))
            print(f"project stage (forced, {what}): {report.photos:,} photos mapped in {stage_s:.1f}s "
                  f"({report.photos / stage_s:,.0f} vectors/s), peak memory "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
        (total, points), page_s = timed(lambda: store.visible_points(db, encoder, PAGE_POINTS))
        print(f"page read: {total:,} visible photos on the map, {len(points):,} drawn, in {page_s:.2f}s")
        ids = points["image_id"].tolist()
        for name, read in (("verdicts", store.verdicts_of), ("COCO objects", store.objects_of)):
            found, read_s = timed(lambda: read(db, ids))
            print(f"page colours by {name}: {len(found):,} of the drawn photos have one, read in {read_s:.2f}s")
        again, again_s = timed(lambda: project.project(db, encoder, sample=args.sample, quiet=True))
        print(f"rerun on unchanged vectors: already current={again.already_current} in {again_s:.2f}s")
    if folder:
        folder.cleanup()


if __name__ == "__main__":
    main()
