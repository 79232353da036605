"""One CLI for every pipeline stage: ``python -m pipeline <stage> [--data DIR] [--db PATH] [--quiet]``."""

from __future__ import annotations

import argparse
import errno
import getpass
import math
import secrets
import sys
import time
import traceback
from pathlib import Path

import duckdb

from db import embeddings as vector_store, reads, users
from db.database import Database, DatabaseError
from db.shared import pipeline_claim
from db import models as model_store
from pipeline import (bridge, demo_runner, download, embed, encoders, evaluate_retrieval, features, models, perceive,
                      project, relevance, rerank, search, targets, train)
from pipeline import ann_store, exchange
from pipeline.encoders.base import WeightsUnavailable
from pipeline.encoders.offline import Bridge as OfflineBridge, OfflineEncoder
from pipeline.ingest import IngestError, InvalidDatasetName, check_dataset_name, ingest_dataset
from pipeline.layouts import DataNotFound, discover, resolve_data_dir
from pipeline.minors import clip_check, image_layer, moderation
from pipeline.minors import filter as minors_filter
from pipeline.minors.detector import PeopleDetector
from pipeline.perception import PERCEIVER_ID
from pipeline.perception.weights import PerceptionWeightsError
from pipeline import report
from pipeline.report import ingest_summary

