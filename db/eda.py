"""SQL of the Ratings EDA page: judged (image, query) pairs with their expert scores, crowd share and aggregated
target, summarised for charts, plus reviewers' labels.

Every query starts from the same ``pairs`` CTE: expert and crowd judgments joined FULL OUTER (a pair may have
either or both) and the relevance target where the relevance stage wrote one. Both filters of the page are applied
there, so every chart and headline number describes exactly the same pairs:

* ``dataset``: one dataset, or None for all of them;
* ``score_range``: (low, high) on the mean of the three expert scores, or None for no filter. A range keeps only
  expert-judged pairs: crowd-only pairs have no expert mean to compare. The bounds are compared on the integer
  sum of the three scores (``round(3 * bound)``), so the thirds a mean can take (1.333…) match exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from db.database import Database

SHARE_BINS = 10  # crowd share and target histograms: bins of width 0.1, the value 1.0 falling in the last one


@dataclass(frozen=True)
class PairFilter:
    """Which judged pairs the page describes (see the module docstring)."""

    dataset: str | None = None
    score_range: tuple[float, float] | None = None

    def params(self) -> dict[str, object]:
        low, high = self.score_range or (None, None)
        return {"dataset": self.dataset, "low": low, "high": high}


_PAIRS = """
    WITH pairs AS (
        SELECT coalesce(e.dataset, c.dataset) AS dataset,
               coalesce(e.image_id, c.image_id) AS image_id,
               coalesce(e.query_id, c.query_id) AS query_id,
               e.expert_1, e.expert_2, e.expert_3,
               (e.expert_1 + e.expert_2 + e.expert_3) / 3.0 AS expert_mean,
               c.share AS crowd_share, c.n_yes, c.n_no,
               r.relevance AS target
        FROM expert_ratings e
        FULL OUTER JOIN crowd_ratings c ON c.image_id = e.image_id AND c.query_id = e.query_id
        LEFT JOIN relevance r ON r.image_id = coalesce(e.image_id, c.image_id)
                             AND r.query_id = coalesce(e.query_id, c.query_id)
        WHERE ($dataset IS NULL OR coalesce(e.dataset, c.dataset) = $dataset)
          AND ($low IS NULL OR e.expert_1 + e.expert_2 + e.expert_3 BETWEEN round(3 * $low) AND round(3 * $high))
    )
"""


def _fetch(db: Database, select: str, where: PairFilter, **params: object) -> pd.DataFrame:
    """Run ``select`` (SQL text written in this module) over the filtered ``pairs`` CTE with bound parameters."""
    return db.fetch_df(_PAIRS + select, {**where.params(), **params})


def rated_datasets(db: Database) -> list[str]:
    """Datasets with at least one expert or crowd judgment: the page's dataset choices."""
    return [row[0] for row in db.fetch_all(
        "SELECT dataset FROM expert_ratings UNION SELECT dataset FROM crowd_ratings ORDER BY dataset")]


def summary(db: Database, where: PairFilter) -> dict[str, float | int | None]:
    """Headline numbers: pair counts by judgment, means of expert score, crowd share and target, and the Pearson
    correlation of expert mean and crowd share over pairs that have both (None where there is nothing to average)."""
    frame = _fetch(db, """
        SELECT count(*) AS pairs,
               count(expert_mean) AS expert_pairs,
               count(crowd_share) AS crowd_pairs,
               count(*) FILTER (WHERE expert_mean IS NOT NULL AND crowd_share IS NOT NULL) AS both_pairs,
               avg(expert_mean) AS mean_expert,
               avg(crowd_share) AS mean_crowd_share,
               avg(target) AS mean_target,
               corr(expert_mean, crowd_share) AS expert_crowd_correlation
        FROM pairs
    """, where)
    return {column: None if pd.isna(value := frame.at[0, column]) else value.item() for column in frame.columns}


def expert_score_counts(db: Database, where: PairFilter) -> pd.DataFrame:
    """(expert, score, pairs): how often each expert gave each score 1..4."""
    return _fetch(db, """
        SELECT expert, score, count(*) AS pairs
        FROM (UNPIVOT (SELECT expert_1, expert_2, expert_3 FROM pairs WHERE expert_mean IS NOT NULL)
              ON expert_1, expert_2, expert_3 INTO NAME expert VALUE score)
        GROUP BY ALL ORDER BY expert, score
    """, where)


def expert_score_patterns(db: Database, where: PairFilter) -> pd.DataFrame:
    """(expert_1, expert_2, expert_3, pairs): each distinct triple of scores and how many pairs got it. At most 64
    rows whatever the data size, and all that the agreement statistics need (pairs with one triple are alike)."""
    return _fetch(db, """
        SELECT expert_1, expert_2, expert_3, count(*) AS pairs
        FROM pairs WHERE expert_mean IS NOT NULL
        GROUP BY ALL ORDER BY ALL
    """, where)


