"""Loading vector shards (Parquet files of image_id, sha256, encoder_id, vector [, feature_id, features]) into
DuckDB. Shards come from the Ray engine's workers or from an exported directory; both are untrusted input, so each
file is validated whole before anything of it is stored, and loading is idempotent: a row whose vector is already
stored for the same photo bytes is left alone, so a shard loaded twice changes nothing, not even
``embeddings.created``, which keys the search index (db/embeddings.vector_set_version)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from db.database import Database

REQUIRED = ("image_id", "sha256", "encoder_id", "vector")


class ShardError(ValueError):
    """A shard refused whole; the message names the file and the reason."""


@dataclass
class LoadReport:
    """What a load did: rows stored, rows left alone (already there, or photo bytes changed since), files refused."""

    files: int = 0
    inserted: int = 0
    already_stored: int = 0
    stale: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


def _read(file: str, filesystem: pafs.FileSystem | None) -> pa.Table:
    try:
        if filesystem is None:
            filesystem, file_path = pafs.FileSystem.from_uri(file) if "://" in file else (None, file)
        else:
            file_path = file
        return pq.read_table(file_path, filesystem=filesystem)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ShardError(f"{file}: unreadable Parquet ({exc})") from exc


def _dimension(table: pa.Table, column: str, file: str) -> int:
    lengths = pc.list_value_length(table.column(column))
    if lengths.null_count:
        raise ShardError(f"{file}: {column} is null in some rows")
    low, high = int(pc.min(lengths).as_py()), int(pc.max(lengths).as_py())
    if low != high or low == 0:
        raise ShardError(f"{file}: {column} lengths differ between rows ({low}..{high})")
    return low


def stored_dimension(db: Database, encoder_id: str) -> int | None:
    """Length of the vectors already stored for an encoder (None when it has none)."""
    rows = db.fetch_all("SELECT len(vector) FROM embeddings WHERE encoder_id = ? LIMIT 1", [encoder_id])
    return int(rows[0][0]) if rows else None


def validate_shard(db: Database, table: pa.Table, file: str, encoder_id: str | None) -> str:
    """Check one shard whole and return its encoder id; raise ShardError naming the file and the reason."""
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ShardError(f"{file}: missing columns {', '.join(missing)}")
    if table.num_rows == 0:
        return encoder_id or ""
    encoders = pc.unique(table.column("encoder_id")).to_pylist()
    if len(encoders) != 1 or not encoders[0]:
        raise ShardError(f"{file}: one encoder id per shard expected, found {encoders}")
    if encoder_id is not None and encoders[0] != encoder_id:
        raise ShardError(f"{file}: encoder id {encoders[0]!r}, this job expects {encoder_id!r}")
    for column in ("image_id", "sha256"):
        if table.column(column).null_count:
            raise ShardError(f"{file}: {column} is null in some rows")
    if len(pc.unique(table.column("image_id"))) != table.num_rows:
        raise ShardError(f"{file}: an image_id appears twice")
    dim = _dimension(table, "vector", file)
    stored = stored_dimension(db, encoders[0])
    if stored is not None and stored != dim:
        raise ShardError(f"{file}: vector dimension {dim}, vectors stored for {encoders[0]!r} have {stored}")
    if "features" in table.column_names:
        if "feature_id" not in table.column_names or table.column("feature_id").null_count:
            raise ShardError(f"{file}: features without a feature_id")
        _dimension(table, "features", file)
    return encoders[0]


def _store(db: Database, table: pa.Table, encoder: str, report: LoadReport) -> None:
    """Insert the rows of a validated shard whose photo still has those bytes and whose vector is not stored yet
    for them (a vector of older bytes is replaced). Features likewise. One transaction per shard."""
    batch = table.select([c for c in ("image_id", "sha256", "vector", "feature_id", "features")
                          if c in table.column_names])
    vector_type = pa.list_(pa.float32())
    batch = batch.set_column(batch.column_names.index("vector"), "vector", batch.column("vector").cast(vector_type))
    with db.write() as cur:
        cur.register("shard", batch)
        fresh = "JOIN images i ON i.id = s.image_id AND i.sha256 = s.sha256 AND i.status = 'ok'"
        counts = cur.execute(
            f"""SELECT count(*) FILTER (WHERE i.id IS NULL),
                       count(*) FILTER (WHERE i.id IS NOT NULL AND e.image_id IS NOT NULL)
                FROM shard s LEFT {fresh}
                LEFT JOIN embeddings e ON e.image_id = s.image_id AND e.encoder_id = ? AND e.sha256 = s.sha256""",
            [encoder]).fetchone()
        inserted = cur.execute(
            f"""INSERT OR REPLACE INTO embeddings
                SELECT s.image_id, ?, s.sha256, s.vector, ? FROM shard s {fresh}
                WHERE NOT EXISTS (SELECT 1 FROM embeddings e
                                  WHERE e.image_id = s.image_id AND e.encoder_id = ? AND e.sha256 = s.sha256)""",
            [encoder, datetime.now(), encoder]).fetchone()[0]
        if "features" in batch.column_names:
            cur.execute(
                f"""INSERT OR REPLACE INTO image_features
                    SELECT s.image_id, s.feature_id, s.sha256, s.features::FLOAT[] FROM shard s {fresh}
                    WHERE NOT EXISTS (SELECT 1 FROM image_features f WHERE f.image_id = s.image_id
                                      AND f.feature_id = s.feature_id AND f.sha256 = s.sha256)""")
        cur.unregister("shard")
    report.stale += int(counts[0])
    report.already_stored += int(counts[1])
    report.inserted += int(inserted)


def load_vector_files(db: Database, files: Sequence[str], encoder_id: str | None = None,
                      filesystem: pafs.FileSystem | None = None) -> LoadReport:
    """Load vector shards (local paths or URIs) into ``embeddings`` (and ``image_features``), each file in its
    own transaction. A file that fails validation is refused (listed in ``report.refused`` with its reason) and
    the others still load: one bad shard never loses what is stored or what the other shards carry."""
    report = LoadReport()
    for file in files:
        try:
            table = _read(str(file), filesystem)
            encoder = validate_shard(db, table, str(file), encoder_id)
        except ShardError as exc:
            report.refused.append((str(file), str(exc)))
            continue
        report.files += 1
        if table.num_rows:
            _store(db, table, encoder, report)
    return report
