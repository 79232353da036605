"""Ray's overhead on the embed stage: photos/s in-process (2 threads) vs Ray Data (2 local actors x 1 thread).

    .venv/bin/python benchmarks/ray_embed.py [--data ../shared/data/coco-mini] [--copies 1] [--rounds 2]
                                             [--shard-size 32]

On one fresh database holding the dataset, in the same run and alternating (`--rounds` times each): the in-process
embed stage (pipeline/embed.py: a loader process decoding, the forward pass on 2 threads) and the Ray engine
(pipeline/ray_engine.py: 2 actors of 1 thread each, Parquet shards, then the load into DuckDB), both with the
offline encoder's bridge alone, every vector deleted between runs. `--copies N` ingests N copies of the dataset
(under other names, so N x the photos), to see the fixed start-up of Ray's actors apart from their rate. Ray is
started once before the rounds and its start is printed apart (a cluster is started once per job, not per photo). Prints photos/s of each, their ratio
(goal: Ray within 15%), the max abs difference of the vectors, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db import embeddings as store  # noqa: E402
from db.database import Database  # noqa: E402
from pipeline import bridge, ray_engine  # noqa: E402
from pipeline.embed import embed  # noqa: E402
from pipeline.ingest import ingest_dataset  # noqa: E402
from pipeline.layouts import DEFAULT_DATA, detect  # noqa: E402


def _forget(db: Database) -> None:
    with db.write() as cur:
        cur.execute("DELETE FROM embeddings")
        cur.execute("DELETE FROM image_features")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "coco-mini")
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=32)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}", flush=True)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        db = Database(Path(folder) / "bench.duckdb")
        for copy in range(args.copies):
            root = args.data if copy == 0 else Path(folder) / f"{args.data.name}-{copy}"
            if copy:
                shutil.copytree(args.data, root)
            ingest_dataset(db, root, detect(root), quiet=True)
        encoder = ray_engine.base_encoder(bridge.load_for(db, "offline"))
        began = time.perf_counter()
        ray_engine.start_ray(None, 2)
        print(f"ray start {time.perf_counter() - began:.1f} s", flush=True)
        rates: dict[str, list[float]] = {"in-process 2 threads": [], "ray 2 workers x 1 thread": []}
        vectors: dict[str, np.ndarray] = {}
        for round_number in range(args.rounds):
            for name in rates:
                _forget(db)
                began = time.perf_counter()
                if name.startswith("ray"):
                    report = ray_engine.embed_ray(db, encoder, shards_uri=f"{folder}/shards-{round_number}",
                                                  shard_size=args.shard_size, workers=2, threads=1, quiet=True)
                else:
                    report = embed(db, encoder, workers=1, quiet=True)
                seconds = time.perf_counter() - began
                rates[name].append(report.embedded / seconds)
                vectors[name] = store.dataset_vectors(db, encoder.id, args.data.name)[1]
                print(f"round {round_number + 1} {name}: {report.embedded} photos in {seconds:.1f} s = "
                      f"{rates[name][-1]:.2f} photos/s", flush=True)
        local, distributed = (statistics.median(r) for r in rates.values())
        print(f"median photos/s: in-process {local:.2f}, ray {distributed:.2f}; ray / in-process = "
              f"{distributed / local:.3f} (goal >= 0.85)")
        first, second = vectors.values()
        print(f"max abs difference of the vectors: {np.abs(first - second).max():.2e} (goal <= 1e-5)")
        db.close()
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
