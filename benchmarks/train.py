"""Train-stage wall time per target and model, the committed code beside the working tree, on copies of one database.

    .venv/bin/python benchmarks/train.py --db studio.duckdb                # the demo's four models, both targets
    .venv/bin/python benchmarks/train.py --db studio.duckdb --models all   # the full zoo
    options: --targets expert,category-pairs  --baseline REV (default HEAD; 'none': the working tree only)
             --encode-sample N (texts for the encoding-order check; 0 skips it)

Give it a database in the state `train` meets in `./studio demo`: after `fit-bridge` (and `evaluate-retrieval`).
It is copied once per variant and never changed. The baseline is the code at REV (`git archive` into a temporary
folder); both variants run the same driver in a subprocess, baseline first, as `python -m pipeline train` would
(the offline encoder, 2 threads), and print: per target the features' wall seconds (the working tree splits it
into sources, i.e. vectors, references and the encoded caption gallery, and each feature set), per run the wall
seconds and the out-of-fold R2 / MSE / nDCG@10 of both variants (the same folds), and for the working tree the
split of each run: fits (fold fits and final fit, overlapping in worker processes), fold fits, final fit and
the search's share (each fit's own seconds, added up), latency measurement, save (model file and database rows).
The load average (os.getloadavg) is printed beside every figure: on a shared machine, compare the two variants
of one call, not figures of different calls.

The encoding-order check encodes N caption texts of the database (uncached) in batches of stored order (as the
text encoder did before) and in one call, where MiniLMText.encode batches texts of similar length, and prints both
times.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db import models as model_store  # noqa: E402
from db.database import Database  # noqa: E402
from pipeline import models  # noqa: E402
from pipeline.encoders import minilm  # noqa: E402

DEMO_MODELS = "constant,zero-shot,ridge,hist-gradient-boosting"
METRICS = ("r2", "mse", "ndcg@10")

# Runs in the tree under test (its own pipeline/ and db/ first on sys.path); prints one JSON line.
DRIVER = """
import json, os, sys, time
from pathlib import Path
from db.database import Database
from pipeline import embed, train
from pipeline.cli import _train_encoder
db_path, kinds, names, artifacts = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(","), Path(sys.argv[4])
result = []
with Database(db_path) as db:
    encoder = _train_encoder(db)
    embed.embed(db, encoder, quiet=True)
    for kind in kinds:
        load = os.getloadavg()[0]
        started = time.perf_counter()
        prepared = train.prepare(db, encoder, target=kind)
        features = time.perf_counter() - started
        started = time.perf_counter()
        summaries = train.train(db, encoder, prepared, names, artifacts=artifacts, quiet=True, threads=2)
        result.append({
            "target": prepared.target.name, "features": features, "feature_parts": getattr(prepared, "feature_seconds", {}),
            "training": time.perf_counter() - started, "load": [load, os.getloadavg()[0]],
            "runs": [{"model": s.model, "feature_set": s.feature_set, "seconds": s.train_seconds,
                      "phases": getattr(s, "seconds", {}), "metrics": {k: s.metrics.get(k) for k in METRICS}}
                     for s in summaries]})
print("RESULT " + json.dumps(result))
"""


def baseline_tree(revision: str, folder: Path) -> Path:
    """The committed pipeline/ and db/ of ``revision``, unpacked (nothing in the working tree or index changes)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "pipeline", "db"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def run_variant(tree: Path, database: Path, kinds: str, names: str, work: Path, label: str) -> tuple[list, float]:
    copy = work / f"{label}.duckdb"
    shutil.copyfile(database, copy)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", f"METRICS = {METRICS!r}\n" + DRIVER, str(copy), kinds, names,
                           str(work / f"{label}-models")],
                          cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), time.perf_counter() - started