DEFAULT_DB = "studio.duckdb"
OPEN_WAIT_SECONDS = 60.0
STAGES_WITHOUT_DB = {"download", "add-user", "demo-check"}
DISK_FULL_ADVICE = ("; if the disk is full, free space and run again: what was stored before is intact (this "
                    "stage's unfinished transaction is rolled back)")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", help="data folder (default: $STUDIO_DATA, else ../shared/data)")
    common.add_argument("--db", type=_path_text, default=DEFAULT_DB, help=f"DuckDB file (default: {DEFAULT_DB})")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    common.add_argument("--wait", type=_seconds, default=OPEN_WAIT_SECONDS,
                        help="seconds to wait for the dashboard to let go of the database "
                             f"(default: {OPEN_WAIT_SECONDS:g})")
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    stages = parser.add_subparsers(dest="stage", required=True)
    ingest = stages.add_parser("ingest", parents=[common],
                               help="load every dataset found under --data, or an export folder (export --to)")
    ingest.add_argument("--name", help="dataset name (default: folder name); only for a single dataset")
    ingest.add_argument("--force", action="store_true", help="re-ingest even if the files are unchanged")
    rel = stages.add_parser("relevance", parents=[common], help="recompute the aggregated relevance target")
    rel.add_argument("--expert-weight", type=float, help="weight of the expert score (default 0.6)")
    rel.add_argument("--crowd-weight", type=float, help="weight of the crowd share (default 0.4)")
    rel.add_argument("--dataset", help="only this dataset (default: all)")
    stages.add_parser("status", parents=[common], help="datasets, counts and recent ingest runs")
    stages.add_parser("download", parents=[common], help="fetch the COCO photos a captions JSON lists (online only)")
    encoder = argparse.ArgumentParser(add_help=False)
    encoder.add_argument("--encoder", default=encoders.DEFAULT, choices=encoders.CHOICES,
                         help=f"encoder backend (default: {encoders.DEFAULT}: open_clip when its weights load, "
                              "else offline; it prints which and why)")
    encoder.add_argument("--model", help="open_clip model name (default $STUDIO_OPENCLIP_MODEL, else ViT-B-32)")
    encoder.add_argument("--pretrained", default="default",
                         help="open_clip pretrained tag or checkpoint path (default $STUDIO_OPENCLIP_CHECKPOINT, "
                              "else laion2b_s34b_b79k); 'none' for random weights")
    per = stages.add_parser("perceive", parents=[common],
                            help="objects, faces and ages in new or changed photos (COCO-80, YuNet, age model)")
    per.add_argument("--weights", type=_path_text,
                     help="folder of perception weights (default: $STUDIO_WEIGHTS, else ../shared/weights)")
    per.add_argument("--batch-size", type=_at_least(1), default=perceive.DEFAULT_BATCH,
                     help="photos per committed batch")
    per.add_argument("--threads", type=_at_least(1), default=2, help="ONNX Runtime threads per network (default 2)")
    emb = stages.add_parser("embed", parents=[common, encoder], help="vectors for new or changed photos")
    emb.add_argument("--batch-size", type=_at_least(1), default=32)
    emb.add_argument("--workers", type=_at_least(0), default=1,
                     help="photo decoding processes (default 1); with --engine ray: actors in the pool")
    _ray_options(emb, "embed-<encoder>")
    per.add_argument("--workers", type=_at_least(1), default=2, help="with --engine ray: actors in the pool")
    _ray_options(per, "perceive-<perceiver>")
    proj = stages.add_parser("project", parents=[common],
                             help="2-D map and clusters of the photo vectors, for the dashboard's Explore page")
    proj.add_argument("--encoder", help="map this encoder's vectors (default: every encoder with vectors)")
    proj.add_argument("--force", action="store_true", help="recompute even if the vectors are unchanged")
    fit = stages.add_parser("fit-bridge", parents=[common], help="fit the offline encoder's bridge and its objects' weight on captions")
    fit.add_argument("--dataset", help="fit on this dataset's captions only (default: all)")
    ev = stages.add_parser("evaluate-retrieval", parents=[common, encoder],
                           help="Recall@K / MRR / nDCG / mAP on COCO captions and categories")
    ev.add_argument("--dataset", default="coco-mini")
    ev.add_argument("--folds", type=_at_least(2), default=5, help="cross-fitting folds for the fitted bridge")
    find = stages.add_parser("search", parents=[common, encoder], help="top-K photos for a text query")
    find.add_argument("query")
    find.add_argument("-k", type=int, default=10)
    find.add_argument("--user", help="who is searching (recorded when a query is blocked)")
    find.add_argument("--rerank", action="store_true", help="re-order the top 100 with the chosen re-ranker")
    find.add_argument("--must-show", help="comma-separated COCO objects every result must show, e.g. dog,person")
    find.add_argument("--why", action="store_true",
                      help="say why each result matched: its detected objects and top ImageNet labels")
    tr = stages.add_parser("train", parents=[common], help="cross-validate and register relevance models")
    tr.add_argument("--models", default=",".join(models.MODEL_NAMES),
                    help=f"comma-separated (default: all): {', '.join(models.MODEL_NAMES)}")
    tr.add_argument("--targets", default="expert,category-pairs",
                    help=f"comma-separated targets (default: expert,category-pairs): {', '.join(targets.KINDS)}")
    tr.add_argument("--dataset", help="dataset of the target (default: the first that has its data)")
    tr.add_argument("--feature-sets", help=f"comma-separated (default: all the data allows): "
                                           f"{', '.join(features.FEATURE_SETS)}")
    tr.add_argument("--folds", type=_at_least(2), default=5)
    tr.add_argument("--include-feedback", action="store_true", help="reviewers' labels join the training pairs")
    tr.add_argument("--artifacts", help="folder for model files (default: models/ beside the database)")
    tr.add_argument("--threads", type=_at_least(1), default=2, help="worker processes for the forest, boosting and MLP fits, one thread each (default 2)")
    stages.add_parser("models", parents=[common], help="registered model runs and their metrics")
    use = stages.add_parser("use-reranker", parents=[common], help="choose the run that re-ranks search results")
    use.add_argument("run_id", help="a model run id, or 'none' to switch re-ranking off")
    use.add_argument("--by", required=True, type=_person, help="who chooses (recorded)")
    au = stages.add_parser("add-user", parents=[common], help="add or replace a dashboard user (users file)")
    au.add_argument("name", help="user name, or the e-mail an OIDC provider reports (with --oidc)")
    au.add_argument("--role", required=True, choices=users.ROLES)
    au.add_argument("--users", help="users file (default: $STUDIO_USERS, else users.json beside --db)")
    how = au.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    how.add_argument("--generate-password", action="store_true", help="make up a password and print it once")
    how.add_argument("--oidc", action="store_true", help="signs in through st.login (OIDC); no password")
    er = stages.add_parser("evaluate-rerank", parents=[common],
                           help="COCO Recall@1 with and without re-ranking by a run's model (refitted per fold)")
    er.add_argument("run_id", nargs="?", help="a category-pairs run (default: the chosen re-ranker)")
    clip = argparse.ArgumentParser(add_help=False)
    clip.add_argument("--clip-model", default=None, help="open_clip model for the image-side check (ViT-B-32)")
    clip.add_argument("--clip-pretrained", help="open_clip weights (tag or checkpoint path); enables the CLIP check")
    filt = stages.add_parser("filter", parents=[common, clip], help="minors filter: decide every photo")
    filt.add_argument("--detector", action="store_true",
                      help="let the OpenCV people detector clear uncaptioned photos where it finds nobody "
                           "(off by default: on COCO-mini it also cleared photos with people; see README)")
    filt.add_argument("--image-thresholds", type=_path_text, default=str(image_layer.THRESHOLDS_FILE),
                      help="calibrated thresholds of the image layer (default: the calibration shipped with the "
                           "project); photos without captions are cleared only where perception saw nobody")
    calp = stages.add_parser("calibrate-perception", parents=[common],
                             help="calibrate the minors image layer's person and face thresholds on labelled photos")
    calp.add_argument("--labels", required=True,
                      help="CSV image_id,child_under_16,people (people yes/no), e.g. tests/data/minors_labels.csv")
    calp.add_argument("--dataset", default="coco-mini")
    calp.add_argument("--out", type=_path_text, default=str(image_layer.THRESHOLDS_FILE),
                      help="thresholds file to write (default: the one the filter reads)")
    cal = stages.add_parser("calibrate-minors", parents=[common, clip],
                            help="calibrate the CLIP child-score threshold on hand-labelled photos")
    cal.add_argument("--labels", required=True,
                     help="CSV image_id,child_under_16 (yes/no/unsure); unsure counts as a child")
    cal.add_argument("--dataset", default="coco-mini")
    cal.add_argument("--target-recall", type=float, default=0.98)
    stages.add_parser("demo-stages", parents=[common],
                      help="the demo's stages after ingest, in one process holding the claim (./studio demo)")
    chk = stages.add_parser("demo-check", parents=[common],
                            help="may ./studio demo start? exit 0 yes, 3 no, 4 only open the dashboard")
    chk.add_argument("--port", type=_at_least(1), default=8501)
    mod = stages.add_parser("moderate", parents=[common], help="a moderator's decision on photos")
    mod.add_argument("image_ids", nargs="+")
    mod.add_argument("--status", required=True, choices=moderation.STATUSES)
    mod.add_argument("--moderator", required=True)
    mod.add_argument("--reason", required=True)
    idx = stages.add_parser("index", parents=[common],
                            help=f"save the search's FAISS index of encoders with over {ann_store.ANN_ABOVE:,} vectors "
                                 "(built, or brought up to date with new vectors)")
    idx.add_argument("--encoder", help="only this encoder id (default: every encoder with vectors)")
    exp = stages.add_parser("export", parents=[common], help="visible photos' vectors, labels, relevance and all "
                            "minors decisions as Hive-partitioned Parquet")
    exp.add_argument("--to", required=True, type=_path_text, help="target folder (must be empty unless --force)")
    exp.add_argument("--force", action="store_true", help="replace a non-empty target folder")
    return parser


