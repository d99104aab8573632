"""The scenarios, their bounds, and one measured run of each contender against a simulator of its own.

Every contender (the exporter, each peer, the CPU-bound replay) is a child process talking HTTP to
`canvas-export simulate`, itself a child process; its output is checked row for row against the
simulator's ground truth with `exporter.sim.compare`.
"""

from __future__ import annotations

import gc
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from exporter.sim import ADMIN_TOKEN, AccountScope, BucketParams, Institution, compare, ground_truth

from plan import RequestPlan, cost_for_duration, latency_bound, request_plan, throttle_bound
from processes import PYTHON, Measured, SimSettings, SimulatorProcess, run_measured

HERE = Path(__file__).resolve().parent
EXPORTER = "exporter"
# The same exporter without its second look at every course's sections (README, "When Canvas changes during
# the crawl"): one request per course fewer, so the table shows what pacing and fetching cost on their own.
EXPORTER_NO_RECHECK = "exporter --no-recheck"
CANVASAPI = "canvasapi peer"
AIOHTTP = "aiohttp peer"
CPU_BOUND = "cpu bound replay"
PEER_SCRIPTS = {CANVASAPI: HERE / "peers" / "canvasapi_export.py", AIOHTTP: HERE / "peers" / "aiohttp_export.py"}
RUN_TIMEOUT = 3600.0
SHOWN_DIFFERENCES = 5


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    courses: int
    bound: str  # "cpu", "latency" or "throttle"
    contenders: tuple[str, ...]
    latency_ms: float = 0.0
    throttle_seconds: float = 0.0  # throttle scenarios: the request cost is chosen so the bound lasts this long
    concurrency: int = 32
    seed: int = 1
    what: str = ""


def scenarios(quick: bool) -> list[Scenario]:
    full_courses = 120 if quick else 2300  # 2300 courses: over 500,000 section-user rows in the account
    small = full_courses // 10
    latency_courses = 20 if quick else 100  # small enough for the canvasapi peer to finish in a few minutes
    throttle_courses = 20 if quick else 400  # a request cost near 0.7 s, 15 requests/s under the bucket
    return [
        Scenario("cpu", full_courses, "cpu", (EXPORTER, EXPORTER_NO_RECHECK, AIOHTTP),
                 what="no latency, no throttle: the exporter's own processing is the limit"),
        Scenario("scale", small, "cpu", (EXPORTER,),
                 what="the cpu scenario at a tenth of the rows (its full size is the cpu run)"),
        Scenario("latency", latency_courses, "latency", (EXPORTER, AIOHTTP, CANVASAPI), latency_ms=50.0,
                 what="50 ms added to every response"),
        Scenario("throttle", throttle_courses, "throttle", (EXPORTER, EXPORTER_NO_RECHECK, AIOHTTP), throttle_seconds=8.0 if quick else 60.0,
                 what="Canvas's leaky bucket on (hwm 600, outflow 10/s, 50 up front)"),
    ]


@dataclass(slots=True)
class RunResult:
    scenario: str
    contender: str
    returncode: int
    wall_s: float
    requests: int
    retries: int
    throttled: int
    rows: int
    peak_rss_mb: float
    cpu_s: float
    bound_s: float
    differences: int  # rows or values that differ from the ground truth; 0 means identical
    first_differences: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    rss_timeline: list[tuple[float, float]] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average at start and at end

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0

    @property
    def times_bound(self) -> float:
        return self.wall_s / self.bound_s if self.bound_s else float("nan")

    @property
    def correct(self) -> bool:
        return self.returncode == 0 and self.differences == 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(rows_per_s=self.rows_per_s, times_bound=self.times_bound, correct=self.correct)
        return d


@dataclass(slots=True)
class ScenarioResult:
    scenario: Scenario
    sim: SimSettings
    counts: str  # the simulator's counts line
    plan: RequestPlan
    truth_rows: int
    bound_s: float
    bound_detail: dict[str, Any]
    runs: list[RunResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": asdict(self.scenario), "simulator": asdict(self.sim), "counts": self.counts,
                "plan": {**asdict(self.plan), "requests": self.plan.requests}, "truth_rows": self.truth_rows,
                "bound_s": self.bound_s, "bound_detail": self.bound_detail,
                "runs": [r.as_dict() for r in self.runs]}