def encoding_order(database: Path, sample: int) -> None:
    from pipeline.bridge import current_offline_encoder

    with Database(database, read_only=True) as db:
        texts = model_store.dataset_captions(db, model_store.datasets_with(db, "expert")[0])["text"]
        texts = texts.sample(min(sample, len(texts)), random_state=0).tolist()
        encoder = current_offline_encoder(db)
    encoder.encode_texts(texts[:64])  # warm up
    timings = {}
    def stored_order(batch: list[str]) -> np.ndarray:  # one encoder batch at a time: nothing to sort
        return np.concatenate([encoder.encode_texts(batch[i : i + minilm.BATCH])
                               for i in range(0, len(batch), minilm.BATCH)])

    for label, encode in (("stored order", stored_order), ("by length", encoder.encode_texts)):
        load, started = os.getloadavg()[0], time.perf_counter()
        encode(texts)
        timings[label] = time.perf_counter() - started
        print(f"encode {len(texts):,} captions, {label:<12} {timings[label]:7.1f} s  (load {load:.1f})")
    print(f"encode by length: {timings['stored order'] / timings['by length']:.2f}x faster")


def report(baseline: list | None, current: list, walls: dict[str, float]) -> None:
    old = {item["target"]: item for item in baseline or []}
    for item in current:
        before = old.get(item["target"])
        print(f"\n{item['target']}  (load {item['load'][0]:.1f} -> {item['load'][1]:.1f})")
        parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in item["feature_parts"].items())
        print(f"  features  {_pair(before and before['features'], item['features'])}  [{parts}]")
        print(f"  training  {_pair(before and before['training'], item['training'])}")
        runs_before = {(r["model"], r["feature_set"]): r for r in (before or {}).get("runs", [])}
        print(f"  {'model':<24} {'features':<15} {'seconds old -> new':>24}   "
              + "   ".join(f"{m} old -> new" for m in METRICS) + "   split (new)")
        for run in item["runs"]:
            was = runs_before.get((run["model"], run["feature_set"]))
            figures = "   ".join(f"{_fmt(was and was['metrics'][m])} -> {_fmt(run['metrics'][m])}" for m in METRICS)
            split = " ".join(f"{k} {v:.1f}" for k, v in run["phases"].items())
            print(f"  {run['model']:<24} {run['feature_set']:<15} {_pair(was and was['seconds'], run['seconds']):>24}"
                  f"   {figures}   {split}")
    print()
    for label, seconds in walls.items():
        print(f"whole call ({label}): {seconds:.1f} s")
    if len(walls) == 2:
        print(f"ratio: {walls['baseline'] / walls['working tree']:.2f}x")


def _pair(old: float | None, new: float) -> str:
    return f"{new:6.1f} s" if old is None else f"{old:6.1f} -> {new:6.1f} s ({old / max(new, 1e-9):.1f}x)"


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--models", default=DEMO_MODELS, help=f"comma-separated, or 'all' (default {DEMO_MODELS})")
    parser.add_argument("--targets", default="expert,category-pairs")
    parser.add_argument("--baseline", default="HEAD", help="git revision to compare with, or 'none'")
    parser.add_argument("--encode-sample", type=int, default=1024)
    args = parser.parse_args()
    names = ",".join(models.MODEL_NAMES) if args.models == "all" else args.models
    print(f"train benchmark: models {names}; targets {args.targets}; load {os.getloadavg()[0]:.1f} "
          f"{os.cpu_count()} cores")
    if args.encode_sample:
        encoding_order(args.db, args.encode_sample)
    with tempfile.TemporaryDirectory(prefix="train-bench-") as scratch:
        work = Path(scratch)
        walls, baseline = {}, None
        if args.baseline != "none":
            tree = baseline_tree(args.baseline, work / "baseline-tree")
            baseline, walls["baseline"] = run_variant(tree, args.db, args.targets, names, work, "baseline")
            print(f"baseline ({args.baseline}) done in {walls['baseline']:.1f} s (load {os.getloadavg()[0]:.1f})")
        current, walls["working tree"] = run_variant(ROOT, args.db, args.targets, names, work, "current")
        report(baseline, current, walls)


if __name__ == "__main__":
    main()
