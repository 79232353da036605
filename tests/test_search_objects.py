"""Search sees objects: object phrases, fusion into the offline encoder's vectors (own encoder id, photos not
perceived handled and re-projected once perceived), the weight chosen by cross-fit, the "must show" filter (visible
photos only), and why each result matched. The goals on the real COCO-mini are in test_evaluate_retrieval.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from builders import ingest
from db import embeddings as store
from db import perception, reads
from db.database import Database
from fakes import ColourEncoder
from pipeline import bridge
from pipeline.embed import embed
from pipeline.encoders.offline import Bridge, OfflineEncoder
from pipeline.minors import moderation
from pipeline.minors.filter import run_filter
from pipeline.object_text import (FLOOR, NOT_PERCEIVED, PRESENT, ObjectFusion, PhotoObjects, PhraseVectors, Seen,
                                  choose_weight, fuse, object_mixtures, phrase, summarise)
from pipeline.perception import PERCEIVER_ID
from pipeline.search import QueryError, Searcher, explain
from test_embed import photo_folder, solid


def perceive_rows(db: Database, seen: dict[str, list[tuple[str, float]]], perceiver: str = PERCEIVER_ID) -> None:
    """Store perception results as the perceive stage would: ``seen`` maps a photo to its (label, score) objects."""
    shas = dict(db.fetch_all("SELECT id, sha256 FROM images"))
    photos = pd.DataFrame([{"image_id": i, "sha256": shas[i], "width": 16, "height": 16, "objects": len(found),
                            "faces": 0, "seconds": 0.01} for i, found in seen.items()])
    detections = pd.DataFrame([{"image_id": i, "sha256": shas[i], "model_id": "yolox-test", "kind": "object",
                                "label": label, "score": score, "x0": 0.0, "y0": 0.0, "x1": 8.0, "y1": 8.0,
                                "size_px": 8.0, "age": None, "age_model": None}
                               for i, found in seen.items() for label, score in found],
                              columns=["image_id", "sha256", *perception.DETECTION_COLUMNS])
    with db.write() as cur:
        perception.save_perceived(cur, perceiver, photos, detections)


# ---------------------------------------------------------------------------------------------- object phrases
def test_phrases_count_confident_boxes_and_read_as_english() -> None:
    assert phrase("dog", 1) == "a photo of a dog."
    assert phrase("apple", 1) == "a photo of an apple."
    assert phrase("person", 2) == "a photo of two people."
    assert phrase("bus", 3) == "a photo of three buses."
    assert phrase("sheep", 12) == "a photo of many sheep."


def test_summary_counts_from_present_ignores_below_floor_and_knows_unperceived() -> None:
    detections = pd.DataFrame({
        "image_id": ["a", "a", "a", "a", "b"], "kind": ["object", "object", "object", "face", "object"],
        "label": ["person", "person", "dog", "face", "cat"],
        "score": [0.9, PRESENT, PRESENT - 0.01, 0.99, FLOOR - 0.01],
    })
    a, b, c = summarise(detections, perceived={"a", "b"}, image_ids=["a", "b", "c"])
    assert a == PhotoObjects(True, (Seen("dog", 0, PRESENT - 0.01), Seen("person", 2, 0.9)))
    assert a.shown == [("person", 2)] and a.describe() == "person ×2"  # the weak dog shapes the vector only
    assert b == PhotoObjects(True, ()) and b.describe() == "no objects detected"
    assert c is NOT_PERCEIVED and c.describe() == "not perceived yet"


def test_fusion_moves_photos_with_objects_and_leaves_others_alone() -> None:
    rng = np.random.default_rng(0)
    bridge_vectors = rng.normal(size=(3, 8)).astype(np.float32)
    bridge_vectors /= np.linalg.norm(bridge_vectors, axis=1, keepdims=True)
    dog = np.eye(8, dtype=np.float32)[0]
    phrases = PhraseVectors(lambda texts: np.stack([dog if "dog" in t else np.eye(8, dtype=np.float32)[1]
                                                    for t in texts]))
    photos = [PhotoObjects(True, (Seen("dog", 1, 0.9),)), PhotoObjects(True, ()), NOT_PERCEIVED]
    mixtures, has = object_mixtures(photos, phrases, 8)
    assert has.tolist() == [True, False, False]
    fused = fuse(bridge_vectors, mixtures, has, 2.0, np.zeros(8, np.float32))
    assert np.allclose(fused[1:], bridge_vectors[1:])  # no objects: the bridge vector alone
    assert fused[0] @ dog > bridge_vectors[0] @ dog + 0.3
    assert np.allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)


def test_weight_is_chosen_by_held_out_captions() -> None:
    """Objects that name each photo's caption win the largest weight; objects that are noise, the smallest."""
    rng = np.random.default_rng(1)
    photos, dim = 40, 16
    truth = rng.normal(size=(photos, dim)).astype(np.float32)
    queries = truth + 0.3 * rng.normal(size=truth.shape).astype(np.float32)
    target = np.arange(photos)
    noise = rng.normal(size=(photos, dim)).astype(np.float32)
    folds = [(noise, None, target % 2 == f) for f in (0, 1)]  # the bridge knows nothing here
    has = np.ones(photos, dtype=bool)
    informative, table = choose_weight(folds, truth, has, queries, target, np.zeros(dim, np.float32))
    assert informative == 3.0 and table["3"] > table["0.5"]
    useless, _ = choose_weight([(truth, None, m) for _, _, m in folds], noise, has, queries, target,
                               np.zeros(dim, np.float32))
    assert useless == 0.5


