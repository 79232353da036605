"""How long a newcomer waits: `./studio demo` on a fresh database until the dashboard answers, and until every
background stage has finished.

    .venv/bin/python benchmarks/demo.py [--data ../shared/data] [--timeout 1200]

Runs the real `./studio demo` (the install is assumed done: .venv exists with the pinned requirements) with
$STUDIO_DB in a temporary folder and $STUDIO_PORT on a free port, polls Streamlit's health endpoint, then the
runner's status file (pipeline/demo_runner.py), and prints: seconds to the dashboard answering (goal: within 3
minutes), seconds to every stage finished (goal: within 8 minutes), each stage's own seconds and state, and the
load average before and after (this machine is shared). Stops the demo (its whole process group) at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import demo_runner  # noqa: E402

POLL_SECONDS = 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answering(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="data folder passed to ingest (default: the pipeline's default)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="give up after this many seconds")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        db_path, port = Path(tmp) / "studio.duckdb", free_port()
        env = {**os.environ, "STUDIO_DB": str(db_path), "STUDIO_PORT": str(port)}
        extra = ["--data", args.data] if args.data else []
        began = time.monotonic()
        with open(Path(tmp) / "demo.log", "w") as log:
            demo = subprocess.Popen([str(ROOT / "studio"), "demo", *extra], cwd=ROOT, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            dashboard = stages = None
            while time.monotonic() - began < args.timeout:
                now = time.monotonic() - began
                if dashboard is None and answering(port):
                    dashboard = now
                    print(f"dashboard answering after {dashboard:.1f} s (goal: within 180 s)", flush=True)
                run = demo_runner.view(db_path)
                if run is not None and not run.running and (run.status.finished or run.stopped):
                    stages = now
                    break
                if demo.poll() is not None:
                    print((Path(tmp) / "demo.log").read_text()[-3000:])
                    raise SystemExit(f"./studio demo ended with exit code {demo.returncode}")
                time.sleep(POLL_SECONDS)
            run = demo_runner.view(db_path)
            if stages is None or run is None:
                raise SystemExit(f"the stages did not finish within {args.timeout:.0f} s")
            print(f"every stage finished after {stages:.1f} s (goal: within 480 s)")
            for stage in run.status.stages:
                seconds = f"{stage.seconds:7.1f} s" if stage.seconds is not None else "        -"
                print(f"  {stage.name:<20} {stage.state:<8} {seconds}  {stage.message[:80]}")
            print(f"load average after: {os.getloadavg()[0]:.1f} (1 min)")
        finally:  # the dashboard and the background runner share the demo's process group
            os.killpg(demo.pid, signal.SIGTERM)
            demo.wait(timeout=30)


if __name__ == "__main__":
    main()
