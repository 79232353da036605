"""Recall and precision of the minors filter's layers on hand-labelled COCO-mini photos, without and with the image
layer (perception under the calibrated thresholds in pipeline/minors/image_thresholds.json).

    .venv/bin/python benchmarks/minors_filter.py [--perceived DB] [--weights DIR] [--detector]

Labels: tests/data/minors_labels.csv (image_id, child_under_16 yes/no/unsure, people yes/no, note), made by
looking at each of the 239 photos. "Caught" = excluded or pending_review (a moderator sees it before anyone
else could). Precision counts a caught photo as right when it is labelled yes (strict) or yes/unsure (lenient).

Perception: ``--perceived DB`` reads a database where COCO-mini was ingested and perceived (copied to a temporary
folder first; it is never written); without it the photos are ingested and perceived here (a few minutes on 2 cores).
Also printed: recall on "shows people" at the thresholds and at twice them, what the captioned-face rule costs, a
held-out check (thresholds calibrated on the captioned photos only, applied to the uncaptioned ones), and how
the review queue of uncaptioned photos moves with the person threshold.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db import perception as perception_store  # noqa: E402
from db.database import Database  # noqa: E402
from pipeline.ingest import ingest_dataset  # noqa: E402
from pipeline.layouts import DEFAULT_DATA, detect  # noqa: E402
from pipeline.minors import image_layer  # noqa: E402
from pipeline.minors.detector import PeopleDetector  # noqa: E402
from pipeline.minors.filter import run_filter  # noqa: E402
from pipeline.perception import PERCEIVER_ID  # noqa: E402

LABELS = ROOT / "tests" / "data" / "minors_labels.csv"


def load_labels() -> dict[str, dict[str, str]]:
    return image_layer.read_labels(LABELS, "coco-mini")[0]


def layer_figures(rows: list[tuple[str, str, bool]], labels: dict[str, dict[str, str]]) -> dict[str, float | int]:
    """rows: (image_id, status, captioned)."""
    caught = [image_id for image_id, status, _ in rows if status != "cleared"]
    positives = [image_id for image_id, _, _ in rows if labels[image_id]["child_under_16"] == "yes"]
    lenient = [image_id for image_id, _, _ in rows if labels[image_id]["child_under_16"] in ("yes", "unsure")]
    cleared = [image_id for image_id, status, _ in rows if status == "cleared"]
    return {
        "photos": len(rows),
        "children (yes)": len(positives),
        "recall (yes)": sum(1 for p in positives if p in caught) / len(positives) if positives else float("nan"),
        "recall (yes+unsure)": sum(1 for p in lenient if p in caught) / len(lenient) if lenient else float("nan"),
        "caught": len(caught),
        "precision strict": sum(1 for p in caught if p in positives) / len(caught) if caught else float("nan"),
        "precision lenient": sum(1 for p in caught if p in lenient) / len(caught) if caught else float("nan"),
        "excluded": sum(1 for _, status, _ in rows if status == "excluded"),
        "pending_review": sum(1 for _, status, _ in rows if status == "pending_review"),
        "cleared": len(cleared),
        "cleared with people": sum(1 for p in cleared if labels[p]["people"] == "yes"),
        "cleared with a child (yes/unsure)": sum(1 for p in cleared if p in lenient),
    }


def decided(db: Database) -> dict[str, tuple[str, bool, str]]:
    """image id -> (status, captioned, rule) of the COCO-mini photos."""
    return {image_id: (status, captioned, rule) for image_id, status, captioned, rule in db.fetch_all(
        "SELECT m.image_id, m.status, i.has_caption, json_extract_string(m.reasons, '$.rule') "
        "FROM minors_decisions m JOIN images i ON i.id = m.image_id WHERE i.dataset = 'coco-mini' ORDER BY 1")}


def print_layers(title: str, rows: dict[str, tuple[str, bool, str]], labels: dict[str, dict[str, str]]) -> None:
    triples = [(image_id, status, captioned) for image_id, (status, captioned, _) in rows.items()]
    print(f"\n== {title}")
    print(f"  {'':<36} {'captioned':>10} {'uncaptioned':>12} {'all':>8}")
    columns = [layer_figures([r for r in triples if r[2]], labels),
               layer_figures([r for r in triples if not r[2]], labels), layer_figures(triples, labels)]
    for key in columns[0]:
        cells = [f"{c[key]:.3f}" if isinstance(c[key], float) else str(c[key]) for c in columns]
        print(f"  {key:<36} {cells[0]:>10} {cells[1]:>12} {cells[2]:>8}")


def perceived_database(args: argparse.Namespace, tmp: Path) -> Path:
    path = tmp / "minors.duckdb"
    if args.perceived:
        shutil.copyfile(args.perceived, path)
        return path
    from pipeline.perceive import Perceiver, perceive

    with Database(path) as db:
        ingest_dataset(db, args.data, detect(args.data), quiet=True)
        report = perceive(db, Perceiver(args.weights))
        print(f"perceived {report.perceived} photos in {report.seconds:.0f}s ({len(report.failed)} failed)")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "coco-mini")
    parser.add_argument("--perceived", type=Path, help="a database with COCO-mini ingested and perceived (read only)")
    parser.add_argument("--weights", help="perception weights folder (when perceiving here)")
    parser.add_argument("--thresholds", type=Path, default=image_layer.THRESHOLDS_FILE)
    parser.add_argument("--detector", action="store_true", help="also run the OpenCV people detector")
    args = parser.parse_args()
    labels = load_labels()
    layer = image_layer.load(args.thresholds, PERCEIVER_ID)
    with tempfile.TemporaryDirectory() as tmp, Database(perceived_database(args, Path(tmp))) as db:
        detector = PeopleDetector() if args.detector else None
        report = run_filter(db, detector=detector, quiet=True)
        before = decided(db)
        began = time.perf_counter()
        report_image = run_filter(db, detector=detector, image=layer, quiet=True)
        seconds = time.perf_counter() - began
        after = decided(db)
        ids = sorted(labels)
        detections = perception_store.detections_of(db, PERCEIVER_ID, ids)
        scores = image_layer.best_scores(detections, ids)
        perceived = perception_store.perceived_ids(db, PERCEIVER_ID, ids)
    missing = set(labels) - set(after)
    if missing:
        raise SystemExit(f"labels for photos the filter did not decide: {sorted(missing)[:5]}")
    print(f"perceiver {PERCEIVER_ID}: {len(perceived)} of {len(labels)} labelled photos perceived")
    print(f"thresholds {args.thresholds.name} ({layer.id}): person {layer.thresholds.person}, "
          f"face {layer.thresholds.face}")
    print_layers(f"without the image layer: rule set {report.version}", before, labels)
    print_layers(f"with the image layer: rule set {report_image.version} ({seconds:.1f}s)", after, labels)
    print(f"\nrules fired (with the image layer): {dict(Counter(rule for _, _, rule in after.values()).most_common())}")

    uncaptioned = [i for i, (_, captioned, _) in after.items() if not captioned]
    waiting = [i for i in uncaptioned if after[i][0] == "pending_review"]
    waiting_before = sum(1 for i in uncaptioned if before[i][0] == "pending_review")
    with_people = sum(labels[i]["people"] == "yes" for i in uncaptioned)
    print(f"\nGOAL uncaptioned photos waiting for review: {waiting_before} -> {len(waiting)} (goal <= 55; "
          f"{with_people} of {len(uncaptioned)} show people); "
          f"excluded {sum(after[i][0] == 'excluded' for i in uncaptioned)}")
    children = [i for i in labels if labels[i]["child_under_16"] == "yes"]
    print(f"GOAL recall on children: {sum(after[i][0] != 'cleared' for i in children)}/{len(children)}")

    shows_people = pd.Series({i: labels[i]["people"] == "yes" for i in ids})
    person, face = layer.thresholds.person, layer.thresholds.face
    for name, factor in (("at the thresholds", 1), ("at twice them", 2)):
        held = image_layer.caught(scores, factor * person, factor * face)
        print(f"recall on 'shows people' {name}: all labelled {held[shows_people].mean():.3f} "
              f"({int(held[shows_people].sum())}/{int(shows_people.sum())}), uncaptioned "
              f"{held[uncaptioned][shows_people[uncaptioned]].mean():.3f}; missed: "
              f"{sorted(shows_people.index[shows_people & ~held]) or 'none'}")

    moved = [i for i, (status, captioned, _) in after.items()
             if captioned and before[i][0] == "cleared" and status != "cleared"]
    print(f"\ncaptioned-face rule: {len(moved)} captioned photos the lexicon clears move to review; labels: "
          f"{[(i, labels[i]['child_under_16'], labels[i]['people']) for i in moved]}")
    faces = detections[(detections["kind"] == "face") & detections["age"].notna()]
    young = faces[(faces["size_px"] >= image_layer.REVIEW_FACE_PX) & (faces["age"] < image_layer.REVIEW_AGE)]
    lexicon_cleared = {i for i, (status, captioned, _) in before.items() if captioned and status == "cleared"}
    print(f"  faces with an age: {len(faces)}, under {image_layer.REVIEW_AGE:g}: {len(young)}; with faces counted "
          f"from the stored floor instead, it would move "
          f"{sorted((i, labels[i]['child_under_16']) for i in set(young['image_id']) & lexicon_cleared)}")
    child_faces = faces[faces["image_id"].map(lambda i: labels[i]["child_under_16"] == "yes")]
    print(f"  ages estimated on faces in photos labelled 'child' (years): "
          f"{sorted(round(a) for a in child_faces['age'])}")

    captioned_ids = [i for i in ids if after[i][1]]
    held_out_person, held_out_face = image_layer.calibrate(scores.loc[captioned_ids], shows_people[captioned_ids])
    held = image_layer.caught(scores.loc[uncaptioned], held_out_person, held_out_face)
    people_unc = shows_people[uncaptioned]
    print(f"held out (calibrated on the {len(captioned_ids)} captioned photos: person {held_out_person}, face "
          f"{held_out_face:.4f}; applied to the {len(uncaptioned)} uncaptioned): recall on people "
          f"{held[people_unc].mean():.3f}, waiting {int(held.sum())}")

    print("\nperson threshold -> uncaptioned waiting, labelled photos with people missed (faces at the calibrated "
          "threshold, or not counted):")
    lowest = float(scores.loc[shows_people & (scores["person"] > 0), "person"].min())  # the same, without a margin
    for threshold in sorted({person, lowest, 0.03, 0.05, 0.0541, 0.06, 0.1}):
        for face_threshold, face_name in ((face, f"face {face:.3f}"), (2.0, "no faces")):
            held = image_layer.caught(scores, threshold, face_threshold)
            print(f"  person {threshold:<8g} {face_name:<12} waiting {int(held[uncaptioned].sum()):>3}  missed "
                  f"{int((shows_people & ~held).sum())} {sorted(shows_people.index[shows_people & ~held])}")


if __name__ == "__main__":
    main()
