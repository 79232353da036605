"""Dashboard load: concurrent reviewer sessions flagging search results through the Live search page's code path,
plus the page's search latency after warm-up.

    .venv/bin/python benchmarks/dashboard_load.py --db studio.duckdb [--sessions 20] [--flags 50]
        [--pipeline-stage relevance]

Runs on a copy of the database (the original is never written). Each session searches a different COCO-mini
caption for its top ``--flags`` results and flags each one in turn exactly as the page's Flag button does
(``dashboard.live_search.flag`` on the process's shared write queue, which the button callback calls), all
sessions at once. ``--pipeline-stage`` starts that real pipeline stage (a separate process) and lets the sessions
click once it has claimed the database: the dashboard lets go of the file, flags made meanwhile are journalled
and reported "queued" after the page's 2 s wait, and land when the stage ends. Prints: search p50/p95 ms (warm,
through the page's cached Searcher), flag latency p50/p95/max ms (what a reviewer waits after a click), label
rows at the end against the expected count, and errors. Exits 1 unless every flag became a row and none failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import context, live_search  # noqa: E402
from db import labels, users  # noqa: E402
from db.database import Database  # noqa: E402
from db.shared import running_claim  # noqa: E402
from db.embeddings import captions_of_readable_photos  # noqa: E402
from pipeline.minors import query_block  # noqa: E402


def percentiles(values: list[float]) -> str:
    return (f"p50 {np.percentile(values, 50):.1f} ms, p95 {np.percentile(values, 95):.1f} ms, "
            f"max {max(values):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--flags", type=int, default=50)
    parser.add_argument("--pipeline-stage", help="a pipeline stage to run while the sessions flag, e.g. relevance")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "studio.duckdb"
        shutil.copy(args.db, path)
        os.environ[context.DB_ENV] = str(path)
        # The writer applies a flag only for a user the users file lists with a role (db/write_queue.py).
        os.environ[users.USERS_ENV] = str(Path(tmp) / "users.json")
        for number in range(args.sessions):
            users.add(Path(tmp) / "users.json", f"reviewer{number:02d}", "product", None)
        with Database(path) as db:
            # Distinct captions that are not refused under the minors rules (those get no results to flag).
            queries = [q for q in dict.fromkeys(captions_of_readable_photos(db, "coco-mini")["text"])
                       if not query_block.check(q).blocked]
            labels_before = labels.count(db)
        shared = context.shared_database(str(path))
        with shared.use() as db:
            setup = live_search.read_setup(db, str(path))
        if not setup.encoders:
            sys.exit("no searchable photos: run the pipeline's filter and embed stages first")
        encoder_id = setup.encoders[0]
        searcher = live_search.searcher_for(str(path), encoder_id)
        queue = context.write_queue(str(path))

        searchers = {"plain": (searcher, False)}
        if setup.reranker_run:
            searchers[f"re-ranked by {setup.reranker_run}"] = (live_search.searcher_for(
                str(path), encoder_id, setup.reranker_run), True)
        for name, (timed_searcher, rerank) in searchers.items():
            for query in queries[:5]:  # warm-up: index, encoder, re-ranker gallery, first allocations
                live_search.run_search(timed_searcher, query, k=12, offset=0, min_score=None, rerank=rerank,
                                       user="bench")
            took = [live_search.run_search(timed_searcher, query, k=12, offset=0, min_score=None, rerank=rerank,
                                           user="bench").milliseconds for query in queries[5:105]]
            print(f"search {name} ({encoder_id}, top 12, {len(took)} distinct captions, warm): {percentiles(took)}")

        # Each session's results first (search reads the database, which a running stage holds).
        results = {}
        for number in range(args.sessions):
            query = queries[200 + number]
            hits = live_search.run_search(searcher, query, k=args.flags, offset=0, min_score=None, rerank=False,
                                          user=f"reviewer{number:02d}").result.hits
            if len(hits) < args.flags:
                sys.exit(f"only {len(hits)} results for {query!r}; lower --flags")
            results[number] = (query, hits)

        stage = None
        if args.pipeline_stage:  # the stage holds the file while the sessions click
            stage = subprocess.Popen([sys.executable, "-m", "pipeline", args.pipeline_stage, "--db", str(path),
                                      "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
            deadline = time.monotonic() + 120
            while running_claim(path) is None and stage.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            print(f"pipeline stage `{args.pipeline_stage}` claimed the database; the sessions start clicking")

        latencies: list[float] = []
        states: dict[str, int] = {}
        errors: list[str] = []
        lock = threading.Lock()

        def session(number: int) -> None:
            user = f"reviewer{number:02d}"
            query, hits = results[number]
            try:
                for hit in hits:
                    flag = labels.Flag(hit.image_id, hit.rank, hit.score, "relevant" if hit.rank % 2 else
                                       "not_relevant")
                    began = time.perf_counter()
                    outcome = live_search.flag(queue, user, query, encoder_id, [flag])[0]
                    with lock:
                        latencies.append((time.perf_counter() - began) * 1000)
                        states[outcome.state] = states.get(outcome.state, 0) + 1
                        if outcome.state == "refused":
                            errors.append(outcome.message)
            except Exception as exc:  # noqa: BLE001 - counted and printed
                with lock:
                    errors.append(f"{user}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=session, args=(n,)) for n in range(args.sessions)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if stage is not None:
            output, _ = stage.communicate()
            print(f"pipeline stage `{args.pipeline_stage}` ended: exit {stage.returncode}; "
                  + output.strip().splitlines()[-1][:120])
        drained = queue.flush(300)
        elapsed = time.perf_counter() - began
        queue.close()
        shared.close()
        with Database(path) as db:
            rows = labels.count(db) - labels_before
            distinct = db.fetch_all("SELECT count(DISTINCT write_key) FROM labels WHERE user_name LIKE 'reviewer%'")
        expected = args.sessions * args.flags
        print(f"flags: {args.sessions} sessions x {args.flags} = {expected:,} clicks in {elapsed:.1f} s; "
              f"outcomes at click time {states}; flag latency {percentiles(latencies)}")
        print(f"label rows written: {rows:,} (expected {expected:,}, distinct writes {distinct[0][0]:,}); "
              f"journal drained: {drained}; errors: {len(errors)}")
        for message in errors[:5]:
            print(f"  {message}")
        if rows != expected or errors:
            sys.exit(1)


if __name__ == "__main__":
    main()
