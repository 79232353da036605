"""Search: query text -> top-K (image_id, score) by exact cosine, over visible photos only.

The index is a snapshot of the `visible_images` view taken when the :class:`Searcher` is built; every answer is
checked against the view again before it is returned, so a photo the minors filter excludes after the
snapshot still never comes out. The dashboard keeps one Searcher per encoder (st.cache_resource) and rebuilds
it when vectors change.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from db import embeddings as store
from db.database import Database
from pipeline.encoders.base import Encoder
from pipeline.minors import query_block
from pipeline.rerank import Reranker
from pipeline.vector_index import VectorIndex

MAX_QUERY_CHARS = 1000
MAX_K = 1000
TEXT_CACHE_SIZE = 1024
RERANK_DEPTH = 100


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


class Searcher:
    """Top-K search for one encoder over the visible photos that have its vectors.

    Safe to share between threads (Streamlit sessions): building the index and the text cache are guarded by a
    lock; ranking itself only reads the index."""

    def __init__(self, db: Database, encoder: Encoder, reranker: Reranker | None = None, *,
                 log_blocked: Callable[[str, query_block.QueryCheck, str | None], None] | None = None) -> None:
        """``log_blocked`` records a refused query; by default it writes to ``db`` at once. The dashboard passes
        its write queue instead, so a refused query is logged even while a pipeline stage holds the file."""
        self.db, self.encoder, self.reranker = db, encoder, reranker
        self.log_blocked = log_blocked or (lambda query, verdict, user: query_block.log(db, query, verdict, user))
        self._index: VectorIndex | None = None
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def index(self) -> VectorIndex:
        """Built on first use, so a blocked or malformed query never waits for (or needs) an index."""
        with self._lock:
            if self._index is None:
                rows = store.visible_vector_count(self.db, self.encoder.id)
                if not rows:
                    raise NoVectors(f"No visible photo vectors for encoder {self.encoder.id} yet: run "
                                    "`python -m pipeline filter` and `python -m pipeline embed` "
                                    "(after `python -m pipeline ingest`).")
                self._index = VectorIndex.build(store.visible_vector_chunks(self.db, self.encoder.id), rows=rows)
            return self._index

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

    def search(self, text: str | None, *, k: int = 10, offset: int = 0, min_score: float | None = None,
               user: str | None = None, rerank: bool = False) -> SearchResult:
        """One page of results; ``min_score`` drops hits scoring below a cut-off. With ``rerank`` (and a
        re-ranker) the encoder's top RERANK_DEPTH are re-ordered by the model and pages end there. A query about
        children gets the legal notice and no photos, and is logged with ``user``."""
        if not 1 <= k <= MAX_K or offset < 0:
            raise QueryError(f"k must be 1..{MAX_K} and offset >= 0 (got k={k}, offset={offset})")
        if rerank and self.reranker is None:
            raise QueryError("re-ranking is off: no model is chosen (`python -m pipeline use-reranker RUN_ID`)")
        query, notices = clean_query(text)
        verdict = query_block.check(query)
        if verdict.blocked:
            self.log_blocked(query, verdict, user)
            return SearchResult(query, [], notices, query_block.LEGAL_NOTICE)
        vector = self.query_vector(query)
        ranked = self.index.top_k(vector, RERANK_DEPTH, 0) if rerank else self.index.top_k(vector, k, offset)
        visible = store.visible_subset(self.db, [image_id for image_id, _ in ranked])
        if len(visible) < len(ranked):
            notices.append("Some photos were withdrawn since the index was built; refresh the search index.")
        ranked = [(image_id, cosine) for image_id, cosine in ranked if image_id in visible]
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
        return SearchResult(query, hits, notices)
