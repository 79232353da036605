"""SQL of the Ratings EDA page: judged (image, query) pairs with their expert scores, crowd share and aggregated
target, summarised for charts, plus reviewers' labels.

The page never joins the rating tables itself: db/relevance.py keeps, beside the ratings, every judged pair
(``rated_pairs``: expert and crowd judgments joined FULL OUTER, with the relevance target), the pairs counted by
score triple, share bin and target bin (``rating_cube``, a few thousand rows whatever the data size) and the
pickers' lists (``rated_queries``, ``rated_images``); see migration 0007. Every chart and headline number is a
GROUP BY over the cube, the drill-downs read one query's or one photo's pairs, the pickers one page of matches.
Both filters of the page apply the same way everywhere, so every chart and number describes the same pairs:

* ``dataset``: one dataset, or None for all of them;
* ``score_range``: (low, high) on the mean of the three expert scores, or None for no filter. A range keeps only
  expert-judged pairs: crowd-only pairs have no expert mean to compare. The bounds are compared on the integer
  sum of the three scores (``round(3 * bound)``), so the thirds a mean can take (1.333…) match exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from db.database import Database
from db.relevance import SHARE_BINS

PICKER_LIMIT = 50  # queries or photos a drill-down picker lists: the first matches of its search box
PAIRS_LIMIT = 500  # pairs a drill-down table shows


@dataclass(frozen=True)
class PairFilter:
    """Which judged pairs the page describes (see the module docstring)."""

    dataset: str | None = None
    score_range: tuple[float, float] | None = None

    def params(self) -> dict[str, object]:
        low, high = self.score_range or (None, None)
        return {"dataset": self.dataset, "low": low, "high": high}


# The filter on rating_cube or rated_pairs rows (both carry dataset and the three expert scores).
_WHERE = """($dataset IS NULL OR dataset = $dataset)
    AND ($low IS NULL OR expert_1 + expert_2 + expert_3 BETWEEN round(3 * $low) AND round(3 * $high))"""
_CUBE = f"""
    WITH cube AS (
        SELECT *, (expert_1 + expert_2 + expert_3) / 3.0 AS expert_mean FROM rating_cube WHERE {_WHERE}
    )
"""


def _fetch(db: Database, select: str, where: PairFilter, **params: object) -> pd.DataFrame:
    """Run ``select`` (SQL text written in this module) over the filtered ``cube`` CTE with bound parameters."""
    return db.fetch_df(_CUBE + select, {**where.params(), **params})


def rated_datasets(db: Database) -> list[str]:
    """Datasets with at least one expert or crowd judgment: the page's dataset choices."""
    return [row[0] for row in db.fetch_all("SELECT DISTINCT dataset FROM rating_cube ORDER BY dataset")]


def correlation(n: float, sum_x: float, sum_xx: float, sum_y: float, sum_yy: float, sum_xy: float) -> float | None:
    """Pearson r from sums over n points; None when fewer than two points or either variable is constant."""
    if n < 2:
        return None
    var_x, var_y = n * sum_xx - sum_x ** 2, n * sum_yy - sum_y ** 2
    if var_x <= 1e-9 * n * sum_xx or var_y <= 1e-9 * n * sum_yy:
        return None
    return (n * sum_xy - sum_x * sum_y) / math.sqrt(var_x * var_y)


