"""How many pages per second the simulator serves: `python -m exporter.sim.loadtest [--seconds 5]`.

The simulator runs alone in a child process (one core); this process drives it with aiohttp over keep-alive
connections, fetching full pages (per_page=100) of the largest sections' users again and again. It prints the
pages per second seen by the client, and the server's CPU time per page, whose inverse is the rate one server
core could sustain if the client were not sharing the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time

import aiohttp


def _serve(courses: int, seed: int, conn) -> None:  # noqa: ANN001 - a multiprocessing Connection
    from exporter.sim.institution import Institution
    from exporter.sim.server import Simulator

    async def main() -> None:
        inst = Institution.generate(seed=seed, courses=courses)
        big = sorted(inst.sections, key=lambda s: -len(inst.section_roster(s)))[:4]
        paths = [f"/api/v1/sections/{s}/users?include[]=avatar_url&per_page=100&page={p}"
                 for s in big for p in range(1, len(inst.section_roster(s)) // 100 + 1)]
        async with Simulator(inst) as sim:
            conn.send((sim.base_url, paths))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.recv)  # go (wait in a thread: the loop keeps serving)
            cpu0, n0 = time.process_time(), sim.stats.requests
            await loop.run_in_executor(None, conn.recv)  # stop
            conn.send((time.process_time() - cpu0, sim.stats.requests - n0, dict(sim.stats.by_status)))

    asyncio.run(main())


async def _drive(base: str, paths: list[str], token: str, seconds: float, concurrency: int) -> int:
    done = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers={"Authorization": f"Bearer {token}"}) as s:
        async def worker(k: int) -> None:
            nonlocal done
            i = k
            while time.monotonic() < deadline:
                async with s.get(paths[i % len(paths)]) as r:
                    await r.read()
                    assert r.status == 200, r.status
                done += 1
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return done


def main(argv: list[str] | None = None) -> None:
    from exporter.sim.auth import ADMIN_TOKEN

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--courses", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args(argv)
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(args.courses, args.seed, child), daemon=True)
    proc.start()
    base, paths = parent.recv()
    asyncio.run(_drive(base, paths, ADMIN_TOKEN, 1.0, args.concurrency))  # warm up: rosters, caches, JIT-free
    parent.send("go")
    started = time.monotonic()
    pages = asyncio.run(_drive(base, paths, ADMIN_TOKEN, args.seconds, args.concurrency))
    wall = time.monotonic() - started
    parent.send("stop")
    cpu, served, statuses = parent.recv()
    proc.join(5)
    print(f"{pages} pages of 100 users in {wall:.2f}s: {pages / wall:.0f} pages/s seen by the client "
          f"({args.concurrency} connections, client and server sharing the machine)")
    print(f"server: {served} requests, {cpu:.2f}s CPU, {1000 * cpu / max(served, 1):.3f} ms CPU per page "
          f"=> {served / cpu if cpu else float('inf'):.0f} pages/s per server core; statuses {statuses}")


if __name__ == "__main__":
    main()
