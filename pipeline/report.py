"""Plain-text summaries printed at the end of CLI runs."""

from __future__ import annotations

import json

import pandas as pd

from db import models as model_store
from pipeline.ingest import IngestResult


def ingest_summary(result: IngestResult, first_rejects: list[tuple[str, int | None, str]] = ()) -> str:
    """Per-file read / accepted / rejected table, the dataset's table counts, and the first rejects per file."""
    if result.skipped:
        return (f"{result.dataset} ({result.layout}): unchanged since ingest run {result.previous_run_id}; "
                "nothing to do (use --force to re-ingest)")
    width = max([len(f.file) for f in result.files] + [4])
    lines = [
        f"{result.dataset} ({result.layout}) from {result.source}: ingest run {result.run_id} "
        f"in {result.seconds:.1f}s",
        f"  {'file':<{width}}  {'read':>9}  {'accepted':>9}  {'rejected':>9}",
    ]
    for f in result.files:
        note = "  (header line not counted)" if f.header else ""
        lines.append(f"  {f.file:<{width}}  {f.read:>9,}  {f.accepted:>9,}  {f.rejected:>9,}{note}")
    t = result.tables
    lines.append(
        f"  images {t['images']:,} (ok {t['images_ok']:,}, missing {t['images_missing']:,}, corrupt "
        f"{t['images_corrupt']:,}, uncaptioned {t['images_uncaptioned']:,}); captions {t['captions']:,}; "
        f"expert {t['expert_ratings']:,}; crowd {t['crowd_ratings']:,}; relevance {t['relevance']:,}; "
        f"objects {t['objects']:,}; query pairs {t['query_pairs']:,}"
    )
    if first_rejects:
        lines.append("  first rejects per file (all of them: table `rejects`, or the dashboard):")
        lines.extend(f"    {file}{'' if line is None else f':{line}'}: {reason}" for file, line, reason in first_rejects)
    return "\n".join(lines)


_METRIC_COLUMNS = (("r2", "R2"), ("mse", "MSE"), ("tau_c_expert_1", "tau-c e1"), ("tau_c_expert_2", "tau-c e2"),
                   ("tau_c_expert_3", "tau-c e3"), ("tau_b_crowd", "tau-b crowd"), ("ndcg@10", "nDCG@10"),
                   ("mrr", "MRR"))


def _metric_cells(metrics: dict) -> list[str]:
    cells = []
    for key, _ in _METRIC_COLUMNS:
        value = metrics.get(key)
        cells.append("-" if value is None or value != value else f"{value:.3f}")  # NaN != NaN
    return cells


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(str(cell).rjust(width) if i else str(cell).ljust(width)
                               for i, (cell, width) in enumerate(zip(line, widths)))
                     for line in [header, *rows])


def _beats(value) -> str:
    return "baseline" if value is None else ("yes" if value else "NO")


def model_table(summaries) -> str:
    """One line per run of a train call: out-of-fold metrics, whether it beat the constant on every fold, time."""
    header = ["model", "features", *(label for _, label in _METRIC_COLUMNS), "beats const. every fold", "seconds"]
    rows = [[s.model, s.feature_set, *_metric_cells(s.metrics), _beats(s.beats_baseline), f"{s.train_seconds:.1f}"]
            for s in summaries]
    title = summaries[0].id.rsplit("/", 3)[0] if summaries else ""
    return f"target {title} ({summaries[0].metrics['pairs']:,} pairs)\n" + _table(header, rows) if summaries else ""


def runs_table(runs, chosen: str | None) -> str:
    """Registered runs, newest first; the chosen re-ranker is starred."""
    header = ["run", "captions", *(label for _, label in _METRIC_COLUMNS), "beats const."]
    rows = [[("* " if run.id == chosen else "  ") + run.id, "yes" if run.uses_captions else "no",
             *_metric_cells(json.loads(run.metrics)), _beats(None if pd.isna(run.beats_baseline) else bool(run.beats_baseline))]
            for run in runs.itertuples()]
    return _table(header, rows)


def feedback_effect(db, prepared, summaries) -> str:
    """How reviewers' labels moved each run's out-of-fold figures, against the newest run without them. The
    evaluated pairs are the same (labels only join training), so the difference is the labels' effect."""
    lines = [f"feedback: {prepared.feedback_pairs:,} labelled pairs joined training"]
    for s in summaries:
        before = model_store.comparable_run_without_feedback(db, prepared.target.name, s.feature_set, s.model)
        if before is None:
            lines.append(f"  {s.model} / {s.feature_set}: no run without feedback to compare with")
            continue
        deltas = ", ".join(f"{key} {before['metrics'][key]:.3f} -> {s.metrics[key]:.3f}" for key in ("r2", "mse", "mrr")
                           if key in before["metrics"] and before["metrics"][key] == before["metrics"][key])
        lines.append(f"  {s.model} / {s.feature_set}: {deltas} (vs {before['id']})")
    return "\n".join(lines)
