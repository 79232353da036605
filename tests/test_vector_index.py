"""VectorIndex alone: exact float32 path, quantized path with re-ranking, paging."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.encoders.base import l2_normalise
from pipeline.vector_index import VectorIndex


def random_unit(rows: int, dim: int, seed: int) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32))


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return list(np.argsort(-(vectors @ query), kind="stable")[:k])


def test_float_index_is_exact_and_pages_line_up() -> None:
    vectors, query = random_unit(500, 16, 0), random_unit(1, 16, 1)[0]
    index = VectorIndex([f"p{i}" for i in range(500)], vectors)
    top = index.top_k(query, 10)
    assert [p for p, _ in top] == [f"p{i}" for i in exact_top(vectors, query, 10)]
    assert [s for _, s in top] == pytest.approx(sorted(vectors @ query, reverse=True)[:10], abs=1e-6)
    assert index.top_k(query, 5) + index.top_k(query, 5, offset=5) == top
    assert len(index.top_k(query, 10, offset=495)) == 5  # the last page is short
    assert index.top_k(query, 10, offset=500) == []


def test_quantized_index_reranks_to_the_exact_top_10() -> None:
    vectors = random_unit(20_000, 64, 2)
    chunks = [([f"p{i}" for i in range(s, s + 5000)], vectors[s : s + 5000]) for s in range(0, 20_000, 5000)]
    index = VectorIndex.build_with(chunks, quantize=True)
    assert index.quantized and len(index) == 20_000
    overlaps = []
    for seed in range(20):
        query = random_unit(1, 64, 100 + seed)[0]
        got = index.top_k(query, 10)
        expected = exact_top(vectors, query, 10)
        overlaps.append(len({p for p, _ in got} & {f"p{i}" for i in expected}) / 10)
        for image_id, score in got:  # scores are the exact float32 cosines, not the int8 estimates
            assert score == pytest.approx(float(vectors[int(image_id[1:])] @ query), abs=1e-5)
    assert np.mean(overlaps) >= 0.99
    index.close()


def test_mismatched_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        VectorIndex(["a", "b"], random_unit(3, 4, 0))


def test_pages_never_repeat_or_skip_rows_tied_in_score() -> None:
    """Many photos with the same vector (duplicates): page 2 must continue page 1, not re-pick among the ties."""
    vectors = np.repeat(l2_normalise(np.eye(3, dtype=np.float32)), 20, axis=0)  # 3 groups of 20 identical rows
    ids = [f"p{i}" for i in range(len(vectors))]
    index = VectorIndex.build([(ids, vectors)], rows=len(ids))
    query = l2_normalise(np.array([[1.0, 0.5, 0.0]], np.float32))[0]
    pages = [index.top_k(query, 7, offset) for offset in range(0, 60, 7)]
    seen = [image_id for page in pages for image_id, _ in page]
    assert len(seen) == 60 and len(set(seen)) == 60
    assert seen == [image_id for image_id, _ in index.top_k(query, 60)]


def test_a_dropped_index_frees_its_spill_file() -> None:
    """The search drops an index it swapped out without closing it (a search may still read it): collecting it
    closes the float32 row file and removes its folder, so swapped-out indexes do not pile up on disk."""
    import gc
    import os
    from pathlib import Path

    vectors = random_unit(1_000, 8, 3)
    index = VectorIndex.build_with([([f"p{i}" for i in range(1_000)], vectors)], quantize=True)
    folder, fd = Path(index._spill.name), index._exact._fd
    assert folder.exists() and os.fstat(fd)
    del index
    gc.collect()
    assert not folder.exists()
    with pytest.raises(OSError):
        os.fstat(fd)
