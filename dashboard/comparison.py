"""Data and figures for the Model comparison page, kept apart from Streamlit so they can be unit-tested without it.

The page reads `model_runs`, one run's out-of-fold predictions (for a run of more than SCATTER_LIMIT pairs, their
counts per cell and per expert score, aggregated in SQL) and `retrieval_metrics` in short blocks on the shared
database (dashboard/context.py); everything here works on the DataFrames those reads return. Metrics are
stored as JSON strings (db/models.py), so they are parsed once here into plain columns.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from db import embeddings
from db import models as model_store
from db.database import Database
from pipeline import models
from pipeline.rerank import RerankError, load_artifact

# Keys of the metrics JSON that count things rather than measure the model.
NOT_METRICS = ("fold", "pairs", "queries", "beats_baseline")
# Shown first when present: the figures `python -m pipeline models` prints (pipeline/report.py).
PREFERRED_METRICS = ("r2", "mse", "spearman", "tau_c_expert_1", "tau_c_expert_2", "tau_c_expert_3", "tau_b_crowd",
                     "ndcg@10", "mrr")
EXPERTS = ("expert_1", "expert_2", "expert_3")
OFF = "off"  # the re-ranker choice that switches re-ranking off (run ids always contain slashes)
TRAIN_COMMAND = "python -m pipeline train"
# A run with more out-of-fold pairs than this is drawn from SQL aggregates (a density grid, residual boxes)
# instead of point by point: 200,000 points took ~1.9 s of a page run at load 2.5 on 2 cores (read 0.5 s, figure
# 0.4 s, sending it 1.0 s; benchmarks/dashboard_scale.py), and no screen shows that many points apart.
SCATTER_LIMIT = 20_000
DENSITY_BINS = 60  # cells per axis of that grid
# The metric "best" is judged on: pooled out-of-fold R2, the figure the README's tables and `pipeline models`
# lead with; every run of a target is scored on the same pairs, so it ranks them fairly.
BEST_METRIC = "r2"
MODEL_LABELS = {"constant": "Constant (mean)", "zero-shot": "Zero-shot (calibrated score)", "ridge": "Ridge",
                "random-forest": "Random forest", "hist-gradient-boosting": "Gradient boosting", "mlp": "MLP"}
# Retrieval metrics in reading order (recall at growing depth, then the rank summaries); others follow by name.
RETRIEVAL_ORDER = ("recall@1", "recall@5", "recall@10", "mrr", "map", "ndcg@10")
_OFFLINE_ID = re.compile(r"^offline-(?:zs-t(?P<t>[\d.]+)-k(?P<k>\d+)|(?P<fit>fit)(?:-[0-9a-f]+)?)"
                         r"(?P<objects>\+obj(?:ects)?(?:-[0-9a-f]+)?)?-(?P<views>[a-z0-9+]+?)(?P<noflip>-noflip)?"
                         r"(?: \((?P<note>.*)\))?$")


@dataclass(frozen=True)
class Snapshot:
    """What the page shows before a run is picked, read in one block."""

    runs: pd.DataFrame  # model_store.runs: newest first, JSON columns as strings
    reranker: str | None  # the run search re-ranks with, None when off
    retrieval: pd.DataFrame  # embeddings.retrieval_metrics


def load_snapshot(db: Database) -> Snapshot:
    return Snapshot(model_store.runs(db), model_store.reranker(db), embeddings.retrieval_metrics(db))


def _json(text: str | None) -> Any:
    return json.loads(text) if text else {}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: object) -> bool:
    """A number that is neither NaN nor infinite (a stored metric may be missing, null or NaN)."""
    return _is_number(value) and math.isfinite(value)


def metric_keys(metrics: list[dict]) -> list[str]:
    """Numeric metric names found in these metric objects: preferred ones first, the rest alphabetically."""
    found = {key for one in metrics for key, value in one.items() if key not in NOT_METRICS and _is_number(value)}
    return [key for key in PREFERRED_METRICS if key in found] + sorted(found - set(PREFERRED_METRICS))


def runs_table(runs: pd.DataFrame, reranker: str | None) -> pd.DataFrame:
    """One row per run with its pooled out-of-fold metrics as columns, which inputs it used, and whether search
    re-ranks with it: the dashboard version of `python -m pipeline models`."""
    metrics = [_json(text) for text in runs["metrics"]]
    keys = metric_keys(metrics)
    table = pd.DataFrame({"run": [run_label(run.model, run.feature_set, run.created) for run in runs.itertuples()]})
    table["target"] = runs["target"].to_numpy()
    for key in keys:  # the metrics right after the run's name: a narrow screen shows them without scrolling
        table[key] = [one.get(key, math.nan) for one in metrics]
    for column in ("model", "feature_set", "uses_captions", "uses_images", "pairs", "feedback_pairs", "folds"):
        table[column] = runs[column].to_numpy()  # by position: ``runs`` may carry any index
    table["serves_uncaptioned"] = ~runs["uses_captions"].astype(bool).to_numpy()
    for column in ("beats_baseline", "train_seconds", "predict_ms", "created"):
        table[column] = runs[column].to_numpy()
    table["reranks_search"] = (runs["id"] == reranker).to_numpy()
    table["id"] = runs["id"].to_numpy()
    return table.reset_index(drop=True)


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def run_label(model: str, feature_set: str, created: object) -> str:
    """A run's name for people: "Ridge on captions, 03 Dec 21:17" (the id stays in its own column)."""
    when = pd.Timestamp(created).strftime(", %d %b %H:%M") if created is not None and not pd.isna(created) else ""
    return f"{model_label(model)} on {feature_set}{when}"


