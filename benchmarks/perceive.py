"""Perception cost per photo: the `perceive` stage end to end, and each network on photos decoded beforehand.

    .venv/bin/python benchmarks/perceive.py [--data ../shared/data/coco-mini] [--threads 2] [--weights DIR]

1. `perceive` stage on a fresh database holding the dataset: list photos, read and check their bytes, decode
   (in a thread ahead), the three networks, write rows in per-batch transactions. Prints photos/s and s/photo
   (goal: at most 0.15 s per photo on the 2-core machine).
2. The same photos decoded beforehand: seconds per photo of decoding, objects (YOLOX-Nano), faces (YuNet) and ages.
3. FLOPs per photo, counted from the ONNX graphs (multiply-adds x 2 of every Conv, Gemm and MatMul, shapes by
   ONNX shape inference): YOLOX-Nano at 416x416; YuNet at each photo's own input size (scaled to at most
   FACE_MAX_SIDE, padded to multiples of 32 as OpenCV does), from its cost per pixel; the age model per 64x64
   chip times the faces aged. With them the achieved GFLOP/s of the stage and of the networks alone.
4. A plain float32 matmul's GFLOP/s in the same run, before and after, and the achieved/matmul ratio: when the
   machine is loaded by other work this figure drops too, so compare it between runs before comparing photos/s.
"""

from __future__ import annotations

import argparse
import math
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
from pipeline.perception.faces import CHIP_SIDE, FACE_MAX_SIDE, faces_with_ages  # noqa: E402
from pipeline.perception.objects import SIDE  # noqa: E402
from pipeline.perception.weights import locate_all  # noqa: E402


def matmul_gflops(side: int = 1024, repeats: int = 5) -> float:
    a, b = np.random.rand(side, side).astype(np.float32), np.random.rand(side, side).astype(np.float32)
    a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * side**3 * repeats / (time.perf_counter() - began) / 1e9


def onnx_flops(path: Path, input_shape: list[int]) -> int:
    """Multiply-adds x 2 of the Conv, Gemm and MatMul nodes of the graph at ``input_shape`` (its one input)."""
    import onnx

    model = onnx.load(str(path))
    weights = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in weights)
    for dim, size in zip(graph_input.type.tensor_type.shape.dim, input_shape):
        dim.Clear()
        dim.dim_value = size
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
              for value in [*inferred.value_info, *inferred.output, *inferred.input]}
    shapes.update(weights)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":  # output elements x (input channels per group x kernel)
            total += 2 * math.prod(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])
        elif node.op_type in ("Gemm", "MatMul"):
            inner = shapes[node.input[0]][-1]
            total += 2 * math.prod(shapes[node.output[0]]) * inner
    return total


def perception_flops(weights: dict[str, Path], sizes: list[tuple[int, int]], aged_faces: int) -> dict[str, float]:
    """Mean FLOPs per photo of each network, for photos of these (width, height) and this many aged faces."""
    per_pixel = onnx_flops(weights["faces"], [1, 3, 640, 640]) / 640**2
    faces = 0.0
    for width, height in sizes:
        scale = min(1.0, FACE_MAX_SIDE / max(width, height))
        faces += per_pixel * (math.ceil(round(width * scale) / 32) * 32) * (math.ceil(round(height * scale) / 32) * 32)
    return {"objects": float(onnx_flops(weights["objects"], [1, 3, SIDE, SIDE])), "faces": faces / len(sizes),
            "ages": onnx_flops(weights["age"], [1, 3, CHIP_SIDE, CHIP_SIDE]) * aged_faces / len(sizes)}


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
    matmul_before = matmul_gflops()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}, "
          f"matmul float32: {matmul_before:.1f} GFLOP/s")
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
    matmul_after = matmul_gflops()
    matmul = (matmul_before + matmul_after) / 2
    print(f"load average after: {os.getloadavg()[0]:.2f}, matmul float32: {matmul_after:.1f} GFLOP/s "
          f"(mean {matmul:.1f})")
    flops = perception_flops(locate_all(args.weights), [(p.shape[1], p.shape[0]) for p in pixels], report.aged_faces)
    total = sum(flops.values()) / 1e9
    print("GFLOP per photo: " + ", ".join(f"{name} {value / 1e9:.3f}" for name, value in flops.items())
          + f", together {total:.3f}")
    for what, seconds in (("perceive stage", report.seconds / report.perceived), ("networks alone", objects + faces)):
        print(f"{what}: {total / seconds:.2f} GFLOP/s achieved = {total / seconds / matmul:.1%} of matmul")


if __name__ == "__main__":
    main()
