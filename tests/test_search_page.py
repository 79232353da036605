"""The Live search page through AppTest: widgets, results from visible photos only, flags (one, bulk) written as
one row each with who/what, undo, the legal notice for a blocked query, cut-off and paging, empty states."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from builders import coco_dir
from dashboard import context, live_search
from dashboard_support import DATA, MODERATOR, PRODUCT, open_app
from db.database import Database
from fakes import ColourEncoder
from pipeline.cli import main as pipeline_main
from pipeline.embed import embed
from pipeline.vector_index import VectorIndex
from test_embed import solid
from test_search_objects import perceive_rows

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}
CHILD_PHOTO = "c/1"  # its caption names a boy: the minors filter excludes it


def colour_photos(root: Path, photos: int = 24) -> Path:
    names = list(COLOURS)
    images, captions, files = [], [], {}
    for i in range(1, photos + 1):
        colour = names[i % 3]
        images.append({"id": i, "file_name": f"{i:012d}.png", "width": 16, "height": 16})
        files[f"{i:012d}.png"] = solid(COLOURS[colour])
        text = f"A little boy in a {colour} room." if i == 1 else f"A {colour} wall, photo {i}."
        captions.append({"id": 10 * i, "image_id": i, "caption": text})
    return coco_dir(root, images=images, captions=captions, files=files)


def embedded_colour_db(path: Path, photos_folder: Path, photos: int = 24) -> Path:
    """A database at ``path`` of ``colour_photos``, filtered (photo 1, the boy, held back) and embedded."""
    assert pipeline_main(["ingest", "--data", str(colour_photos(photos_folder, photos)), "--db", str(path),
                          "--quiet"]) == 0
    assert pipeline_main(["filter", "--db", str(path), "--quiet"]) == 0
    with Database(path) as db:
        embed(db, ColourEncoder(), workers=0, quiet=True)
    return path


@pytest.fixture(scope="module")
def search_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search_page")
    path = embedded_colour_db(root / "studio.duckdb", root / "c")
    with Database(path) as db:
        # Objects: a cat in the excluded boy's photo only, a dog in every sixth photo, people in photos 6 and 7;
        # photo 3 perceived with nothing found, the rest not perceived.
        perceive_rows(db, {CHILD_PHOTO: [("cat", 0.9)], "c/6": [("dog", 0.9), ("person", 0.8), ("person", 0.7)],
                           "c/12": [("dog", 0.8)], "c/18": [("dog", 0.7)], "c/24": [("dog", 0.9)],
                           "c/7": [("person", 0.9)], "c/3": []})
    return path


@pytest.fixture(autouse=True)
def colour_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(live_search.ENCODER_LOADERS, "colour-", lambda db, encoder_id: ColourEncoder())


def labels_of(path: Path, user: str) -> list[tuple]:
    assert context.write_queue(str(path)).flush(10)
    with Database(path) as db:
        return db.fetch_all("SELECT user_name, query, image_id, encoder, rank, verdict, comment FROM labels "
                            "WHERE user_name = ? ORDER BY id", [user])


def search(monkeypatch: pytest.MonkeyPatch, path: Path, query: str, user=PRODUCT):
    at = open_app(monkeypatch, path, user, page="search_page.py")
    at.text_input(key="search_query").input(query).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def result_ids(at) -> list[str]:
    return [cb.key.removeprefix("sel_") for cb in at.checkbox if cb.key and cb.key.startswith("sel_")]


def test_widgets_and_results_from_visible_photos_only(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    at = search(monkeypatch, search_db, "red")
    assert at.selectbox(key="search_encoder").options == ["colour-test"]
    assert at.toggle(key="search_rerank").disabled  # no re-rank model chosen
    slider = at.slider(key="search_min_score")  # on the scale this query's scores use, lowest = everything
    assert -1.0 < slider.min < slider.max <= 1.0 and slider.value == slider.min
    ids = result_ids(at)
    assert len(ids) == 12 and CHILD_PHOTO not in ids  # a page of 12; the boy's photo is excluded
    assert all(int(i.removeprefix("c/")) % 3 == 0 for i in ids[:8])  # the 8 red photos rank first
    assert any("answered in" in c.value for c in at.caption)
    assert len(at.get("image")) == 12


def test_captions_are_shown_literally_not_as_markdown(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    """A caption is someone's text: markdown in it (links, images, emphasis) must not render on the card."""
    at = search(monkeypatch, search_db, "red")
    cards = [c.value for c in at.caption if "wall, photo" in c.value]
    assert cards and all("\\." in value for value in cards)  # "photo 3." is sent as "photo 3\\."