def _ray_options(stage: argparse.ArgumentParser, shards: str) -> None:
    """--engine and the Ray engine's options (pipeline/ray_engine.py), shared by embed and perceive."""
    stage.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: in-process (default); ray: a Ray Data actor pool writing Parquet shards")
    stage.add_argument("--address", help="Ray cluster (ray://host:port or auto; default: start Ray locally)")
    stage.add_argument("--shards", help=f"folder or object-store URI of the shards (default: <db>.shards/{shards}, "
                                        "emptied once loaded)")
    stage.add_argument("--shard-size", type=_at_least(1), default=64, help="photos per shard (default 64)")
    stage.add_argument("--threads-per-worker", type=_at_least(1), default=1, help="threads per actor (default 1)")
    stage.add_argument("--gpus-per-worker", type=_gpus, default=0,
                       help="GPUs per actor (default 0; a fraction shares one; encoders with a GPU path only)")


def _ingest(args: argparse.Namespace) -> int:
    data_dir = resolve_data_dir(args.data)
    if exchange.is_export(data_dir):
        return _ingest_export(args, data_dir)
    found = discover(data_dir)
    if args.name is not None:
        check_dataset_name(args.name)  # before anything is opened: exit 2
    if args.name and len(found) > 1:
        raise DataNotFound(f"--name applies to one dataset, but {len(found)} were found: "
                           + ", ".join(p.name for p, _ in found))
    failed = 0
    with _open(args) as db:
        for root, reader in found:
            try:
                result = ingest_dataset(db, root, reader, name=args.name, force=args.force, quiet=args.quiet)
            except (IngestError, InvalidDatasetName) as exc:  # one bad dataset folder; the others still load
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            examples = [] if result.skipped else reads.first_rejects(db, result.dataset)
            print(ingest_summary(result, examples))
    return 1 if failed else 0


