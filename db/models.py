"""SQL of the train stage: judged pairs, reference captions, model runs, reviewers' labels as training pairs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from db import settings
from db.database import Database

RERANKER_KEY = "reranker"


# ------------------------------------------------------------------------------------------------- training
def judged_pairs(db: Database, dataset: str, judgment: str) -> pd.DataFrame:
    """(image, query) pairs of ``dataset`` carrying ``judgment`` ('expert', 'crowd' or 'any'), with the query
    text (NULL when the caption is absent from the source), the 0..1 relevance target and every judgment."""
    return db.fetch_df(
        """
        SELECT r.image_id, r.query_id, q.text AS query_text, r.relevance AS target,
               e.expert_1, e.expert_2, e.expert_3, c.share AS crowd_share
        FROM relevance r
        LEFT JOIN expert_ratings e ON e.image_id = r.image_id AND e.query_id = r.query_id
        LEFT JOIN crowd_ratings c ON c.image_id = r.image_id AND c.query_id = r.query_id
        LEFT JOIN captions q ON q.id = r.query_id
        WHERE r.dataset = $dataset
          AND ($judgment = 'any' OR ($judgment = 'expert' AND e.image_id IS NOT NULL)
               OR ($judgment = 'crowd' AND c.image_id IS NOT NULL))
        ORDER BY r.image_id, r.query_id
        """,
        {"dataset": dataset, "judgment": judgment},
    )


def datasets_with(db: Database, judgment: str) -> list[str]:
    """Datasets that have pairs with this judgment ('expert', 'crowd'), or with object labels ('objects')."""
    return [row[0] for row in db.fetch_all(
        "SELECT DISTINCT dataset FROM (SELECT dataset, 'expert' AS kind FROM expert_ratings "
        "UNION ALL SELECT dataset, 'crowd' FROM crowd_ratings UNION ALL SELECT dataset, 'objects' FROM objects) "
        "WHERE kind = ? ORDER BY dataset", [judgment])]


def reference_captions(db: Database, image_ids: Sequence[str]) -> pd.DataFrame:
    """(image_id, caption_id, text) of every caption of these photos, whatever their file status."""
    with db.cursor() as cur:
        cur.register("wanted", pa.table({"image_id": pa.array(sorted(set(image_ids)), pa.string())}))
        return cur.sql("SELECT c.image_id, c.id AS caption_id, c.text FROM captions c JOIN wanted USING (image_id) "
                       "ORDER BY c.image_id, c.id").df()


def readable_photos(db: Database, dataset: str) -> list[str]:
    return [row[0] for row in db.fetch_all("SELECT id FROM images WHERE dataset = ? AND status = 'ok' ORDER BY id",
                                           [dataset])]


# ------------------------------------------------------------------------------------------------ model runs
RUN_COLUMNS = ("id", "model", "params", "encoder", "feature_set", "uses_captions", "uses_images", "target",
               "data_version", "pairs", "feedback_pairs", "folds", "fold_metrics", "metrics", "beats_baseline",
               "train_seconds", "predict_ms", "artifact", "artifact_sha256", "created")
_INSERT_RUN = f"INSERT INTO model_runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
_JSON_COLUMNS = ("params", "fold_metrics", "metrics")


def save_run(cur: duckdb.DuckDBPyConnection, run: dict, predictions: pd.DataFrame) -> None:
    """Register one run (every RUN_COLUMNS key but ``created``) and its out-of-fold predictions
    (image_id, query_id, fold, actual, predicted)."""
    row = {**run, **{key: json.dumps(run[key]) for key in _JSON_COLUMNS}, "created": datetime.now()}
    cur.execute(_INSERT_RUN, [row[column] for column in RUN_COLUMNS])
    cur.register("oof", pa.Table.from_pandas(predictions[["image_id", "query_id", "fold", "actual", "predicted"]],
                                             preserve_index=False))
    cur.execute("INSERT INTO model_predictions SELECT ?, image_id, query_id, fold, actual, predicted FROM oof",
                [run["id"]])
    cur.unregister("oof")


def runs(db: Database) -> pd.DataFrame:
    return db.fetch_df(
        "SELECT id, model, feature_set, uses_captions, uses_images, target, encoder, data_version, pairs, "
        "feedback_pairs, folds, metrics, fold_metrics, params, beats_baseline, train_seconds, predict_ms, artifact, "
        "artifact_sha256, created FROM model_runs ORDER BY created DESC, id"
    )


def run(db: Database, run_id: str) -> dict | None:
    frame = db.fetch_df("SELECT * FROM model_runs WHERE id = ?", [run_id])
    return None if frame.empty else frame.iloc[0].to_dict()


def predictions(db: Database, run_id: str) -> pd.DataFrame:
    """Out-of-fold predictions of one run with the pair's expert scores where it has them."""
    return db.fetch_df(
        "SELECT p.image_id, p.query_id, p.fold, p.actual, p.predicted, e.expert_1, e.expert_2, e.expert_3 "
        "FROM model_predictions p LEFT JOIN expert_ratings e ON e.image_id = p.image_id AND e.query_id = p.query_id "
        "WHERE p.run_id = ? ORDER BY p.fold, p.image_id, p.query_id",
        [run_id],
    )


def prediction_count(db: Database, run_id: str) -> int:
    return int(db.fetch_all("SELECT count(*) FROM model_predictions WHERE run_id = ?", [run_id])[0][0])