def crowd_share_counts(db: Database, where: PairFilter) -> pd.DataFrame:
    """(share_bin, pairs, votes): crowd-judged pairs per share bin (the bin's lower edge) and their crowd votes."""
    return _fetch(db, """
        SELECT least(floor(crowd_share * $bins), $bins - 1) / $bins AS share_bin,
               count(*) AS pairs, sum(n_yes + n_no) AS votes
        FROM pairs WHERE crowd_share IS NOT NULL
        GROUP BY ALL ORDER BY share_bin
    """, where, bins=SHARE_BINS)


def expert_vs_crowd(db: Database, where: PairFilter) -> pd.DataFrame:
    """(expert_mean, share_bin, pairs) over pairs judged by both experts and the crowd."""
    return _fetch(db, """
        SELECT expert_mean, least(floor(crowd_share * $bins), $bins - 1) / $bins AS share_bin, count(*) AS pairs
        FROM pairs WHERE expert_mean IS NOT NULL AND crowd_share IS NOT NULL
        GROUP BY ALL ORDER BY ALL
    """, where, bins=SHARE_BINS)


def target_counts(db: Database, where: PairFilter) -> pd.DataFrame:
    """(target_bin, judged_by, pairs): the aggregated 0..1 target per bin, split by which judgments fed it."""
    return _fetch(db, """
        SELECT least(floor(target * $bins), $bins - 1) / $bins AS target_bin,
               CASE WHEN expert_mean IS NOT NULL AND crowd_share IS NOT NULL THEN 'experts and crowd'
                    WHEN expert_mean IS NOT NULL THEN 'experts only' ELSE 'crowd only' END AS judged_by,
               count(*) AS pairs
        FROM pairs WHERE target IS NOT NULL
        GROUP BY ALL ORDER BY ALL
    """, where, bins=SHARE_BINS)


def judged_queries(db: Database, where: PairFilter) -> pd.DataFrame:
    """(query_id, query_text, pairs) of every query with judged pairs; the text is NULL when the caption is absent
    from the source."""
    return _fetch(db, """
        SELECT p.query_id, q.text AS query_text, count(*) AS pairs
        FROM pairs p LEFT JOIN captions q ON q.id = p.query_id
        GROUP BY ALL ORDER BY query_text NULLS LAST, p.query_id
    """, where)


def judged_images(db: Database, where: PairFilter) -> pd.DataFrame:
    """(image_id, pairs) of every photo with judged pairs, whatever its file or minors status."""
    return _fetch(db, "SELECT image_id, count(*) AS pairs FROM pairs GROUP BY ALL ORDER BY image_id", where)


def pairs_of_query(db: Database, where: PairFilter, query_id: str) -> pd.DataFrame:
    """The judged photos of one query, best judged first."""
    return _fetch(db, """
        SELECT image_id, expert_1, expert_2, expert_3, expert_mean, crowd_share, n_yes, n_no, target
        FROM pairs WHERE query_id = $query_id
        ORDER BY target DESC NULLS LAST, expert_mean DESC NULLS LAST, image_id
    """, where, query_id=query_id)


def pairs_of_image(db: Database, where: PairFilter, image_id: str) -> pd.DataFrame:
    """The judged queries of one photo with their text, best judged first."""
    return _fetch(db, """
        SELECT p.query_id, q.text AS query_text, p.expert_1, p.expert_2, p.expert_3, p.expert_mean,
               p.crowd_share, p.n_yes, p.n_no, p.target
        FROM pairs p LEFT JOIN captions q ON q.id = p.query_id
        WHERE p.image_id = $image_id
        ORDER BY p.target DESC NULLS LAST, p.expert_mean DESC NULLS LAST, p.query_id
    """, where, image_id=image_id)


def recent_labels(db: Database, dataset: str | None, limit: int = 20) -> pd.DataFrame:
    """The newest reviewers' labels from live search on photos of ``dataset`` (all when None), newest first.
    Photo ids and queries only: a label's photo may not be visible, so no path is returned."""
    return db.fetch_df(
        "SELECT l.created, l.user_name, l.query, l.image_id, l.verdict, l.comment "
        "FROM labels l LEFT JOIN images i ON i.id = l.image_id "
        "WHERE $dataset IS NULL OR i.dataset = $dataset "
        "ORDER BY l.created DESC, l.id DESC LIMIT $limit",
        {"dataset": dataset, "limit": limit},
    )
