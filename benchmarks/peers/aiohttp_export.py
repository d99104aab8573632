"""Peer (b): a naive asyncio + aiohttp export. Everything at once with asyncio.gather, rows in memory.

    python benchmarks/peers/aiohttp_export.py --base-url URL --account self --out DIR --snapshot-id ID

Token from CANVAS_API_TOKEN. The account's course list is walked by `next` links; then every course's
sections are fetched at once, and every section's users at once, each list by its `next` links (per_page
100). aiohttp's default connection pool (100 connections) is the only limit on requests in flight. To finish
under Canvas's throttle it retries a 403 "Rate Limit Exceeded" or a 429 after a second or two, and nothing
more. Parquet is written at the end with `pyarrow.Table.from_pylist`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from datetime import datetime
from typing import Any

import aiohttp

from peer_output import SECTION_COLUMNS, TIMESTAMP_COLUMNS, USER_COLUMNS, write_stats, write_table

stats = {"requests": 0, "retries": 0, "throttled": 0, "bytes": 0}


def to_row(obj: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """The columns (timestamps parsed), plus whatever else Canvas sent as a JSON text column."""
    row = {c: obj.get(c) for c in columns}
    for c in TIMESTAMP_COLUMNS.intersection(columns):
        if row[c] is not None:
            row[c] = datetime.fromisoformat(row[c])
    extra = {k: v for k, v in obj.items() if k not in columns and k != "id"}
    row["unknown_fields"] = json.dumps(extra, sort_keys=True) if extra else None
    return row


async def get_all(session: aiohttp.ClientSession, url: str, params: dict[str, Any] | None = None) -> list[dict]:
    """Every item of a paginated list, following the Link header's `next` until it is gone or a page is empty."""
    items: list[dict] = []
    next_url: Any = url
    while next_url:
        async with session.get(next_url, params=params) as resp:
            stats["requests"] += 1
            body = await resp.read()
            stats["bytes"] += len(body)
            if resp.status in (403, 429) and b"Rate Limit Exceeded" in body:
                stats["throttled"] += 1
                stats["retries"] += 1
                await asyncio.sleep(1 + random.random())
                continue
            resp.raise_for_status()
            page = json.loads(body)
            next_link = resp.links.get("next")
        items.extend(page)
        next_url = next_link["url"] if next_link and page else None
        params = None  # the next URL carries the query
    return items


async def export(base_url: str, token: str, account: str) -> tuple[list[dict], list[dict]]:
    api = f"{base_url.rstrip('/')}/api/v1"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        courses = await get_all(session, f"{api}/accounts/{account}/courses", {"per_page": 100})
        section_lists = await asyncio.gather(*(
            get_all(session, f"{api}/courses/{c['id']}/sections", {"per_page": 100, "include[]": "total_students"})
            for c in courses))
        all_sections = [s for sections in section_lists for s in sections]
        user_lists = await asyncio.gather(*(
            get_all(session, f"{api}/sections/{s['id']}/users", {"per_page": 100, "include[]": "avatar_url"})
            for s in all_sections))
    sections = [{"id": s["id"], **to_row(s, SECTION_COLUMNS[1:])} for s in all_sections]
    section_users = [{"section_id": s["id"], "course_id": s["course_id"], "user_id": u["id"],
                      **to_row(u, USER_COLUMNS)}
                     for s, users in zip(all_sections, user_lists) for u in users]
    return sections, section_users


def main() -> int:
    parser = argparse.ArgumentParser(description="Export sections and section users with aiohttp, naively.")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--account", default="self")
    parser.add_argument("--out", required=True)
    parser.add_argument("--snapshot-id", required=True)
    parser.add_argument("--stats", help="write request counts here as JSON")
    args = parser.parse_args()
    sections, section_users = asyncio.run(export(args.base_url, os.environ["CANVAS_API_TOKEN"], args.account))
    write_table(args.out, "sections", args.snapshot_id, sections)
    write_table(args.out, "section_users", args.snapshot_id, section_users)
    write_stats(args.stats, {**stats, "rows_sections": len(sections), "rows_section_users": len(section_users)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
