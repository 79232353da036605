"""One CLI for every pipeline stage: ``python -m pipeline <stage> [--data DIR] [--db PATH] [--quiet]``."""

from __future__ import annotations

import argparse
import csv
import sys
import traceback
from pathlib import Path

from db import reads
from db.database import Database, DatabaseError
from pipeline import bridge, download, embed, encoders, evaluate_retrieval, relevance, search
from pipeline.encoders.base import WeightsUnavailable
from pipeline.encoders.offline import Bridge as OfflineBridge
from pipeline.ingest import IngestError, ingest_dataset
from pipeline.layouts import DataNotFound, discover, resolve_data_dir
from pipeline.minors import clip_check, moderation
from pipeline.minors import filter as minors_filter
from pipeline.minors.detector import PeopleDetector
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
    encoder = argparse.ArgumentParser(add_help=False)
    encoder.add_argument("--encoder", default=encoders.DEFAULT, choices=encoders.BACKENDS,
                         help=f"encoder backend (default: {encoders.DEFAULT})")
    encoder.add_argument("--model", help="open_clip model name (default ViT-B-32)")
    encoder.add_argument("--pretrained", default="default",
                         help="open_clip pretrained tag or checkpoint path; 'none' for random weights")
    emb = stages.add_parser("embed", parents=[common, encoder], help="vectors for new or changed photos")
    emb.add_argument("--batch-size", type=int, default=32)
    emb.add_argument("--workers", type=int, default=1, help="photo decoding processes (default 1)")
    fit = stages.add_parser("fit-bridge", parents=[common], help="fit the offline encoder's bridge on captions")
    fit.add_argument("--dataset", help="fit on this dataset's captions only (default: all)")
    ev = stages.add_parser("evaluate-retrieval", parents=[common, encoder],
                           help="Recall@K / MRR / nDCG / mAP on COCO captions and categories")
    ev.add_argument("--dataset", default="coco-mini")
    ev.add_argument("--folds", type=int, default=5, help="cross-fitting folds for the fitted bridge")
    find = stages.add_parser("search", parents=[common, encoder], help="top-K photos for a text query")
    find.add_argument("query")
    find.add_argument("-k", type=int, default=10)
    find.add_argument("--user", help="who is searching (recorded when a query is blocked)")
    clip = argparse.ArgumentParser(add_help=False)
    clip.add_argument("--clip-model", default=None, help="open_clip model for the image-side check (ViT-B-32)")
    clip.add_argument("--clip-pretrained", help="open_clip weights (tag or checkpoint path); enables the CLIP check")
    filt = stages.add_parser("filter", parents=[common, clip], help="minors filter: decide every photo")
    filt.add_argument("--detector", action="store_true",
                      help="let the OpenCV people detector clear uncaptioned photos where it finds nobody "
                           "(off by default: on COCO-mini it also cleared photos with people; see README)")
    cal = stages.add_parser("calibrate-minors", parents=[common, clip],
                            help="calibrate the CLIP child-score threshold on hand-labelled photos")
    cal.add_argument("--labels", default="tests/data/minors_labels.csv",
                     help="CSV image_id,child_under_16 (yes/no/unsure); unsure counts as a child")
    cal.add_argument("--dataset", default="coco-mini")
    cal.add_argument("--target-recall", type=float, default=0.98)
    mod = stages.add_parser("moderate", parents=[common], help="a moderator's decision on photos")
    mod.add_argument("image_ids", nargs="+")
    mod.add_argument("--status", required=True, choices=moderation.STATUSES)
    mod.add_argument("--moderator", required=True)
    mod.add_argument("--reason", required=True)
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


def _encoder(args: argparse.Namespace, db: Database):
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    return bridge.load_for(db, args.encoder, model=args.model, pretrained=pretrained)


def _embed(args: argparse.Namespace) -> int:
    with Database(args.db) as db:
        report = embed.embed(db, _encoder(args, db), batch_size=args.batch_size, workers=args.workers,
                             quiet=args.quiet)
    print(f"embed {report.encoder_id}: {report.embedded:,} encoded, {report.from_cached_features:,} from cached "
          f"features, {report.already_current:,} already current, {len(report.failed):,} failed, "
          f"{report.removed:,} stale removed; skipped photos: "
          + (", ".join(f"{n:,} {status}" for status, n in sorted(report.skipped.items())) or "none")
          + f" ({report.seconds:.1f}s)")
    for image_id, reason in report.failed[:10]:
        print(f"  {image_id}: {reason}")
    return 0


