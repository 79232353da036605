"""benchmarks/dashboard_scale.py's generator at a small scale: the row counts it promises, through the real
migrations, with rows the pages can join (so the benchmark does not rot into timing empty pages)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import dashboard_scale
from db.database import Database


def test_the_generator_makes_the_rows_it_promises(tmp_path: Path) -> None:
    scale = dashboard_scale.Scale(photos=1_000, labels=700, runs=2, predictions_per_run=300, rejects=50,
                                  ingest_runs=3)
    counts = dashboard_scale.generate(tmp_path / "scale.duckdb", scale, progress=lambda _: None)
    assert counts == dashboard_scale.expected_counts(scale)
    assert counts["relevance"] == 5_000 and counts["minors_decisions"] == 1_000 and counts["labels"] == 700
    with Database(tmp_path / "scale.duckdb", read_only=True) as db:
        statuses = dict(db.fetch_all("SELECT status, count(*) FROM minors_decisions GROUP BY status"))
        assert statuses == {"cleared": 930, "excluded": 50, "pending_review": 20}
        reasons = json.loads(db.fetch_all("SELECT reasons FROM minors_decisions WHERE status = 'excluded' "
                                          "LIMIT 1")[0][0])
        assert reasons["rule"] == "caption-child-words" and reasons["matches"][0]["strength"] == "child"
        orphans = db.fetch_all(
            "SELECT (SELECT count(*) FROM relevance r ANTI JOIN captions c ON c.id = r.query_id), "
            "(SELECT count(*) FROM labels l ANTI JOIN images i ON i.id = l.image_id), "
            "(SELECT count(*) FROM embeddings e ANTI JOIN images i ON i.id = e.image_id AND i.sha256 = e.sha256)")
        assert orphans == [(0, 0, 0)]
        assert db.fetch_all("SELECT count(*) FROM rated_pairs")[0][0] == 5_000  # what the Ratings EDA page reads
        visible = db.fetch_all("SELECT count(*) FROM visible_images")[0][0]
        assert visible == 930 - 20  # the cleared photos but their missing and corrupt files
