"""Live search for the dashboard: cached encoders and search indexes, the object filter and why each result
matched, flag writes, recent flags, label export.

Encoders (seconds to load) and Searchers (the vector matrix of every visible photo) are ``st.cache_resource``
singletons shared by all sessions. They hold a LeasedDatabase, never an open file, so caching them never keeps
a pipeline stage out. A Searcher is keyed by an index version read on every page run (visible photos with
vectors, the newest minors decision, the newest vector), so a photo the filter or a moderator withdraws is out
of the next search; Searcher also checks every answer against `visible_images`.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd
import streamlit as st

from dashboard import context
from db import labels
from db import embeddings as store
from db import models as model_store
from db.database import Database
from db.shared import LeasedDatabase
from db.write_queue import Outcome, Write, WriteQueue
from pipeline import bridge, encoders
from pipeline.encoders.base import Encoder
from pipeline.encoders.offline import Bridge
from pipeline.minors import lexicon, query_block
from pipeline.object_text import PRESENT, ObjectFusion
from pipeline.perception import PERCEIVER_ID
from pipeline.rerank import Reranker
from pipeline.search import Searcher, SearchResult, Why, explain

RECENT_FLAGS = 10


def _offline(db: Database, encoder_id: str) -> Encoder:
    """The current bridge with or without the current objects, or the zero-shot bridge with or without them."""
    current = bridge.current_encoder(db)
    zero_shot = current.with_bridge(Bridge()).with_objects(None)
    for candidate in (current, current.with_objects(None), zero_shot, zero_shot.with_objects(ObjectFusion(PERCEIVER_ID))):
        if candidate.id == encoder_id:
            return candidate
    raise encoders.WeightsUnavailable(f"{encoder_id} was made with a bridge that is no longer current; run "
                                      "`python -m pipeline embed` to re-embed with the current one")


def _openclip(db: Database, encoder_id: str) -> Encoder:
    encoder = encoders.load_encoder("openclip")
    if encoder.id != encoder_id:
        raise encoders.WeightsUnavailable(f"{encoder_id} is not the default open_clip model ({encoder.id})")
    return encoder


# Encoder id prefix -> how to load that encoder for a database. The extension point for new backends.
ENCODER_LOADERS: dict[str, Callable[[Database, str], Encoder]] = {"offline-": _offline, "openclip-": _openclip}


@dataclass(frozen=True)
class SearchSetup:
    """What the page offers, read in one block: encoders with visible vectors (each with its index version, see
    db.embeddings.index_version) and the chosen re-rank run."""

    index_versions: dict[str, tuple]
    reranker_run: str | None
    objects: list[tuple[str, int]]  # COCO labels detected in visible photos, with how many photos show each


    @property
    def encoders(self) -> list[str]:
        return list(self.index_versions)


def read_setup(db: Database) -> SearchSetup:
    versions = {e: store.index_version(db, e) for e in store.encoders_with_vectors(db)["encoder_id"]}
    searchable = {e: version for e, version in versions.items() if version[0]}  # some visible photo has vectors
    shown = store.objects_on_visible_photos(db, PERCEIVER_ID, PRESENT)
    return SearchSetup(searchable, model_store.reranker(db), list(zip(shown["label"], shown["photos"].astype(int))))


@st.cache_resource(max_entries=4)
def encoder_for(db_path: str, encoder_id: str) -> Encoder:
    leased = LeasedDatabase(context.shared_database(db_path))
    for prefix, load in ENCODER_LOADERS.items():
        if encoder_id.startswith(prefix):
            return load(leased, encoder_id)
    raise encoders.WeightsUnavailable(f"no loader for encoder {encoder_id}")


@st.cache_resource(max_entries=8)
def searcher_for(db_path: str, encoder_id: str, reranker_run: str | None, index_version: tuple) -> Searcher:
    """One Searcher per encoder, re-rank run and index version; ``index_version`` is only part of the key."""
    leased = LeasedDatabase(context.shared_database(db_path))
    encoder = encoder_for(db_path, encoder_id)
    reranker = Reranker(leased, reranker_run, encoder) if reranker_run else None
    queue = context.write_queue(db_path)

    def log_blocked(query: str, verdict: query_block.QueryCheck, user: str | None) -> None:
        queue.submit("blocked_query", {"query": query, "matches": [m.as_dict() for m in verdict.matches],
                                       "version": lexicon.RULE_SET_VERSION}, user or "(unknown)")

    return Searcher(leased, encoder, reranker, log_blocked=log_blocked)


@dataclass(frozen=True)
class TimedResult:
    result: SearchResult
    milliseconds: float


def run_search(searcher: Searcher, query: str, *, k: int, offset: int, min_score: float | None, rerank: bool,
               user: str, must_show: list[str] | None = None) -> TimedResult:
    started = time.perf_counter()
    result = searcher.search(query, k=k, offset=offset, min_score=min_score, user=user, rerank=rerank,
                             must_show=must_show or ())
    return TimedResult(result, (time.perf_counter() - started) * 1000)


def why_matched(db: Database, searcher: Searcher, image_ids: list[str]) -> dict[str, Why]:
    """What each result card says about why it matched (detected objects, top ImageNet labels)."""
    return explain(db, searcher.encoder, image_ids, searcher.perceiver)


def flag_ops(query: str, encoder_id: str, flags: list[labels.Flag]) -> list[tuple[str, dict]]:
    """The write operations for some verdicts on results of one query (checked before anything is queued)."""
    for flag in flags:
        labels.check(flag)
    return [("label", {"query": query, "encoder": encoder_id, "flag": asdict(flag)}) for flag in flags]


def flag(queue: WriteQueue, user: str, query: str, encoder_id: str, flags: list[labels.Flag],
         wait_seconds: float = context.WRITE_WAIT_SECONDS) -> list[Outcome]:
    """Store verdicts as ``user``: the code path of one flag, a bulk flag and benchmarks/dashboard_load.py."""
    return queue.submit_and_wait(flag_ops(query, encoder_id, flags), user, wait_seconds)


def undo(queue: WriteQueue, user: str, write_key: str) -> list[Outcome]:
    return queue.submit_and_wait([("undo_label", {"write_key": write_key})], user, context.WRITE_WAIT_SECONDS)


def recent_flags(db: Database, pending: list[Write], user: str, limit: int = RECENT_FLAGS) -> pd.DataFrame:
    """The user's newest flags: queued ones (not in the database yet) first, then stored ones."""
    undone = {w.payload["write_key"] for w in pending if w.op == "undo_label"}
    queued = pd.DataFrame([{"created": pd.Timestamp(w.submitted), "query": w.payload["query"],
                            "image_id": w.payload["flag"]["image_id"], "rank": w.payload["flag"]["rank"],
                            "verdict": w.payload["flag"]["verdict"], "comment": w.payload["flag"]["comment"],
                            "write_key": w.key, "state": "queued"}
                           for w in pending if w.op == "label" and w.key not in undone])
    stored = labels.recent(db, user, limit).assign(state="saved")
    stored = stored[~stored["write_key"].isin(undone)]
    frames = [f for f in (queued, stored) if not f.empty]
    columns = ["created", "query", "image_id", "rank", "verdict", "comment", "write_key", "state"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns].head(limit)


def labels_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def labels_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
