"""SQL of the relevance stage: one aggregated 0..1 target per (image, query) pair."""

from __future__ import annotations

import duckdb

from db import settings

SETTINGS_KEY = "relevance"

# The expert mean 1..4 maps linearly to 0..1: (e1 + e2 + e3 - 3) / 9.
EXPERT_SCORE_SQL = "(expert_1 + expert_2 + expert_3 - 3) / 9.0"

_RECOMPUTE = f"""
INSERT INTO relevance
SELECT dataset, image_id, query_id, expert_score, crowd_share, n_crowd_votes,
       CASE WHEN expert_score IS NOT NULL AND crowd_share IS NOT NULL
                 THEN ($expert_weight * expert_score + $crowd_weight * crowd_share) / ($expert_weight + $crowd_weight)
            WHEN crowd_share IS NULL THEN expert_score
            ELSE crowd_share END,
       $formula
FROM (
    SELECT coalesce(e.dataset, c.dataset) AS dataset,
           coalesce(e.image_id, c.image_id) AS image_id,
           coalesce(e.query_id, c.query_id) AS query_id,
           CASE WHEN $expert_weight > 0 THEN {EXPERT_SCORE_SQL} END AS expert_score,
           CASE WHEN $crowd_weight > 0 THEN c.share END AS crowd_share,
           c.n_yes + c.n_no AS n_crowd_votes
    FROM (SELECT * FROM expert_ratings WHERE $dataset IS NULL OR dataset = $dataset) e
    FULL OUTER JOIN (SELECT * FROM crowd_ratings WHERE $dataset IS NULL OR dataset = $dataset) c
      ON e.image_id = c.image_id AND e.query_id = c.query_id
)
WHERE expert_score IS NOT NULL OR crowd_share IS NOT NULL
"""


def load_weights(cur: duckdb.DuckDBPyConnection) -> dict[str, float] | None:
    return settings.get(cur, SETTINGS_KEY)


def save_weights(cur: duckdb.DuckDBPyConnection, weights: dict[str, float]) -> None:
    settings.put(cur, SETTINGS_KEY, weights)


def recompute(
    cur: duckdb.DuckDBPyConnection, dataset: str | None, expert_weight: float, crowd_weight: float, formula: str
) -> int:
    """Replace relevance rows of ``dataset`` (all datasets when None); returns rows written."""
    cur.execute("DELETE FROM relevance WHERE $dataset IS NULL OR dataset = $dataset", {"dataset": dataset})
    cur.execute(
        _RECOMPUTE,
        {"dataset": dataset, "expert_weight": expert_weight, "crowd_weight": crowd_weight, "formula": formula},
    )
    return int(
        cur.execute(
            "SELECT count(*) FROM relevance WHERE $dataset IS NULL OR dataset = $dataset", {"dataset": dataset}
        ).fetchone()[0]
    )