def test_fusion_ids_name_perceiver_and_weight() -> None:
    fusion = ObjectFusion("perceiver-a", 1.25, np.ones(4, np.float32), {"cross_fit_folds": 5})
    assert ObjectFusion.from_json(fusion.to_json()).id == fusion.id
    assert len({fusion.id, ObjectFusion("perceiver-b", 1.25, np.ones(4, np.float32), {"cross_fit_folds": 5}).id,
                ObjectFusion("perceiver-a", 1.5, np.ones(4, np.float32), {"cross_fit_folds": 5}).id}) == 3


# ---------------------------------------------------------------------------- the offline encoder with objects
@pytest.fixture(scope="module")
def offline() -> OfflineEncoder:
    return OfflineEncoder()


def test_objects_change_the_encoder_id_and_need_detections(offline: OfflineEncoder) -> None:
    fused = offline.with_objects(ObjectFusion(PERCEIVER_ID))
    assert fused.id != offline.id and "+obj-" in fused.id and fused.feature_id == offline.feature_id
    assert fused.with_bridge(Bridge(2.0)).objects is fused.objects and fused.with_objects(None).id == offline.id
    logits = np.random.default_rng(0).normal(size=(2, 1000)).astype(np.float32)
    with pytest.raises(TypeError, match="embed_current"):
        fused.project(logits)  # the plain embed path cannot see detections: it refuses rather than mix vectors
    alone = fused.project_photos(logits, [NOT_PERCEIVED, PhotoObjects(True, (Seen("dog", 2, 0.8),))])
    assert np.allclose(alone[0], offline.project(logits)[:1][0], atol=1e-6)
    dogs = offline.encode_texts(["two dogs"])[0]
    assert alone[1] @ dogs > offline.project(logits)[1] @ dogs + 0.1
    [labels] = offline.top_labels(logits[:1], 3)
    assert len(labels) == 3 and labels[0][1] >= labels[1][1] >= labels[2][1]


def test_unperceived_photos_get_the_bridge_alone_until_perceived(db: Database, tmp_path: Path,
                                                                 offline: OfflineEncoder) -> None:
    ingest(db, photo_folder(tmp_path / "c", {f"{i:012d}.png": solid((40 * i, 90, 200 - 40 * i)) for i in (1, 2, 3)}))
    perceive_rows(db, {"c/1": [("dog", 0.9), ("dog", 0.7)], "c/2": []})
    fused = offline.with_objects(ObjectFusion(PERCEIVER_ID))
    report, objects = bridge.embed_current(db, fused, workers=0, quiet=True)
    assert report.embedded == 3 and (objects.fused, objects.not_perceived) == (3, 1)
    plain = store.vectors_of(db, offline.id, ["c/1", "c/2", "c/3"])
    with_objects = store.vectors_of(db, fused.id, ["c/1", "c/2", "c/3"])
    assert not np.allclose(with_objects["c/1"], plain["c/1"])
    assert np.allclose(with_objects["c/2"], plain["c/2"]) and np.allclose(with_objects["c/3"], plain["c/3"])
    again = bridge.embed_current(db, fused, workers=0, quiet=True)[1]
    assert again.fused == 0  # nothing changed
    perceive_rows(db, {"c/3": [("cat", 0.8)]})  # perceived after its vector was made
    later = bridge.embed_current(db, fused, workers=0, quiet=True)[1]
    assert (later.fused, later.not_perceived) == (1, 0)
    assert not np.allclose(store.vectors_of(db, fused.id, ["c/3"])["c/3"], plain["c/3"])


