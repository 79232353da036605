"""Live search for the dashboard: cached encoders and search indexes, the object filter and why each result
matched, flag writes, recent flags, label export.

Encoders (seconds to load), re-rankers and Searchers are ``st.cache_resource`` singletons shared by all sessions.
They hold a LeasedDatabase, never an open file, so caching them never keeps a pipeline stage out. There is one
Searcher per encoder, so one vector index per encoder in memory: it swaps its index when that encoder's set of
vectors changes (pipeline.search.EncoderIndex), and a re-rank run borrows it (Searcher.with_reranker). A
moderation decision or a label never rebuilds it: every answer is checked against `visible_images` when given.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd
import streamlit as st

from dashboard import context, score_scale
from dashboard.score_scale import Marker
from db import labels
from db import embeddings as store
from db import models as model_store
from db.database import Database, DatabaseError
from db.shared import LeasedDatabase
from db.write_queue import Outcome, Write, WriteQueue
from pipeline import bridge, encoders, models
from pipeline.encoders.base import Encoder
from pipeline.encoders.offline import Bridge
from pipeline.minors import lexicon, query_block
from pipeline.object_text import PRESENT, ObjectFusion
from pipeline.perception import PERCEIVER_ID
from pipeline.rerank import Reranker, RerankError, load_artifact
from pipeline.search import EncoderIndex, Searcher, SearchResult, Why, explain

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


COUNT_WAIT_SECONDS = 1.0  # how long a page run waits for a recount of the "must show" choices


@dataclass(frozen=True)
class SearchSetup:
    """What the page offers, read in one block: encoders with vectors, newest first, and the chosen re-rank run."""

    encoders: list[str]
    reranker_run: str | None
    objects: list[tuple[str, int]] | None  # COCO labels detected in visible photos, with how many photos show each
    objects_current: bool  # False while a recount runs: ``objects`` are then those of before (None before the first)


def read_setup(db: Database, db_path: str) -> SearchSetup:
    """``db_path``: the database the dashboard serves. Not ``db.path``: while a long run holds the claim, ``db`` is
    its read-only snapshot, and the cached object counts must belong to the served database."""
    objects, current = object_counts(db_path).get(store.objects_version(db))
    return SearchSetup(store.encoders_with_vectors(db)["encoder_id"].tolist(), model_store.reranker(db), objects,
                       current)


class ObjectCounts:
    """The "must show" choices of one database, recounted in a background thread when db.embeddings.objects_version
    moves (a decision, an ingest or perception run). The recount joins every detection with the visible photos
    (~4 s at a million photos under load), which no page run should wait for: a page run waits COUNT_WAIT_SECONDS
    at most (a tenth of it when there are counts of before), then shows the counts of before, marked as being
    updated (or, before the first count, every COCO name without a number). The counts may lag by one recount; the
    results never do (every answer is checked against the minors rule when given)."""

    def __init__(self, db: Database, wait_seconds: float = COUNT_WAIT_SECONDS) -> None:
        self.db, self.wait_seconds = db, wait_seconds
        self._lock = threading.Lock()
        self._counts: list[tuple[str, int]] | None = None
        self._version: tuple | None = None
        self._recount: threading.Thread | None = None

    def get(self, version: tuple) -> tuple[list[tuple[str, int]] | None, bool]:
        """(counts, whether they are of ``version``): a recount of ``version`` starts when none runs and the counts
        are older."""
        with self._lock:
            if self._version != version and self._recount is None:
                self._recount = threading.Thread(target=self._count, args=(version,), daemon=True,
                                                 name="must-show-recount")
                self._recount.start()
            recount = self._recount
        if recount is not None:  # a moment only when counts of before can stand in meanwhile
            recount.join(self.wait_seconds if self._counts is None else self.wait_seconds / 10)
        with self._lock:
            return self._counts, self._version == version

    def _count(self, version: tuple) -> None:
        try:
            shown = store.objects_on_visible_photos(self.db, PERCEIVER_ID, PRESENT)
            with self._lock:
                self._counts = list(zip(shown["label"], shown["photos"].astype(int).tolist()))
                self._version = version
        finally:  # a failed recount (a stage holding the file) leaves the version old: the next page run retries
            with self._lock:
                self._recount = None


@st.cache_resource(max_entries=4)
def object_counts(db_path: str) -> ObjectCounts:
    """The one ObjectCounts of a database, shared by every session."""
    return ObjectCounts(LeasedDatabase(context.shared_database(db_path)))


@st.cache_resource(max_entries=4)
def encoder_for(db_path: str, encoder_id: str) -> Encoder:
    leased = LeasedDatabase(context.shared_database(db_path))
    for prefix, load in ENCODER_LOADERS.items():
        if encoder_id.startswith(prefix):
            return load(leased, encoder_id)
    raise encoders.WeightsUnavailable(f"no loader for encoder {encoder_id}")


@st.cache_resource(max_entries=4)
def _searcher(db_path: str, encoder_id: str) -> Searcher:
    """The one Searcher, so the one index, of an encoder (evicted with it when a fifth encoder is searched)."""
    leased = LeasedDatabase(context.shared_database(db_path))
    queue = context.write_queue(db_path)

    def log_blocked(query: str, verdict: query_block.QueryCheck, user: str | None) -> None:
        queue.submit("blocked_query", {"query": query, "matches": [m.as_dict() for m in verdict.matches],
                                       "version": lexicon.RULE_SET_VERSION}, user or "(unknown)")

    return Searcher(leased, encoder_for(db_path, encoder_id), log_blocked=log_blocked,
                    indexes=encoder_index(db_path, encoder_id))


@st.cache_resource(max_entries=4)
def encoder_index(db_path: str, encoder_id: str) -> EncoderIndex:
    """The one index of an encoder: its Searcher's, and warmed by the page's first render (EncoderIndex.warm)
    before anyone types a query or the encoder is loaded."""
    return EncoderIndex(LeasedDatabase(context.shared_database(db_path)), encoder_id)


def warm_newest_index(db_path: str) -> str | None:
    """Start building, in the background, the index of the encoder the Live search page offers first (the newest
    with vectors); returns its id, or None when no photo has a vector yet or the file cannot be read now (the
    page's first render warms it then). dashboard/app.py calls this once per process after the first page a user
    opens, so the index of a million vectors (6-13 s to build on 2 busy cores) is ready before the first query
    instead of being started by the Live search page's first render; the pages rendered during the build share
    the CPU with it (benchmarks/dashboard_scale.py)."""
    try:
        newest = store.encoders_with_vectors(LeasedDatabase(context.shared_database(db_path)))["encoder_id"]
    except DatabaseError:
        return None
    if newest.empty:
        return None
    encoder_index(db_path, newest.iloc[0]).warm()
    return newest.iloc[0]


@st.cache_resource(max_entries=4)
def _reranker(db_path: str, run_id: str, encoder_id: str) -> Reranker:
    return Reranker(LeasedDatabase(context.shared_database(db_path)), run_id, encoder_for(db_path, encoder_id))


def searcher_for(db_path: str, encoder_id: str, reranker_run: str | None = None) -> Searcher:
    """The encoder's shared Searcher, re-ranking with ``reranker_run`` when given (the same index either way)."""
    searcher = _searcher(db_path, encoder_id)
    return searcher.with_reranker(_reranker(db_path, reranker_run, encoder_id)) if reranker_run else searcher


@dataclass(frozen=True)
class TimedResult:
    result: SearchResult
    milliseconds: float


def run_search(searcher: Searcher, query: str, *, k: int, offset: int, min_score: float | None, rerank: bool,
               user: str, must_show: list[str] | None = None) -> TimedResult:
    """One page of results with the total of every page (the page control's number of pages)."""
    started = time.perf_counter()
    result = searcher.search(query, k=k, offset=offset, min_score=min_score, user=user, rerank=rerank,
                             must_show=must_show or (), with_total=True)
    return TimedResult(result, (time.perf_counter() - started) * 1000)


def run_like(searcher: Searcher, image_id: str, *, k: int, offset: int, must_show: list[str] | None = None
             ) -> TimedResult:
    """"More like this" from ``image_id``: one page of the visible photos nearest to it (Searcher.like)."""
    started = time.perf_counter()
    result = searcher.like(image_id, k=k, offset=offset, must_show=must_show or ())
    return TimedResult(result, (time.perf_counter() - started) * 1000)


def label_encoder(encoder_id: str, reranker_run: str | None) -> str:
    """What a flag records as its encoder: the encoder, or "<encoder> + rerank <run>" when the score the reviewer
    saw (and the flag stores) is the re-rank model's 0..1 relevance, not the encoder's cosine (the naming of
    retrieval_metrics). So the relevance marker is fitted on cosines only."""
    return f"{encoder_id} + rerank {reranker_run}" if reranker_run else encoder_id


def labels_marker(db: Database, encoder_id: str) -> Marker | None:
    """Where the reviewers' labels on this encoder's results cross P(relevant) = 0.5 (score_scale)."""
    scored = labels.scored_verdicts(db, encoder_id)
    return score_scale.logistic_crossing(scored["score"].tolist(), scored["relevant"].astype(bool).tolist())


def calibrated_run(db: Database, encoder_id: str) -> dict | None:
    """The newest calibrated model of this encoder's cosine: a `zero-shot` run (isotonic map of the cosine of
    photo and query vectors to 0..1 relevance) trained on this very encoder's vectors. Other runs are not
    calibrated maps of the score the page shows (they use many features), and a run of another encoder (the
    training runs use the bridge without objects) maps another cosine."""
    runs = model_store.runs(db)
    chosen = runs[(runs["model"] == models.ZERO_SHOT) & runs["uses_images"] & (runs["encoder"] == encoder_id)]
    return None if chosen.empty else model_store.run(db, chosen.iloc[0]["id"])


def model_marker(run: dict | None) -> Marker | None:
    """Where the calibrated run's map reaches relevance 0.5, or None (no such run, its file is gone or changed,
    or it never reaches 0.5)."""
    if run is None:
        return None
    try:
        isotonic = load_artifact(run)["estimator"].isotonic_
    except (RerankError, AttributeError, KeyError):
        return None
    return score_scale.isotonic_crossing(isotonic.X_thresholds_, isotonic.y_thresholds_, run["id"])


@dataclass(frozen=True)
class Markers:
    """The page's relevance markers: from labels and from a calibrated model, each None when there is none, and
    the one the page draws (labels first: they judge this page's own results)."""

    labels: Marker | None
    model: Marker | None
    calibrated_run: str | None

    @property
    def chosen(self) -> Marker | None:
        return self.labels or self.model


@st.cache_data(max_entries=16, show_spinner=False)
def _markers(db_path: str, encoder_id: str, labels_version: tuple, runs_version: tuple) -> Markers:
    leased = LeasedDatabase(context.shared_database(db_path))
    run = calibrated_run(leased, encoder_id)
    return Markers(labels_marker(leased, encoder_id), model_marker(run), run["id"] if run else None)


def relevance_markers(db: Database, db_path: str, encoder_id: str, reranker_run: str | None) -> Markers:
    """The markers of the scores the page shows: the re-rank model's own 0.5 when re-ranking (its scores are
    0..1 relevance), else those of the encoder's cosine, refitted when labels or model runs change."""
    if reranker_run:
        return Markers(None, Marker(0.5, "model", f"re-rank model {reranker_run}: relevance 0.5"), reranker_run)
    runs = db.fetch_all("SELECT count(*), max(created) FROM model_runs")[0]
    return _markers(db_path, encoder_id, labels.version(db), tuple(runs))


@dataclass(frozen=True)
class CardFlag:
    """The current flag of one result card: this user's latest verdict on this query and photo."""

    verdict: str
    state: str  # "saved" or "queued"
    write_key: str


def card_flags(db: Database, pending: list[Write], user: str, query: str, image_ids: list[str]) -> dict[str, CardFlag]:
    """Per result photo, the user's latest verdict for ``query``: a queued label (newest first) beats a stored
    one, and an undo (queued or applied) brings back the verdict before it."""
    undone = {w.payload["write_key"] for w in pending if w.op == "undo_label"}
    wanted = set(image_ids)
    current: dict[str, CardFlag] = {}
    for write in reversed(pending):  # newest first
        flag = write.payload.get("flag", {}) if write.op == "label" else {}
        if (write.op == "label" and write.payload["query"] == query and flag.get("image_id") in wanted
                and write.key not in undone and flag["image_id"] not in current):
            current[flag["image_id"]] = CardFlag(flag["verdict"], "queued", write.key)
    for row in labels.verdicts_on(db, user, query, image_ids).itertuples():
        if row.image_id not in current and row.write_key not in undone:
            current[row.image_id] = CardFlag(row.verdict, "saved", row.write_key)
    return current


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
    """Take back one flag (the card then shows the verdict before it, if any)."""
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


def labels_file(db_path: str, kind: str) -> Callable[[], bytes]:
    """Every stored label as "csv" or "parquet", made when the user clicks the download (streamlit runs it on
    another thread): writing a million labels takes seconds that no page render should pay."""
    def make() -> bytes:
        frame = labels.export(LeasedDatabase(context.shared_database(db_path)))
        return labels_csv(frame) if kind == "csv" else labels_parquet(frame)

    return make


def labels_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


def labels_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
