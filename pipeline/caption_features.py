"""Reference-caption features: how a query compares with what people wrote about the photo.

For a pair (photo, query) the photo's reference captions are its captions minus the query itself (a caption
used as a query never counts as evidence for its own photo). Groups of features:

* ``ref_*`` semantic: cosine of the query with each reference (max, 2nd, mean, min, spread), with their mean
  vector, how much the references agree with each other, and how many there are.
* ``lex_*`` lexical: content-word stems of the query found in the references (plain and IDF-weighted recall,
  precision, consensus of two or more references), TF-IDF cosine and BM25 against the references.
* ``cat_*`` word categories (colour, person, gender, animal, number, place, action, clothing, vehicle, sport):
  whether the references agree with the query's words of each category, or use a different word of it ("a man"
  against references saying "a woman" is a conflict that similarity scores blur).
* ``gal_*`` gallery-relative: the photo's best reference similarity against every photo of the gallery (the
  collection searched): rank, margin over the best other photo, z-score. A query that fits many photos
  equally well is weak evidence for any one of them.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from db import models as model_store
from db.database import Database

ZERO_SHOT_SCORE = "ref_max"
TextEncode = Callable[[Sequence[str]], np.ndarray]

STOP_WORDS = frozenset("""
a an the and or of in on at to for from with by as is are was were be been being it its this that these those there
their they them he she his her him who whom which what while into onto over under up down out off near next through
across along around behind beside between some one two three four five several many other others another each very
just has have had having do does doing than then so but not no yes also s t can will
""".split())
_WORD = re.compile(r"[a-z]+")
_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", ""))


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A small suffix stripper: enough to merge plural, -ing and -ed forms of caption words. Cached: training
    stems every reference caption once per pair it belongs to (a third of the caption features' time)."""
    if len(word) <= 3:
        return word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: len(word) - len(suffix)] + replacement
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":  # running -> runn -> run
        word = word[:-1]
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


@dataclass
class Gallery:
    """The reference captions of a photo collection, encoded once, with word document frequencies for IDF."""

    image_ids: np.ndarray  # photo of each caption
    caption_ids: np.ndarray
    vectors: np.ndarray  # (captions, d), L2-normalised
    document_frequency: Counter

    @classmethod
    def build(cls, captions: pd.DataFrame, encode: TextEncode) -> Gallery:
        """From (image_id, caption_id, text) rows."""
        frequency = Counter()
        for text in captions["text"]:
            frequency.update({stem(w) for w in content_words(text)})
        order = np.argsort(captions["image_id"].to_numpy(), kind="stable")
        captions = captions.iloc[order]
        return cls(captions["image_id"].to_numpy(), captions["caption_id"].to_numpy(),
                   np.asarray(encode(captions["text"].tolist()), np.float32), frequency)

    def __post_init__(self) -> None:
        self.photos, starts = np.unique(self.image_ids, return_index=True) if len(self.image_ids) else \
            (np.array([], object), np.array([], int))
        self.starts = starts
        self.photo_row = {photo: i for i, photo in enumerate(self.photos)}
        self.caption_row = {caption: i for i, caption in enumerate(self.caption_ids)}
        self.documents = len(self.caption_ids)
        self._idf: dict[str, float] = {}  # stem -> idf, filled as asked

    def idf(self, word_stem: str) -> float:
        weight = self._idf.get(word_stem)
        if weight is None:
            weight = self._idf[word_stem] = \
                math.log((self.documents + 1) / (self.document_frequency.get(word_stem, 0) + 1)) + 1.0
        return weight

    def best_per_photo(self, query_vectors: np.ndarray, query_ids: Sequence[str]) -> np.ndarray:
        """(queries, photos): each query's best cosine with each photo's captions, its own caption excluded."""
        result = np.zeros((len(query_vectors), len(self.photos)), np.float32)
        if not len(self.photos):
            return result
        for start in range(0, len(query_vectors), 256):
            sims = query_vectors[start : start + 256] @ self.vectors.T
            for offset, query_id in enumerate(query_ids[start : start + 256]):
                own = self.caption_row.get(query_id)
                if own is not None:
                    sims[offset, own] = -1.0
            result[start : start + 256] = np.maximum.reduceat(sims, self.starts, axis=1)
        return result


def judged_gallery(db: Database, image_ids: Sequence[str], encode: TextEncode) -> Gallery:
    """The captions of the photos a target's pairs cover, whether or not their files are here: the collection its
    judges searched, which training's ``gal_*`` features rank a photo against (pipeline/train.py)."""
    return Gallery.build(model_store.reference_captions(db, image_ids), encode)


def visible_gallery(db: Database, encode: TextEncode) -> Gallery:
    """Captions of the photos search may show: what a live query is compared against."""
    return Gallery.build(model_store.visible_captions(db), encode)