# ------------------------------------------------------------------------------------ filter and explanations
@pytest.fixture
def searcher(db: Database, tmp_path: Path) -> Searcher:
    colours = [(255, 0, 0), (230, 20, 20), (0, 255, 0), (0, 0, 255), (200, 0, 40), (250, 10, 10)]
    ingest(db, photo_folder(tmp_path / "c", {f"{i:012d}.png": solid(c) for i, c in enumerate(colours, start=1)}))
    run_filter(db, detector=None, quiet=True)
    embed(db, ColourEncoder(), workers=0, quiet=True)
    perceive_rows(db, {"c/1": [("dog", 0.9), ("person", 0.8)], "c/2": [("dog", 0.95)], "c/3": [("dog", 0.6)],
                       "c/4": [("person", 0.9)], "c/5": [("dog", PRESENT - 0.05), ("person", 0.7)], "c/6": []})
    return Searcher(db, ColourEncoder())


def test_must_show_keeps_visible_photos_showing_every_object(db: Database, searcher: Searcher) -> None:
    ranked = [h.image_id for h in searcher.search("red", k=6).hits]
    dogs = [h.image_id for h in searcher.search("red", k=6, must_show=["dog"]).hits]
    assert set(dogs) == {"c/1", "c/2", "c/3"}  # c/5's dog is below PRESENT
    assert dogs == [i for i in ranked if i in {"c/1", "c/2", "c/3"}]  # cosine order kept
    assert [h.image_id for h in searcher.search("red", k=6, must_show=["dog", "person"]).hits] == ["c/1"]
    page_two = searcher.search("red", k=2, offset=2, must_show=["dog"]).hits
    assert [(h.rank, h.image_id) for h in page_two] == [(3, dogs[2])]
    moderation.decide(db, ["c/2"], "excluded", moderator="mia", reason="test")
    assert "c/2" not in [h.image_id for h in searcher.search("red", k=6, must_show=["dog"]).hits]
    with pytest.raises(QueryError, match="unknown object"):
        searcher.search("red", must_show=["dgo"])


def test_filter_and_explanations_read_current_bytes_only(db: Database, searcher: Searcher) -> None:
    with db.write() as cur:
        cur.execute("UPDATE images SET sha256 = 'replaced' WHERE id = 'c/3'")  # new bytes, not perceived yet
    assert "c/3" not in store.visible_showing(db, PERCEIVER_ID, ["c/1", "c/3"], ["dog"], PRESENT)
    assert sorted(store.visible_showing_all(db, PERCEIVER_ID, ["dog"], PRESENT, 2)) == ["c/1", "c/2"]
    assert store.visible_showing_all(db, PERCEIVER_ID, ["dog"], PRESENT, 1) is None  # more than the limit
    why = explain(db, ColourEncoder(), ["c/1", "c/5", "c/6", "c/3"])
    assert why["c/1"].text() == "objects: dog, person" and why["c/1"].labels == []  # no ImageNet labels here
    assert why["c/5"].objects.describe() == "person"
    assert why["c/6"].text() == "objects: no objects detected"
    assert why["c/3"].text() == "objects: not perceived yet"
    shown = store.objects_on_visible_photos(db, PERCEIVER_ID, PRESENT)
    assert list(zip(shown["label"], shown["photos"])) == [("person", 3), ("dog", 2)]  # most photos first; c/3 out