def _fit_bridge(args: argparse.Namespace) -> int:
    with Database(args.db) as db:
        fitted, report = bridge.fit(db, dataset=args.dataset, quiet=args.quiet)
    print(f"bridge {fitted.id}: fitted on {fitted.fitted_on['photos']:,} photos / "
          f"{fitted.fitted_on['captions']:,} captions; {report.from_cached_features:,} photos re-projected "
          f"as {report.encoder_id}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    with Database(args.db) as db:
        encoder = _encoder(args, db)
        if args.encoder == "offline":
            zero_shot = encoder.with_bridge(OfflineBridge())
            results = evaluate_retrieval.evaluate(db, zero_shot, dataset=args.dataset, quiet=args.quiet)
            results += evaluate_retrieval.evaluate(db, zero_shot, dataset=args.dataset, folds=args.folds,
                                                   cross_fit=True, quiet=args.quiet)
        else:
            results = evaluate_retrieval.evaluate(db, encoder, dataset=args.dataset, quiet=args.quiet)
    for result in results:
        figures = ", ".join(f"{name} {value:.3f}" for name, value in result.metrics.items())
        print(f"{result.protocol:<14} {result.encoder}: {figures} "
              f"({result.details['queries']:,} queries, {result.details['photos']:,} photos)")
    return 0


def _search(args: argparse.Namespace) -> int:
    with Database(args.db) as db:  # read-write: a blocked query is logged
        result = search.Searcher(db, _encoder(args, db)).search(args.query, k=args.k, user=args.user)
    if result.legal_notice:
        print(result.legal_notice)
        return 3
    for notice in result.notices:
        print(f"note: {notice}")
    for hit in result.hits:
        print(f"{hit.rank:>4}  {hit.score:.3f}  {hit.image_id}")
    return 0


def _clip_encoder(args: argparse.Namespace):
    pretrained = None if args.clip_pretrained.lower() == "none" else args.clip_pretrained
    return encoders.load_encoder("openclip", model=args.clip_model, pretrained=pretrained)


def _filter(args: argparse.Namespace) -> int:
    detector = PeopleDetector() if args.detector else None
    with Database(args.db) as db:
        clip = clip_check.stored_check(db, _clip_encoder(args)) if args.clip_pretrained else None
        report = minors_filter.run_filter(db, detector=detector, clip=clip, quiet=args.quiet)
    statuses = ", ".join(f"{n:,} {status}" for status, n in sorted(report.statuses.items()))
    rules = ", ".join(f"{rule} {n:,}" for rule, n in report.rules.most_common())
    print(f"filter {report.version}: {statuses}; {report.moderated_kept:,} moderator decisions kept, "
          f"{report.moderated_superseded:,} decided again (photo replaced since)\n  rules: {rules}")
    return 0


def _calibrate_minors(args: argparse.Namespace) -> int:
    if not args.clip_pretrained:
        raise ValueError("calibrate-minors needs --clip-pretrained (CLIP weights: a tag or a checkpoint path)")
    with open(args.labels, newline="") as handle:
        labels = {f"{args.dataset}/{row['image_id']}": row["child_under_16"] != "no" for row in csv.DictReader(handle)}
    with Database(args.db) as db:
        result = clip_check.calibrate_on_labels(db, _clip_encoder(args), labels, args.target_recall, quiet=args.quiet)
    print(f"calibrate-minors: threshold {result['threshold']:.4f} catches {result['recall']:.1%} of "
          f"{result['positives']} labelled children (target {args.target_recall:.0%}) and sends "
          f"{result['review_share']:.1%} of {result['photos']} photos to review")
    return 0


def _moderate(args: argparse.Namespace) -> int:
    with Database(args.db) as db:
        changed = moderation.decide(db, args.image_ids, args.status, moderator=args.moderator, reason=args.reason)
    print(f"moderate: {changed} photo(s) set to {args.status} by {args.moderator}")
    return 0


STAGES = {"ingest": _ingest, "relevance": _relevance, "status": _status, "download": _download,
          "filter": _filter, "calibrate-minors": _calibrate_minors, "moderate": _moderate, "embed": _embed,
          "fit-bridge": _fit_bridge, "evaluate-retrieval": _evaluate, "search": _search}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return STAGES[args.stage](args)
    except KeyboardInterrupt:
        print("interrupted: the running transaction was rolled back; the database is as it was", file=sys.stderr)
        return 130
    except (DataNotFound, DatabaseError, download.DownloadError, WeightsUnavailable, search.NoVectors,
            evaluate_retrieval.EvaluationError, moderation.ModerationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the CLI never ends in a bare traceback
        if args.debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (run again with --debug for details)", file=sys.stderr)
        return 1
