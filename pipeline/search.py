"""Search: query text -> top-K (image_id, score) by cosine, over visible photos only (exact up to a million vectors
of an encoder, a saved FAISS index above: pipeline.ann_store).

The index holds every vector of the encoder (:class:`EncoderIndex`) and is rebuilt only when that set of vectors
changes (db.embeddings.vector_set_version), never on a moderation decision, a label or a re-ingest: every answer
is checked against the `visible_images` view (and the photo's current bytes) when it is given, reading the index
in growing depth until enough candidates pass, so a photo the minors filter or a moderator excludes after the
index was built never comes out. The dashboard keeps one Searcher, so one index, per encoder (st.cache_resource).

``must_show`` keeps only photos in which the current perceiver detected every named COCO object (from
object_text.PRESENT), checked in SQL together with visibility; :func:`explain` says why each hit matched: its
detected objects with counts and, for the offline encoder, the ImageNet labels that weigh most in its vector.
"""

from __future__ import annotations

import copy
import logging
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from db import embeddings as store
from db import reads
from db.database import Database
from pipeline import ann_store
from pipeline.ann_index import AnnIndex
from pipeline.encoders.base import Encoder
from pipeline.encoders.offline import OfflineEncoder
from pipeline.minors import query_block
from pipeline.object_text import PRESENT, PhotoObjects, photo_objects
from pipeline.perception import PERCEIVER_ID
from pipeline.perception.objects import COCO80
from pipeline.rerank import Reranker
from pipeline.vector_index import VectorIndex

MAX_QUERY_CHARS = 1000
MAX_K = 1000
TEXT_CACHE_SIZE = 1024
RERANK_DEPTH = 100
TOP_LABELS = 3
DIRECT_LIMIT = 20_000  # "must show" an object this few visible photos show: score them directly
RECOUNT_WAIT_SECONDS = 0.2  # how long a search waits for a recount of the total while the old total stands in

SearchIndex = VectorIndex | AnnIndex
_log = logging.getLogger(__name__)


class QueryError(ValueError):
    """The query cannot be searched; the message says what to type instead."""


class NoVectors(RuntimeError):
    """No photo vectors for this encoder yet; the message names the command to run."""


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based, over the whole ranking (page offsets included)
    image_id: str
    score: float  # what the ranking is ordered by: the re-ranker's 0..1 relevance, else the cosine
    cosine: float  # the encoder's similarity, always


@dataclass
class SearchResult:
    query: str
    hits: list[Hit] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    legal_notice: str | None = None  # set when the query was refused under the minors rules
    total: int | None = None  # how many results the whole ranking holds (all pages), when asked for
    total_current: bool = True  # False: the total of before a change, while it is recounted (Searcher.visible_count)
    total_estimated: bool = False  # True: the total with a cut-off estimated from a sample (an ANN index)


@dataclass(frozen=True)
class Why:
    """Why a photo matched: what the perceiver detected in it, and its top ImageNet labels (offline encoder)."""

    objects: PhotoObjects
    labels: list[tuple[str, float]]  # (label, share of the bridge mixture 0..1), heaviest first

    def text(self) -> str:
        parts = [f"objects: {self.objects.describe()}"]
        if self.labels:
            parts.append("labels: " + ", ".join(label for label, _ in self.labels))  # shares stay a few % at T=3
        return " · ".join(parts)


def explain(db: Database, encoder: Encoder, image_ids: Sequence[str], perceiver: str = PERCEIVER_ID) -> dict[str, Why]:
    """Per photo: its detected objects (current bytes, ``perceiver``) and, when the encoder goes through ImageNet
    labels, the heaviest of them (from the photo's cached features)."""
    ids = list(image_ids)
    labels: dict[str, list[tuple[str, float]]] = {}
    if isinstance(encoder, OfflineEncoder) and ids:
        cached, features = store.cached_features(db, encoder.feature_id, ids)
        if cached:
            labels = dict(zip(cached, encoder.top_labels(features, TOP_LABELS)))
    return {image_id: Why(seen, labels.get(image_id, []))
            for image_id, seen in zip(ids, photo_objects(db, perceiver, ids))}


