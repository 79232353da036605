"""Live search in a real browser (Debian's chromium, Playwright, `streamlit run`): "more like this" and the
full-size view, on a database built by the real pipeline with the offline encoder (like tests/test_browser.py).

The case that matters: the photo nearest to the one clicked is excluded by the minors filter (a byte-identical
twin whose caption names a boy), so it is the index's nearest neighbour, and it must not come out. Screenshots at
1400x900 go to test-artifacts/search/ (git-ignored). Without chromium or playwright this fails and says which is
missing; it never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_support import ARTIFACTS as ALL_ARTIFACTS, VIEWPORT, browser, serve, sign_in
from builders import coco_dir
from db import users
from db import embeddings as store
from db.database import Database
from pipeline.cli import main as pipeline_main
from test_embed import solid

ARTIFACTS = ALL_ARTIFACTS / "search"
PASSWORD = "reviewer-secret-1"
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (230, 220, 30),
           "magenta": (210, 30, 200), "cyan": (30, 210, 220), "orange": (240, 140, 20), "purple": (110, 30, 160),
           "grey": (128, 128, 128)}
SOURCE = "s/7"  # the orange photo the reviewer clicks "More like this" on
TWIN = "s/10"  # the same orange bytes, caption names a boy: excluded, and the nearest to SOURCE


def twin_photos(root: Path) -> Path:
    """Nine photos of distinct colours and the excluded twin of the orange one."""
    images, captions, files = [], [], {}
    for i, (name, rgb) in enumerate([*COLOURS.items(), ("orange", COLOURS["orange"])], start=1):
        images.append({"id": i, "file_name": f"{i:012d}.png", "width": 16, "height": 16})
        files[f"{i:012d}.png"] = solid(rgb)
        text = f"A little boy in an {name} room." if i == 10 else f"A {name} wall, photo {i}."
        captions.append({"id": 10 * i, "image_id": i, "caption": text})
    return coco_dir(root, images=images, captions=captions, files=files)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("browser_search")
    db_path = root / "studio.duckdb"
    for stage in (["ingest", "--data", str(twin_photos(root / "s"))], ["filter"], ["embed"]):
        assert pipeline_main([*stage, "--db", str(db_path), "--quiet"]) == 0
    with Database(db_path) as db:
        statuses = dict(db.fetch_all("SELECT image_id, status FROM minors_decisions"))
        encoders = store.encoders_with_vectors(db)["encoder_id"].tolist()
        for encoder in encoders:  # the case under test: the twin is SOURCE's nearest neighbour in every index
            vectors = store.vectors_of(db, encoder, [f"s/{i}" for i in range(1, 11)])
            cosines = {i: float(v @ vectors[SOURCE]) for i, v in vectors.items() if i != SOURCE}
            assert max(cosines, key=cosines.get) == TWIN, cosines
            assert cosines[TWIN] > max(c for i, c in cosines.items() if i != TWIN) + 1e-4
    assert statuses[TWIN] == "excluded" and statuses[SOURCE] == "cleared"
    users.add(root / "users.json", "reviewer", "product", PASSWORD)
    with serve(db_path, root / "users.json", ARTIFACTS) as url:
        yield url, db_path


def like_ids(page) -> list[str]:
    """The photos on the page, read off their "More like this" buttons (class st-key-like_s-7 for s/7)."""
    classes = page.locator('[class*="st-key-like_"]').evaluate_all("els => els.map(e => e.className)")
    found = [next(c for c in names.split() if c.startswith("st-key-like_")) for names in classes]
    return ["s/" + c.removeprefix("st-key-like_s-") for c in found]


def test_more_like_this_and_the_full_size_view(server: tuple[str, Path]) -> None:
    from playwright.sync_api import expect

    url, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser() as chromium:
        page = chromium.new_page(viewport=VIEWPORT)
        sign_in(page, url, "reviewer", PASSWORD)
        page.get_by_role("link", name="Live search").click()
        box = page.get_by_role("textbox", name="Describe the scene")
        box.fill("an orange wall")
        box.press("Enter")
        expect(page.get_by_text("answered in")).to_be_visible()
        expect(page.get_by_text("matches · page 1 of 1")).to_be_visible()
        expect(page.locator('[class*="st-key-like_"]')).to_have_count(9)  # every card drawn
        shown = like_ids(page)
        assert sorted(shown) == sorted(f"s/{i}" for i in range(1, 10))  # the nine visible photos, not the twin
        picker = page.get_by_role("combobox", name="Encoder")
        assert picker.input_value().startswith("offline zero-shot bridge")  # the encoder in words, not its id
        assert picker.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # and not cut short at 1400 px
        buttons = page.locator('[class*="st-key-like_"] button, [class*="st-key-view_"] button')
        cut = buttons.evaluate_all("bs => bs.flatMap(b => [b, ...b.querySelectorAll('*')])"
                                   ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)")
        assert cut == [], cut  # "More like this" and "View full size" read in full on every card
        page.screenshot(path=ARTIFACTS / "1-results.png")

        page.locator('[class*="st-key-like_s-7"] button').click()
        expect(page.get_by_text(f"Photos like {SOURCE}")).to_be_visible()
        expect(page.get_by_text("matches · page 1 of 1")).to_be_visible()
        expect(page.locator('[class*="st-key-like_"]')).to_have_count(8)
        nearest = like_ids(page)
        assert TWIN not in nearest and SOURCE not in nearest  # the excluded nearest neighbour never comes out
        assert sorted(nearest) == sorted(f"s/{i}" for i in range(1, 10) if f"s/{i}" != SOURCE)
        page.screenshot(path=ARTIFACTS / "2-more-like-this.png")

        page.locator(f'[class*="st-key-view_{nearest[0].replace("/", "-")}"] button').click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_text("Captions")).to_be_visible()
        expect(dialog.get_by_text("Labels collected")).to_be_visible()
        expect(dialog.get_by_text("Minors decision")).to_have_count(0)  # a product user never sees it
        assert dialog.locator("img").first.bounding_box()["width"] > 300  # full size, not a thumbnail
        page.screenshot(path=ARTIFACTS / "3-full-size-view.png")
        dialog.locator('[class*="st-key-view_close"] button').click()
        expect(page.get_by_role("dialog")).to_have_count(0)
        page.screenshot(path=ARTIFACTS / "4-view-closed.png")

        page.get_by_role("button", name="Back to the text search").click()
        expect(page.get_by_text("Not flagged by you yet").first).to_be_visible()