def compute(pairs: pd.DataFrame, query_vectors: np.ndarray, references: pd.DataFrame, encode: TextEncode,
            gallery: Gallery) -> pd.DataFrame:
    """Caption features of pairs (image_id, query_id, query_text); ``references`` (image_id, caption_id, text)."""
    by_photo = {photo: frame for photo, frame in references.groupby("image_id", sort=False)}
    # Reference vectors come from the gallery where it holds the caption (it always does in training and for
    # visible photos in search), so a search never encodes captions at query time.
    unknown = references[~references["caption_id"].isin(gallery.caption_row)]
    fresh = dict(zip(unknown["caption_id"], np.asarray(encode(unknown["text"].tolist()), np.float32))) \
        if len(unknown) else {}

    def vector_of(caption_id: str) -> np.ndarray:
        row = gallery.caption_row.get(caption_id)
        return gallery.vectors[row] if row is not None else fresh[caption_id]

    rows = []
    for (photo, query_id, query), vector in zip(pairs[["image_id", "query_id", "query_text"]].itertuples(index=False),
                                                query_vectors):
        frame = by_photo.get(photo)
        kept = [] if frame is None else [(c, t) for c, t in zip(frame["caption_id"], frame["text"]) if c != query_id]
        refs = [t for _, t in kept]
        ref_vectors = np.stack([vector_of(c) for c, _ in kept]) if kept else np.zeros((0, len(vector)), np.float32)
        rows.append({**_semantic(vector, ref_vectors), **_lexical(query, refs, gallery.idf), **_categories(query, refs)})
    features = pd.DataFrame(rows, index=pairs.index)
    return pd.concat([features, _gallery_relative(pairs, query_vectors, features["ref_max"].to_numpy(), gallery)],
                     axis=1)


def _semantic(query: np.ndarray, refs: np.ndarray) -> dict[str, float]:
    n = len(refs)
    if n == 0:
        return dict.fromkeys(("ref_max", "ref_2nd", "ref_mean", "ref_min", "ref_std", "ref_centroid",
                              "ref_agreement", "has_refs"), 0.0)
    sims = np.sort(refs @ query)[::-1]
    centroid = refs.mean(axis=0)
    total = refs.sum(axis=0)
    return {
        "ref_max": float(sims[0]), "ref_2nd": float(sims[min(1, n - 1)]), "ref_mean": float(sims.mean()),
        "ref_min": float(sims[-1]), "ref_std": float(sims.std()),
        "ref_centroid": float(centroid @ query / max(np.linalg.norm(centroid), 1e-9)),
        "ref_agreement": float((total @ total - n) / (n * (n - 1))) if n > 1 else 1.0,  # mean pairwise cosine
        # Whether there are references at all, not how many: a caption's own photo has one reference fewer
        # (the query is left out), so a count would tell the model which photo the query was written for.
        "has_refs": 1.0,
    }


def _mean(values: list[float]) -> float:
    """The mean of a short Python list (numpy's costs more to call than to compute; training calls it ~70,000
    times)."""
    return math.fsum(values) / len(values)


def _lexical(query: str, refs: list[str], idf: Callable[[str], float]) -> dict[str, float]:
    """Word overlap of the query with its photo's references. Float sums over sets are exact (math.fsum): a plain
    sum follows the set's order, which changes with Python's hash seed, and the features then differed in their
    last bits from one training call to the next (enough to move a tree split; tests/test_caption_features.py)."""
    query_stems = [stem(w) for w in content_words(query)]
    wanted = set(query_stems)
    ref_stems = [[stem(w) for w in content_words(r)] for r in refs]
    ref_sets = [set(s) for s in ref_stems]
    union = set().union(*ref_sets)
    weight = {s: idf(s) for s in wanted}
    total = math.fsum(weight.values()) or 1.0
    count = max(len(wanted), 1)
    recall = [len(wanted & r) / count for r in ref_sets] or [0.0]
    recall_idf = [math.fsum(weight[s] for s in wanted & r) / total for r in ref_sets] or [0.0]
    precision_idf = [math.fsum(idf(s) for s in wanted & r) / (math.fsum(idf(s) for s in r) or 1.0)
                     for r in ref_sets] or [0.0]
    support = Counter(s for r in ref_sets for s in r)
    query_tf, ref_tf = Counter(query_stems), Counter(s for r in ref_stems for s in r)
    dot = math.fsum(query_tf[s] * ref_tf[s] * idf(s) ** 2 for s in query_tf)
    query_norm = math.sqrt(math.fsum((c * idf(s)) ** 2 for s, c in query_tf.items())) or 1.0
    ref_norm = math.sqrt(math.fsum((c * idf(s)) ** 2 for s, c in ref_tf.items())) or 1.0
    length = sum(ref_tf.values())
    bm25 = math.fsum(idf(s) * ref_tf[s] * 2.2 / (ref_tf[s] + 1.2 * (0.25 + 0.75 * length / 30.0)) for s in wanted)
    return {
        "lex_recall_union": len(wanted & union) / count,
        "lex_recall_union_idf": math.fsum(weight[s] for s in wanted & union) / total,
        "lex_recall_max": max(recall), "lex_recall_mean": _mean(recall),
        "lex_recall_idf_max": max(recall_idf), "lex_recall_idf_mean": _mean(recall_idf),
        "lex_precision_idf_max": max(precision_idf), "lex_precision_idf_mean": _mean(precision_idf),
        "lex_consensus": sum(1 for s in wanted if support[s] >= 2) / count,
        "lex_missing_idf_max": max([weight[s] for s in wanted - union], default=0.0),
        "lex_tfidf_cosine": dot / (query_norm * ref_norm), "lex_bm25": bm25,
        "query_words": float(len(wanted)),
    }