def _refuse_undecodable(text: str) -> None:
    """Refuse lone surrogates: bytes that were not UTF-8 where the query came from (Python keeps undecodable
    command-line bytes as '\\udcXX'). No tokenizer accepts them, and they are not text anyone typed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        raise QueryError(f"The query is not valid UTF-8 text ({what} at character {exc.start + 1}); retype it, "
                         "or set the terminal or file it came from to UTF-8.") from None


def clean_query(text: str | None) -> tuple[str, list[str]]:
    """Normalised query and notices about it; raises QueryError when nothing searchable is left."""
    _refuse_undecodable(text or "")
    text = unicodedata.normalize("NFKC", text or "").strip()
    text = " ".join(text.split())
    if not text:
        raise QueryError("Type a few words describing the scene, e.g. 'a dog running on a beach'.")
    if not any(ch.isalnum() for ch in text):
        raise QueryError("The query has no words, only symbols or emoji. Describe the scene in words "
                         "(English works best).")
    notices = []
    if len(text) > MAX_QUERY_CHARS:
        text = text[:MAX_QUERY_CHARS]
        notices.append(f"The query was shortened to its first {MAX_QUERY_CHARS:,} characters.")
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum(1 for ch in letters if ch.isascii()) < len(letters) / 2:
        notices.append("The text encoder was trained on English; results for other languages may be poor.")
    return text, notices


class EncoderIndex:
    """The index of one encoder's vectors, rebuilt when (and only when) the set of vectors changes: the exact
    pipeline.vector_index up to ann_store.ANN_ABOVE vectors, above it the saved FAISS index (pipeline.ann_store:
    loaded, or brought up to date with the new vectors, instead of rebuilt).

    Safe to share between threads: the version is read and the index swapped under a lock. The old index is
    dropped before the new one is built, so one index per encoder is in memory (a search still running on the
    old one keeps it until it returns)."""

    def __init__(self, db: Database, encoder_id: str) -> None:
        self.db, self.encoder_id = db, encoder_id
        self._index: SearchIndex | None = None
        self._version: tuple | None = None
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None
        self._counts: dict[tuple[str, ...], tuple[tuple, int]] = {}  # labels -> (data version, visible count)
        self._recounts: dict[tuple[str, ...], threading.Thread] = {}  # labels -> the recount running
        self._count_lock = threading.Lock()  # not the build's lock: a count never waits for a build
        self.recount_wait_seconds: float | None = RECOUNT_WAIT_SECONDS

    def warm(self) -> None:
        """Build the index in a background thread when none is built yet, and count the visible photos with
        vectors, so the first query after a start (the page's first render calls this) does not wait for the whole
        build (~10 s for a million vectors under load) nor the count (~0.6 s). A query meanwhile waits for the build under the lock; a failure (no vectors yet, a stage holding
        the file) is left for that query to report."""
        if self._index is not None or (self._warming is not None and self._warming.is_alive()):
            return

        def build() -> None:
            try:
                self.current()
                self.visible_count()  # the first query's total, counted before it is asked for
            except Exception:  # noqa: BLE001 - reported by the query that needs the index
                pass

        self._warming = threading.Thread(target=build, daemon=True, name=f"index-{self.encoder_id}")
        self._warming.start()

    def current(self) -> SearchIndex:
        """The index of the vectors stored now: the cached one while the set of vectors is unchanged."""
        with self._lock:
            version = store.vector_set_version(self.db, self.encoder_id)
            if self._index is None or version != self._version:
                self._index = self._version = None
                if not version[0]:
                    raise NoVectors(f"No photo vectors for encoder {self.encoder_id} yet: run "
                                    "`python -m pipeline filter` and `python -m pipeline embed` "
                                    "(after `python -m pipeline ingest`).")
                if version[0] > ann_store.ANN_ABOVE:
                    self._index = ann_store.open_current(self.db, self.encoder_id, version, log=_log.warning)
                else:
                    self._index = VectorIndex.build(store.vector_chunks(self.db, self.encoder_id), rows=version[0])
                self._version = version
            return self._index

    def visible_count(self, labels: Sequence[str] = (), perceiver: str = PERCEIVER_ID) -> int:
        """How many visible photos have a vector of this encoder (showing every one of ``labels`` as detected by
        ``perceiver``): what a search without a cut-off can return. The count joins every visible photo (~0.6 s
        at a million), so it is kept per version of the vectors, decisions, ingests and detections
        (db.embeddings.objects_version). After a change it is recounted in a background thread, waited for
        ``recount_wait_seconds`` at most: meanwhile the count of before stands in (:meth:`count_current` says
        so), so a moderator's decision never makes the next search wait for a full count. The first count of a
        set of labels is made at once (for no labels, by :meth:`warm`, before anyone asks)."""
        key = _count_key(labels, perceiver)
        version = self._count_version()
        with self._count_lock:
            known = self._counts.get(key)
            if known is not None and known[0] == version:
                return known[1]
            recount = self._recounts.get(key)
            if known is not None and recount is None:
                recount = threading.Thread(target=self._recount, args=(key, version), daemon=True,
                                           name="visible-recount")
                self._recounts[key] = recount
                recount.start()
        if known is None:
            return self._count(key, version)
        recount.join(self.recount_wait_seconds)
        with self._count_lock:
            return self._counts[key][1]

    def count_current(self, labels: Sequence[str] = (), perceiver: str = PERCEIVER_ID) -> bool:
        """Whether :meth:`visible_count` of ``labels`` is of the data now (not the count of before a change)."""
        with self._count_lock:
            known = self._counts.get(_count_key(labels, perceiver))
        return known is not None and known[0] == self._count_version()

    def _count_version(self) -> tuple:
        return store.vector_set_version(self.db, self.encoder_id), store.objects_version(self.db)

    def _count(self, key: tuple[str, ...], version: tuple) -> int:
        perceiver, *labels = key
        counted = reads.visible_vector_count(self.db, self.encoder_id, perceiver, labels, PRESENT)
        with self._count_lock:
            if len(self._counts) >= 64 and key not in self._counts:  # label sets people no longer ask for
                self._counts.clear()
            self._counts[key] = (version, counted)
        return counted

    def _recount(self, key: tuple[str, ...], version: tuple) -> None:
        try:  # a failed recount (a stage holding the file) keeps the count of before; the next search retries
            self._count(key, version)
        finally:
            with self._count_lock:
                self._recounts.pop(key, None)


def _count_key(labels: Sequence[str], perceiver: str) -> tuple[str, ...]:
    return (perceiver, *sorted(set(labels)))


class Searcher:
    """Top-K search for one encoder over the visible photos that have its vectors.

    Safe to share between threads (Streamlit sessions): the index (see :class:`EncoderIndex`) and the text cache
    are guarded by locks; ranking itself only reads the index."""

    def __init__(self, db: Database, encoder: Encoder, reranker: Reranker | None = None, *,
                 log_blocked: Callable[[str, query_block.QueryCheck, str | None], None] | None = None,
                 perceiver: str = PERCEIVER_ID, indexes: EncoderIndex | None = None) -> None:
        """``log_blocked`` records a refused query; by default it writes to ``db`` at once. The dashboard passes
        its write queue instead, so a refused query is logged even while a pipeline stage holds the file.
        ``perceiver`` names whose detections ``must_show`` reads; ``indexes`` is the encoder's shared index
        (the dashboard's, which it warms before the encoder is loaded), else a new one."""
        self.db, self.encoder, self.reranker = db, encoder, reranker
        self.perceiver = perceiver
        self.log_blocked = log_blocked or (lambda query, verdict, user: query_block.log(db, query, verdict, user))
        self.indexes = indexes or EncoderIndex(db, encoder.id)
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def with_reranker(self, reranker: Reranker | None) -> Searcher:
        """This searcher re-ranking with ``reranker``: the same index and text cache, so one index per encoder
        serves every re-rank run."""
        other = copy.copy(self)
        other.reranker = reranker
        return other

    @property
    def index(self) -> SearchIndex:
        """Read (and built when the vectors changed) on use, so a blocked or malformed query never waits for an
        index."""
        return self.indexes.current()

    def query_vector(self, text: str) -> np.ndarray:
        """Text vector through a small in-process LRU cache (repeated queries and paging cost nothing)."""
        with self._lock:
            if text in self._texts:
                self._texts.move_to_end(text)
                return self._texts[text]
        vector = self.encoder.encode_texts([text])[0]
        with self._lock:
            self._texts[text] = vector
            if len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        return vector

    def visible_top(self, vector: np.ndarray, wanted: int, labels: Sequence[str] = ()) -> list[tuple[str, float]]:
        """The first ``wanted`` photos by cosine that are visible now, whose vector is of their visible bytes and
        that show every one of ``labels``, all checked in SQL. The index's top candidates are read in growing depth
        (x4); after two rounds with too few, when at most DIRECT_LIMIT photos qualify, those are scored directly."""
        index = self.index
        first = depth = max(RERANK_DEPTH, 4 * wanted)
        while True:
            ranked = index.top_k(vector, depth, 0)
            ok = store.visible_showing(self.db, self.perceiver, [image_id for image_id, _ in ranked], labels, PRESENT,
                                       self.encoder.id)
            kept = [(image_id, cosine) for image_id, cosine in ranked if image_id in ok]
            if len(kept) >= wanted or depth >= len(index):
                if not kept and not labels:  # the whole index read, none visible
                    raise self._none_visible()
                return kept[:wanted]
            if depth == 4 * first:  # few qualify (a rare object, most photos withdrawn): score them all?
                few = (store.visible_showing_all(self.db, self.perceiver, labels, PRESENT, DIRECT_LIMIT) if labels
                       else store.visible_with_vectors(self.db, self.encoder.id, DIRECT_LIMIT))
                if few == [] and not labels:
                    raise self._none_visible()
                if few is not None:
                    vectors = store.vectors_of(self.db, self.encoder.id, few)
                    scored = [(image_id, float(v @ vector)) for image_id, v in vectors.items()]
                    return sorted(scored, key=lambda hit: (-hit[1], hit[0]))[:wanted]
            depth *= 4

    def _none_visible(self) -> NoVectors:
        return NoVectors(f"No visible photo has a vector of encoder {self.encoder.id} yet: the minors filter clears "
                         "photos before anyone sees them; run `python -m pipeline filter` (and `python -m pipeline "
                         "embed` for photos cleared since).")

    def search(self, text: str | None, *, k: int = 10, offset: int = 0, min_score: float | None = None,
               user: str | None = None, rerank: bool = False, must_show: Sequence[str] = (),
               with_total: bool = False) -> SearchResult:
        """One page of results; ``min_score`` drops hits scoring below a cut-off. With ``rerank`` (and a
        re-ranker) the encoder's top RERANK_DEPTH are re-ordered by the model and pages end there. ``must_show``
        keeps photos in which every named COCO object was detected. A query about children gets the legal notice
        and no photos, and is logged with ``user``. ``with_total`` also counts the results of every page
        (:meth:`count_at_least`; re-ranked: those of the top RERANK_DEPTH at or above the cut-off)."""
        if not 1 <= k <= MAX_K or offset < 0:
            raise QueryError(f"k must be 1..{MAX_K} and offset >= 0 (got k={k}, offset={offset})")
        if rerank and self.reranker is None:
            raise QueryError("re-ranking is off: no model is chosen (`python -m pipeline use-reranker RUN_ID`)")
        unknown = sorted(set(must_show) - set(COCO80))
        if unknown:
            raise QueryError(f"unknown object(s) {', '.join(unknown)}: 'must show' takes COCO names such as "
                             "person, dog, bicycle")
        query, notices = clean_query(text)
        verdict = query_block.check(query)
        if verdict.blocked:
            self.log_blocked(query, verdict, user)
            return SearchResult(query, [], notices, query_block.LEGAL_NOTICE)
        vector = self.query_vector(query)
        start, wanted = (0, RERANK_DEPTH) if rerank else (offset, k)
        ranked = self.visible_top(vector, start + wanted, sorted(set(must_show)))[start:]
        if rerank:
            scores = self.reranker.scores(query, [image_id for image_id, _ in ranked], vector) if ranked else []
            order = sorted(range(len(ranked)), key=lambda i: -scores[i])  # stable: equal scores keep cosine order
            scored = [(ranked[i][0], float(scores[i]), ranked[i][1]) for i in order][offset : offset + k]
            if offset + k > RERANK_DEPTH:
                notices.append(f"Re-ranking covers the first {RERANK_DEPTH} results; switch it off to page further.")
        else:
            scored = [(image_id, cosine, cosine) for image_id, cosine in ranked]
        hits = [Hit(offset + i + 1, image_id, score, cosine) for i, (image_id, score, cosine) in enumerate(scored)
                if min_score is None or score >= min_score]
        total, current, estimated = None, True, False
        if with_total:
            total = (sum(1 for s in scores if min_score is None or s >= min_score) if rerank
                     else self.count_at_least(vector, min_score, must_show))
            current = rerank or self.count_current(must_show)
            estimated = not rerank and min_score is not None and isinstance(self.index, AnnIndex)
        return SearchResult(query, hits, notices, total=total, total_current=current, total_estimated=estimated)

    def visible_count(self, labels: Sequence[str] = ()) -> int:
        """How many visible photos have a vector of this encoder (showing every one of ``labels``): what a search
        without a cut-off can return (EncoderIndex.visible_count: kept per version of the data, recounted in the
        background after a change)."""
        return self.indexes.visible_count(labels, self.perceiver)

    def count_current(self, labels: Sequence[str] = ()) -> bool:
        """Whether :meth:`visible_count` of ``labels`` is of the data now, not the count of before a change."""
        return self.indexes.count_current(labels, self.perceiver)

    def count_at_least(self, vector: np.ndarray, min_score: float | None, labels: Sequence[str] = ()) -> int:
        """How many visible photos (showing every one of ``labels``) score ``min_score`` or more against
        ``vector``: the total of a cosine search with that cut-off, so the page can say how many pages there are.
        The side of the cut-off with fewer rows is checked against the minors rule in SQL (by key up to a few
        thousand); on a quantized index the scores are the int8 kernel's (about 0.01 off). On an ANN index (tens of
        millions of rows, none of them in memory) the share of a fixed sample of rows at or above the cut-off
        times the visible count: an estimate (SearchResult.total_estimated), benchmarks/ann.py prints its error."""
        everything = self.visible_count(labels)
        if min_score is None:
            return everything
        index = self.index
        if isinstance(index, AnnIndex):
            sampled = index.sample_scores(vector)
            return round(everything * float((sampled >= min_score).mean())) if len(sampled) else 0
        scores = index.scores(vector)
        above = scores >= min_score
        chosen = sorted(set(labels))
        if int(above.sum()) <= len(index) // 2:
            ids = [index.ids[i] for i in np.flatnonzero(above)]
            return len(store.visible_showing(self.db, self.perceiver, ids, chosen, PRESENT, self.encoder.id))
        below = [index.ids[i] for i in np.flatnonzero(~above)]
        return everything - len(store.visible_showing(self.db, self.perceiver, below, chosen, PRESENT,
                                                      self.encoder.id))

    def score_range(self, text: str) -> tuple[float, float] | None:
        """(lowest, highest) cosine of the query against every vector of the encoder: the scale the cut-off
        slider spans, whatever the encoder's cosines look like (0.15..0.66 for the offline one, not -1..1).
        Read from the index (no photo is shown by it, so no visibility check). None for a query the minors rules
        refuse: it is never encoded (:meth:`search` logs it and gives the legal notice)."""
        query, _ = clean_query(text)
        if query_block.check(query).blocked:
            return None
        vector = self.query_vector(query)
        index = self.index
        if isinstance(index, AnnIndex):  # the sample's spread, topped by the best row itself
            scores = np.append(index.sample_scores(vector), [score for _, score in index.top_k(vector, 1)])
        else:
            scores = index.scores(vector)
        return float(scores.min()), float(scores.max())

    def like(self, image_id: str, *, k: int = 10, offset: int = 0, must_show: Sequence[str] = ()) -> SearchResult:
        """"More like this": the visible photos nearest to ``image_id``'s own stored vector, through the same
        index and the same per-answer check as a text search (:meth:`visible_top`), so an excluded or pending
        photo never comes out, however near; the photo itself is left out. Refused (QueryError) when the photo
        is not visible now or has no vector of this encoder from its visible bytes."""
        if not 1 <= k <= MAX_K or offset < 0:
            raise QueryError(f"k must be 1..{MAX_K} and offset >= 0 (got k={k}, offset={offset})")
        if not store.visible_subset(self.db, [image_id], self.encoder.id):
            raise QueryError("That photo is not shown any more (or has no vector of this encoder yet); "
                             "search again.")
        vector = store.vectors_of(self.db, self.encoder.id, [image_id])[image_id]
        labels = sorted(set(must_show))
        ranked = [hit for hit in self.visible_top(vector, offset + k + 1, labels) if hit[0] != image_id]
        page = ranked[offset:offset + k]
        hits = [Hit(offset + i + 1, other, cosine, cosine) for i, (other, cosine) in enumerate(page)]
        own = not labels or image_id in store.visible_showing(self.db, self.perceiver, [image_id], labels, PRESENT)
        return SearchResult(f"like:{image_id}", hits, total=self.visible_count(labels) - int(own),
                            total_current=self.count_current(labels))
