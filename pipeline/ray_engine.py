"""Ray Data engine of the embed and perceive stages, in the style of clip-retrieval: a reader (the driver reads the
photos to do from DuckDB and splits them into a deterministic plan of numbered shards), a mapper (an actor pool,
each actor holding the encoder or the perceivers built once, reading photos through pipeline/photos.open_verified)
and a writer (one Parquet file per shard, written atomically to a folder or an object-store URI). The driver then
loads the shards (db/shards.load_vector_files; :func:`load_perceived_shard`): actors never open DuckDB, so the
database keeps one writing process, and a shard the plan has but the directory lacks (a killed worker) is redone."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch

from db import embeddings as store, perception
from db.database import Database
from db.shards import load_vector_files
from pipeline import photos
from pipeline.embed import EmbedReport
from pipeline.perceive import PerceiveReport, Perceiver, decode, perceived_row
from pipeline.encoders.base import Encoder
from pipeline.progress import bar


class RayUnavailable(RuntimeError):
    """The Ray cluster named by --address cannot be reached."""


@dataclass(frozen=True)
class Shard:
    name: str
    image_ids: list[str]
    paths: list[str]
    shas: list[str]


# ------------------------------------------------------------------------------------------------------ reader
def plan_shards(todo: pd.DataFrame, size: int) -> list[Shard]:
    """Numbered shards of ``size`` photos in id order; the name carries a hash of the ids so the same todo gives
    the same shards, and a shard left from another todo is never taken for one of this plan."""
    todo = todo.sort_values("image_id")
    shards = []
    for number, start in enumerate(range(0, len(todo), size)):
        part = todo.iloc[start : start + size]
        ids = part["image_id"].tolist()
        digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:12]
        shards.append(Shard(f"{number:05d}-{digest}.parquet", ids, part["path"].tolist(), part["sha256"].tolist()))
    return shards


# ------------------------------------------------------------------------------------------------------ writer
def open_directory(uri: str) -> tuple[pafs.FileSystem, str]:
    """A folder path or object-store URI -> (filesystem, base path), the folder created."""
    filesystem, base = pafs.FileSystem.from_uri(uri if "://" in uri else str(Path(uri).resolve()))
    filesystem.create_dir(base, recursive=True)
    return filesystem, base


def write_shard(uri: str, name: str, table: pa.Table) -> None:
    """Write under a temporary name, then rename: a reader never sees half a shard."""
    filesystem, base = open_directory(uri)
    temporary = f"{base}/.{name}.{uuid.uuid4().hex}.tmp"
    pq.write_table(table, temporary, filesystem=filesystem)
    filesystem.move(temporary, f"{base}/{name}")


def existing_shards(uri: str) -> set[str]:
    filesystem, base = open_directory(uri)
    infos = filesystem.get_file_info(pafs.FileSelector(base))
    return {Path(i.path).name for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")}


# ------------------------------------------------------------------------------------------------------ mapper
def encode_shard(encoder: Encoder, shard: Shard) -> tuple[pa.Table, list[tuple[str, str]]]:
    """What the in-process stage stores for these photos (vectors, and features when the encoder caches them),
    as a table; photos that fail are returned with their reason."""
    good, tensors, failed = [], [], []
    for index, (path, sha) in enumerate(zip(shard.paths, shard.shas)):
        try:
            tensors.append(encoder.preprocess(photos.open_verified(path, sha, encoder.draft_side)))
            good.append(index)
        except photos.PhotoUnavailable as exc:
            failed.append((shard.image_ids[index], str(exc)))
        except Exception as exc:  # noqa: BLE001 - any preprocessing failure is that photo's problem only
            failed.append((shard.image_ids[index], f"cannot preprocess: {exc}"))
    columns: dict[str, pa.Array] = {"image_id": pa.array([shard.image_ids[i] for i in good], pa.string()),
                                    "sha256": pa.array([shard.shas[i] for i in good], pa.string()),
                                    "encoder_id": pa.array([encoder.id] * len(good), pa.string())}
    if good:
        features = encoder.extract(torch.utils.data.default_collate(tensors))  # as embed's loader: views
        columns["vector"] = store.vectors_to_arrow(encoder.project(features))
        if encoder.feature_id != encoder.id:
            columns["feature_id"] = pa.array([encoder.feature_id] * len(good), pa.string())
            columns["features"] = store.vectors_to_arrow(np.asarray(features, dtype=np.float32))
    else:
        columns["vector"] = pa.array([], pa.list_(pa.float32()))
    return pa.table(columns), failed


class ShardMapper:
    """One actor of the pool: its model is built once; each batch is shards, each written as one Parquet file.
    Subclasses say how a shard is worked (:meth:`work`)."""

    uri: str

    def work(self, shard: Shard) -> tuple[pa.Table, list[tuple[str, str]]]:
        raise NotImplementedError

    def __call__(self, batch: dict) -> dict:
        names, photos_done, failures = [], [], []
        for name, ids, paths, shas in zip(batch["name"], batch["image_ids"], batch["paths"], batch["shas"]):
            shard = Shard(str(name), list(ids), list(paths), list(shas))
            table, failed = self.work(shard)
            write_shard(self.uri, shard.name, table)
            names.append(shard.name)
            photos_done.append(len(ids))
            failures.append("\n".join(f"{i}\t{reason}" for i, reason in failed))
        return {"name": names, "photos": photos_done, "failures": failures}


class EmbedMapper(ShardMapper):
    """The encoder arrives once, pickled, and moves to the GPU when Ray gave this actor one."""

    def __init__(self, encoder: Encoder, uri: str, threads: int) -> None:
        torch.set_num_threads(threads)
        if torch.cuda.is_available() and hasattr(encoder, "to"):
            encoder.to("cuda")
        self.encoder, self.uri = encoder, uri

    def work(self, shard: Shard) -> tuple[pa.Table, list[tuple[str, str]]]:
        return encode_shard(self.encoder, shard)


class PerceiveMapper(ShardMapper):
    """The three perception networks, found and checked (sha256) by the actor itself from the weights folder:
    ONNX Runtime sessions do not travel, and a worker must not run weights it has not checked."""

    def __init__(self, weights: str | None, uri: str, threads: int) -> None:
        self.perceiver, self.uri = Perceiver(weights, threads=threads), uri

    def work(self, shard: Shard) -> tuple[pa.Table, list[tuple[str, str]]]:
        return perceive_shard(self.perceiver, shard)


def perceive_shard(perceiver: Perceiver, shard: Shard) -> tuple[pa.Table, list[tuple[str, str]]]:
    """What the perceivers saw in these photos, as in pipeline/perceive.py, in the pixels they were decoded at
    (``seen_width``: the driver scales boxes to the photo's stored size when it loads the shard); detections as
    JSON records, one string per photo."""
    rows, failed = [], []
    for image_id, path, sha in zip(shard.image_ids, shard.paths, shard.shas):
        pixels = decode(path, sha)
        if isinstance(pixels, str):
            failed.append((image_id, pixels))
            continue
        began = time.perf_counter()
        seen = perceiver.see(pixels)
        rows.append({"image_id": image_id, "sha256": sha, "perceiver": perceiver.id, "seen_width": seen.width,
                     "seconds": time.perf_counter() - began,
                     "detections": seen.detections.to_json(orient="records", double_precision=15)})
    schema = pa.schema([("image_id", pa.string()), ("sha256", pa.string()), ("perceiver", pa.string()),
                        ("seen_width", pa.int64()), ("seconds", pa.float64()), ("detections", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema), failed


# ------------------------------------------------------------------------------------------------------ runner
def _check_reachable(address: str, seconds: float = 3.0) -> None:
    """ray.init waits ~60 s on an address nobody answers; a plain TCP connect says so within seconds."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except (OSError, ValueError) as exc:
        raise RayUnavailable(f"cannot reach Ray at {address}: {exc}") from exc


def start_ray(address: str | None, cpus: int) -> None:
    """Embedded local Ray without an address; a cluster otherwise, refused within seconds when unreachable."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import ray

    if ray.is_initialized():
        return
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, include_dashboard=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=cpus, object_store_memory=200 * 2**20, include_dashboard=False,
                     log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise RayUnavailable(f"cannot reach Ray at {address}: {exc}") from exc


def run_plan(shards: list[Shard], mapper: type[ShardMapper], arguments: dict, *, desc: str, workers: int,
             threads: int, gpus: float, quiet: bool) -> list[tuple[str, str]]:
    """Work every shard of the plan through a pool of ``mapper(**arguments)`` actors, each writing its shards;
    returns the failed photos."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    items = [{"name": s.name, "image_ids": s.image_ids, "paths": s.paths, "shas": s.shas} for s in shards]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        mapper, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads,
        num_gpus=gpus or None, fn_constructor_kwargs=arguments,
        max_restarts=-1, max_task_retries=-1)
    failed: list[tuple[str, str]] = []
    with bar(total=sum(len(s.image_ids) for s in shards), desc=desc, unit="photo", disable=quiet) as progress:
        for row in dataset.iter_rows():
            failed.extend(tuple(line.split("\t", 1)) for line in row["failures"].splitlines())
            progress.update(int(row["photos"]))
    return failed