def test_lookups_by_key_agree_with_the_visible_images_view(db: Database, searcher: Searcher) -> None:
    """The per-answer checks read a few photos by key (db.reads.visible_keyed: photo_visible, the macro the view is
    defined with) instead of filtering the view: the same photos, whatever the decision, its bytes or the photo's."""
    moderation.decide(db, ["c/2"], "excluded", moderator="mia", reason="test")
    with db.write() as cur:
        cur.execute("UPDATE minors_decisions SET status = 'pending_review' WHERE image_id = 'c/4'")
        cur.execute("UPDATE minors_decisions SET sha256 = 'other bytes' WHERE image_id = 'c/5'")
        cur.execute("UPDATE images SET sha256 = 'replaced' WHERE id = 'c/3'")  # decision and vector of old bytes
        for table, key in (("images", "id"), ("minors_decisions", "image_id")):  # cleared new bytes, vector of old
            cur.execute(f"UPDATE {table} SET sha256 = 'new' WHERE {key} = 'c/6'")
        cur.execute("INSERT INTO captions VALUES ('c/x#1', 'c', 'c/1', 'a red photo', 'test'), "
                    "('c/x#2', 'c', 'c/2', 'an excluded photo', 'test')")
    ids = [f"c/{i}" for i in range(0, 8)]
    view = {r[0] for r in db.fetch_all("SELECT id FROM visible_images")}
    assert view == {"c/1", "c/6"}
    assert store.visible_subset(db, ids) == view
    with_vectors = {r[0] for r in db.fetch_all("SELECT v.id FROM visible_images v JOIN embeddings e ON e.image_id "
                                               "= v.id AND e.sha256 = v.sha256 WHERE e.encoder_id = ?",
                                               [ColourEncoder().id])}
    assert store.visible_subset(db, ids, ColourEncoder().id) == with_vectors == {"c/1"}
    assert store.visible_showing(db, PERCEIVER_ID, ids, ["dog", "person"], PRESENT, ColourEncoder().id) == {"c/1"}
    assert store.visible_showing(db, PERCEIVER_ID, ids, ["dog"], PRESENT) == {"c/1"}
    assert store.visible_subset(db, []) == set() and reads.visible_captions_of(db, []) == {}
    captions = db.fetch_all("SELECT c.image_id, list(c.text ORDER BY c.id) FROM captions c JOIN visible_images v "
                            "ON v.id = c.image_id GROUP BY c.image_id")
    assert reads.visible_captions_of(db, ids) == dict(captions) and "an excluded photo" not in str(captions)
    assert set(reads.visible_photo_files(db, ids)) == view
    assert set(perception.detections_of(db, PERCEIVER_ID, ids)["image_id"]) == {"c/1", "c/2", "c/4", "c/5"}
    assert perception.perceived_ids(db, PERCEIVER_ID, ids) == {"c/1", "c/2", "c/4", "c/5"}  # c/3, c/6: new bytes
    assert perception.perceived_ids(db, PERCEIVER_ID, []) == set()
    many = [f"c/{i}" for i in range(reads.KEYED_LIMIT + 1)]  # past the keyed limit: one scan, the same answer
    assert store.visible_subset(db, many, ColourEncoder().id) == {"c/1"}
    assert set(perception.detections_of(db, PERCEIVER_ID, many)["image_id"]) == {"c/1", "c/2", "c/4", "c/5"}


def test_cli_embed_reports_unperceived_and_search_filters_and_explains(tmp_path: Path, capsys) -> None:
    from dashboard import live_search
    from pipeline.cli import main

    path = str(tmp_path / "s.duckdb")
    folder = photo_folder(tmp_path / "c", {f"{i:012d}.png": solid((60 * i, 120, 90)) for i in (1, 2, 3)})
    assert main(["ingest", "--data", str(folder), "--db", path, "--quiet"]) == 0
    assert main(["filter", "--db", path, "--quiet"]) == 0
    with Database(path) as db:
        perceive_rows(db, {"c/1": [("dog", 0.9), ("dog", 0.8)], "c/2": [("person", 0.9)]})
    capsys.readouterr()
    assert main(["embed", "--encoder", "offline", "--db", path, "--quiet", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "+obj-" in out and "3 photos given their objects" in out and "1 photo(s) not perceived" in out
    assert main(["search", "a dog", "--encoder", "offline", "--db", path, "--must-show", "dog", "--why"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    assert "c/1" in line and "(objects: dog ×2 · labels: " in line
    with Database(path) as db:
        fused_id = store.encoders_with_vectors(db).query("encoder_id.str.contains('obj-')")["encoder_id"].item()
        assert live_search._offline(db, fused_id).objects is not None  # the dashboard loads what embed made


def test_a_rare_object_is_scored_directly_with_the_same_answer(db: Database, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Past two rounds of index candidates, a rare object's few photos are scored directly: same hits as reading
    the whole index."""
    from pipeline import search

    files = {f"{i:012d}.png": solid((250 - 4 * i, 10, 4 * i)) for i in range(1, 61)}  # red turning blue
    ingest(db, photo_folder(tmp_path / "c", files))
    run_filter(db, detector=None, quiet=True)
    embed(db, ColourEncoder(), workers=0, quiet=True)
    perceive_rows(db, {"c/55": [("giraffe", 0.9)], "c/58": [("giraffe", 0.8)]})  # far down a "red" ranking
    monkeypatch.setattr(search, "RERANK_DEPTH", 1)  # rounds of 8 then 32 candidates, of 60 photos
    asked = []
    monkeypatch.setattr(store, "visible_showing_all", lambda *a: asked.append(a) or ["c/55", "c/58"])
    direct = Searcher(db, ColourEncoder()).search("red", k=2, must_show=["giraffe"]).hits
    assert len(asked) == 1
    monkeypatch.undo()
    monkeypatch.setattr(search, "RERANK_DEPTH", 1)
    monkeypatch.setattr(search, "DIRECT_LIMIT", 0)
    scanned = Searcher(db, ColourEncoder()).search("red", k=2, must_show=["giraffe"]).hits
    assert [h.image_id for h in direct] == [h.image_id for h in scanned] == ["c/55", "c/58"]
    assert [h.cosine for h in direct] == pytest.approx([h.cosine for h in scanned], abs=1e-6)
