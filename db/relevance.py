"""SQL of the relevance stage: one aggregated 0..1 target per (image, query) pair, and the tables the Ratings EDA
page reads (migration 0007: rated_pairs, rating_cube, rated_queries, rated_images), rewritten with it."""

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


# The judged pairs of $dataset (all when NULL), then what the Ratings EDA page counts of them (see migration 0007).
# Bins of width 1 / SHARE_BINS; the value 1.0 falls in the last one.
SHARE_BINS = 10
_RATED = [
    "DELETE FROM rated_pairs WHERE $dataset IS NULL OR dataset = $dataset",
    "DELETE FROM rating_cube WHERE $dataset IS NULL OR dataset = $dataset",
    "DELETE FROM rated_queries WHERE $dataset IS NULL OR dataset = $dataset",
    "DELETE FROM rated_images WHERE $dataset IS NULL OR dataset = $dataset",
    """
    INSERT INTO rated_pairs
    SELECT coalesce(e.dataset, c.dataset), coalesce(e.image_id, c.image_id), coalesce(e.query_id, c.query_id),
           e.expert_1, e.expert_2, e.expert_3, c.share, c.n_yes, c.n_no, r.relevance
    FROM (SELECT * FROM expert_ratings WHERE $dataset IS NULL OR dataset = $dataset) e
    FULL OUTER JOIN (SELECT * FROM crowd_ratings WHERE $dataset IS NULL OR dataset = $dataset) c
      ON c.image_id = e.image_id AND c.query_id = e.query_id
    LEFT JOIN relevance r ON r.image_id = coalesce(e.image_id, c.image_id)
                         AND r.query_id = coalesce(e.query_id, c.query_id)
    """,
    """
    INSERT INTO rating_cube
    SELECT dataset, expert_1, expert_2, expert_3,
           -- least() skips NULLs: the CASE keeps a pair without crowd votes (or target) out of every bin
           CASE WHEN share IS NOT NULL THEN least(floor(share * $bins), $bins - 1) / $bins END,
           CASE WHEN target IS NOT NULL THEN least(floor(target * $bins), $bins - 1) / $bins END,
           count(*), sum(share), sum(share * share), sum(n_yes + n_no), sum(target)
    FROM rated_pairs WHERE $dataset IS NULL OR dataset = $dataset
    GROUP BY ALL
    """,
    """
    INSERT INTO rated_queries
    SELECT *, row_number() OVER (PARTITION BY dataset ORDER BY query_text NULLS LAST, query_id) AS rank
    FROM (SELECT p.dataset, p.query_id, any_value(q.text) AS query_text, count(*) AS pairs
          FROM rated_pairs p LEFT JOIN captions q ON q.id = p.query_id
          WHERE $dataset IS NULL OR p.dataset = $dataset
          GROUP BY p.dataset, p.query_id)
    ORDER BY dataset, rank
    """,
    """
    INSERT INTO rated_images
    SELECT *, row_number() OVER (PARTITION BY dataset ORDER BY image_id) AS rank
    FROM (SELECT dataset, image_id, count(*) AS pairs FROM rated_pairs
          WHERE $dataset IS NULL OR dataset = $dataset GROUP BY ALL)
    ORDER BY dataset, rank
    """,
]


def refresh_rated(cur: duckdb.DuckDBPyConnection, dataset: str | None) -> None:
    """Rewrite the Ratings EDA page's tables for ``dataset`` (all when None) from the stored ratings and relevance
    rows. :func:`recompute` calls it, so every write of ratings (ingest) or targets (relevance stage) keeps them
    in step; a generator that fills the rating tables in SQL calls it after them."""
    for sql in _RATED:
        cur.execute(sql, {"dataset": dataset, "bins": SHARE_BINS} if "$bins" in sql else {"dataset": dataset})


def load_weights(cur: duckdb.DuckDBPyConnection) -> dict[str, float] | None:
    return settings.get(cur, SETTINGS_KEY)


def save_weights(cur: duckdb.DuckDBPyConnection, weights: dict[str, float]) -> None:
    settings.put(cur, SETTINGS_KEY, weights)


def recompute(
    cur: duckdb.DuckDBPyConnection, dataset: str | None, expert_weight: float, crowd_weight: float, formula: str
) -> int:
    """Replace relevance rows of ``dataset`` (all datasets when None), and the Ratings EDA tables built on them;
    returns relevance rows written."""
    cur.execute("DELETE FROM relevance WHERE $dataset IS NULL OR dataset = $dataset", {"dataset": dataset})
    cur.execute(
        _RECOMPUTE,
        {"dataset": dataset, "expert_weight": expert_weight, "crowd_weight": crowd_weight, "formula": formula},
    )
    refresh_rated(cur, dataset)
    return int(
        cur.execute(
            "SELECT count(*) FROM relevance WHERE $dataset IS NULL OR dataset = $dataset", {"dataset": dataset}
        ).fetchone()[0]
    )
