"""How much server CPU the simulator spends per request: `python -m exporter.sim.loadtest [--mix MIX]`.

The simulator runs alone in a child process (one core); this process drives it with aiohttp over keep-alive
connections. The server's CPU time per request is what matters when the simulator and a crawler share a
machine: every millisecond of it is taken from the crawler.

Mixes:

- `users` (default, 100 courses): full pages (per_page=100) of the largest sections' users, again and
  again, warm. Prints pages/s seen by the client and server CPU per page.
- `crawl` (default 2,300 courses, the cpu benchmark's institution): the requests of a crawl of
  `--account self --per-page 100` (account course pages, each course's section list twice as the recheck
  does, every section's user pages), found by walking the Link headers once. Each endpoint's requests are
  then replayed on their own, and the whole mix too, first *cold* (every cache of the institution and of
  the server dropped, as a fresh simulator serves a first crawl), then *warm* (the same requests again, as
  the benchmark's second contender sees them). Prints CPU per request for each.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from collections import Counter

import aiohttp

ENDPOINTS = ("account_courses", "course_sections", "section_users")
CRAWL_COURSES = 2300


def _serve(courses: int, seed: int, mix: str, conn) -> None:  # noqa: ANN001 - a multiprocessing Connection
    from exporter.sim.institution import Institution
    from exporter.sim.server import Simulator, tune_gc_for_serving

    async def main() -> None:
        inst = Institution.generate(seed=seed, courses=courses)
        paths: list[str] = []
        if mix == "users":
            big = sorted(inst.sections, key=lambda s: -len(inst.section_roster(s)))[:4]
            paths = [f"/api/v1/sections/{s}/users?include[]=avatar_url&per_page=100&page={p}"
                     for s in big for p in range(1, len(inst.section_roster(s)) // 100 + 1)]
        tune_gc_for_serving()  # as run_simulator (canvas-export simulate) does
        async with Simulator(inst) as sim:
            conn.send((sim.base_url, paths))
            loop = asyncio.get_running_loop()
            cpu = 0.0
            served: Counter = Counter()
            while True:
                msg = await loop.run_in_executor(None, conn.recv)  # wait in a thread: the loop keeps serving
                if msg == "cold":  # forget every cache: the institution's views, sort keys, the server's
                    sim.institution.reindex()
                    conn.send("ok")
                elif msg == "begin":
                    cpu0, by0 = time.process_time(), Counter(sim.stats.by_endpoint)
                    conn.send("ok")
                elif msg == "end":
                    cpu += time.process_time() - cpu0
                    served += Counter(sim.stats.by_endpoint) - by0
                    conn.send("ok")
                elif msg == "report":
                    conn.send((cpu, dict(served), dict(sim.stats.by_status)))
                    cpu, served = 0.0, Counter()
                else:
                    return

    asyncio.run(main())


class Server:
    """The child process and the little protocol that brackets what is measured."""

    def __init__(self, courses: int, seed: int, mix: str) -> None:
        self.conn, child = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(target=_serve, args=(courses, seed, mix, child), daemon=True)
        self.proc.start()
        self.base, self.paths = self.conn.recv()

    def ask(self, msg: str):  # noqa: ANN201
        self.conn.send(msg)
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send("quit")
        self.proc.join(5)


def _session(base: str, token: str, concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=concurrency),
                                 headers={"Authorization": f"Bearer {token}"})


async def _drive(base: str, paths: list[str], token: str, seconds: float, concurrency: int) -> int:
    """Fetch paths round-robin until `seconds` have passed."""
    done = 0
    deadline = time.monotonic() + seconds
    async with _session(base, token, concurrency) as s:
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


async def _replay(base: str, paths: list[str], token: str, concurrency: int) -> None:
    """Fetch each path once."""
    queue = iter(paths)
    async with _session(base, token, concurrency) as s:
        async def worker() -> None:
            for path in queue:
                async with s.get(aiohttp.client.URL(path, encoded=True)) as r:
                    await r.read()
                    assert r.status == 200, (r.status, path)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _walk(base: str, token: str, concurrency: int) -> dict[str, list[str]]:
    """The crawl's requests by endpoint, found by following rel="next" as a crawler does."""
    found: dict[str, list[str]] = {e: [] for e in ENDPOINTS}
    async with _session(base, token, concurrency) as s:
        async def pages(kind: str, path: str) -> list:
            items: list = []
            url: str | None = path
            while url is not None:
                found[kind].append(url)
                async with s.get(aiohttp.client.URL(url, encoded=True)) as r:
                    page = await r.json()
                    nxt = r.links.get("next")
                items.extend(page)
                url = None if not page or nxt is None else str(nxt["url"].relative())
            return items

        courses = await pages("account_courses", "/api/v1/accounts/self/courses?per_page=100")
        section_ids: list[int] = []
        sem = asyncio.Semaphore(concurrency)

        async def course(cid: int) -> None:
            async with sem:
                sections = await pages("course_sections",
                                       f"/api/v1/courses/{cid}/sections?per_page=100&include%5B%5D=total_students")
            section_ids.extend(x["id"] for x in sections)

        async def section(sid: int) -> None:
            async with sem:
                await pages("section_users", f"/api/v1/sections/{sid}/users?per_page=100&include%5B%5D=avatar_url")

        await asyncio.gather(*(course(c["id"]) for c in courses))
        await asyncio.gather(*(section(sid) for sid in section_ids))
    found["course_sections"] *= 2  # the recheck lists every course again
    return found