WORD_CATEGORIES = {
    "colour": "black white brown red blue green yellow orange pink purple gray grey tan blond blonde dark",
    "person": "man men woman women boy boys girl girls child children kid kids baby person people lady ladies guy guys "
              "player players team crowd toddler teenager",
    "animal": "dog dogs puppy cat cats horse horses bird birds cow cows sheep bull bulls",
    "number": "one two three four five six group several many crowd team couple",
    "place": "water snow grass beach street ocean lake pool field park mountain sand road city river rock rocks dirt "
             "wave waves stage building forest woods trail",
    "action": "run running jump jumping walk walking ride riding swim swimming climb climbing sit sitting stand "
              "standing play playing throw throwing catch catching look looking smile smiling",
    "clothing": "shirt jacket dress hat helmet coat shorts pants jeans suit uniform costume cap sunglasses glasses "
                "swimsuit skirt sweater hood",
    "vehicle": "bike bicycle car motorcycle boat truck bus train skateboard surfboard snowboard skis kayak scooter atv",
    "sport": "ball soccer football basketball tennis baseball volleyball frisbee hockey rugby golf race",
}
WORD_CATEGORIES = {name: frozenset(words.split()) for name, words in WORD_CATEGORIES.items()}
GENDER = {"male": frozenset("man men boy boys guy guys gentleman he his".split()),
          "female": frozenset("woman women girl girls lady ladies she her".split())}


def _categories(query: str, refs: list[str]) -> dict[str, float]:
    """Per category: the query's words of it, the references' mean agreement with them, the share of references
    using only other words of it (a conflict), and recall over all references; -1 when the query has none."""
    query_words = set(_WORD.findall(query.lower()))
    ref_words = [set(_WORD.findall(r.lower())) for r in refs]
    union = set().union(*ref_words)
    share = (lambda values: _mean(values) if values else 0.0)
    result = {}
    for name, vocabulary in WORD_CATEGORIES.items():
        mine = query_words & vocabulary
        result[f"cat_{name}_query"] = float(len(mine))
        if mine:
            result[f"cat_{name}_agree"] = share([len(mine & r) / len(mine) for r in ref_words])
            result[f"cat_{name}_conflict"] = share([float(bool((r & vocabulary) - mine) and not mine & r)
                                                    for r in ref_words])
            result[f"cat_{name}_recall"] = len(mine & union) / len(mine)
        else:
            result[f"cat_{name}_agree"] = result[f"cat_{name}_conflict"] = result[f"cat_{name}_recall"] = -1.0
    genders = {g for g, words in GENDER.items() if query_words & words}
    ref_genders = [{g for g, words in GENDER.items() if r & words} for r in ref_words]
    result["cat_gender_query"] = float(bool(genders))
    result["cat_gender_conflict"] = share([float(bool(g and genders and not g & genders)) for g in ref_genders])
    result["cat_gender_agree"] = share([float(bool(g & genders)) for g in ref_genders])
    return result


def _gallery_relative(pairs: pd.DataFrame, query_vectors: np.ndarray, own: np.ndarray, gallery: Gallery) -> pd.DataFrame:
    """Where the photo's best reference similarity stands among every gallery photo's, per query."""
    keys = list(zip(pairs["query_id"], pairs["query_text"]))
    unique = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    first = {}
    for row, key in enumerate(keys):
        first.setdefault(key, row)
    best = gallery.best_per_photo(query_vectors[[first[k] for k in unique]], [k[0] for k in unique])
    best = best[[unique[k] for k in keys]]
    in_gallery = np.array([gallery.photo_row.get(p, -1) for p in pairs["image_id"]])
    others = best.copy()
    others[np.flatnonzero(in_gallery >= 0), in_gallery[in_gallery >= 0]] = -1.0
    top_other = others.max(axis=1) if best.shape[1] else np.zeros(len(pairs), np.float32)
    mean, spread = (best.mean(axis=1), best.std(axis=1) + 1e-6) if best.shape[1] else (0.0, 1.0)
    top10 = -np.sort(-best, axis=1)[:, :10].mean(axis=1) if best.shape[1] else np.zeros(len(pairs))
    return pd.DataFrame({
        "gal_rank": np.log1p((best > own[:, None]).sum(axis=1)),
        "gal_margin": own - top_other,
        "gal_minus_top10": own - top10,
        "gal_z": (own - mean) / spread,
        "gal_top": best.max(axis=1) if best.shape[1] else np.zeros(len(pairs)),
    }, index=pairs.index)
