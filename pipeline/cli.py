"""One CLI for every pipeline stage: ``python -m pipeline <stage> [--data DIR] [--db PATH] [--quiet]``."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from db import reads
from db.database import Database, DatabaseError
from pipeline import download, relevance
from pipeline.ingest import IngestError, ingest_dataset
from pipeline.layouts import DataNotFound, discover, resolve_data_dir
from pipeline.report import ingest_summary

DEFAULT_DB = "studio.duckdb"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", help="data folder (default: $STUDIO_DATA, else ../shared/data)")
    common.add_argument("--db", default=DEFAULT_DB, help=f"DuckDB file (default: {DEFAULT_DB})")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    stages = parser.add_subparsers(dest="stage", required=True)
    ingest = stages.add_parser("ingest", parents=[common], help="load every dataset found under --data")
    ingest.add_argument("--name", help="dataset name (default: folder name); only for a single dataset")
    ingest.add_argument("--force", action="store_true", help="re-ingest even if the files are unchanged")
    rel = stages.add_parser("relevance", parents=[common], help="recompute the aggregated relevance target")
    rel.add_argument("--expert-weight", type=float, help="weight of the expert score (default 0.6)")
    rel.add_argument("--crowd-weight", type=float, help="weight of the crowd share (default 0.4)")
    rel.add_argument("--dataset", help="only this dataset (default: all)")
    stages.add_parser("status", parents=[common], help="datasets, counts and recent ingest runs")
    stages.add_parser("download", parents=[common], help="fetch the COCO photos a captions JSON lists (online only)")
    return parser


def _ingest(args: argparse.Namespace) -> int:
    found = discover(resolve_data_dir(args.data))
    if args.name and len(found) > 1:
        raise DataNotFound(f"--name applies to one dataset, but {len(found)} were found: "
                           + ", ".join(p.name for p, _ in found))
    failed = 0
    with Database(args.db) as db:
        for root, reader in found:
            try:
                result = ingest_dataset(db, root, reader, name=args.name, force=args.force, quiet=args.quiet)
            except IngestError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            examples = [] if result.skipped else reads.first_rejects(db, result.dataset)
            print(ingest_summary(result, examples))
    return 1 if failed else 0


def _relevance(args: argparse.Namespace) -> int:
    with Database(args.db) as db:
        rows = relevance.run(db, expert_weight=args.expert_weight, crowd_weight=args.crowd_weight,
                             dataset=args.dataset)
    print(f"relevance: {rows:,} pairs written")
    return 0


def _status(args: argparse.Namespace) -> int:
    if not Path(args.db).exists():
        print(f"{args.db}: no database yet; run `python -m pipeline ingest`")
        return 1
    with Database(args.db, read_only=True) as db:
        print(reads.datasets_overview(db).to_string(index=False))
        print()
        print(reads.ingest_runs(db, 10).to_string(index=False))
    return 0


def _download(args: argparse.Namespace) -> int:
    if not args.data:
        raise DataNotFound("download needs --data DIR: the COCO folder whose annotations/captions_*.json to fetch")
    report = download.download(resolve_data_dir(args.data), quiet=args.quiet)
    print(f"download: {report.fetched:,} fetched, {report.present:,} already present, {len(report.failed):,} failed")
    for file, reason in report.failed[:10]:
        print(f"  {file}: {reason}")
    return 1 if report.failed else 0


STAGES = {"ingest": _ingest, "relevance": _relevance, "status": _status, "download": _download}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return STAGES[args.stage](args)
    except KeyboardInterrupt:
        print("interrupted: the running transaction was rolled back; the database is as it was", file=sys.stderr)
        return 130
    except (DataNotFound, DatabaseError, download.DownloadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI never ends in a bare traceback
        if args.debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (run again with --debug for details)", file=sys.stderr)
        return 1
