"""Recall and precision of the minors filter's layers on hand-labelled COCO-mini photos.

    .venv/bin/python benchmarks/minors_filter.py [--detector]

Labels: tests/data/minors_labels.csv (image_id, child_under_16 yes/no/unsure, people yes/no, note), made by
looking at each of the 239 photos. "Caught" = excluded or pending_review (a moderator sees it before anyone
else could). Precision counts a caught photo as right when it is labelled yes (strict) or yes/unsure (lenient).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.database import Database  # noqa: E402
from pipeline.ingest import ingest_dataset  # noqa: E402
from pipeline.layouts import DEFAULT_DATA, detect  # noqa: E402
from pipeline.minors.detector import PeopleDetector  # noqa: E402
from pipeline.minors.filter import run_filter  # noqa: E402

LABELS = ROOT / "tests" / "data" / "minors_labels.csv"


def load_labels() -> dict[str, dict[str, str]]:
    with open(LABELS, newline="") as handle:
        return {f"coco-mini/{row['image_id']}": row for row in csv.DictReader(handle)}


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
        "cleared": len(cleared),
        "cleared with people": sum(1 for p in cleared if labels[p]["people"] == "yes"),
        "cleared with a child (yes/unsure)": sum(1 for p in cleared if p in lenient),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "coco-mini")
    parser.add_argument("--detector", action="store_true", help="also run the OpenCV people detector")
    args = parser.parse_args()
    labels = load_labels()
    with tempfile.TemporaryDirectory() as tmp, Database(Path(tmp) / "minors.duckdb") as db:
        ingest_dataset(db, args.data, detect(args.data), quiet=True)
        detector = PeopleDetector() if args.detector else None
        began = time.perf_counter()
        report = run_filter(db, detector=detector, quiet=True)
        seconds = time.perf_counter() - began
        rows = db.fetch_all(
            "SELECT m.image_id, m.status, i.has_caption FROM minors_decisions m JOIN images i ON i.id = m.image_id "
            "WHERE i.dataset = 'coco-mini' ORDER BY 1")
    missing = set(labels) - {r[0] for r in rows}
    if missing:
        raise SystemExit(f"labels for photos the filter did not decide: {sorted(missing)[:5]}")
    print(f"rule set {report.version}; filter ran in {seconds:.1f}s; statuses: {dict(report.statuses)}")
    for name, subset in (("caption lexicon (captioned photos)", [r for r in rows if r[2]]),
                         ("image side (uncaptioned photos)", [r for r in rows if not r[2]]),
                         ("whole filter (all photos)", rows)):
        figures = layer_figures(subset, labels)
        print(f"\n{name}:")
        for key, value in figures.items():
            print(f"  {key:<36} {value:.3f}" if isinstance(value, float) else f"  {key:<36} {value}")
    print(f"\npending_review queue: {report.statuses['pending_review']}; excluded: {report.statuses['excluded']}; "
          f"cleared: {report.statuses['cleared']}")


if __name__ == "__main__":
    main()