def base_encoder(encoder: Encoder) -> Encoder:
    """The encoder whose vectors (and cached features) the photos need: an offline encoder fusing objects first
    embeds with its bridge alone; bridge.embed_current then fuses in-process, as with the local engine. The
    offline encoder's 1,000 class prompts are encoded here, once, rather than by every actor."""
    from pipeline.encoders.offline import OfflineEncoder

    if not isinstance(encoder, OfflineEncoder):
        return encoder
    encoder = encoder.with_objects(None) if encoder.objects is not None else encoder
    encoder.class_embeddings  # noqa: B018 - encoded once here and sent along, not once per actor (seconds each)
    return encoder


def default_shards_dir(db: Database, stage: str, encoder_id: str) -> str:
    return str(Path(f"{db.path}.shards") / f"{stage}-{encoder_id.replace('/', '_')}")


def embed_ray(db: Database, encoder: Encoder, *, shards_uri: str | None = None, shard_size: int = 64,
              workers: int = 2, threads: int = 1, gpus: float = 0, address: str | None = None,
              quiet: bool = False, mapper: type = EmbedMapper) -> EmbedReport:
    """The embed stage on Ray: same photos, same stored rows as pipeline/embed.embed (cached-feature projection
    and fusion stay in-process, see bridge.embed_current)."""
    started = time.perf_counter()
    if gpus and not callable(getattr(encoder, "to", None)):
        raise ValueError(f"--gpus-per-worker {gpus:g}: encoder {encoder.id} has no GPU path (the offline encoder "
                         "runs on ONNX Runtime's CPU provider); leave it at 0, or embed with open_clip")
    if address and address != "auto":
        _check_reachable(address)  # before anything else: a wrong address is an error even with nothing to do
    report = EmbedReport(encoder.id, skipped=store.unreadable_photo_counts(db))
    todo = store.photos_to_embed(db, encoder.id, encoder.feature_id)
    if encoder.feature_id != encoder.id:
        todo = todo[~todo["has_features"]]
    uri = shards_uri or default_shards_dir(db, "embed", encoder.id)
    plan = plan_shards(todo, shard_size)
    if plan:
        start_ray(address, workers * threads)
        report.failed = run_job(plan, uri, mapper, {"encoder": encoder, "uri": uri, "threads": threads},
                                desc=f"embed {encoder.id} (ray)", workers=workers, threads=threads, gpus=gpus,
                                quiet=quiet)
        filesystem, base = open_directory(uri)
        loaded = load_vector_files(db, [f"{base}/{s.name}" for s in plan], encoder_id=encoder.id,
                                   filesystem=filesystem)
        if loaded.refused:
            raise ValueError("; ".join(reason for _, reason in loaded.refused))
        report.embedded = loaded.inserted
        if shards_uri is None:
            remove_shards(uri, plan)
    report.already_current = store.embedded_count(db, encoder.id) - report.embedded
    report.seconds = time.perf_counter() - started
    return report