def _ingest_export(args: argparse.Namespace, folder: Path) -> int:
    with _open(args) as db:
        result = exchange.ingest_export(db, folder, quiet=args.quiet)
    print(f"ingest {folder} (export): {result.vectors:,} vectors loaded ({result.vectors_already_stored:,} already "
          f"stored), {result.labels:,} labels, {result.relevance:,} relevance pairs, {result.excluded:,} photos "
          f"excluded as the export decided, {result.cleared_not_applied:,} 'cleared' decisions not applied (this "
          f"studio's filter decides); {len(result.rejects):,} rejects (run {result.run_id})")
    for file, row, key, reason in result.rejects[:10]:
        print(f"  {file}" + (f" row {row}" if row else "") + (f" ({key})" if key else "") + f": {reason}")
    return 0


def _export(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as db:
        result = exchange.export(db, Path(args.to), force=args.force, quiet=args.quiet)
    counts = ", ".join(f"{table} {n:,}" for table, n in result.counts.items())
    print(f"export: {result.folder}: {counts}")
    return 0


def _relevance(args: argparse.Namespace) -> int:
    with _open(args) as db:
        rows = relevance.run(db, expert_weight=args.expert_weight, crowd_weight=args.crowd_weight,
                             dataset=args.dataset)
    print(f"relevance: {rows:,} pairs written")
    return 0


def _status(args: argparse.Namespace) -> int:
    if not Path(args.db).exists():
        print(f"{args.db}: no database yet; run `python -m pipeline ingest`")
        return 1
    with _open(args, read_only=True) as db:
        try:
            overview = reads.datasets_overview(db)
        except duckdb.CatalogException:  # created, but the first ingest was stopped before its tables existed
            print(f"{args.db}: no datasets yet; run `python -m pipeline ingest`")
            return 1
        print(overview.to_string(index=False))
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


def _encoder(args: argparse.Namespace, db: Database, *, searching: bool = False):
    """The encoder --encoder names; for ``auto`` the choice and its reason go to stderr (stdout stays the
    stage's result). A search needs the encoder the stored vectors were made with: when auto picks open_clip but
    the database has only the offline encoder's vectors, it searches those and says so."""
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    if args.encoder != encoders.AUTO:
        return bridge.load_for(db, args.encoder, model=args.model, pretrained=pretrained)
    choice = encoders.choose(lambda: bridge.load_for(db, "offline"), model=args.model, pretrained=pretrained)
    if searching and choice.backend == "openclip" and not vector_store.visible_vector_count(db, choice.encoder.id):
        offline = bridge.load_for(db, "offline")
        if vector_store.visible_vector_count(db, offline.id):
            print(f"encoder: offline (the database has no photo vectors of {choice.encoder.id}; "
                  "`python -m pipeline embed` adds them)", file=sys.stderr)
            return offline
    print(choice.line, file=sys.stderr)
    return choice.encoder


def _embed(args: argparse.Namespace) -> int:
    with _open(args) as db:
        encoder = _encoder(args, db)
        if args.engine == "ray":
            from pipeline import ray_engine

            try:
                distributed = ray_engine.embed_ray(
                    db, ray_engine.base_encoder(encoder), shards_uri=args.shards, shard_size=args.shard_size,
                    workers=max(args.workers, 1), threads=args.threads_per_worker, gpus=args.gpus_per_worker,
                    address=args.address, quiet=args.quiet)
            except ray_engine.RayUnavailable as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        report, fused = bridge.embed_current(db, encoder, batch_size=args.batch_size,
                                             workers=args.workers, quiet=args.quiet)
        if args.engine == "ray":
            report.embedded += distributed.embedded
            report.already_current -= distributed.embedded
    print(f"embed {report.encoder_id}: {report.embedded:,} encoded, {report.from_cached_features:,} from cached "
          f"features, {report.already_current:,} already current, {len(report.failed):,} failed, "
          f"{report.removed:,} stale removed; skipped photos: "
          + (", ".join(f"{n:,} {status}" for status, n in sorted(report.skipped.items())) or "none")
          + f" ({report.seconds:.1f}s)")
    for image_id, reason in report.failed[:10]:
        print(f"  {image_id}: {reason}")
    if fused:
        _print_fused(fused)
    with _open(args) as db:  # the vectors changed: a saved search index (above ANN_ABOVE) follows them now
        _index_encoders(db, [report.encoder_id] + ([fused.encoder_id] if fused else []), args.quiet)
    return 0


def _index(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as db:
        known = list(vector_store.encoders_with_vectors(db)["encoder_id"])
        if args.encoder is not None and args.encoder not in known:
            raise ValueError(f"no vectors of encoder {args.encoder!r}; encoders with vectors: "
                             + (", ".join(known) or "none (run `python -m pipeline embed`)"))
        _index_encoders(db, [args.encoder] if args.encoder else known, args.quiet, say_small=True)
    return 0


def _index_encoders(db: Database, encoder_ids: list[str], quiet: bool, say_small: bool = False) -> None:
    for encoder_id in dict.fromkeys(encoder_ids):
        started = time.perf_counter()
        index = ann_store.ensure(db, encoder_id, quiet=quiet, log=lambda line: print(line, file=sys.stderr))
        if index is None:
            if say_small:
                print(f"index {encoder_id}: {vector_store.embedded_count(db, encoder_id):,} vectors, at most "
                      f"{ann_store.ANN_ABOVE:,}: the search's exact index is built in memory, nothing to save")
            continue
        print(f"index {encoder_id}: {len(index):,} vectors in {index.folder} ({time.perf_counter() - started:.1f}s)")
        index.close()


def _print_fused(fused: bridge.FusionReport) -> None:
    print(f"embed {fused.encoder_id}: {fused.fused:,} photos given their objects, {fused.removed:,} stale removed")
    if fused.not_perceived:
        print(f"  {fused.not_perceived:,} photo(s) not perceived by {fused.perceiver} yet: their vectors use ImageNet "
              "labels only until `python -m pipeline perceive` and `embed` run")


def _project(args: argparse.Namespace) -> int:
    with _open(args) as db:
        for encoder_id in project.encoders_to_project(db, args.encoder):
            result = project.project(db, encoder_id, force=args.force, quiet=args.quiet)
            what = "already current (vectors unchanged; --force recomputes)" if result.already_current else \
                f"{result.photos:,} photos mapped"
            print(f"project {encoder_id}: {what}; fitted on {result.fitted_on:,}, {result.clusters} clusters, "
                  f"axes keep {result.explained:.0%} of the variance ({result.seconds:.1f}s)")
    return 0


def _perceive(args: argparse.Namespace) -> int:
    perceiver = perceive.Perceiver(args.weights, threads=args.threads)  # weights checked before the database opens
    with _open(args) as db:
        distributed = None
        if args.engine == "ray":
            from pipeline import ray_engine

            try:
                distributed = ray_engine.perceive_ray(
                    db, args.weights, shards_uri=args.shards, shard_size=args.shard_size, workers=args.workers,
                    threads=args.threads_per_worker, gpus=args.gpus_per_worker, address=args.address,
                    quiet=args.quiet)
            except ray_engine.RayUnavailable as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        report = perceive.perceive(db, perceiver, batch_size=args.batch_size, quiet=args.quiet)  # what is left
        if distributed is not None:
            report.perceived += distributed.perceived
            report.objects += distributed.objects
            report.faces += distributed.faces
            report.aged_faces += distributed.aged_faces
            report.already_current -= distributed.perceived
    print(f"perceive {report.perceiver}: {report.perceived:,} photos perceived ({report.objects:,} objects, "
          f"{report.faces:,} faces, {report.aged_faces:,} with an age), {report.already_current:,} already current, "
          f"{len(report.failed):,} failed, {report.removed:,} stale removed ({report.seconds:.1f}s)")
    for image_id, reason in report.failed[:10]:
        print(f"  {image_id}: {reason}")
    return 0


def _fit_bridge(args: argparse.Namespace) -> int:
    with _open(args) as db:
        fitted = bridge.fit(db, dataset=args.dataset, quiet=args.quiet)
    trained, report = fitted.bridge, fitted.report
    print(f"bridge {trained.id}: fitted on {trained.fitted_on['photos']:,} photos / "
          f"{trained.fitted_on['captions']:,} captions; {report.from_cached_features:,} photos re-projected "
          f"as {report.encoder_id}")
    chosen = fitted.objects.chosen_by
    if "mean_mrr_by_weight" in chosen:
        print(f"objects {fitted.objects.id}: weight {fitted.objects.weight:g}, chosen by {chosen['cross_fit_folds']}-"
              f"fold cross-fit on captions (mean MRR by weight: {chosen['mean_mrr_by_weight']}); "
              f"{chosen['photos_with_objects']:,} of {chosen['photos']:,} captioned photos have objects")
    else:
        print(f"objects {fitted.objects.id}: default weight {fitted.objects.weight:g} ({chosen['not_chosen']}: "
              "run `python -m pipeline perceive`, then fit-bridge again)")
    _print_fused(fitted.fused)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    with _open(args) as db:
        encoder = _encoder(args, db)
        if isinstance(encoder, OfflineEncoder):
            results = evaluate_retrieval.evaluate_offline(db, encoder, dataset=args.dataset, folds=args.folds,
                                                          quiet=args.quiet)
        else:
            results = evaluate_retrieval.evaluate(db, encoder, dataset=args.dataset, quiet=args.quiet)
    for result in results:
        figures = ", ".join(f"{name} {value:.3f}" for name, value in result.metrics.items())
        print(f"{result.protocol:<21} {result.encoder}: {figures} "
              f"({result.details['queries']:,} queries, {result.details['photos']:,} photos)")
    if any(r.details.get("photos_perceived") == 0 for r in results):
        print(f"note: no photo of {args.dataset} is perceived by {PERCEIVER_ID}: the '+obj' and '+objects' rows are "
              "the bridge alone; run `python -m pipeline perceive` first")
    return 0


def _search(args: argparse.Namespace) -> int:
    # Read-write where it can, so a blocked query is logged; on read-only storage it still searches.
    with _open(args, read_only=args.read_only_storage) as db:
        encoder = _encoder(args, db, searching=True)
        run_id = model_store.reranker(db) if args.rerank else None
        if args.rerank and not run_id:
            raise ValueError("--rerank: no re-ranker chosen; run `python -m pipeline use-reranker RUN_ID --by NAME`")
        reranker = rerank.Reranker(db, run_id, encoder) if run_id else None
        log_blocked = _cannot_log_blocked if db.read_only else None
        result = search.Searcher(db, encoder, reranker, log_blocked=log_blocked).search(
            args.query, k=args.k, user=args.user, rerank=args.rerank, must_show=_split(args.must_show) or ())
        why = search.explain(db, encoder, [hit.image_id for hit in result.hits]) if args.why else {}
    if result.legal_notice:
        print(result.legal_notice)
        return 3
    for notice in result.notices:
        print(f"note: {notice}")
    for hit in result.hits:
        print(f"{hit.rank:>4}  {hit.score:.3f}  {hit.image_id}" + (f"  ({why[hit.image_id].text()})" if why else ""))
    return 0


def _cannot_log_blocked(query: str, verdict: object, user: str | None) -> None:
    print(f"warning: the database is on read-only storage, so this blocked query was not logged: {query!r}",
          file=sys.stderr)


def _clip_encoder(args: argparse.Namespace):
    pretrained = None if args.clip_pretrained.lower() == "none" else args.clip_pretrained
    return encoders.load_encoder("openclip", model=args.clip_model, pretrained=pretrained)


def _filter(args: argparse.Namespace) -> int:
    detector = PeopleDetector() if args.detector else None
    try:
        image = image_layer.load(Path(args.image_thresholds), PERCEIVER_ID)
    except image_layer.ThresholdsError as exc:  # fail closed: photos without captions stay pending
        image = None
        print(f"warning: image layer off, photos without captions stay pending: {exc}", file=sys.stderr)
    with _open(args) as db:
        clip = clip_check.stored_check(db, _clip_encoder(args)) if args.clip_pretrained else None
        report = minors_filter.run_filter(db, detector=detector, clip=clip, image=image, quiet=args.quiet)
    statuses = ", ".join(f"{n:,} {status}" for status, n in sorted(report.statuses.items()))
    rules = ", ".join(f"{rule} {n:,}" for rule, n in report.rules.most_common())
    print(f"filter {report.version}: {statuses}; {report.moderated_kept:,} moderator decisions kept, "
          f"{report.moderated_superseded:,} decided again (photo replaced since)\n  rules: {rules}")
    return 0


def _calibrate_minors(args: argparse.Namespace) -> int:
    if not args.clip_pretrained:
        raise ValueError("calibrate-minors needs --clip-pretrained (CLIP weights: a tag or a checkpoint path)")
    labels = _minors_labels(Path(args.labels), args.dataset)
    with _open(args) as db:
        result = clip_check.calibrate_on_labels(db, _clip_encoder(args), labels, args.target_recall, quiet=args.quiet)
    print(f"calibrate-minors: threshold {result['threshold']:.4f} catches {result['recall']:.1%} of "
          f"{result['positives']} labelled children (target {args.target_recall:.0%}) and sends "
          f"{result['review_share']:.1%} of {result['photos']} photos to review")
    return 0


def _calibrate_perception(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as db:
        result = image_layer.calibrate_on_labels(db, Path(args.labels), args.dataset, PERCEIVER_ID, Path(args.out))
    figures = result["figures"]
    print(f"calibrate-perception {result['id']}: person {result['person']:.4f}, face {result['face']:.4f} "
          f"({result['labelled_photos'] - result['labelled_photos_not_perceived']} perceived labelled photos, "
          f"{figures['photos_with_people']} with people) -> {args.out}")
    for name in ("at_thresholds", "at_twice"):
        at = figures[name]
        print(f"  {name.replace('_', ' ')}: recall on photos with people {at['recall_people']:.3f}, "
              f"{at['nobody_cleared']} of {at['nobody_photos']} photos with nobody cleared"
              + (f", missed: {', '.join(at['people_missed'])}" if at["people_missed"] else ""))
    return 0


def _minors_labels(path: Path, dataset: str) -> dict[str, bool]:
    """image id -> shows a child (yes or unsure), from a CSV with the columns image_id and child_under_16."""
    labels, _ = image_layer.read_labels(path, dataset, ("image_id", "child_under_16"))
    return {image_id: row["child_under_16"] != "no" for image_id, row in labels.items()}


def _moderate(args: argparse.Namespace) -> int:
    with _open(args) as db:
        changed = moderation.decide(db, args.image_ids, args.status, moderator=args.moderator, reason=args.reason)
    print(f"moderate: {changed} photo(s) set to {args.status} by {args.moderator}")
    return 0


def _train_encoder(db: Database):
    """Relevance models use the offline encoder's zero-shot photo vectors: the fitted bridge learned from
    COCO captions, which would leak the category-pairs target's captions into the photo features."""
    return bridge.current_offline_encoder(db).with_bridge(OfflineBridge())


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _train(args: argparse.Namespace) -> int:
    model_names, kinds = _split(args.models), _split(args.targets)
    models.check_names(model_names)
    unknown = [kind for kind in kinds if kind not in targets.KINDS]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(unknown)}; choose from: {', '.join(targets.KINDS)}")
    sets = _split(args.feature_sets)
    for name in sets or []:
        features.feature_set(name)
    started = time.perf_counter()
    with _open(args) as db:
        encoder = _train_encoder(db)
        embed.embed(db, encoder, quiet=args.quiet)
        prepared = [train.prepare(db, encoder, target=kind, dataset=args.dataset, feature_set_names=sets,
                                  folds=args.folds, include_feedback=args.include_feedback) for kind in kinds]
        for one in prepared:
            summaries = train.train(db, encoder, one, model_names, threads=args.threads, quiet=args.quiet,
                                    artifacts=Path(args.artifacts) if args.artifacts else None)
            print(report.model_table(summaries))
            if one.feedback_pairs:
                print(report.feedback_effect(db, one, summaries))
    print(f"train: all models trained in {time.perf_counter() - started:.1f}s")
    return 0


def _models(args: argparse.Namespace) -> int:
    with _open(args, read_only=True) as db:
        runs = model_store.runs(db)
        chosen = model_store.reranker(db)
    if runs.empty:
        print("no model runs yet; run `python -m pipeline train`")
        return 1
    print(report.runs_table(runs, chosen))
    return 0


def _use_reranker(args: argparse.Namespace) -> int:
    run_id = None if args.run_id.lower() == "none" else args.run_id
    with _open(args) as db:
        if run_id:
            rerank.Reranker(db, run_id, bridge.current_offline_encoder(db))  # refuses unusable runs
        with db.write() as cur:
            model_store.set_reranker(cur, run_id, args.by)
    print(f"use-reranker: {run_id or 'off'} (chosen by {args.by})")
    return 0


def _add_user(args: argparse.Namespace) -> int:
    path = Path(args.users) if args.users else users.users_path(args.db)
    if args.oidc:
        password = None
    elif args.generate_password:
        password = secrets.token_urlsafe(12)
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
    name = users.add(path, args.name, args.role, password)
    shown = f" with password {password}" if args.generate_password else ""
    print(f"add-user: {name} ({args.role}) in {path}{shown}")
    return 0


def _demo_stages(args: argparse.Namespace) -> int:
    return demo_runner.run(args.db, run_claimed_stage)


def _demo_check(args: argparse.Namespace) -> int:
    """Whether `./studio demo` may start here; the exit code says what to do (demo_runner.check_second_demo)."""
    code, message = demo_runner.check_second_demo(args.db, args.port)
    if message:
        print(f"studio: {message}", file=sys.stderr)
    return code


def _evaluate_rerank(args: argparse.Namespace) -> int:
    with _open(args) as db:
        run_id = args.run_id or model_store.reranker(db)
        if not run_id:
            raise ValueError("evaluate-rerank: name a run, or choose one with `python -m pipeline use-reranker`")
        result = rerank.evaluate(db, _train_encoder(db), run_id)
    print(f"evaluate-rerank {run_id}: {result.queries:,} captions, mean gallery {result.mean_gallery:.1f} photos "
          f"(held-out fold)")
    for name in ("recall@1", "recall@5", "mrr"):
        print(f"  {name:<9} encoder {result.before[name]:.3f} -> re-ranked {result.after[name]:.3f}")
    return 0


STAGES = {"ingest": _ingest, "relevance": _relevance, "status": _status, "download": _download,
          "filter": _filter, "calibrate-minors": _calibrate_minors, "calibrate-perception": _calibrate_perception,
          "moderate": _moderate, "embed": _embed, "project": _project,
          "perceive": _perceive,
          "fit-bridge": _fit_bridge, "evaluate-retrieval": _evaluate, "search": _search,
          "train": _train, "models": _models, "use-reranker": _use_reranker, "evaluate-rerank": _evaluate_rerank,
          "add-user": _add_user, "demo-stages": _demo_stages, "demo-check": _demo_check,
          "export": _export, "index": _index}


# Stages that only read: on read-only storage (where no claim can be written) they open the file read-only.
READING_STAGES = {"status", "models", "search"}


def _at_least(minimum: int):
    """argparse type: a whole number >= ``minimum``."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: give {minimum} or more")
        return value
    return whole


def _path_text(text: str) -> str:
    """argparse type: a path that is valid text (DuckDB cannot open a name holding bytes that are not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8; "
                                         "rename the file or folder") from None
    return text


def _person(text: str) -> str:
    """argparse type: a person's name as the users file and the audit trail keep it (db/users.py)."""
    try:
        return users.check_name(text)
    except users.UsersError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative(unit: str):
    """argparse type: a finite number of ``unit``, 0 or more (seconds to wait; GPUs per Ray actor, where 0.5 lets
    two actors share one)."""
    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number of {unit}, 0 or more")
        return value
    return number


_seconds = _non_negative("seconds")
_gpus = _non_negative("GPUs")


def _open(args: argparse.Namespace, *, read_only: bool = False) -> Database:
    """The stage's database, waiting up to --wait seconds for another process (the dashboard) to let go."""
    return Database(args.db, read_only=read_only, wait_seconds=args.wait)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return _reporting_errors(args, lambda: _claimed(args))


def _claimed(args: argparse.Namespace) -> int:
    if args.stage in STAGES_WITHOUT_DB:
        return STAGES[args.stage](args)
    # The claim tells a running dashboard to let go of the file and queue its writes, and keeps a second
    # stage out until this one ends (db/shared.py).
    with pipeline_claim(args.db, args.stage, wait_seconds=args.wait,
                        optional=args.stage in READING_STAGES) as claimed:
        args.read_only_storage = not claimed
        return STAGES[args.stage](args)


def run_claimed_stage(argv: list[str]) -> int:
    """A stage inside the claim this process already holds (the demo runner's stages), errors reported as by
    :func:`main`."""
    args = _parser().parse_args(argv)
    args.read_only_storage = False
    return _reporting_errors(args, lambda: STAGES[args.stage](args))


def _reporting_errors(args: argparse.Namespace, call) -> int:
    """Run ``call``; every failure becomes one `error:` line and an exit code, never a bare traceback."""
    try:
        return call()
    except KeyboardInterrupt:
        print("interrupted: the running transaction was rolled back; the database is as it was", file=sys.stderr)
        return 130
    except (DataNotFound, DatabaseError, download.DownloadError, WeightsUnavailable, PerceptionWeightsError,
            search.NoVectors, evaluate_retrieval.EvaluationError, moderation.ModerationError, rerank.RerankError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a folder where a file should be: the OS's words, with the file
        where = f"{exc.filename}: " if exc.filename else ""
        advice = DISK_FULL_ADVICE if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
        print(f"error: {where}{exc.strerror or exc}{advice}", file=sys.stderr)
        return 1
    except (duckdb.IOException, duckdb.FatalException) as exc:  # the database file could not be written
        print(f"error: {args.db}: the database could not be written ({str(exc).splitlines()[0]}){DISK_FULL_ADVICE}",
              file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI never ends in a bare traceback
        if args.debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {exc} (run again with --debug for details)", file=sys.stderr)
        return 1
