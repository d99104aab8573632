"""`canvas-export demo` and `canvas-export simulate`: the simulator, in this process or serving others."""

from __future__ import annotations

import argparse
import sys
import time

import anyio

from exporter.canvas.refs import account_ref
from exporter.config import ClientConfig, CrawlConfig, Scope, Secret


def run_demo(args: argparse.Namespace, out: str, show_progress: bool) -> int:
    from exporter.cli import EXIT_OK, EXIT_PARTIAL, _includes, _run_export, _timeouts, summary
    from exporter.sim import ADMIN_TOKEN, AccountScope, Institution, SimOptions, Simulator, compare, ground_truth

    print(f"Generating a simulated institution (seed {args.seed}, {args.courses} courses)...", flush=True)
    institution = Institution.generate(seed=args.seed, courses=args.courses)
    section_includes, user_includes = _includes(args.include), _includes(args.user_include)

    async def crawl_simulator():  # type: ignore[no-untyped-def]
        async with Simulator(institution, SimOptions(seed=args.seed, courses=args.courses)) as sim:
            print(f"Simulated Canvas at {sim.base_url}; exporting every course of the root account to {out}",
                  flush=True)
            client = ClientConfig(base_url=sim.base_url, token=Secret(ADMIN_TOKEN), concurrency=args.concurrency,
                                  max_rps=args.max_rps, per_page=args.per_page, timeouts=_timeouts(args.timeout))
            config = CrawlConfig(client=client, scope=Scope(account=account_ref("self")), out=out,
                                 section_includes=section_includes, user_includes=user_includes)
            return await _run_export(config, show_progress)

    started = time.monotonic()
    result = anyio.run(crawl_simulator)
    elapsed = time.monotonic() - started
    print(summary(result))
    truth = ground_truth(institution, AccountScope("self"), section_includes=section_includes,
                         user_includes=user_includes)
    problems = compare(out, result.snapshot_id, truth)
    rows = len(truth.section_users) + len(truth.sections)
    print(f"  {elapsed:.1f}s, {rows / elapsed:,.0f} rows/s")
    if problems:
        print(f"Differences from the simulator's ground truth ({len(problems)}):")
        for p in problems[:20]:
            print(f"  {p}")
        return 1
    print(f"Identical to the simulator's ground truth: {len(truth.sections):,} sections, "
          f"{len(truth.section_users):,} section users.")
    print(f"Next: canvas-export inspect {out}")
    return EXIT_OK if result.status == "complete" else EXIT_PARTIAL


def run_simulate(args: argparse.Namespace) -> int:
    from exporter.sim import Faults, SimOptions, run_simulator

    try:
        faults = Faults.parse(",".join(args.faults))
    except ValueError as exc:
        print(f"canvas-export simulate: --faults: {exc}", file=sys.stderr)
        return 2
    options = SimOptions(seed=args.seed, courses=args.courses, latency_ms=args.latency_ms,
                         throttle=args.throttle or args.throttle_429,
                         throttle_mode="429" if args.throttle_429 else "403", faults=faults)
    if args.request_cost is not None:
        options.request_cost = args.request_cost
    run_simulator(options, port=args.port, truth_out=args.truth_out)
    return 0
