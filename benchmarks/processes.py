"""Child processes: the simulator serving on a free port, and a measured run of an exporter or peer.

A measured run's peak RSS comes from the kernel (`ru_maxrss` from `os.wait4`, in benchmarks/peak_rss.py), so
nothing is missed between samples; a sampler thread also records RSS over time (psutil, every 0.1 s) for the
memory chart.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PYTHON = sys.executable
PEAK_RSS = Path(__file__).resolve().parent / "peak_rss.py"
SAMPLE_EVERY = 0.1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True, slots=True)
class SimSettings:
    courses: int
    seed: int = 1
    latency_ms: float = 0.0
    throttle: bool = False
    request_cost: float | None = None

    def args(self) -> list[str]:
        args = ["--courses", str(self.courses), "--seed", str(self.seed), "--latency-ms", str(self.latency_ms)]
        if self.throttle:
            args.append("--throttle")
        if self.request_cost is not None:
            args += ["--request-cost", str(self.request_cost)]
        return args


class SimulatorProcess:
    """`with SimulatorProcess(settings, log_dir) as sim:` runs `canvas-export simulate` until the block ends."""

    def __init__(self, settings: SimSettings, log_dir: Path, startup_timeout: float = 300.0) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.counts = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = self.log_dir / f"simulator-{self.port}.out"
        with open(out, "wb") as stdout, open(self.log_dir / f"simulator-{self.port}.err", "wb") as stderr:
            self._proc = subprocess.Popen(
                [PYTHON, "-m", "exporter", "simulate", "--port", str(self.port), *self.settings.args()],
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {self._proc.returncode}; see {out}")
            text = out.read_text(errors="replace")
            if "Canvas simulator at" in text and self._answers():
                first = text.splitlines()[0]
                self.counts = first[first.find("(") + 1:first.rfind(")")]
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"simulator did not answer within {self.startup_timeout:.0f}s; see {out}")

    def _answers(self) -> bool:
        """Any HTTP answer will do. No token, so a throttled simulator's token bucket is left untouched."""
        try:
            urllib.request.urlopen(f"{self.base_url}/api/v1/accounts/self/courses", timeout=2).close()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # not SIGINT: a harness started in the background (`&`) passes SIGINT on ignored
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(slots=True)
class Measured:
    """One child process run: how long, how much memory and CPU, how it ended."""

    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_mb: float
    cpu_user_s: float
    cpu_sys_s: float
    stdout: str
    stderr: str
    rss_timeline: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average when it started and when it ended


def _sample_rss(wrapper: subprocess.Popen[bytes], started: float, timeline: list[tuple[float, float]],
                done: threading.Event) -> None:
    """RSS of the wrapper's child over time (the peak comes from the kernel, this is for the chart)."""
    try:
        parent = psutil.Process(wrapper.pid)
        while not done.is_set():
            children = parent.children()
            if children:
                child = children[0]
                break
            done.wait(0.005)
        else:
            return
        while not done.is_set():
            timeline.append((time.monotonic() - started, child.memory_info().rss / 2**20))
            done.wait(SAMPLE_EVERY)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        pass


def run_measured(argv: list[str], *, log_path: Path, env: dict[str, str] | None = None,
                 timeout: float = 3600.0) -> Measured:
    """Run `argv` to completion under benchmarks/peak_rss.py (see there why). Its stdout and stderr go to
    `log_path` with .out and .err suffixes (files: no pipe can fill up and stall it). Killed after `timeout`."""
    out_path, err_path = log_path.with_suffix(".out"), log_path.with_suffix(".err")
    usage_path = log_path.with_suffix(".usage.json")
    usage_path.unlink(missing_ok=True)
    timeline: list[tuple[float, float]] = []
    done = threading.Event()
    load_before = os.getloadavg()[0]
    with open(out_path, "wb") as stdout, open(err_path, "wb") as stderr:
        started = time.monotonic()
        wrapper = subprocess.Popen([PYTHON, str(PEAK_RSS), str(usage_path), str(timeout), *argv],
                                   stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **(env or {})})
        sampler = threading.Thread(target=_sample_rss, args=(wrapper, started, timeline, done), daemon=True)
        sampler.start()
        wrapper.wait()
    done.set()
    sampler.join()
    if wrapper.returncode != 0 or not usage_path.exists():
        raise RuntimeError(f"measuring {argv[:4]} failed (exit {wrapper.returncode}); see {err_path}")
    usage = json.loads(usage_path.read_text())
    return Measured(
        argv=argv, returncode=usage["returncode"], wall_s=usage["wall_s"],
        peak_rss_mb=usage["peak_rss_kb"] / 1024,
        cpu_user_s=usage["cpu_user_s"], cpu_sys_s=usage["cpu_sys_s"],
        stdout=out_path.read_text(errors="replace"), stderr=err_path.read_text(errors="replace"),
        rss_timeline=timeline, load=(load_before, os.getloadavg()[0]),
    )
