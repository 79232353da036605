"""`--encoder auto`: open_clip when its weights load, the offline encoder otherwise, and the reason either way.

Nothing here touches the network: the hub is either made unreachable (HF_HUB_OFFLINE, an empty hub cache) or its
probe is replaced, and open_clip's weights are a random ViT-S-32 saved in tmp_path. What that proves is the choice
and its mechanics, not CLIP's quality.
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
from huggingface_hub import constants as hub

from db.database import Database
from fakes import ColourEncoder
from pipeline import bridge
from pipeline.cli import main as pipeline_main
from pipeline.encoders import choose, load_encoder
from pipeline.encoders import openclip as backend
from test_search_page import colour_photos

SMALL = "ViT-S-32"


class OfflineStandIn:
    """What the offline factory returns in these tests (the real one loads MobileNetV2 and MiniLM: seconds)."""

    id = "offline-stand-in"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local checkpoint of a random open_clip ViT-S-32: its state_dict, saved with torch.save."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip") / "random-vit-s-32.pt"
    torch.save(open_clip.create_model(SMALL).state_dict(), path)
    return path


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache and HF_HUB_OFFLINE: what a machine without the weights and without internet sees,
    whatever this machine has cached or can reach."""
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(backend.CHECKPOINT_ENV, raising=False)
    monkeypatch.delenv(backend.MODEL_ENV, raising=False)
    return tmp_path / "hub"


def test_auto_takes_offline_when_the_weights_are_neither_cached_nor_downloadable(empty_hub: Path) -> None:
    choice = choose(OfflineStandIn)
    assert choice.backend == "offline" and isinstance(choice.encoder, OfflineStandIn)
    assert choice.line == ("encoder: offline (open_clip ViT-B-32/laion2b_s34b_b79k weights unavailable: not in the "
                           "local cache, and HF_HUB_OFFLINE is set)")