def run_job(plan: list[Shard], uri: str, mapper: type[ShardMapper], arguments: dict, *, desc: str, workers: int,
            threads: int, gpus: float, quiet: bool) -> list[tuple[str, str]]:
    """Run the plan until every shard is in ``uri``: a shard the folder lacks after a pass (a worker killed
    mid-job whose retry did not come back) is found and redone, up to 3 passes. Returns the failed photos."""
    failed: list[tuple[str, str]] = []
    for _attempt in range(3):
        missing = [s for s in plan if s.name not in existing_shards(uri)]
        if not missing:
            break
        failed.extend(run_plan(missing, mapper, arguments, desc=desc, workers=workers, threads=threads, gpus=gpus,
                               quiet=quiet))
    return failed


def remove_shards(uri: str, plan: list[Shard]) -> None:
    """Empty the default shard folder once loaded: it is scratch space, and kept shards would only fill the disk
    (shards written where the user asked with --shards are kept)."""
    filesystem, base = open_directory(uri)
    for shard in plan:
        filesystem.delete_file(f"{base}/{shard.name}")


def perceive_ray(db: Database, weights: str | None, *, shards_uri: str | None = None, shard_size: int = 64,
                 workers: int = 2, threads: int = 1, gpus: float = 0, address: str | None = None,
                 quiet: bool = False, mapper: type = PerceiveMapper) -> PerceiveReport:
    """The perceive stage on Ray: the same photos and the same stored rows as pipeline/perceive.perceive."""
    from pipeline.perception import PERCEIVER_ID

    started = time.perf_counter()
    if gpus:
        raise ValueError(f"--gpus-per-worker {gpus:g}: the perception networks run on ONNX Runtime's CPU provider "
                         "(no GPU path); leave it at 0")
    if address and address != "auto":
        _check_reachable(address)
    report = PerceiveReport(PERCEIVER_ID)
    plan = plan_shards(perception.photos_to_perceive(db, PERCEIVER_ID), shard_size)
    uri = shards_uri or default_shards_dir(db, "perceive", PERCEIVER_ID)
    if plan:
        start_ray(address, workers * threads)
        report.failed = run_job(plan, uri, mapper, {"weights": weights, "uri": uri, "threads": threads},
                                desc="perceive (ray)", workers=workers, threads=threads, gpus=gpus, quiet=quiet)
        filesystem, base = open_directory(uri)
        for shard in plan:
            load_perceived_shard(db, f"{base}/{shard.name}", filesystem, PERCEIVER_ID, report)
        if shards_uri is None:
            remove_shards(uri, plan)
    report.already_current = perception.perceived_count(db, PERCEIVER_ID) - report.perceived
    report.seconds = time.perf_counter() - started
    return report


