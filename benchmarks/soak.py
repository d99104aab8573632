"""Soak: a long, fault-mixed crawl of a large simulated institution, SIGKILLed again and again and resumed,
then compared with the simulator's ground truth.

    python benchmarks/soak.py [--courses 600] [--kills 12] [--seed 3]

The simulator runs in its own process with latency and a mix of faults (5xx with HTML bodies, resets, cut
bodies, stalls longer than the exporter's timeout, throttle bursts, looping Links). The exporter runs as
`canvas-export crawl --resume`, killed with SIGKILL after a random delay, until it is allowed to finish.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

FAULTS = "error=0.03,reset=0.01,truncate=0.01,stall=0.003,stall_seconds=4,throttle=0.005,link_loop=0.003"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--courses", type=int, default=600)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from exporter.sim import ADMIN_TOKEN, AccountScope, Institution, compare, ground_truth

    rng = random.Random(args.seed)
    out = Path(args.out or tempfile.mkdtemp(prefix="soak-"))
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "exporter", "simulate", "--port", str(port), "--courses",
                            str(args.courses), "--seed", str(args.seed), "--latency-ms", str(args.latency_ms),
                            "--faults", FAULTS], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    banner = sim.stdout.readline().strip()
    print(banner, flush=True)
    env = {**os.environ, "CANVAS_API_TOKEN": ADMIN_TOKEN}
    argv = [sys.executable, "-m", "exporter", "crawl", "--base-url", f"http://127.0.0.1:{port}", "--account",
            "self", "--out", str(out), "--snapshot-id", "soak", "--timeout", "1", "--checkpoint-seconds", "2",
            "--no-progress", "--log-format", "json"]
    started = time.monotonic()
    runs = kills = 0
    try:
        while True:
            runs += 1
            resume = ["--resume"] if (out / "_staging" / "soak").exists() else []
            proc = subprocess.Popen(argv + resume, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if kills < args.kills:
                try:
                    proc.wait(timeout=rng.uniform(1.0, 6.0))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    print(f"run {runs}: killed after a random delay ({kills}/{args.kills})", flush=True)
                    continue
            else:
                proc.wait()
            stdout = proc.stdout.read().decode()
            print(f"run {runs}: exit {proc.returncode}\n{stdout}", flush=True)
            if proc.returncode not in (0, 3):
                print(proc.stderr.read().decode()[-3000:])
                return 1
            break
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(10)
    elapsed = time.monotonic() - started
    manifest = orjson.loads((out / "_manifests" / "soak.json").read_bytes())
    print(f"{runs} runs, {kills} SIGKILLs, {elapsed:.0f}s; last run: {manifest['requests']['requests']:,} "
          f"requests, {manifest['requests']['retries']:,} retries {manifest['requests']['retry_reasons']}")
    truth = ground_truth(Institution.generate(seed=args.seed, courses=args.courses), AccountScope("self"))
    problems = compare(out, "soak", truth)
    n = re.sub(r"\s+", " ", f"{len(truth.sections):,} sections and {len(truth.section_users):,} section users")
    if problems:
        print(f"DIFFERENT from the ground truth ({len(problems)} problems), e.g.:", *problems[:10], sep="\n  ")
        return 1
    print(f"IDENTICAL to the simulator's ground truth: {n}; status {manifest['status']}, "
          f"failures {len(manifest['failures'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