def prediction_density(db: Database, run_id: str, bins: int) -> pd.DataFrame:
    """(actual, predicted, pairs): one run's out-of-fold predictions counted on a ``bins`` x ``bins`` grid over
    the range each axis takes (the cell's centre; a constant axis is one cell at its value). What the page draws
    for a run too large to send point by point: every pair is counted, however many there are."""
    return db.fetch_df(
        """
        WITH p AS (SELECT actual, predicted FROM model_predictions WHERE run_id = $run),
             span AS (SELECT min(actual) AS a0, max(actual) - min(actual) AS aw,
                             min(predicted) AS p0, max(predicted) - min(predicted) AS pw FROM p),
             cells AS (SELECT coalesce(least(floor((actual - a0) / nullif(aw, 0) * $bins), $bins - 1), 0) AS a,
                              coalesce(least(floor((predicted - p0) / nullif(pw, 0) * $bins), $bins - 1), 0) AS b
                       FROM p, span)
        SELECT any_value(a0) + (a + 0.5) * any_value(aw) / $bins AS actual,
               any_value(p0) + (b + 0.5) * any_value(pw) / $bins AS predicted, count(*) AS pairs
        FROM cells, span GROUP BY a, b ORDER BY a, b
        """,
        {"run": run_id, "bins": bins},
    )


def residual_boxes(db: Database, run_id: str) -> pd.DataFrame:
    """Per expert score (the experts' mean rounded to 1..4, as dashboard/comparison.residuals_by_expert places
    a pair): how many of one run's pairs the three experts rated, and the box of their residuals (predicted -
    actual): quartiles (linear interpolation), mean, and whiskers at the most extreme residuals within 1.5
    interquartile ranges of the box, as plotly draws them, with how many residuals lie beyond."""
    return db.fetch_df(
        """
        WITH r AS (SELECT round((e.expert_1 + e.expert_2 + e.expert_3) / 3.0)::INTEGER AS expert_score,
                          p.predicted - p.actual AS residual
                   FROM model_predictions p
                   JOIN expert_ratings e ON e.image_id = p.image_id AND e.query_id = p.query_id
                   WHERE p.run_id = ?
                     AND e.expert_1 IS NOT NULL AND e.expert_2 IS NOT NULL AND e.expert_3 IS NOT NULL),
             q AS (SELECT expert_score, count(*) AS pairs, avg(residual) AS mean,
                          quantile_cont(residual, 0.25) AS q1, quantile_cont(residual, 0.5) AS median,
                          quantile_cont(residual, 0.75) AS q3
                   FROM r GROUP BY expert_score)
        SELECT q.expert_score, any_value(q.pairs) AS pairs, any_value(q1) AS q1, any_value(median) AS median,
               any_value(q3) AS q3, any_value(mean) AS mean,
               min(residual) FILTER (WHERE residual >= q1 - 1.5 * (q3 - q1)) AS lowerfence,
               max(residual) FILTER (WHERE residual <= q3 + 1.5 * (q3 - q1)) AS upperfence,
               count(*) FILTER (WHERE residual NOT BETWEEN q1 - 1.5 * (q3 - q1) AND q3 + 1.5 * (q3 - q1))
                   AS outliers
        FROM q JOIN r USING (expert_score) GROUP BY q.expert_score ORDER BY q.expert_score
        """,
        [run_id],
    )


def set_reranker(cur: duckdb.DuckDBPyConnection, run_id: str | None, chosen_by: str) -> None:
    """The run whose model re-ranks search results; None switches re-ranking off."""
    settings.put(cur, RERANKER_KEY, {"run_id": run_id, "chosen_by": chosen_by, "at": datetime.now().isoformat()})


def reranker(db: Database) -> str | None:
    with db.cursor() as cur:
        value = settings.get(cur, RERANKER_KEY)
    return value["run_id"] if value else None


# ---------------------------------------------------------------------------------------------------- labels
def feedback_pairs(db: Database, dataset: str) -> pd.DataFrame:
    """Reviewers' labels on readable photos of ``dataset`` as training pairs: relevant -> 1, otherwise 0.
    A pair labelled more than once takes the mean of its verdicts."""
    return db.fetch_df(
        """
        SELECT l.image_id, 'label:' || md5(l.query) AS query_id, l.query AS query_text,
               avg(CASE WHEN l.verdict = 'relevant' THEN 1.0 ELSE 0.0 END) AS target, count(*) AS labels
        FROM labels l JOIN images i ON i.id = l.image_id AND i.status = 'ok'
        WHERE i.dataset = ?
        GROUP BY l.image_id, l.query
        ORDER BY l.image_id, query_id
        """,
        [dataset],
    )


# ----------------------------------------------------------------------------------------- caption galleries
def dataset_captions(db: Database, dataset: str) -> pd.DataFrame:
    """(image_id, caption_id, text) of every caption of a dataset, whatever its photo's file status."""
    return db.fetch_df("SELECT image_id, id AS caption_id, text FROM captions WHERE dataset = ? ORDER BY image_id, id",
                       [dataset])


def visible_captions(db: Database) -> pd.DataFrame:
    """Captions of the photos `visible_images` lets through: all a live query may be compared against."""
    return db.fetch_df("SELECT c.image_id, c.id AS caption_id, c.text FROM captions c "
                       "JOIN visible_images v ON v.id = c.image_id ORDER BY c.image_id, c.id")


def comparable_run_without_feedback(db: Database, target: str, feature_set: str, model: str) -> dict | None:
    """The newest run of the same target, feature set and model trained without reviewers' labels."""
    frame = db.fetch_df("SELECT id, metrics FROM model_runs WHERE target = ? AND feature_set = ? AND model = ? "
                        "AND feedback_pairs = 0 ORDER BY created DESC, id DESC LIMIT 1", [target, feature_set, model])
    return None if frame.empty else {"id": frame.at[0, "id"], "metrics": json.loads(frame.at[0, "metrics"])}
