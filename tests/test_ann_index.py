"""AnnIndex against the exact index on small clustered data: recall, exact scores, stable pages, deep reads,
append / retire without a rebuild, save/load by generation, the sampled count estimate."""

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
    index = AnnIndex.build(chunks, folder=tmp_path / "enc", dim=32)
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
    ann = AnnIndex.build([(ids, vectors)], folder=tmp_path / "t", dim=32)
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
    with pytest.raises(AnnIndexMismatch, match="no saved index"):
        AnnIndex.load(folder, encoder="enc-a", dim=32)
    ann.save("enc-a", [4000, "x"])
    with pytest.raises(AnnIndexMismatch, match="enc-a"):
        AnnIndex.load(folder, encoder="enc-b", dim=32)
    (folder / f"gen-{ann.generation}" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(AnnIndexMismatch, match="unreadable"):
        AnnIndex.load(folder, encoder="enc-a", dim=32)
    ann.save("enc-a", [4000, "x"])
    with open(folder / "rows.f32", "r+b") as rows:  # the rows file lost its end: no longer matches the ids
        rows.truncate(3999 * 32 * 4)
    with pytest.raises(AnnIndexMismatch, match="rows on disk"):
        AnnIndex.load(folder, encoder="enc-a", dim=32)
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(AnnIndexMismatch, match="meta.json"):
        AnnIndex.load(folder, encoder="enc-a", dim=32)


def test_a_deep_read_reaches_every_row(built):
    """nprobe lists hold a few hundred rows here; asking for all of them visits more lists, up to all, so the
    search's growing depth ends with every row (it once stopped at what 64 lists held)."""
    ann, exact, _ = built
    query = _clustered(1, seed=3)[0]
    assert ann.params["nprobe"] < ann.params["nlist"]
    everything = ann.top_k(query, len(ann))
    assert len(everything) == len(ann) == 4000
    assert [i for i, _ in everything[:50]] == [i for i, _ in exact.top_k(query, 50)]


def test_appended_rows_are_found_and_retired_rows_never_come_back(built):
    ann, _, folder = built
    ann.save("enc-a", [4000, "v1"])
    generation = ann.generation
    query = _clustered(1, seed=7)[0]
    old_best = ann.top_k(query, 1)[0][0]
    assert ann.retire([old_best, "not-there"]) == 1
    assert old_best not in {i for i, _ in ann.top_k(query, 4000)} and len(ann) == 3999
    added = ann.append([(["new-1", old_best], np.stack([query, -query]))])  # a new photo, and old_best's new vector
    assert added == 2 and len(ann) == 4001 and ann.rows == 4002
    assert ann.top_k(query, 1) == [("new-1", pytest.approx(1.0, abs=1e-5))]
    assert [s for i, s in ann.top_k(query, 4001) if i == old_best] == [pytest.approx(-1.0, abs=1e-5)]
    ann.save("enc-a", [4001, "v2"])
    assert [p.name for p in folder.glob("gen-*")] == [f"gen-{generation + 1}"]
    loaded, version = AnnIndex.load(folder, encoder="enc-a", dim=32)
    assert version == [4001, "v2"] and len(loaded) == 4001
    assert loaded.top_k(query, 20) == ann.top_k(query, 20)
    loaded.close()


def test_an_index_loaded_before_a_save_keeps_answering(built):
    """A dashboard holding generation N while another process saves N+1 (appending rows, removing N's files):
    its answers do not change, and a fresh load sees the new rows."""
    ann, _, folder = built
    ann.save("enc-a", [4000, "v1"])
    reader, _ = AnnIndex.load(folder, encoder="enc-a", dim=32)
    query = _clustered(1, seed=9)[0]
    before = reader.top_k(query, 10)
    ann.append([(["late"], query[None])])
    ann.save("enc-a", [4001, "v2"])
    assert reader.top_k(query, 10) == before and len(reader) == 4000
    fresh, _ = AnnIndex.load(folder, encoder="enc-a", dim=32)
    assert fresh.top_k(query, 1)[0][0] == "late"
    reader.close()
    fresh.close()


def test_count_estimate_from_the_sample(tmp_path, monkeypatch):
    """With a sample of about a tenth of the rows, the share above a cut-off is within a few points of the
    exact share; retired rows leave the sample, appended ones join it by the same id hash."""
    monkeypatch.setattr("pipeline.ann_index.COUNT_SAMPLE", 400)
    vectors = _clustered(4000)
    ids = [f"p{i:05d}" for i in range(len(vectors))]
    ann = AnnIndex.build([(ids, vectors)], folder=tmp_path / "s", dim=32)
    query = _clustered(1, seed=11)[0]
    sampled = ann.sample_scores(query)
    assert 250 < len(sampled) < 600
    for cut in (0.0, 0.3, 0.6):
        assert abs(float((sampled >= cut).mean()) - float((vectors @ query >= cut).mean())) < 0.06
    ann.retire(ids)
    assert len(ann.sample_scores(query)) == 0
    ann.append([(ids, vectors)])
    assert len(ann.sample_scores(query)) == len(sampled)
    ann.close()


def test_too_few_rows_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="2 rows at least"):
        AnnIndex.build([(["only"], _clustered(1))], folder=tmp_path / "one", dim=32)
    tiny = AnnIndex.build([(["a", "b", "c"], _clustered(3))], folder=tmp_path / "three", dim=32)
    assert len(tiny.top_k(_clustered(1, seed=2)[0], 10)) == 3
    tiny.close()