def test_a_flag_writes_one_row_and_undo_removes_it(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    at = search(monkeypatch, search_db, "green", user=PRODUCT)
    first = result_ids(at)[0]
    at.text_input(key=f"note_{first}").input("great match").run()
    at.button(key=f"relevant_{first}").click().run()
    assert not at.exception
    assert labels_of(search_db, PRODUCT.name) == [("rita", "green", first, "colour-test", 1, "relevant", "great match")]
    at.run()  # the export buttons were drawn before the flag landed
    assert {b.label for b in at.get("download_button")} == {"Labels as CSV", "Labels as Parquet"}
    undo = [b for b in at.button if b.key and b.key.startswith("undo_")]
    assert len(undo) == 1
    undo[0].click().run()
    assert labels_of(search_db, PRODUCT.name) == []
    assert not [b for b in at.button if b.key and b.key.startswith("undo_")]


def test_bulk_flag_writes_one_row_per_selected_result(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    at = search(monkeypatch, search_db, "blue", user=MODERATOR)
    chosen = result_ids(at)[:3]
    for image_id in chosen:
        at.checkbox(key=f"sel_{image_id}").check()
    at.selectbox(key="search_bulk_verdict").select("offensive")
    at.button(key="search_bulk_flag").click().run()
    rows = labels_of(search_db, MODERATOR.name)
    assert [(r[2], r[4], r[5]) for r in rows] == [(i, rank, "offensive") for rank, i in enumerate(chosen, 1)]
    assert not any(at.checkbox(key=f"sel_{i}").value for i in chosen)  # the selection is cleared


def test_a_blocked_query_gets_the_legal_notice_and_is_logged(monkeypatch: pytest.MonkeyPatch,
                                                            search_db: Path) -> None:
    at = search(monkeypatch, search_db, "a little girl on a beach")
    assert "children under 16" in at.error[0].value
    assert result_ids(at) == []
    assert context.write_queue(str(search_db)).flush(10)
    with Database(search_db) as db:
        logged = db.fetch_all("SELECT query, user_name FROM blocked_queries")
    assert ("a little girl on a beach", PRODUCT.name) in logged


def test_cut_off_and_paging(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    at = search(monkeypatch, search_db, "red")
    everything = result_ids(at)
    at.number_input(key="search_page").set_value(2).run()
    second = result_ids(at)
    assert len(second) == 24 - 1 - 12 and not set(second) & set(everything)  # page 2 holds ranks 13..23
    assert any("#13" in m.value for m in at.markdown)
    at.number_input(key="search_page").set_value(1).run()
    at.slider(key="search_min_score").set_value(0.9).run()
    assert 0 < len(result_ids(at)) <= len(everything)
    assert all(float(m.value.split("score **")[1].split("**")[0]) >= 0.9 for m in at.markdown if "score **" in m.value)


def test_empty_state_names_the_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    Database(tmp_path / "empty.duckdb").close()
    at = open_app(monkeypatch, tmp_path / "empty.duckdb", PRODUCT, page="search_page.py")
    assert "python -m pipeline embed" in at.info[0].value


def test_labels_export_as_csv_and_parquet(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"id": [1], "user_name": ["rita"], "verdict": ["relevant"]})
    assert live_search.labels_csv(frame).decode().splitlines() == ["id,user_name,verdict", "1,rita,relevant"]
    (tmp_path / "l.parquet").write_bytes(live_search.labels_parquet(frame))
    assert pd.read_parquet(tmp_path / "l.parquet").equals(frame)


def test_re_ranking_with_the_chosen_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With a re-rank run chosen the toggle is on offer, and re-ranked results show the model score and cosine."""
    from db import models as model_store
    from pipeline import targets, train
    from test_train import colour_coco

    path = tmp_path / "studio.duckdb"
    assert pipeline_main(["ingest", "--data", str(colour_coco(tmp_path / "c")), "--db", str(path), "--quiet"]) == 0
    assert pipeline_main(["filter", "--db", str(path), "--quiet"]) == 0
    with Database(path) as db:
        embed(db, ColourEncoder(), workers=0, quiet=True)
        prepared = train.prepare(db, ColourEncoder(), target=targets.CATEGORY_PAIRS, feature_set_names=["captions"])
        run_id = train.train(db, ColourEncoder(), prepared, ["ridge"], artifacts=tmp_path / "m", quiet=True)[1].id
        with db.write() as cur:
            model_store.set_reranker(cur, run_id, "dana")
    at = search(monkeypatch, path, "a green picture")
    plain = result_ids(at)
    toggle = at.toggle(key="search_rerank")
    assert not toggle.disabled and run_id in toggle.help
    toggle.set_value(True).run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    reranked = result_ids(at)
    assert len(reranked) == len(plain) == 12
    cards = [m.value for m in at.markdown if "score **" in m.value]
    assert all(" · cosine " in card for card in cards)
    scores = [float(card.split("score **")[1].split("**")[0]) for card in cards]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)  # model relevance 0..1


def test_object_filter_and_why_each_result_matched(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    """"Must show" offers the objects of visible photos only (not the excluded photo's cat) and filters on the
    server; every card says what was detected in its photo."""
    at = search(monkeypatch, search_db, "red")
    chooser = at.multiselect(key="search_objects")
    assert chooser.options == ["dog (4)", "person (2)"]
    whys = {c.value for c in at.caption if c.value.startswith("Why: ")}
    assert "Why: objects: person ×2, dog" in whys and "Why: objects: no objects detected" in whys
    assert "Why: objects: not perceived yet" in whys
    chooser.select("dog").run()
    assert not at.exception
    assert set(result_ids(at)) == {"c/6", "c/12", "c/18", "c/24"}
    at.multiselect(key="search_objects").select("person").run()
    assert result_ids(at) == ["c/6"]


def test_the_index_is_built_after_the_first_page_a_user_opens(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """app.py starts building the newest encoder's index after the first page of a process (here Overview), so the
    first query does not wait for a build the Live search page would only start (~7-12 s at a million vectors)."""
    path = tmp_path / "studio.duckdb"
    assert pipeline_main(["ingest", "--data", str(colour_photos(tmp_path / "c", 6)), "--db", str(path),
                          "--quiet"]) == 0
    assert pipeline_main(["filter", "--db", str(path), "--quiet"]) == 0
    with Database(path) as db:
        embed(db, ColourEncoder(), workers=0, quiet=True)
    builds = []
    original = VectorIndex.build.__func__
    monkeypatch.setattr(VectorIndex, "build", classmethod(
        lambda cls, chunks, *, rows: builds.append(rows) or original(cls, chunks, rows=rows)))

    open_app(monkeypatch, path, PRODUCT)  # the Overview only
    for thread in threading.enumerate():  # the warm-up, then the build it started
        if thread.name == "warm-search-index":
            thread.join(60)
    for thread in threading.enumerate():
        if thread.name == "index-colour-test":
            thread.join(60)
    assert builds == [6]

    at = search(monkeypatch, path, "red")
    assert result_ids(at) and builds == [6]  # the first query used the index built before


# ------------------------------------------------------------------------------------------ issue #15 item 2
def test_bulk_controls_reset_after_use(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    """After a bulk flag the verdict is back to its default, the comment empty and nothing selected, so the next
    bulk flag cannot reuse them unnoticed (the old page kept the verdict and the comment)."""
    at = search(monkeypatch, search_db, "green", user=MODERATOR)
    chosen = result_ids(at)[:2]
    for image_id in chosen:
        at.checkbox(key=f"sel_{image_id}").check()
    at.selectbox(key="search_bulk_verdict").select("not_relevant")
    at.text_input(key="search_bulk_comment").input("all wrong")
    at.button(key="search_bulk_flag").click().run()
    assert not at.exception
    assert at.selectbox(key="search_bulk_verdict").value == "relevant"
    assert at.text_input(key="search_bulk_comment").value == ""
    assert not any(at.checkbox(key=f"sel_{i}").value for i in result_ids(at))
    assert [(r[2], r[5], r[6]) for r in labels_of(search_db, MODERATOR.name)][-2:] == [
        (i, "not_relevant", "all wrong") for i in chosen]


def card_flag(at, image_id: str) -> str:
    """The "Your flag" line of a result card (the caption beside its select box)."""
    ids = result_ids(at)
    lines = [c.value for c in at.caption if c.value.startswith(("Your flag", "Not flagged"))]
    return lines[ids.index(image_id)]


def test_a_card_shows_its_current_flag_and_can_change_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         search_db: Path) -> None:
    user = DATA
    at = search(monkeypatch, search_db, "blue", user=user)
    first = result_ids(at)[0]
    assert card_flag(at, first) == "Not flagged by you yet"
    at.button(key=f"relevant_{first}").click().run()
    assert card_flag(at, first) == "Your flag: **Relevant** (saved)"
    assert at.button(key=f"relevant_{first}").proto.type == "primary"
    at.button(key=f"not_relevant_{first}").click().run()  # changed: a new label, the card follows it
    assert card_flag(at, first) == "Your flag: **Not relevant** (saved)"
    assert at.button(key=f"relevant_{first}").proto.type == "secondary"
    newest = [b for b in at.button if b.key and b.key.startswith("undo_")][0]
    newest.click().run()  # undo the change: the verdict before it is back
    assert card_flag(at, first) == "Your flag: **Relevant** (saved)"
    assert [r[5] for r in labels_of(search_db, user.name) if r[2] == first and r[1] == "blue"] == ["relevant"]


def test_total_matches_and_pages(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    at = search(monkeypatch, search_db, "red")
    summary = next(c.value for c in at.caption if "matches" in c.value)
    assert summary.startswith("**23** matches · page 1 of 2")  # 24 photos, the boy's excluded
    assert at.number_input(key="search_page").max == 2
    at.multiselect(key="search_objects").select("dog").run()
    assert next(c.value for c in at.caption if "matches" in c.value).startswith("**4** matches · page 1 of 1")


def test_a_total_above_a_cut_off_on_the_ann_index_says_it_is_estimated(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    """Above ann_store.ANN_ABOVE (lowered to 0) the total with a cut-off comes from the index's sample: the page
    says "about" and why; without a cut-off the count is exact and says neither."""
    from pipeline import ann_store

    monkeypatch.setattr(ann_store, "ANN_ABOVE", 0)
    path = embedded_colour_db(tmp_path / "studio.duckdb", tmp_path / "c")
    at = search(monkeypatch, path, "red")
    summary = next(c.value for c in at.caption if "matches" in c.value)
    assert summary.startswith("**23** matches") and "estimated" not in summary
    at.slider(key="search_min_score").set_value(0.9).run()
    summary = next(c.value for c in at.caption if "matches" in c.value)
    assert summary.startswith("about **8** matches") and "estimated from a sample" in summary
    assert ann_store.index_folder(path, "colour-test").exists()


def test_the_relevance_marker_from_labels_and_no_good_match(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Labels on this encoder's results put a marker on the scale; when the best result is under it the page says
    there is no good match, and cards under it sit below "results are usually not relevant"."""
    from db import labels

    path = embedded_colour_db(tmp_path / "studio.duckdb", tmp_path / "c")
    at = search(monkeypatch, path, "red")
    assert any(c.value.startswith("No relevance marker yet") for c in at.caption)
    cards = [float(m.value.split("score **")[1].split("**")[0]) for m in at.markdown if "score **" in m.value]
    # The 8 red photos relevant; the 4 others and three near misses (0.7-0.8) not: the marker sits above 0.8.
    flags = [labels.Flag(f"c/{i}", 1, score, "relevant" if i < 8 else "not_relevant")
             for i, score in enumerate(cards[:12] + [0.7, 0.75, 0.8])]
    live_search.flag(context.write_queue(str(path)), "rita", "red", "colour-test", flags)
    assert context.write_queue(str(path)).flush(10)
    at.run()
    marker = next(c.value for c in at.caption if c.value.startswith("Results usually stop being relevant"))
    assert "8 relevant / 7 not relevant labels" in marker
    assert any("Below here results are usually not relevant" in m.value for m in at.markdown)
    assert not [w for w in at.warning if "No good match" in w.value]
    at.text_input(key="search_query").input("a kitchen").run()  # no colour word: every score under 0.6
    assert [w for w in at.warning if w.value.startswith("No good match")]


def test_re_rank_help_is_plain_words_for_product_users(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    product = search(monkeypatch, search_db, "red", user=PRODUCT).toggle(key="search_rerank").help
    assert "`" not in product and "python -m" not in product and "data team" in product
    assert "use-reranker" in search(monkeypatch, search_db, "red", user=DATA).toggle(key="search_rerank").help


def test_encoder_picker_shows_readable_names() -> None:
    from dashboard.comparison import encoder_label

    assert encoder_label("openclip-ViT-B-32-laion2b") == "open_clip ViT-B-32-laion2b"  # what the picker shows


def test_more_like_this_shows_visible_photos_only(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    """From a green photo: the excluded boy's photo (green too, as near as can be) never comes out, nor the photo
    itself; "back" returns to the text search."""
    at = search(monkeypatch, search_db, "green")
    source = "c/4"
    at.button(key=f"like_{source}").click().run()
    assert not at.exception
    ids = result_ids(at) or [b.key.removeprefix("like_") for b in at.button if b.key and b.key.startswith("like_")]
    assert CHILD_PHOTO not in ids and source not in ids and len(ids) == 12
    assert all(int(i.removeprefix("c/")) % 3 == 1 for i in ids[:6])  # the other 6 visible greens first
    assert next(c.value for c in at.caption if "matches" in c.value).startswith("**22** matches")
    assert not [b for b in at.button if b.key and b.key.startswith("relevant_")]  # no query to flag against
    at.button(key="search_back").click().run()
    assert [b for b in at.button if b.key and b.key.startswith("relevant_")]


def test_full_size_view_shows_everything_and_minors_only_to_moderators(monkeypatch: pytest.MonkeyPatch,
                                                                       search_db: Path) -> None:
    at = search(monkeypatch, search_db, "red", user=PRODUCT)
    at.button(key="view_c/6").click().run()
    assert not at.exception
    texts = [m.value for m in at.markdown]
    assert "**c/6**" in texts and "**Captions**" in texts and "- A red wall, photo 6\\." in texts
    objects = next(df.value for df in at.dataframe if "label" in df.value.columns and "score" in df.value.columns)
    assert sorted(objects["label"]) == ["dog", "person", "person"]
    assert not [m for m in texts if "Minors decision" in m] and not at.json
    at = search(monkeypatch, search_db, "red", user=MODERATOR)
    at.button(key="view_c/6").click().run()
    assert [m for m in (m.value for m in at.markdown) if "Minors decision" in m]
    assert '"cleared"' in at.json[0].value


def test_recent_flags_have_thumbnails(monkeypatch: pytest.MonkeyPatch, search_db: Path) -> None:
    at = search(monkeypatch, search_db, "red blue", user=PRODUCT)
    before = len(at.get("image"))
    at.button(key=f"relevant_{result_ids(at)[0]}").click().run()
    at.run()
    assert len(at.get("image")) > before  # the recent flags list shows the flagged photo
