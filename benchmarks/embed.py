"""Embed throughput of the offline encoder against its old configuration, and against the machine's float32 matmul.

    .venv/bin/python benchmarks/embed.py [--data ../shared/data/coco-mini] [--batch-size 32] [--workers 1]
                                         [--threads N] [--rounds 1] [--skip-old] [--views full224] [--no-flip]

In the same run, on fresh databases holding the dataset (one per configuration, `--rounds` times, alternating):
1. `embed` stage end to end with the encoder as it is now (ONNX Runtime, its views or `--views`, e.g.
   center224+full224+full288, JPEGs decoded at the scale the views need): list photos, decode and resize in a
   loader worker, forward passes, project, write per batch.
2. The same stage with the old configuration (issue #14's starting point): eager torch, center224 + full224 +
   full288 each with its mirror image (6 passes), JPEGs decoded in full.
3. The new configuration's bare forward pass (photos preprocessed beforehand), to see what decoding costs.
Prints photos/s of each and their ratio; the FLOPs per photo of each (counted on the torch model per view with
torch.utils.flop_counter: multiply-adds x 2 of convolutions and the classifier); the achieved GFLOP/s; and the
GFLOP/s of a plain float32 2048x2048 torch.mm on the same threads, before and after, with the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.database import Database  # noqa: E402
from pipeline import photos  # noqa: E402
from pipeline.embed import DEFAULT_BATCH, embed  # noqa: E402
from pipeline.encoders.offline import DEFAULT_VIEWS, OfflineEncoder, weights_path  # noqa: E402
from pipeline.encoders.onnx_runtime import IMAGENET_MEAN, IMAGENET_STD, torch_model  # noqa: E402
from pipeline.ingest import ingest_dataset  # noqa: E402
from pipeline.layouts import DEFAULT_DATA, detect  # noqa: E402

OLD_VIEWS = (("center", 224), ("full", 224), ("full", 288))


class OldConfiguration(OfflineEncoder):
    """The encoder as issue #14 found it: eager torch, 3 views x mirror image, JPEGs decoded in full."""

    draft_side = None

    def __init__(self) -> None:
        super().__init__(views=OLD_VIEWS, flip=True)
        self.model = torch_model(weights_path())

    @torch.inference_mode()
    def extract(self, batch):
        total = None
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
        for view in batch:
            view = (view.float() - mean) / std
            for pixels in (view, torch.flip(view, dims=[3])):
                logits = self.model(pixels)
                total = logits if total is None else total + logits
        return (total / (2 * len(batch))).numpy()


def flops_per_photo(encoder: OfflineEncoder) -> int:
    """Counted on the torch model, one photo per view; mirrored views cost the same again."""
    model, total = torch_model(weights_path()), 0
    for _, side in encoder.views:
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model(torch.zeros(1, 3, side, side))
        total += counter.get_total_flops()
    return total * (2 if encoder.flip else 1)


def matmul_gflops(side: int = 2048, repeats: int = 5) -> float:
    a, b = torch.rand(side, side), torch.rand(side, side)
    torch.mm(a, b)
    began = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * side**3 * repeats / (time.perf_counter() - began) / 1e9


def stage_rate(encoder: OfflineEncoder, data: Path, batch_size: int, workers: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp, Database(Path(tmp) / "bench.duckdb") as db:
        ingest_dataset(db, data, detect(data), quiet=True)
        began = time.perf_counter()
        report = embed(db, encoder, batch_size=batch_size, workers=workers, quiet=True)
        return report.embedded / (time.perf_counter() - began), report.embedded


def bare_rate(encoder: OfflineEncoder, data: Path, batch_size: int) -> float:
    """Forward passes alone: the photos decoded and preprocessed beforehand, batches ready in memory."""
    with tempfile.TemporaryDirectory() as tmp, Database(Path(tmp) / "bench.duckdb") as db:
        ingest_dataset(db, data, detect(data), quiet=True)
        rows = db.fetch_all("SELECT path, sha256 FROM images WHERE status = 'ok' ORDER BY id")
    views = [encoder.preprocess(photos.open_verified(data / path, sha, encoder.draft_side)) for path, sha in rows]
    batches = [torch.utils.data.default_collate(views[i : i + batch_size]) for i in range(0, len(views), batch_size)]
    encoder.extract(batches[0])  # warm-up
    began = time.perf_counter()
    for batch in batches:
        encoder.extract(batch)
    return len(views) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "coco-mini")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-old", action="store_true", help="measure the new configuration only")
    parser.add_argument("--views", default="+".join(f"{mode}{side}" for mode, side in DEFAULT_VIEWS))
    parser.add_argument("--no-flip", action="store_true", help="without the mirrored passes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    views = [(mode, int(side)) for mode, side in re.findall(r"(center|full)(\d+)", args.views)]
    new = OfflineEncoder(views=views, flip=not args.no_flip, threads=args.threads)
    old = None if args.skip_old else OldConfiguration()
    matmul_before = matmul_gflops()
    print(f"cores {os.cpu_count()}, threads {args.threads}, batch size {args.batch_size}, loader workers "
          f"{args.workers}, load average before {os.getloadavg()[0]:.2f}, matmul float32 {matmul_before:.1f} GFLOP/s")
    rates: dict[str, list[float]] = {"new": [], "old": []}
    for _ in range(args.rounds):
        for name, encoder in (("new", new), ("old", old)):
            if encoder is not None:
                rate, photos_done = stage_rate(encoder, args.data, args.batch_size, args.workers)
                rates[name].append(rate)
    bare = bare_rate(new, args.data, args.batch_size)
    matmul_after = matmul_gflops()
    matmul = (matmul_before + matmul_after) / 2
    print(f"photos: {photos_done}; load average after {os.getloadavg()[0]:.2f}, matmul float32 {matmul_after:.1f} "
          f"GFLOP/s (mean {matmul:.1f})")
    for name, encoder in (("new", new), ("old", old)):
        if encoder is None:
            continue
        flops = flops_per_photo(encoder) / 1e9
        rate = max(rates[name])
        passes = len(encoder.views) * (2 if encoder.flip else 1)
        print(f"{name}: {encoder.feature_id}, {passes} passes, {flops:.2f} GFLOP/photo, draft side "
              f"{encoder.draft_side}; embed stage {', '.join(f'{r:.2f}' for r in rates[name])} photos/s "
              f"(best {rate:.2f}) = {rate * flops:.1f} GFLOP/s = {rate * flops / matmul:.1%} of matmul")
        if name == "new":
            print(f"new, bare forward pass: {bare:.2f} photos/s = {bare * flops:.1f} GFLOP/s = "
                  f"{bare * flops / matmul:.1%} of matmul; embed stage / bare {rate / bare:.1%}")
    if old is not None:
        print(f"new / old photos/s: {max(rates['new']) / max(rates['old']):.2f}x")


if __name__ == "__main__":
    main()
