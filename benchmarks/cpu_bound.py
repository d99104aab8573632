"""The CPU bound: the project's own parsing, normalizing and writing of a crawl's pages, with no network.

    python benchmarks/cpu_bound.py --base-url URL --out DIR --snapshot-id ID   (token from CANVAS_API_TOKEN)

First every page the crawl needs is fetched from the simulator into memory (the same URLs, parameters and
bodies the exporter gets: per_page=100, include[]=total_students, include[]=avatar_url). Then, timed and in
this one process and thread, the bodies are typed as the exporter types them (`exporter.columnar.decode_pages`:
Arrow's JSON reader, 32 pages a call, orjson and `rows.to_batch` for a batch it declines) and written with
`exporter.store.snapshot.Snapshot` (add per unit, commit at the end): the exporter's pipeline minus the
network, the event loop, the threads and the de-duplication. Prints one JSON object.

The fetch phase is timed too: how long a lean client (plain aiohttp, no typing) takes to fetch those pages
from the simulator on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from exporter.canvas.links import parse_link_header, path_of
from exporter.columnar import ColumnarDecoder, RawPage, decode_pages
from exporter.rows import SECTION_USERS, SECTIONS, TABLES, Table
from exporter.store.snapshot import Snapshot

PER_PAGE = "100"
Pages = list[tuple[str, bytes]]  # (path of the page, body)


@dataclass
class Fetched:
    course_sections: list[tuple[int, Pages]] = field(default_factory=list)
    section_users: list[tuple[int, int, Pages]] = field(default_factory=list)
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0


class Fetcher:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, concurrency: int) -> None:
        self.session = session
        self.base = base_url.rstrip("/")
        self.limit = asyncio.Semaphore(concurrency)
        self.result = Fetched()

    async def list_pages(self, url: str, params: list[tuple[str, str]] | None) -> Pages:
        """Every page of one list, following `next` until there is none or a page is empty."""
        pages: Pages = []
        next_url: str | None = url
        while next_url:
            async with self.limit, self.session.get(next_url, params=params) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status} from {path_of(str(resp.url))}: {body[:200]!r}")
                links = parse_link_header(resp.headers.getall("Link", None), str(resp.url))
                page_url = str(resp.url)
            self.result.requests += 1
            self.result.bytes += len(body)
            pages.append((path_of(page_url), body))
            params = None  # a next URL carries its query
            next_url = links.get("next") if body.strip() != b"[]" else None
        return pages

    async def course(self, course_id: int) -> None:
        pages = await self.list_pages(f"{self.base}/api/v1/courses/{course_id}/sections",
                                      [("per_page", PER_PAGE), ("include[]", "total_students")])
        self.result.course_sections.append((course_id, pages))
        section_ids = [s["id"] for _, body in pages for s in orjson.loads(body)]
        await asyncio.gather(*(self.section(s, course_id) for s in section_ids))

    async def section(self, section_id: int, course_id: int) -> None:
        pages = await self.list_pages(f"{self.base}/api/v1/sections/{section_id}/users",
                                      [("per_page", PER_PAGE), ("include[]", "avatar_url")])
        self.result.section_users.append((section_id, course_id, pages))


async def fetch_all(base_url: str, token: str, account: str, concurrency: int) -> Fetched:
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        fetcher = Fetcher(session, base_url, concurrency)
        course_pages = await fetcher.list_pages(f"{fetcher.base}/api/v1/accounts/{account}/courses",
                                                [("per_page", PER_PAGE)])
        course_ids = [c["id"] for _, body in course_pages for c in orjson.loads(body)]
        await asyncio.gather(*(fetcher.course(c) for c in course_ids))
    fetcher.result.seconds = time.perf_counter() - started
    return fetcher.result


BATCH_PAGES = 32  # pages typed per call, as the exporter's decoder batches them under load


def process(fetched: Fetched, out: str, snapshot_id: str) -> dict[str, float | int]:
    """Type, normalize and write every fetched page as the exporter does; the clock runs only here."""
    clock = time.perf_counter
    units: list[tuple[Table, Any, list[RawPage]]] = []
    for course_id, pages in fetched.course_sections:
        units.append((SECTIONS, course_id, [RawPage(body, path) for path, body in pages]))
    for section_id, course_id, pages in fetched.section_users:
        context = {"section_id": section_id, "course_id": course_id}
        units.append((SECTION_USERS, section_id, [RawPage(body, path, context) for path, body in pages]))
    rows = {SECTIONS.name: 0, SECTION_USERS.name: 0}
    decode_s = 0.0
    declined = 0
    gc.collect()
    started, started_cpu = clock(), time.process_time()
    columnar = ColumnarDecoder()
    snapshot = Snapshot(out, snapshot_id, TABLES)
    snapshot.open({"snapshot_id": snapshot_id, "scope": "benchmark cpu bound"}, resume=False)
    for table in (SECTIONS, SECTION_USERS):
        mine = [u for u in units if u[0] is table]
        flat = [page for _, _, pages in mine for page in pages]
        typed: list[Any] = []
        t0 = clock()
        for i in range(0, len(flat), BATCH_PAGES):
            batches, why = decode_pages(columnar, table, flat[i:i + BATCH_PAGES], _parse)
            declined += why is not None
            typed += batches
        decode_s += clock() - t0
        at = 0
        for _, key, pages in mine:
            batches = typed[at:at + len(pages)]
            at += len(pages)
            bad = next((b for b in batches if isinstance(b, BaseException)), None)
            if bad is not None:
                raise bad
            rows[table.name] += sum(b.num_rows for b in batches)
            if table is SECTIONS:
                ids = [i for b in batches for i in b.column("id").to_pylist()]
                key = {"course": str(key), "sections": [[i, key] for i in ids]}
            if snapshot.add(table, key, batches):
                snapshot.settle(table)
    stats = snapshot.stats()
    snapshot.commit({"snapshot_id": snapshot_id, "status": "complete",
                     "tables": {n: {"rows": s.rows, "files": s.files} for n, s in stats.items()}})
    total = clock() - started
    return {"process_s": total, "process_cpu_s": time.process_time() - started_cpu, "decode_s": decode_s,
            "write_s": total - decode_s, "declined_batches": declined,
            "rows_sections": rows[SECTIONS.name], "rows_section_users": rows[SECTION_USERS.name]}


def _parse(page: RawPage) -> list[dict[str, Any]]:
    items = orjson.loads(page.body)
    assert isinstance(items, list)
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--account", default="self")
    parser.add_argument("--out", required=True)
    parser.add_argument("--snapshot-id", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    token = os.environ.get("CANVAS_API_TOKEN")
    if not token:
        print("set CANVAS_API_TOKEN", file=sys.stderr)
        return 2
    fetched = asyncio.run(fetch_all(args.base_url, token, args.account, args.concurrency))
    result = {"fetch_s": fetched.seconds, "requests": fetched.requests, "bytes": fetched.bytes,
              **process(fetched, args.out, args.snapshot_id)}
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