def test_an_unreachable_hub_is_probed_once_and_never_asked_to_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tag is looked up in the cache with the hub switched off; a miss and a failed probe end it there (no
    retried download: huggingface_hub alone spends about a minute retrying an unreachable hub)."""
    calls: list[bool] = []
    before = hub.HF_HUB_OFFLINE

    def cache_miss(model, pretrained=None, **_):
        calls.append(hub.HF_HUB_OFFLINE)
        raise RuntimeError(f"Failed to download weights for tag '{pretrained}': not in the local cache")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", cache_miss)
    monkeypatch.setattr(backend, "hub_unreachable", lambda: "the hub (https://huggingface.co) is unreachable (test)")
    choice = choose(OfflineStandIn, model="ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert calls == [True]  # one cache-only attempt, no download
    assert choice.backend == "offline"
    assert choice.reason.endswith("weights unavailable: not in the local cache, and the hub "
                                  "(https://huggingface.co) is unreachable (test)")
    assert hub.HF_HUB_OFFLINE is before  # the switch is restored


@pytest.mark.parametrize("cached", [True, False])
def test_cached_weights_load_without_the_hub_and_missing_ones_download(monkeypatch: pytest.MonkeyPatch,
                                                                      cached: bool) -> None:
    real_create = open_clip.create_model_and_transforms
    calls: list[bool] = []

    def fake_create(model, pretrained=None, **options):
        calls.append(_hub_switched_off())
        if _hub_switched_off() and not cached:
            raise RuntimeError("not in the local cache")
        return real_create(SMALL, pretrained=None, force_image_size=64)

    def no_probe() -> None:
        assert not cached, "a cached tag must not wait for the hub"
        return None

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the suite sets it (tests/conftest.py): a machine online
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(open_clip, "create_model_and_transforms", fake_create)
    monkeypatch.setattr(backend, "hub_unreachable", no_probe)
    choice = choose(OfflineStandIn, model="ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert choice.backend == "openclip" and choice.encoder.id == "openclip-ViT-B-32-laion2b_s34b_b79k"
    assert choice.line == ("encoder: openclip (open_clip ViT-B-32/laion2b_s34b_b79k: weights "
                           + ("loaded from the local cache)" if cached else "downloaded from the hub)"))
    assert calls == ([True] if cached else [True, False])


def _hub_switched_off() -> bool:
    return hub.HF_HUB_OFFLINE


def test_a_local_checkpoint_of_a_random_model_is_chosen(empty_hub: Path, checkpoint: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    choice = choose(OfflineStandIn, model=SMALL, pretrained=str(checkpoint))
    assert choice.backend == "openclip" and choice.encoder.id == f"openclip-{SMALL}-{checkpoint.name}"
    assert choice.line == f"encoder: openclip (open_clip {SMALL} checkpoint {checkpoint}: weights loaded from the file)"
    saved = torch.load(checkpoint, weights_only=True)  # the weights are the file's, not a new random draw
    assert all(torch.equal(choice.encoder.model.state_dict()[key], saved[key]) for key in saved)

    monkeypatch.setenv(backend.MODEL_ENV, SMALL)  # the same checkpoint, named for every stage and the dashboard
    monkeypatch.setenv(backend.CHECKPOINT_ENV, str(checkpoint))
    assert choose(OfflineStandIn).encoder.id == choice.encoder.id
    assert load_encoder("openclip").id == choice.encoder.id


def test_a_damaged_or_mismatched_checkpoint_falls_back_with_its_reason(empty_hub: Path, checkpoint: Path,
                                                                       tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(checkpoint.read_bytes()[:1000])
    choice = choose(OfflineStandIn, model=SMALL, pretrained=str(damaged))
    assert choice.backend == "offline"
    assert choice.reason.startswith(f"open_clip {SMALL} checkpoint {damaged} weights unavailable: the checkpoint "
                                    "does not load: ")
    wrong = choose(OfflineStandIn, model="RN50", pretrained=str(checkpoint))  # another architecture's weights
    assert wrong.backend == "offline" and "weights unavailable: the checkpoint does not load: " in wrong.reason
    missing = choose(OfflineStandIn, model=SMALL, pretrained=str(tmp_path / "nope.pt"))
    assert missing.line == (f"encoder: offline (open_clip {SMALL} checkpoint {tmp_path / 'nope.pt'} weights "
                            "unavailable: the checkpoint file does not exist)")


def test_cli_embeds_and_searches_with_the_encoder_auto_chose(tmp_path: Path, empty_hub: Path, checkpoint: Path,
                                                            monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    db = str(tmp_path / "s.duckdb")
    assert pipeline_main(["ingest", "--data", str(colour_photos(tmp_path / "c", photos=6)), "--db", db,
                          "--quiet"]) == 0
    assert pipeline_main(["filter", "--db", db, "--quiet"]) == 0
    capsys.readouterr()
    clip = ["--model", SMALL, "--pretrained", str(checkpoint)]
    assert pipeline_main(["embed", "--db", db, "--quiet", "--workers", "0", *clip]) == 0  # auto is the default
    out, err = capsys.readouterr()
    assert err.splitlines()[0] == f"encoder: openclip (open_clip {SMALL} checkpoint {checkpoint}: weights loaded " \
                                  "from the file)"
    encoder_id = f"openclip-{SMALL}-{checkpoint.name}"
    assert f"embed {encoder_id}: 6 encoded" in out
    assert pipeline_main(["search", "a red wall", "--db", db, "-k", "3", *clip]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("encoder: openclip") and len(out.split()) == 9  # stdout: the hits alone

    # Vectors of the offline encoder only, and auto picks open_clip: search uses the vectors that exist.
    with Database(db) as database, database.write() as cur:
        cur.execute("DELETE FROM embeddings")
    offline = ColourEncoder()
    monkeypatch.setattr(bridge, "load_for", lambda _db, name, **_: offline)
    from pipeline.embed import embed

    with Database(db) as database:
        embed(database, offline, workers=0, quiet=True)
    assert pipeline_main(["search", "a red wall", "--db", db, "-k", "2", *clip]) == 0
    out, err = capsys.readouterr()
    assert err.strip() == (f"encoder: offline (the database has no photo vectors of {encoder_id}; "
                           "`python -m pipeline embed` adds them)")
    assert len(out.split()) == 6

    monkeypatch.setenv(backend.CHECKPOINT_ENV, str(tmp_path / "gone.pt"))  # no weights at all: offline, with why
    assert pipeline_main(["search", "a red wall", "--db", db, "-k", "2"]) == 0
    assert capsys.readouterr().err.strip() == (f"encoder: offline (open_clip ViT-B-32 checkpoint {tmp_path / 'gone.pt'}"
                                               " weights unavailable: the checkpoint file does not exist)")
