"""Plain-text summaries printed at the end of CLI runs."""

from __future__ import annotations

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