def encoder_label(encoder_id: str) -> str:
    """What an encoder id means, in words: the offline encoder's bridge, object fusion and views, or open_clip's
    model; an id of another form is returned as it is."""
    match = _OFFLINE_ID.match(encoder_id)
    if match is None:
        if encoder_id.startswith("openclip-"):
            name = encoder_id.removeprefix("openclip-")
            return f"open_clip {name.removesuffix('-random')}, random weights (mechanics only)" \
                if name.endswith("-random") else f"open_clip {name}"
        return encoder_id
    bridge = "fitted bridge" if match["fit"] else f"zero-shot bridge (T={match['t']}, top {match['k']})"
    objects = " + objects" if match["objects"] else ""
    views = f"{match['views']}" + (" no mirror" if match["noflip"] else " + mirror")
    note = f" ({match['note'].split(',')[0]})" if match["note"] else ""  # its first clause; the id has the rest
    return f"offline {bridge}{objects}, {views}{note}"


def best_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per target and feature set, the model whose newest run has the highest pooled out-of-fold R2, with that
    R2's spread over the folds, the runner-up and its gap, and whether the run can score a photo without captions
    (an upload: only feature sets without caption features can). The constant baseline is not a candidate."""
    candidates = runs[runs["model"] != models.CONSTANT].drop_duplicates(["target", "model", "feature_set"])
    rows = []
    for (target, feature_set), group in candidates.groupby(["target", "feature_set"], sort=True):
        scored = [(value, run) for run in group.itertuples()
                  if _is_finite(value := _json(run.metrics).get(BEST_METRIC))]
        if not scored:
            continue
        scored.sort(key=lambda item: -item[0])  # stable: among equal values the newer run stays first
        value, best = scored[0]
        folds = pd.Series([fold.get(BEST_METRIC) for fold in _json(best.fold_metrics)], dtype=float).dropna()
        runner_up = scored[1] if len(scored) > 1 else None
        rows.append({
            "target": target, "feature_set": feature_set, "best_model": model_label(best.model),
            BEST_METRIC: value, f"{BEST_METRIC}_fold_mean": folds.mean(), f"{BEST_METRIC}_fold_sd": folds.std(),
            "folds": len(folds),
            "runner_up": model_label(runner_up[1].model) if runner_up else "",
            "ahead_by": value - runner_up[0] if runner_up else math.nan,
            "serves_uncaptioned": not bool(best.uses_captions),
            "run": run_label(best.model, best.feature_set, best.created), "id": best.id,
        })
    return pd.DataFrame(rows, columns=["target", "feature_set", "best_model", BEST_METRIC, f"{BEST_METRIC}_fold_mean",
                                       f"{BEST_METRIC}_fold_sd", "folds", "runner_up", "ahead_by",
                                       "serves_uncaptioned", "run", "id"])


def targets_of(runs: pd.DataFrame) -> list[str]:
    """Targets with runs, the one trained most recently first (runs come newest first)."""
    return list(dict.fromkeys(runs["target"]))


def fold_metric_keys(runs: pd.DataFrame, target: str) -> list[str]:
    """Metrics some fold of some run of ``target`` has a finite value for: the ones a fold spread exists for."""
    folds = [fold for text in runs.loc[runs["target"] == target, "fold_metrics"] for fold in _json(text)]
    return [key for key in metric_keys(folds)
            if any(_is_finite(fold.get(key)) for fold in folds)]


def metric_bars(runs: pd.DataFrame, target: str, metric: str) -> pd.DataFrame:
    """Per model x feature set of ``target`` (its newest run): mean and sample standard deviation of ``metric``
    over the cross-validation folds (NaN folds skipped), their min and max, and the pooled out-of-fold value."""
    newest = runs[runs["target"] == target].drop_duplicates(["model", "feature_set"])  # runs are newest first
    rows = []
    for run in newest.itertuples():
        values = pd.Series([fold.get(metric) for fold in _json(run.fold_metrics)], dtype=float).dropna()
        rows.append({"run_id": run.id, "model": run.model, "feature_set": run.feature_set,
                     "uses_captions": bool(run.uses_captions), "mean": values.mean(), "std": values.std(),
                     "min": values.min(), "max": values.max(), "folds": len(values),
                     "pooled": _json(run.metrics).get(metric, math.nan)})
    return pd.DataFrame(rows, columns=["run_id", "model", "feature_set", "uses_captions", "mean", "std", "min", "max",
                                       "folds", "pooled"])


def metric_bars_figure(bars: pd.DataFrame, metric: str) -> go.Figure:
    """Grouped bars: one group per model, one bar per feature set; error bars one standard deviation over folds.
    Caption-based feature sets are hatched, so the runs that need captioned photos stand out."""
    figure = go.Figure()
    for feature_set, group in bars.groupby("feature_set", sort=True):
        figure.add_bar(
            name=feature_set, x=group["model"], y=group["mean"],
            error_y={"type": "data", "array": group["std"].fillna(0.0), "visible": True},
            marker_pattern_shape=["/" if captions else "" for captions in group["uses_captions"]],
            customdata=group[["folds", "min", "max", "pooled", "run_id"]],
            hovertemplate=(f"%{{x}} / {feature_set}<br>{metric} mean %{{y:.3f}} over %{{customdata[0]}} folds"
                           "<br>min %{customdata[1]:.3f}, max %{customdata[2]:.3f}"
                           "<br>pooled out-of-fold %{customdata[3]:.3f}<br>%{customdata[4]}<extra></extra>"),
        )
    figure.update_layout(barmode="group", xaxis_title="model", yaxis_title=f"{metric} (mean over folds)",
                         legend_title="feature set")
    return figure


def predicted_vs_actual_figure(predictions: pd.DataFrame) -> go.Figure:
    """Every out-of-fold prediction against its target, coloured by fold, with the line of perfect predictions.
    WebGL, because a COCO run has hundreds of thousands of pairs."""
    figure = go.Figure()
    figure.add_scattergl(
        name="pairs", x=predictions["actual"], y=predictions["predicted"], mode="markers",
        marker={"color": predictions["fold"], "colorscale": "Viridis", "opacity": 0.5, "size": 5,
                "colorbar": {"title": "fold"}},
        customdata=predictions[["image_id", "query_id", "fold"]],
        hovertemplate="actual %{x:.3f}, predicted %{y:.3f}<br>%{customdata[0]}<br>query %{customdata[1]}"
                      "<br>fold %{customdata[2]}<extra></extra>",
    )
    figure.add_scattergl(name="perfect", x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "grey"})
    figure.update_layout(xaxis_title="actual relevance", yaxis_title="predicted (out of fold)", showlegend=False)
    return figure


@dataclass(frozen=True)
class RunPredictions:
    """One run's out-of-fold predictions as the page reads them: every pair (``predictions``, with the expert
    scores) up to SCATTER_LIMIT pairs; above it only SQL aggregates (``density``, ``boxes``), never the pairs."""

    pairs: int
    predictions: pd.DataFrame | None  # model_store.predictions, when not counted
    density: pd.DataFrame | None  # model_store.prediction_density, when counted
    boxes: pd.DataFrame | None  # model_store.residual_boxes, when counted

    @property
    def counted(self) -> bool:
        return self.predictions is None


@dataclass(frozen=True)
class PredictionCharts:
    scatter: go.Figure  # predicted vs actual: every pair, or their density
    residuals: go.Figure | None  # None when no pair has all three expert scores
    rated: int  # pairs with all three expert scores


def read_predictions(db: Database, run_id: str) -> RunPredictions:
    pairs = model_store.prediction_count(db, run_id)
    if pairs > SCATTER_LIMIT:
        return RunPredictions(pairs, None, model_store.prediction_density(db, run_id, DENSITY_BINS),
                              model_store.residual_boxes(db, run_id))
    return RunPredictions(pairs, model_store.predictions(db, run_id), None, None)


def prediction_charts(read: RunPredictions) -> PredictionCharts:
    if read.counted:
        rated = int(read.boxes["pairs"].sum())
        return PredictionCharts(density_figure(read.density), residual_boxes_figure(read.boxes) if rated else None,
                                rated)
    residuals = residuals_by_expert(read.predictions)
    return PredictionCharts(predicted_vs_actual_figure(read.predictions),
                            residuals_figure(residuals) if len(residuals) else None, len(residuals))


def density_figure(density: pd.DataFrame) -> go.Figure:
    """Predicted vs actual for a run too large to draw point by point: pairs per cell of model_store's grid
    (empty cells left blank), with the line of perfect predictions."""
    figure = go.Figure()
    figure.add_heatmap(
        name="pairs", x=density["actual"], y=density["predicted"], z=density["pairs"], colorscale="Viridis",
        colorbar={"title": "pairs"},
        hovertemplate="actual ~%{x:.3f}, predicted ~%{y:.3f}<br>%{z:,} pairs<extra></extra>",
    )
    low = float(min(density["actual"].min(), density["predicted"].min()))
    high = float(max(density["actual"].max(), density["predicted"].max()))
    figure.add_scatter(name="perfect", x=[low, high], y=[low, high], mode="lines",
                       line={"dash": "dash", "color": "grey"})
    figure.update_layout(xaxis_title="actual relevance", yaxis_title="predicted (out of fold)", showlegend=False)
    return figure


def residuals_by_expert(predictions: pd.DataFrame) -> pd.DataFrame:
    """Residual (predicted - actual) of each pair the three experts rated, with the experts' mean score rounded
    to the 1..4 scale (a mean of three integers is never halfway, so rounding has no ties). Pairs without expert
    ratings (COCO, crowd-only Flickr pairs) are left out."""
    rated = predictions.dropna(subset=list(EXPERTS))
    return pd.DataFrame({
        "expert_score": rated[list(EXPERTS)].astype(float).mean(axis=1).round().astype(int),
        "residual": rated["predicted"] - rated["actual"],
    }).reset_index(drop=True)


def residuals_figure(residuals: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for score, group in residuals.groupby("expert_score", sort=True):
        figure.add_box(name=str(score), x=[str(score)] * len(group), y=group["residual"], boxpoints="outliers")
    figure.add_hline(y=0, line_dash="dash", line_color="grey")
    figure.update_layout(xaxis_title="experts' mean score (rounded; 1 = no match, 4 = describes the photo)",
                         yaxis_title="residual (predicted - actual)", showlegend=False)
    return figure


def residual_boxes_figure(boxes: pd.DataFrame) -> go.Figure:
    """residuals_figure from model_store.residual_boxes: the same boxes, whiskers at 1.5 interquartile ranges,
    drawn from their statistics (the outliers beyond the whiskers are counted in the hover, not drawn)."""
    figure = go.Figure()
    for box in boxes.itertuples():
        figure.add_box(name=str(box.expert_score), x=[str(box.expert_score)], q1=[box.q1], median=[box.median],
                       q3=[box.q3], mean=[box.mean], lowerfence=[box.lowerfence], upperfence=[box.upperfence],
                       hovertext=f"{box.pairs:,} pairs, {box.outliers:,} beyond the whiskers", hoverinfo="y+text")
    figure.add_hline(y=0, line_dash="dash", line_color="grey")
    figure.update_layout(xaxis_title="experts' mean score (rounded; 1 = no match, 4 = describes the photo)",
                         yaxis_title="residual (predicted - actual)", showlegend=False)
    return figure


def retrieval_tables(metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per protocol: one row per encoder and data version, one column per metric."""
    tables = {}
    for protocol, group in metrics.groupby("protocol", sort=True):
        wide = group.pivot_table(index=["encoder", "data_version"], columns="metric", values="value", aggfunc="first")
        ordered = [m for m in RETRIEVAL_ORDER if m in wide.columns] + sorted(set(wide.columns) - set(RETRIEVAL_ORDER))
        wide = wide[ordered]
        wide["created"] = group.groupby(["encoder", "data_version"])["created"].max()
        table = wide.reset_index().rename_axis(columns=None)
        table.insert(0, "encoder_name", [encoder_label(encoder) for encoder in table["encoder"]])
        # The metrics right after the encoder's name, its raw id last (for the CLI and the database).
        tables[str(protocol)] = table[["encoder_name", *ordered, "data_version", "created", "encoder"]]
    return tables


def reranker_choices(runs: pd.DataFrame) -> list[str]:
    """Off, then every run that can score pairs: all but the constant baseline, which scores every photo alike."""
    return [OFF, *runs.loc[runs["model"] != models.CONSTANT, "id"]]


def reranker_problem(run: dict | None, run_id: str) -> str | None:
    """Why ``run`` (``model_store.run``'s row for ``run_id``) cannot re-rank search, or None when it can: the
    cheap checks of `python -m pipeline use-reranker`, including the model file's sha256."""
    if run is None:
        return f"no model run {run_id!r}; it may have been removed. Reload the page."
    if run["model"] == models.CONSTANT:
        return "the constant baseline gives every photo the same score; choose another run"
    try:
        load_artifact(run)
    except RerankError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - an unreadable model file is refused with its reason, never a traceback
        return f"model file of run {run_id} cannot be loaded ({type(exc).__name__}: {exc}); train it again"
    return None


def describe_choice(run_id: str | None) -> str:
    return "off: search ranks by the encoder alone" if run_id is None else f"`{run_id}`"


def chosen_run_id(choice: str) -> str | None:
    return None if choice == OFF else choice