class Bench:
    """Runs scenarios; `say` reports progress. Outputs go under `work` (removed run by run), logs under `logs`."""

    def __init__(self, work: Path, logs: Path, say: Callable[[str], None] = print) -> None:
        self.work = work
        self.logs = logs
        self.say = say
        self._institutions: dict[tuple[int, int], tuple[Institution, RequestPlan, Any]] = {}

    # -- one scenario -----------------------------------------------------------------------------------
    def run(self, sc: Scenario) -> ScenarioResult:
        self.say(f"[{sc.name}] {sc.what}")
        inst, plan, truth = self._institution(sc)
        settings = self._settings(sc, plan)
        bound_s, detail = self._model_bound(sc, plan, settings)
        truth_rows = len(truth.sections) + len(truth.section_users)
        self.say(f"[{sc.name}] {sc.courses} courses: {plan.courses} in the account, {truth_rows:,} rows, "
                 f"{plan.requests:,} requests at best, chain {plan.chain}")
        result = ScenarioResult(sc, settings, "", plan, truth_rows, bound_s, detail)
        fresh_each = settings.throttle  # the bucket remembers: every contender starts with an empty one
        sim = None
        try:
            for contender in ((CPU_BOUND,) if sc.bound == "cpu" else ()) + sc.contenders:
                if sim is None or fresh_each:
                    if sim is not None:
                        sim.stop()
                    sim = SimulatorProcess(settings, self.logs)
                    sim.start()
                    result.counts = sim.counts
                    if sim.counts != str(inst.counts()):
                        raise RuntimeError(f"the simulator serves another institution: {sim.counts}")
                run = self._contender(sc, contender, sim, truth)
                if contender == CPU_BOUND:
                    result.bound_s = run.bound_s
                    result.bound_detail = {**run.detail, "wall_s": run.wall_s, "peak_rss_mb": run.peak_rss_mb,
                                           "load": run.load,
                                           "returncode": run.returncode, "differences": run.differences,
                                           "first_differences": run.first_differences}
                    self.say(f"[{sc.name}] cpu bound: {run.bound_s:.2f}s for {run.rows:,} rows; the simulator "
                             f"served them in {run.detail.get('fetch_s', float('nan')):.1f}s; "
                             f"{'matches' if run.correct else 'DIFFERS from'} the ground truth")
                else:
                    run.bound_s = result.bound_s
                    result.runs.append(run)
                    self.say(f"[{sc.name}] {contender}: {run.wall_s:.1f}s ({run.times_bound:.2f}x bound "
                             f"{run.bound_s:.1f}s), {run.rows:,} rows, {run.requests:,} requests, "
                             f"{run.throttled:,} throttled, peak {run.peak_rss_mb:.0f} MB, "
                             f"{'matches the ground truth' if run.correct else 'DIFFERS or FAILED'}")
        finally:
            if sim is not None:
                sim.stop()
        return result

    def _institution(self, sc: Scenario) -> tuple[Institution, RequestPlan, Any]:
        key = (sc.seed, sc.courses)
        if key not in self._institutions:
            self._institutions.clear()  # one at a time: the largest holds about 2 GB with its truth
            gc.collect()
            inst = Institution.generate(seed=sc.seed, courses=sc.courses)
            self._institutions[key] = (inst, request_plan(inst), ground_truth(inst, AccountScope("self")))
        return self._institutions[key]

    def _settings(self, sc: Scenario, plan: RequestPlan) -> SimSettings:
        cost = cost_for_duration(plan, sc.throttle_seconds) if sc.bound == "throttle" else None
        return SimSettings(courses=sc.courses, seed=sc.seed, latency_ms=sc.latency_ms,
                           throttle=sc.bound == "throttle", request_cost=cost)

    def _model_bound(self, sc: Scenario, plan: RequestPlan, settings: SimSettings) -> tuple[float, dict[str, Any]]:
        if sc.bound == "latency":
            latency = sc.latency_ms / 1000
            return latency_bound(plan, latency, sc.concurrency), {
                "rule": "max(requests x latency / concurrency, chain x latency)",
                "requests": plan.requests, "latency_s": latency, "concurrency": sc.concurrency,
                "chain": plan.chain}
        if sc.bound == "throttle":
            bucket = BucketParams()
            assert settings.request_cost is not None
            return throttle_bound(plan, settings.request_cost, bucket), {
                "rule": "(requests x cost - (hwm - up_front_cost)) / outflow",
                "requests": plan.requests, "request_cost": settings.request_cost,
                "total_cost": plan.requests * settings.request_cost, **asdict(bucket)}
        return float("nan"), {"rule": "measured: the same bodies typed and written by the exporter's own code"}

    # -- one contender ----------------------------------------------------------------------------------
    def _contender(self, sc: Scenario, contender: str, sim: SimulatorProcess, truth: Any) -> RunResult:
        slug = f"{sc.name}-{contender.replace(' ', '-')}"
        out = self.work / slug
        shutil.rmtree(out, ignore_errors=True)
        snapshot_id = slug
        stats_path = self.work / f"{slug}.stats.json"
        common = ["--base-url", sim.base_url, "--account", "self", "--out", str(out), "--snapshot-id", snapshot_id]
        if contender in (EXPORTER, EXPORTER_NO_RECHECK):
            argv = [PYTHON, "-m", "exporter", "crawl", *common, "--concurrency", str(sc.concurrency),
                    "--per-page", "100", "--no-progress"]
            if contender == EXPORTER_NO_RECHECK:
                argv.append("--no-recheck")
        elif contender == CPU_BOUND:
            argv = [PYTHON, str(HERE / "cpu_bound.py"), *common, "--concurrency", str(sc.concurrency)]
        else:
            argv = [PYTHON, str(PEER_SCRIPTS[contender]), *common, "--stats", str(stats_path)]
        self.say(f"[{sc.name}] running {contender}")
        m = run_measured(argv, env={"CANVAS_API_TOKEN": ADMIN_TOKEN}, log_path=self.logs / slug,
                         timeout=RUN_TIMEOUT)
        run = self._read_outcome(sc, contender, m, out, snapshot_id, stats_path)
        if m.returncode != 0:
            self.say(f"[{sc.name}] {contender} exited with {m.returncode}: {m.stderr.strip()[-500:]}")
        else:
            started = time.monotonic()
            problems = compare(out, snapshot_id, truth)
            run.differences = len(problems)
            run.first_differences = problems[:SHOWN_DIFFERENCES]
            run.detail["compare_s"] = round(time.monotonic() - started, 1)
        shutil.rmtree(out, ignore_errors=True)
        return run

    def _read_outcome(self, sc: Scenario, contender: str, m: Measured, out: Path, snapshot_id: str,
                      stats_path: Path) -> RunResult:
        run = RunResult(sc.name, contender, m.returncode, m.wall_s, 0, 0, 0, 0, m.peak_rss_mb,
                        m.cpu_user_s + m.cpu_sys_s, float("nan"), -1, rss_timeline=m.rss_timeline,
                        load=m.load)
        try:
            if contender in (EXPORTER, EXPORTER_NO_RECHECK):
                manifest = json.loads((out / "_manifests" / f"{snapshot_id}.json").read_text())
                r = manifest["requests"]
                run.requests, run.retries, run.throttled = r["requests"], r["retries"], r["throttled"]
                run.rows = sum(t["rows"] for t in manifest["tables"].values())
                run.detail = {"status": manifest["status"], "lowest_limit": r.get("lowest_limit"),
                              "retry_reasons": r.get("retry_reasons"), "failures": len(manifest["failures"])}
            elif contender == CPU_BOUND:
                data = json.loads(m.stdout.strip().splitlines()[-1])
                run.requests = data["requests"]
                run.rows = data["rows_sections"] + data["rows_section_users"]
                run.bound_s = data["process_s"]
                run.detail = {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()}
                run.detail["rule"] = ("measured: the same bodies typed (exporter.columnar.decode_pages) and "
                                      "written (Snapshot) by the exporter's own code in one process and thread, "
                                      "no network")
                run.detail["rows_per_s"] = round(run.rows / data["process_s"])
            else:
                data = json.loads(stats_path.read_text())
                run.requests, run.retries, run.throttled = data["requests"], data["retries"], data["throttled"]
                run.rows = data["rows_sections"] + data["rows_section_users"]
        except (OSError, KeyError, ValueError, IndexError) as exc:
            run.detail["error"] = f"could not read the outcome: {exc!r}"
            if run.returncode == 0:
                run.returncode = -1
        return run
