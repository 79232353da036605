"""Relevance stage: reads ``expert_ratings`` and ``crowd_ratings``, writes ``relevance``.

Formula (weights configurable, stored in ``settings`` so every later ingest uses them):

    expert  = (expert_1 + expert_2 + expert_3 - 3) / 9          # mean of three 1..4 scores mapped to 0..1
    crowd   = share                                             # fraction of "yes" votes, 0..1
    relevance = (w_e * expert + w_c * crowd) / (w_e + w_c)      # when the pair has both
              = expert or crowd                                 # when it has only one (with weight > 0)

Default w_e = 0.6, w_c = 0.4: experts grade on a 4-level scale with written guidelines, the crowd votes yes/no,
so experts get more say; the crowd still moves pairs where experts disagree. A weight of 0 drops that source.
"""

from __future__ import annotations

import math

import duckdb

from db import relevance as relevance_sql
from db.database import Database

DEFAULT_WEIGHTS = {"expert_weight": 0.6, "crowd_weight": 0.4}


def check_weights(expert_weight: float, crowd_weight: float) -> None:
    finite = math.isfinite(expert_weight) and math.isfinite(crowd_weight)
    if not finite or expert_weight < 0 or crowd_weight < 0 or expert_weight + crowd_weight <= 0:
        raise ValueError(
            f"relevance weights must be >= 0 and finite, with a positive sum; got expert {expert_weight}, crowd {crowd_weight}"
        )


def formula(expert_weight: float, crowd_weight: float) -> str:
    return (
        f"({expert_weight:g}*expert + {crowd_weight:g}*crowd_share)/({expert_weight + crowd_weight:g}); "
        "expert=(e1+e2+e3-3)/9; single-source pairs take that source"
    )


def apply(cur: duckdb.DuckDBPyConnection, dataset: str | None) -> int:
    """Recompute relevance inside the caller's transaction with the stored (or default) weights."""
    weights = relevance_sql.load_weights(cur) or DEFAULT_WEIGHTS
    e, c = weights["expert_weight"], weights["crowd_weight"]
    return relevance_sql.recompute(cur, dataset, e, c, formula(e, c))


def run(db: Database, *, expert_weight: float | None = None, crowd_weight: float | None = None,
        dataset: str | None = None) -> int:
    """The ``relevance`` subcommand: store new weights if given, recompute; returns rows written."""
    with db.write() as cur:
        weights = dict(relevance_sql.load_weights(cur) or DEFAULT_WEIGHTS)
        if expert_weight is not None:
            weights["expert_weight"] = expert_weight
        if crowd_weight is not None:
            weights["crowd_weight"] = crowd_weight
        check_weights(weights["expert_weight"], weights["crowd_weight"])
        relevance_sql.save_weights(cur, weights)
        return apply(cur, dataset)
