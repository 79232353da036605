"""Re-ranking search results with a registered model, its refusals, and the held-out measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from db import embeddings as store
from db import models as model_store
from db.database import Database
from fakes import ColourEncoder
from pipeline import rerank, targets, train
from pipeline.minors.filter import run_filter
from pipeline.search import RERANK_DEPTH, QueryError, Searcher
from test_train import coco  # noqa: F401 - fixture


@pytest.fixture
def runs(coco: Database, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    run_filter(coco, detector=None, quiet=True)
    prepared = train.prepare(coco, ColourEncoder(), target=targets.CATEGORY_PAIRS, feature_set_names=["image"])
    summaries = train.train(coco, ColourEncoder(), prepared, ["ridge"], artifacts=tmp_path / "models", quiet=True)
    return {s.model: s.id for s in summaries}


def test_reranked_search_orders_by_model_score(coco: Database, runs: dict[str, str]) -> None:  # noqa: F811
    searcher = Searcher(coco, ColourEncoder(), rerank.Reranker(coco, runs["ridge"], ColourEncoder()))
    plain = searcher.search("a red picture", k=30)
    result = searcher.search("a red picture", k=30, rerank=True)
    assert {h.image_id for h in result.hits} == {h.image_id for h in plain.hits}
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    cosines = {h.image_id: h.cosine for h in plain.hits}
    assert all(h.cosine == pytest.approx(cosines[h.image_id]) for h in result.hits)
    assert store.visible_subset(coco, [h.image_id for h in result.hits]) == {h.image_id for h in result.hits}
    # Red photos (every third, starting at 3) come first under the model too.
    assert all(int(h.image_id.split("/")[1]) % 3 == 0 for h in result.hits[:10])
    cut = searcher.search("a red picture", k=30, rerank=True, min_score=scores[9])
    assert len(cut.hits) >= 10 and min(h.score for h in cut.hits) >= scores[9]
    page = searcher.search("a red picture", k=5, offset=RERANK_DEPTH - 2, rerank=True)
    assert any("first 100" in notice for notice in page.notices)


def test_rerank_needs_a_chosen_model(coco: Database, runs: dict[str, str]) -> None:  # noqa: F811
    with pytest.raises(QueryError, match="no model is chosen"):
        Searcher(coco, ColourEncoder()).search("red", rerank=True)


def test_reranker_refusals(coco: Database, runs: dict[str, str]) -> None:  # noqa: F811
    with pytest.raises(rerank.RerankError, match="same score"):
        rerank.Reranker(coco, runs["constant"], ColourEncoder())
    with pytest.raises(rerank.RerankError, match="no model run"):
        rerank.Reranker(coco, "nope", ColourEncoder())

    class OtherText(ColourEncoder):
        @property
        def text_id(self) -> str:
            return "other-text"

    with pytest.raises(rerank.RerankError, match="trained on text vectors of colour-test"):
        rerank.Reranker(coco, runs["ridge"], OtherText())
    artifact = Path(model_store.run(coco, runs["ridge"])["artifact"])
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    with pytest.raises(rerank.RerankError, match="does not match the sha256"):
        rerank.Reranker(coco, runs["ridge"], ColourEncoder())
    artifact.unlink()
    with pytest.raises(rerank.RerankError, match="model file of run .* is missing"):
        rerank.Reranker(coco, runs["ridge"], ColourEncoder())


def test_choosing_a_reranker_is_recorded(coco: Database, runs: dict[str, str]) -> None:  # noqa: F811
    assert model_store.reranker(coco) is None
    with coco.write() as cur:
        model_store.set_reranker(cur, runs["ridge"], "olga")
    assert model_store.reranker(coco) == runs["ridge"]
    with coco.write() as cur:
        model_store.set_reranker(cur, None, "olga")
    assert model_store.reranker(coco) is None


def test_held_out_rerank_measurement_is_stored(coco: Database, runs: dict[str, str]) -> None:  # noqa: F811
    result = rerank.evaluate(coco, ColourEncoder(), runs["ridge"], threads=1)
    assert result.queries == 60 and result.mean_gallery == pytest.approx(6.0)
    for figures in (result.before, result.after):
        assert 0.0 <= figures["recall@1"] <= figures["recall@5"] <= 1.0
    stored = store.retrieval_metrics(coco)
    stored = stored[stored["protocol"] == rerank.PROTOCOL]
    assert set(stored["encoder"]) == {"colour-test", f"colour-test + rerank {runs['ridge']}"}
    recall = stored[stored["metric"] == "recall@1"].set_index("encoder")["value"]
    assert recall["colour-test"] == pytest.approx(result.before["recall@1"])
    with pytest.raises(rerank.RerankError, match="constant baseline"):
        rerank.evaluate(coco, ColourEncoder(), runs["constant"])


def test_rank_of_own_photo_is_pessimistic_on_ties() -> None:
    from pipeline.evaluate_retrieval import rank_metrics

    assert rank_metrics(np.array([1, 2, 11]))["recall@1"] == pytest.approx(1 / 3)
    assert rank_metrics(np.array([1, 2, 11]))["recall@10"] == pytest.approx(2 / 3)