def summary(db: Database, where: PairFilter) -> dict[str, float | int | None]:
    """Headline numbers: pair counts by judgment, means of expert score, crowd share and target, and the Pearson
    correlation of expert mean and crowd share over pairs that have both (None where there is nothing to average).
    Within a cube row the expert mean is one value, so the correlation's sums over pairs follow from the row's
    pair count and share sums."""
    row = _fetch(db, """
        SELECT coalesce(sum(pairs), 0) AS pairs,
               coalesce(sum(pairs) FILTER (WHERE expert_mean IS NOT NULL), 0) AS expert_pairs,
               coalesce(sum(pairs) FILTER (WHERE share_bin IS NOT NULL), 0) AS crowd_pairs,
               coalesce(sum(pairs) FILTER (WHERE expert_mean IS NOT NULL AND share_bin IS NOT NULL), 0) AS both_pairs,
               sum(pairs * expert_mean) AS expert_sum,
               sum(share_sum) AS share_sum,
               coalesce(sum(pairs) FILTER (WHERE target_bin IS NOT NULL), 0) AS target_pairs,
               sum(target_sum) AS target_sum,
               sum(pairs * expert_mean) FILTER (WHERE share_bin IS NOT NULL) AS both_x,
               sum(pairs * expert_mean * expert_mean) FILTER (WHERE share_bin IS NOT NULL) AS both_xx,
               sum(share_sum) FILTER (WHERE expert_mean IS NOT NULL) AS both_y,
               sum(share_sq) FILTER (WHERE expert_mean IS NOT NULL) AS both_yy,
               sum(expert_mean * share_sum) FILTER (WHERE share_bin IS NOT NULL) AS both_xy
        FROM cube
    """, where).iloc[0]
    counts = {column: int(row[column]) for column in ("pairs", "expert_pairs", "crowd_pairs", "both_pairs")}

    def mean(total: str, n: float) -> float | None:
        return float(row[total]) / n if n else None

    sums = [row[c] for c in ("both_x", "both_xx", "both_y", "both_yy", "both_xy")]
    return {
        **counts,
        "mean_expert": mean("expert_sum", counts["expert_pairs"]),
        "mean_crowd_share": mean("share_sum", counts["crowd_pairs"]),
        "mean_target": mean("target_sum", int(row["target_pairs"])),
        "expert_crowd_correlation": None if any(pd.isna(v) for v in sums)
        else correlation(counts["both_pairs"], *(float(v) for v in sums)),
    }


def expert_score_counts(db: Database, where: PairFilter) -> pd.DataFrame:
    """(expert, score, pairs): how often each expert gave each score 1..4."""
    return _fetch(db, """
        SELECT expert, score, sum(pairs)::BIGINT AS pairs
        FROM (UNPIVOT (SELECT expert_1, expert_2, expert_3, pairs FROM cube WHERE expert_mean IS NOT NULL)
              ON expert_1, expert_2, expert_3 INTO NAME expert VALUE score)
        GROUP BY ALL ORDER BY expert, score
    """, where)


def expert_score_patterns(db: Database, where: PairFilter) -> pd.DataFrame:
    """(expert_1, expert_2, expert_3, pairs): each distinct triple of scores and how many pairs got it. At most 64
    rows whatever the data size, and all that the agreement statistics need (pairs with one triple are alike)."""
    return _fetch(db, """
        SELECT expert_1, expert_2, expert_3, sum(pairs)::BIGINT AS pairs
        FROM cube WHERE expert_mean IS NOT NULL
        GROUP BY ALL ORDER BY ALL
    """, where)


def crowd_share_counts(db: Database, where: PairFilter) -> pd.DataFrame:
    """(share_bin, pairs, votes): crowd-judged pairs per share bin (the bin's lower edge) and their crowd votes."""
    return _fetch(db, """
        SELECT share_bin, sum(pairs)::BIGINT AS pairs, sum(votes)::BIGINT AS votes
        FROM cube WHERE share_bin IS NOT NULL
        GROUP BY ALL ORDER BY share_bin
    """, where)


def expert_vs_crowd(db: Database, where: PairFilter) -> pd.DataFrame:
    """(expert_mean, share_bin, pairs) over pairs judged by both experts and the crowd."""
    return _fetch(db, """
        SELECT expert_mean, share_bin, sum(pairs)::BIGINT AS pairs
        FROM cube WHERE expert_mean IS NOT NULL AND share_bin IS NOT NULL
        GROUP BY ALL ORDER BY ALL
    """, where)


def target_counts(db: Database, where: PairFilter) -> pd.DataFrame:
    """(target_bin, judged_by, pairs): the aggregated 0..1 target per bin, split by which judgments fed it."""
    return _fetch(db, """
        SELECT target_bin,
               CASE WHEN expert_mean IS NOT NULL AND share_bin IS NOT NULL THEN 'experts and crowd'
                    WHEN expert_mean IS NOT NULL THEN 'experts only' ELSE 'crowd only' END AS judged_by,
               sum(pairs)::BIGINT AS pairs
        FROM cube WHERE target_bin IS NOT NULL
        GROUP BY ALL ORDER BY ALL
    """, where)


