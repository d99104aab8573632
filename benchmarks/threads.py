"""Where one crawl's time goes: each thread's CPU and run-queue wait, the simulator's CPU, and (with
`--instrument`) how long requests are in flight and pages wait to be typed.

    python benchmarks/threads.py --base-url http://127.0.0.1:8850 [--sim-pid PID] [--instrument | --replay] [-- CRAWL ARGS]

Start a simulator first (`canvas-export simulate --port 8850 --courses 2300 --seed 1`) and crawl it once to
warm it. The token is the simulator's admin token unless CANVAS_API_TOKEN is set. Linux only: it reads
/proc/<pid>/task/*/schedstat (run time, run-queue wait) while the crawl runs.

How to read it. `loop` is the event loop's thread (HTTP, pagination, the crawl); the busiest other thread is
the one that types pages and encodes Parquet. If their run times add up to the wall time, they took turns rather than ran side
by side: the GIL, or each waiting for the other. `--instrument` wraps two private methods
(`CanvasClient._attempt`, `PageDecoder.decode`) to measure the share of wall time with N requests in flight
and the mean wait for a page's typing; it costs a little time itself.

`--replay` measures the crawl without its typing: in one process, the crawl runs once as usual while every
page's record batch is kept by URL, then again (same pages, a fresh output folder) with each page's batch
handed back at once instead of typed. The second run is the loop's own cost with the typing free (Parquet is
still written); the gap between the two is what typing costs the crawl, in wall time, over its CPU.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "1~simulator-admin-token"

# Run in the crawl's own process with --instrument: wraps the two methods, reports at exit on stderr.
INSTRUMENT = r'''
import atexit, collections, sys, time
from exporter import columnar
from exporter.canvas import client
state = {"http": 0, "t": time.perf_counter()}
in_flight = collections.Counter()
waits = {"http": [0, 0.0], "typing": [0, 0.0]}
def tick():
    now = time.perf_counter(); in_flight[state["http"]] += now - state["t"]; state["t"] = now
def wrap(cls, name, key, counts):
    inner = getattr(cls, name)
    async def timed(*args, **kwargs):
        if counts: tick(); state["http"] += 1
        started = time.perf_counter()
        try:
            return await inner(*args, **kwargs)
        finally:
            waits[key][0] += 1; waits[key][1] += time.perf_counter() - started
            if counts: tick(); state["http"] -= 1
    setattr(cls, name, timed)
wrap(client.CanvasClient, "_attempt", "http", True)
wrap(columnar.PageDecoder, "decode", "typing", False)
def report():
    tick(); total = sum(in_flight.values()) or 1.0
    idle = in_flight[0] / total
    busy = sum(n * s for n, s in in_flight.items()) / total
    sys.stderr.write(f"INSTRUMENT no request in flight {idle:.0%} of the time; {busy:.1f} in flight on average\n")
    for key, (n, s) in waits.items():
        if n:
            sys.stderr.write(f"INSTRUMENT {key}: {n} calls, mean {s / n * 1000:.1f} ms\n")
atexit.register(report)
from exporter.cli import main
sys.exit(main())
'''


# Run in the crawl's own process with --replay: the crawl, then the crawl with each page's typing replayed.
REPLAY = r'''
import sys, time
from exporter import columnar
from exporter.cli import main
kept = {}
typed = columnar.PageDecoder.decode
async def keeping(self, table, page):
    batch = await typed(self, table, page)
    kept[page.where] = batch
    return batch
async def replaying(self, table, page):
    return kept[page.where]
argv = sys.argv[1:]
out = argv.index("--out") + 1
for name, decode in (("typed", keeping), ("replayed", replaying)):
    columnar.PageDecoder.decode = decode
    sys.argv = ["canvas-export", *argv[:out], argv[out] + "-" + name, *argv[out + 1:]]
    wall, cpu = time.perf_counter(), time.process_time()
    code = main()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if code:
        sys.exit(code)
    sys.stderr.write(f"REPLAY {name}: wall {wall:.2f} s, CPU {cpu:.2f} s\n")
'''


def schedstat(path: str) -> tuple[float, float]:
    run_ns, wait_ns, *_ = open(path).read().split()
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--sim-pid", type=int, help="the simulator's pid, to report its CPU over the crawl")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--instrument", action="store_true", help="also measure requests in flight and typing waits")
    how.add_argument("--replay", action="store_true", help="crawl twice in one process, the second time with "
                     "each page's typing replayed from the first: the loop's own cost")
    parser.add_argument("crawl_args", nargs="*", help="more arguments for `crawl` (after --)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="canvas-export-threads-"))
    env = dict(os.environ)
    env.setdefault("CANVAS_API_TOKEN", ADMIN_TOKEN)
    entry = (["-c", INSTRUMENT, "crawl"] if args.instrument else ["-c", REPLAY, "crawl"] if args.replay
             else ["-m", "exporter", "crawl"])
    argv = [sys.executable, *entry, "--base-url", args.base_url, "--account", "self", "--out", str(out / "crawl"),
            "--concurrency", "32", "--per-page", "100", *args.crawl_args]
    sim_before = schedstat(f"/proc/{args.sim_pid}/schedstat") if args.sim_pid else None
    started = time.monotonic()
    err = tempfile.TemporaryFile("w+")  # not a pipe: a crawl that logs more than a pipe holds would stall
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
    threads: dict[str, tuple[str, float, float]] = {}
    while child.poll() is None:
        for path in glob.glob(f"/proc/{child.pid}/task/*/schedstat"):
            tid = path.split("/")[4]
            try:
                run, wait = schedstat(path)
            except OSError:
                continue
            threads[tid] = ("loop" if tid == str(child.pid) else "thread", run, wait)
        time.sleep(0.02)
    wall = time.monotonic() - started
    err.seek(0)
    stderr = err.read()
    shutil.rmtree(out, ignore_errors=True)
    if child.returncode != 0:
        sys.stderr.write(stderr)
        print(f"the crawl failed (exit {child.returncode})")
        return 1
    print(f"wall {wall:.2f} s" + (" (both crawls)" if args.replay else ""))
    busiest = sorted(threads.values(), key=lambda t: -t[1])[:3]
    for name, run, wait in busiest:  # the busiest thread other than the loop is the Arrow thread
        print(f"  {name:6} ran {run:5.2f} s, waited for a CPU {wait:4.2f} s")
    print(f"  the two busiest together: {(busiest[0][1] + busiest[1][1]) / wall:.0%} of the wall time")
    if sim_before is not None:
        run, wait = schedstat(f"/proc/{args.sim_pid}/schedstat")
        print(f"  simulator ran {run - sim_before[0]:.2f} s, waited for a CPU {wait - sim_before[1]:.2f} s")
    for line in stderr.splitlines():
        if line.startswith(("INSTRUMENT ", "REPLAY ")):
            print("  " + line.split(" ", 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
