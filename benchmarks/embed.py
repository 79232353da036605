"""Embed throughput against the bare forward pass of the same model at the same batch size.

    .venv/bin/python benchmarks/embed.py [--data ../shared/data/coco-mini] [--batch-size 32] [--workers 1]

1. `embed` stage, end to end, on a fresh database holding the dataset: list photos, decode and resize them in a
   loader worker, forward pass, project, write vectors and features to DuckDB in per-batch transactions.
2. Bare forward: the same photos, decoded and preprocessed beforehand, through `encoder.extract` only.
Prints photos/second for both and their ratio (goal >= 90%: decoding and resizing must not starve the model).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.database import Database  # noqa: E402
from pipeline.embed import embed  # noqa: E402
from pipeline.encoders import load_encoder  # noqa: E402
from pipeline.ingest import ingest_dataset  # noqa: E402
from pipeline.layouts import DEFAULT_DATA, detect  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "coco-mini")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    encoder = load_encoder("offline")
    with tempfile.TemporaryDirectory() as tmp, Database(Path(tmp) / "bench.duckdb") as db:
        ingest_dataset(db, args.data, detect(args.data), quiet=True)
        paths = [args.data / p for (p,) in db.fetch_all("SELECT path FROM images WHERE status = 'ok' ORDER BY id")]
        # Bare forward pass: photos preprocessed beforehand, batches ready in memory.
        batches = []
        for start in range(0, len(paths), args.batch_size):
            views = [encoder.preprocess(Image.open(p)) for p in paths[start : start + args.batch_size]]
            batches.append(torch.utils.data.default_collate(views))
        encoder.extract(batches[0])  # warm-up, as the stage's first batch is not timed apart either
        began = time.perf_counter()
        for batch in batches:
            encoder.extract(batch)
        bare = len(paths) / (time.perf_counter() - began)
        began = time.perf_counter()
        report = embed(db, encoder, batch_size=args.batch_size, workers=args.workers, quiet=True)
        staged = report.embedded / (time.perf_counter() - began)
    print(f"photos: {len(paths)}, encoder {encoder.id}, batch size {args.batch_size}, loader workers {args.workers}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"bare forward pass: {bare:.2f} photos/s")
    print(f"embed stage:       {staged:.2f} photos/s")
    print(f"embed / bare:      {staged / bare:.1%} (goal >= 90%)")


if __name__ == "__main__":
    main()