def load_perceived_shard(db: Database, file: str, filesystem: pafs.FileSystem, perceiver_id: str,
                         report: PerceiveReport) -> None:
    """Store a perceive shard's photos that are still to do (so a shard loaded twice changes nothing), boxes
    scaled to the photo's stored size, in one transaction; a shard of another perceiver is refused."""
    table = pq.read_table(file, filesystem=filesystem).to_pandas()
    if len(table) and set(table["perceiver"]) != {perceiver_id}:
        raise ValueError(f"{file}: perceiver {sorted(set(table['perceiver']))}, this job is {perceiver_id!r}")
    todo = perception.photos_to_perceive(db, perceiver_id).set_index("image_id")
    done, found = [], []
    for row in table.itertuples(index=False):
        if row.image_id not in todo.index or todo.at[row.image_id, "sha256"] != row.sha256:
            continue  # stored already, or the photo's bytes changed since
        width, height = int(todo.at[row.image_id, "width"]), int(todo.at[row.image_id, "height"])
        detections = pd.read_json(io.StringIO(row.detections), orient="records", dtype=False, convert_dates=False)
        detections = detections.reindex(columns=list(perception.DETECTION_COLUMNS))
        detections[["x0", "y0", "x1", "y1", "size_px"]] *= width / row.seen_width
        done.append(perceived_row(row.image_id, row.sha256, width, height, detections, row.seconds))
        found.append(detections.assign(image_id=row.image_id, sha256=row.sha256))
        report.count(done[-1], detections)
    if done:
        with db.write() as cur:
            perception.save_perceived(cur, perceiver_id, pd.DataFrame(done), pd.concat(found, ignore_index=True))
