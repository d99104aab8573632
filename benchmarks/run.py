"""Run every benchmark scenario and write benchmarks/results/<mode>.md, .json and .png.

    .venv/bin/python benchmarks/run.py            # full run (over 500,000 rows; about 10-15 minutes)
    .venv/bin/python benchmarks/run.py --quick    # small institutions, short throttle: about a minute
    .venv/bin/python benchmarks/run.py --only cpu scale

Each scenario starts `canvas-export simulate` in a process of its own on a free port, runs the exporter
and the peers against it as child processes (measuring wall time and peak RSS), and checks every output
against the simulator's ground truth. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from report import chart, markdown, targets, write_json
from processes import PYTHON
from scenarios import HERE, Bench, scenarios

RESULTS = HERE / "results"
NOTES = [
    "The cpu scenario's full size is also the scale scenario's full size: the scale target compares the cpu "
    "run's peak RSS with the scale run's (a tenth of the courses).",
    "The canvasapi peer runs only in the latency scenario: canvasapi builds every object through "
    "CanvasObject.set_attributes, which tries arrow.get() on every attribute value, a few milliseconds per "
    "user row, so the cpu-sized institution would take it most of an hour.",
    "Peers map types simply (pyarrow infers them from Python values; timestamps from canvasapi's *_date "
    "datetimes or datetime.fromisoformat); the ground-truth check compares values and Python types.",
    "canvasapi's Canvas.get_account() takes only an integer id and the simulator does not serve "
    "GET /api/v1/accounts/:id, so the canvasapi peer builds its Account object from the id 'self'.",
    "The exporter's default run lists every course's sections twice: the second look (the recheck) catches a "
    "section cross-listed while the crawl ran, which one pass can miss entirely. That is one request per course "
    "beyond a perfect crawl (the 'more than a perfect crawl needs' lines). Under the throttle every request "
    "costs bucket room, so there it costs time in proportion; the `exporter --no-recheck` rows show the same "
    "crawl without it, i.e. what the pacing and fetching cost on their own.",
    "The simulator renders each item's JSON once and serves later pages from those bytes (exporter/sim/render.py); "
    "the cpu bound replay runs first and fetches every page, so the contenders after it get a warm simulator.",
]


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def startup_seconds(tries: int = 3) -> float:
    """How long the exporter takes to start and exit doing nothing (its imports), best of a few tries."""
    best = float("inf")
    for _ in range(tries):
        started = time.monotonic()
        subprocess.run([PYTHON, "-m", "exporter", "--version"], capture_output=True, check=True)
        best = min(best, time.monotonic() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small institutions and a short throttle scenario")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these scenarios")
    parser.add_argument("--work", type=Path, help="folder for the runs' outputs (default: a temporary folder)")
    args = parser.parse_args()

    mode = "quick" if args.quick else "full"
    chosen = [s for s in scenarios(args.quick) if not args.only or s.name in args.only]
    if not chosen:
        parser.error(f"no scenario named {args.only}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    logs = RESULTS / "logs" / mode
    logs.mkdir(parents=True, exist_ok=True)
    meta = {
        "mode": mode,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "exporter")),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "command": "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:]),
        "startup_s": startup_seconds(),
        "load_at_start": os.getloadavg()[0],
        "notes": NOTES,
    }
    started = time.monotonic()
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="canvas-export-bench-", dir=args.work) as work:
        bench = Bench(Path(work), logs, say=lambda text: print(text, flush=True))
        results = [bench.run(sc) for sc in chosen]

    meta["total_s"] = time.monotonic() - started
    stem = RESULTS / mode
    md = markdown(results, meta)
    stem.with_suffix(".md").write_text(md)
    write_json(stem.with_suffix(".json"), results, meta)
    chart(stem.with_suffix(".png"), results, f"canvas-export benchmarks ({mode} run, {meta['date']})")
    print()
    print(md)
    print(f"Wrote {stem}.md, .json and .png in {meta['total_s'] / 60:.1f} min")
    return 0 if all(t.met is not False for t in targets(results) if "ground truth" in t.text) else 1


if __name__ == "__main__":
    sys.exit(main())