def find_queries(db: Database, dataset: str | None, text: str | None, limit: int = PICKER_LIMIT) -> pd.DataFrame:
    """(query_id, query_text, pairs): the first ``limit`` judged queries of ``dataset`` (all when None), by text,
    whose text or id contains ``text`` (any when None; case-insensitive); ``pairs`` counts all their judged pairs,
    whatever the score range (the drill-down table follows it). The text is NULL when the caption is absent from
    the source. Without ``text`` only each dataset's first
    ``limit`` by rank are read (migration 0007)."""
    matches = ("contains(lower(query_text), lower($text)) OR contains(lower(query_id), lower($text))" if text
               else "rank <= $limit")
    return db.fetch_df(
        f"""
        SELECT query_id, query_text, pairs FROM rated_queries
        WHERE ($dataset IS NULL OR dataset = $dataset) AND ({matches})
        ORDER BY query_text NULLS LAST, query_id LIMIT $limit
        """,
        {"dataset": dataset, "limit": limit, **({"text": text} if text else {})},
    )


def find_images(db: Database, dataset: str | None, text: str | None, limit: int = PICKER_LIMIT) -> pd.DataFrame:
    """(image_id, pairs): the first ``limit`` judged photos of ``dataset`` by id whose id contains ``text``
    (any when None), whatever their file or minors status; ``pairs`` counts all their judged pairs."""
    matches = "contains(lower(image_id), lower($text))" if text else "rank <= $limit"
    return db.fetch_df(
        f"""
        SELECT image_id, pairs FROM rated_images
        WHERE ($dataset IS NULL OR dataset = $dataset) AND ({matches})
        ORDER BY image_id LIMIT $limit
        """,
        {"dataset": dataset, "limit": limit, **({"text": text} if text else {})},
    )


def _pairs_of(db: Database, where: PairFilter, key: str, value: str, select: str, order: str,
              limit: int) -> tuple[int, pd.DataFrame]:
    """The pairs of one query or photo through rated_pairs' index on ``key`` (migration 0007). MATERIALIZED keeps
    the index lookup: a LIMIT's top-N filter pushed into the scan would turn it into a scan of every pair."""
    params = {**where.params(), "value": value}
    condition = f"{key} = $value AND {_WHERE}"
    total = int(db.fetch_all(f"SELECT count(*) FROM rated_pairs WHERE {condition}", params)[0][0])
    return total, db.fetch_df(f"WITH chosen AS MATERIALIZED ({select} WHERE {condition}) "
                              f"SELECT * FROM chosen ORDER BY {order} LIMIT $limit", {**params, "limit": limit})


def pairs_of_query(db: Database, where: PairFilter, query_id: str,
                   limit: int = PAIRS_LIMIT) -> tuple[int, pd.DataFrame]:
    """How many judged photos one query has under the filter, and the first ``limit``, best judged first."""
    return _pairs_of(db, where, "query_id", query_id, """
        SELECT image_id, expert_1, expert_2, expert_3, (expert_1 + expert_2 + expert_3) / 3.0 AS expert_mean,
               share AS crowd_share, n_yes, n_no, target
        FROM rated_pairs""", "target DESC NULLS LAST, expert_mean DESC NULLS LAST, image_id", limit)


def pairs_of_image(db: Database, where: PairFilter, image_id: str,
                   limit: int = PAIRS_LIMIT) -> tuple[int, pd.DataFrame]:
    """How many judged queries one photo has under the filter, and the first ``limit`` with their text, best
    judged first. The pairs come through rated_pairs' index on the photo, the texts through the captions' key."""
    total, pairs = _pairs_of(db, where, "image_id", image_id, """
        SELECT query_id, expert_1, expert_2, expert_3, (expert_1 + expert_2 + expert_3) / 3.0 AS expert_mean,
               share AS crowd_share, n_yes, n_no, target
        FROM rated_pairs""", "target DESC NULLS LAST, expert_mean DESC NULLS LAST, query_id", limit)
    texts = dict(db.fetch_all("SELECT id, text FROM captions WHERE id IN (SELECT unnest($ids))",
                              {"ids": list(pairs["query_id"])}))
    pairs.insert(1, "query_text", pairs["query_id"].map(texts))
    return total, pairs


def labels_page(db: Database, dataset: str | None, limit: int = 20, offset: int = 0) -> pd.DataFrame:
    """One page of the reviewers' labels from live search on photos of ``dataset`` (all when None; a photo id
    starts with its dataset), newest first; labels.verdict_counts counts them. Photo ids and queries only: a
    label's photo may not be visible, so no path is returned."""
    return db.fetch_df(
        "SELECT created, user_name, query, image_id, verdict, comment FROM labels "
        "WHERE $dataset IS NULL OR starts_with(image_id, $dataset || '/') "
        "ORDER BY created DESC, id DESC LIMIT $limit OFFSET $offset",
        {"dataset": dataset, "limit": limit, "offset": offset},
    )
