"""Model comparison page: the best run per target and feature set, the registered relevance-model runs and
retrieval metrics side by side (encoders named in words), fold spread per metric, one run's out-of-fold predictions
and residuals, and the choice of the model search re-ranks with.

Presentation only; shaping the data and the figures lives in comparison.py, SQL in db/. The re-ranker choice is
a write, so it goes through the write queue (context.submit) and only the "data" role may make it.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import comparison, context, stage_progress
from db import models as model_store
from db.write_queue import OP_ROLES

EDITOR_ROLES = OP_ROLES["reranker"]  # who may change the re-ranker: the writer refuses everyone else too


def show_best(snapshot: comparison.Snapshot) -> None:
    st.subheader("Best run per target and feature set")
    best = comparison.best_runs(snapshot.runs)
    if best.empty:
        st.caption("No run other than the constant baseline has an out-of-fold R2 yet.")
        return
    st.caption("Judged on out-of-fold **R2** (pooled over all held-out pairs; higher is better), the newest run of "
               "each model. Fold mean and SD: the spread over the cross-validation folds; a gap to the runner-up "
               "smaller than the SD is not a clear win. **Serves uploads**: only runs without caption "
               "features can score a new upload, which has no captions.")
    shown = best[["target", "feature_set", "best_model", "serves_uncaptioned", "r2", "r2_fold_mean", "r2_fold_sd",
                  "runner_up", "ahead_by"]]
    st.dataframe(shown, hide_index=True, key="models_best_table", column_config={
        "feature_set": st.column_config.TextColumn("features"),
        "best_model": st.column_config.TextColumn("best model"),
        "serves_uncaptioned": st.column_config.CheckboxColumn("serves uploads",
                                                              help="can score photos without captions"),
        "r2": st.column_config.NumberColumn("R2", format="%.3f", width="small"),
        "r2_fold_mean": st.column_config.NumberColumn("fold mean", format="%.3f", width="small"),
        "r2_fold_sd": st.column_config.NumberColumn("fold SD", format="%.3f", width="small"),
        "runner_up": st.column_config.TextColumn("runner-up"),
        "ahead_by": st.column_config.NumberColumn("ahead by", format="%.3f", width="small"),
    })


def show_runs(snapshot: comparison.Snapshot) -> None:
    st.subheader("Runs")
    st.caption("Every registered run, newest first, with its metrics over all out-of-fold predictions. "
               "`uses_captions`: the features include reference captions, so the model can only score captioned "
               "photos (`serves_uncaptioned` is false); `uses_images`: they include photo vectors.")
    st.dataframe(comparison.runs_table(snapshot.runs, snapshot.reranker), hide_index=True, key="models_runs_table",
                 column_config={"run": st.column_config.TextColumn(pinned=True)})


def show_metric_bars(runs: pd.DataFrame, target: str) -> None:
    """Grouped bars of one metric per model and feature set, with the spread over folds."""
    metrics = comparison.fold_metric_keys(runs, target)
    if not metrics:
        st.caption("No per-fold metric was recorded for this target.")
        return
    metric = st.selectbox("Metric", metrics, key="models_metric")
    bars = comparison.metric_bars(runs, target, metric)
    st.plotly_chart(comparison.metric_bars_figure(bars, metric), key="models_metric_chart")
    st.caption("Bar: mean over the cross-validation folds of the newest run of each model and feature set; error "
               "bar: one (sample) standard deviation across folds. Hatched bars use caption features. The pooled "
               "out-of-fold value is in the runs table and the tooltip.")


def show_predictions(runs: pd.DataFrame, target: str) -> None:
    """Predicted vs actual and residuals by expert score for one run of the target."""
    run_ids = runs.loc[runs["target"] == target, "id"].tolist()
    run_id = st.selectbox("Run", run_ids, key="models_run")
    with context.page_database() as db:
        read = comparison.read_predictions(db, run_id)
    charts = comparison.prediction_charts(read)
    left, right = st.columns(2)
    left.markdown("**Predicted vs actual** (out of fold)")
    left.plotly_chart(charts.scatter, key="models_scatter_chart")
    if read.counted:
        left.caption(f"{read.pairs:,} pairs, too many to draw one by one (over {comparison.SCATTER_LIMIT:,}): the "
                     f"colour counts the pairs in each cell of a {comparison.DENSITY_BINS} x "
                     f"{comparison.DENSITY_BINS} grid.")
    right.markdown("**Residuals by expert score**")
    if charts.residuals is None:
        right.caption("None of this run's pairs has expert ratings (COCO category pairs and crowd-only pairs have "
                      "none), so there is no residual by expert score to show. Pick a run of an expert target.")
    else:
        right.plotly_chart(charts.residuals, key="models_residuals_chart")
        right.caption(f"{charts.rated:,} of {read.pairs:,} pairs have all three expert scores; each is placed by the "
                      "mean of the three, rounded.")


def choose_reranker(snapshot: comparison.Snapshot) -> None:
    """The data role picks the run search re-ranks with (or off); everyone else sees the choice."""
    st.subheader("Search re-ranker")
    user = context.current_user()
    if user.role in EDITOR_ROLES:
        choices = comparison.reranker_choices(snapshot.runs)
        current = snapshot.reranker or comparison.OFF
        choice = st.selectbox("Re-rank search results with", choices,
                              index=choices.index(current) if current in choices else 0, key="models_reranker")
        if st.button("Use for search", key="models_reranker_apply"):
            apply_reranker(comparison.chosen_run_id(choice))
    else:
        st.caption("Only the data team changes the re-ranker.")
    with context.page_database() as db:
        chosen = model_store.reranker(db)
    st.markdown(f"Search re-ranks with: {comparison.describe_choice(chosen)}")


def apply_reranker(run_id: str | None) -> None:
    """Check the run can re-rank (cheaply, before queueing), then submit the choice as the signed-in user."""
    if run_id is not None:
        with context.page_database() as db:
            run = model_store.run(db, run_id)
        problem = comparison.reranker_problem(run, run_id)
        if problem:
            st.error(f"Re-ranker not changed: {problem}")
            return
    outcomes = context.submit([("reranker", {"run_id": run_id})])
    context.report(outcomes, "Re-ranker")


def show_retrieval(snapshot: comparison.Snapshot) -> None:
    st.subheader("Retrieval metrics")
    tables = comparison.retrieval_tables(snapshot.retrieval)
    if not tables:
        st.caption("No retrieval metrics yet: run `python -m pipeline evaluate-retrieval` (and "
                   "`python -m pipeline evaluate-rerank` for the re-ranker).")
    for protocol, table in tables.items():
        st.markdown(f"**{protocol}**")
        st.dataframe(table, hide_index=True, key=f"models_retrieval_{protocol}", column_config={
            "encoder_name": st.column_config.TextColumn("encoder", pinned=True),
            "encoder": st.column_config.TextColumn("encoder id")})


def main() -> None:
    context.require_role(__file__)
    st.title("Model comparison")
    stage_progress.waiting_notice(__file__)
    st.caption("Relevance models trained by `python -m pipeline train`, compared on held-out folds, and the "
               "retrieval figures of the encoders.")
    with context.page_database() as db:
        snapshot = comparison.load_snapshot(db)
    if snapshot.runs.empty:
        st.info(f"No model runs yet. Run `{comparison.TRAIN_COMMAND} --db {context.db_path()}` to train and "
                "register relevance models, then reload this page.")
    else:
        show_best(snapshot)
        show_runs(snapshot)
        st.subheader("Metrics by model")
        target = st.selectbox("Target", comparison.targets_of(snapshot.runs), key="models_target")
        show_metric_bars(snapshot.runs, target)
        st.subheader("Out-of-fold predictions")
        show_predictions(snapshot.runs, target)
        choose_reranker(snapshot)
    show_retrieval(snapshot)


main()
