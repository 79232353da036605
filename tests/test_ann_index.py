"""AnnIndex against the exact index on small clustered data: recall, exact scores, stable pages, save/load."""

import numpy as np
import pytest

from pipeline.ann_index import AnnIndex, AnnIndexMismatch
from pipeline.vector_index import VectorIndex


def _clustered(rows: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, rows)] + 0.3 * rng.standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def built(tmp_path):
    vectors = _clustered(4000)
    ids = [f"p{i:05d}" for i in range(len(vectors))]
    chunks = [(ids[s : s + 1000], vectors[s : s + 1000]) for s in range(0, 4000, 1000)]
    index = AnnIndex.build(chunks, folder=tmp_path / "enc", rows=4000, dim=32)
    yield index, VectorIndex(ids, vectors), tmp_path / "enc"
    index.close()


def test_recall_and_exact_scores_against_exact_index(built):
    ann, exact, _ = built
    queries = _clustered(30, seed=1)
    hits = 0
    for query in queries:
        got = ann.top_k(query, 10)
        truth = exact.top_k(query, 10)
        hits += len({i for i, _ in got} & {i for i, _ in truth})
        scores = dict(exact.top_k(query, len(exact)))
        assert all(abs(score - scores[i]) < 1e-5 for i, score in got)  # re-ranked: exact cosines
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    assert hits / (10 * len(queries)) >= 0.95


def test_pages_are_stable_and_disjoint_with_ties(tmp_path):
    vectors = np.repeat(_clustered(50), 4, axis=0)  # every row tied with three others
    ids = [f"p{i:04d}" for i in range(len(vectors))]
    ann = AnnIndex.build([(ids, vectors)], folder=tmp_path / "t", rows=len(ids), dim=32)
    query = vectors[0]
    whole = ann.top_k(query, 20)
    assert ann.top_k(query, 10) + ann.top_k(query, 10, offset=10) == whole
    assert whole[:4] == sorted(whole[:4], key=lambda pair: pair[0])  # ties in row order
    ann.close()


def test_save_load_round_trip_answers_the_same(built):
    ann, _, folder = built
    ann.save("enc-a", [4000, "2026-01-01"])
    loaded, version = AnnIndex.load(folder, encoder="enc-a", dim=32)
    assert version == [4000, "2026-01-01"]
    query = _clustered(1, seed=5)[0]
    assert loaded.top_k(query, 10) == ann.top_k(query, 10)
    loaded.close()


def test_other_encoder_or_corrupt_files_are_refused_with_reason(built):
    ann, _, folder = built
    ann.save("enc-a", [4000, "x"])
    with pytest.raises(AnnIndexMismatch, match="enc-a"):
        AnnIndex.load(folder, encoder="enc-b", dim=32)
    (folder / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(AnnIndexMismatch, match="unreadable"):
        AnnIndex.load(folder, encoder="enc-a", dim=32)
    ann.save("enc-a", [4000, "x"])
    with open(folder / "rows.f32", "ab") as rows:  # rows file no longer matches the ids
        rows.write(np.zeros(32, np.float32).tobytes())
    with pytest.raises(AnnIndexMismatch, match="rows on disk"):
        AnnIndex.load(folder, encoder="enc-a", dim=32)