def _measure(server: Server, paths: list[str], token: str, concurrency: int, *, cold: bool,
             seconds: float) -> tuple[float, int]:
    """CPU seconds and requests of replaying `paths` (at least once, until `seconds` have passed)."""
    started = time.monotonic()
    while True:
        if cold:
            server.ask("cold")
        server.ask("begin")
        asyncio.run(_replay(server.base, paths, token, concurrency))
        server.ask("end")
        if time.monotonic() - started >= seconds:
            break
    cpu, served, _ = server.ask("report")
    return cpu, sum(served.values())


def crawl_mix(args: argparse.Namespace, token: str) -> None:
    server = Server(args.courses or CRAWL_COURSES, args.seed, "crawl")
    try:
        found = asyncio.run(_walk(server.base, token, args.concurrency))
        mixed = [p for e in ENDPOINTS for p in found[e]]
        print(f"crawl of {args.courses or CRAWL_COURSES} courses (seed {args.seed}): "
              + ", ".join(f"{len(found[e])} {e}" for e in ENDPOINTS) + f", {len(mixed)} requests")
        print(f"{'server CPU per request':<24}{'cold (ms)':>12}{'warm (ms)':>12}{'requests':>10}")
        for name, paths in [*((e, found[e]) for e in ENDPOINTS), ("crawl mix", mixed)]:
            row = []
            for cold in (True, False):
                cpu, n = _measure(server, paths, token, args.concurrency, cold=cold, seconds=args.seconds)
                row.append(1000 * cpu / max(n, 1))
            print(f"{name:<24}{row[0]:>12.3f}{row[1]:>12.3f}{len(paths):>10}")
    finally:
        server.close()


def users_mix(args: argparse.Namespace, token: str) -> None:
    server = Server(args.courses or 100, args.seed, "users")
    try:
        asyncio.run(_drive(server.base, server.paths, token, 1.0, args.concurrency))  # warm up
        server.ask("begin")
        started = time.monotonic()
        pages = asyncio.run(_drive(server.base, server.paths, token, args.seconds, args.concurrency))
        wall = time.monotonic() - started
        server.ask("end")
        cpu, served, statuses = server.ask("report")
    finally:
        server.close()
    n = sum(served.values())
    print(f"{pages} pages of 100 users in {wall:.2f}s: {pages / wall:.0f} pages/s seen by the client "
          f"({args.concurrency} connections, client and server sharing the machine)")
    print(f"server: {n} requests, {cpu:.2f}s CPU, {1000 * cpu / max(n, 1):.3f} ms CPU per page "
          f"=> {n / cpu if cpu else float('inf'):.0f} pages/s per server core; statuses {statuses}")


def main(argv: list[str] | None = None) -> None:
    from exporter.sim.auth import ADMIN_TOKEN

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mix", choices=("users", "crawl"), default="users")
    ap.add_argument("--courses", type=int, default=None, help="default 100 (users) or 2300 (crawl)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="users: how long to measure; crawl: replay each list until this long has passed")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args(argv)
    (crawl_mix if args.mix == "crawl" else users_mix)(args, ADMIN_TOKEN)


if __name__ == "__main__":
    main()
