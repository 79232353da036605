"""What `--encoder auto` costs before the first photo: the open_clip import, the choice, the hub probe.

    .venv/bin/python benchmarks/encoder_auto.py

torch, torchvision and transformers are imported first (the offline encoder loads them too), so the open_clip
import time printed is what auto adds. The choice is made with a stand-in for the offline encoder (its own load is
the same with or without auto). On a machine without the weights and without the hub it prints the fallback line
the CLI prints; with cached weights it times a cache-only load instead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    started = time.perf_counter()
    import torch  # noqa: F401
    import torchvision  # noqa: F401
    from transformers import AutoModel  # noqa: F401

    shared = time.perf_counter()
    import open_clip  # noqa: F401

    imported = time.perf_counter()
    from pipeline.encoders import choose
    from pipeline.encoders.openclip import hub_unreachable

    choice = choose(lambda: None)
    chosen = time.perf_counter()
    why = hub_unreachable()
    probed = time.perf_counter()
    print(f"torch + torchvision + transformers import: {shared - started:.1f}s (the offline encoder needs them too)")
    print(f"open_clip import: {imported - shared:.1f}s")
    print(f"choice: {chosen - imported:.2f}s -> {choice.line}")
    print(f"hub probe alone: {probed - chosen:.2f}s ({why or 'the hub answered'})")


if __name__ == "__main__":
    main()
