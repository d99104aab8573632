"""Helpers to talk to the simulator through real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from exporter.sim import ADMIN_TOKEN


@dataclass
class Got:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)  # orjson keeps 64-bit ints exact

    @property
    def links(self) -> dict[str, str]:
        return parse_links(self.headers.get("Link"))


def parse_links(header: str | None) -> dict[str, str]:
    out = {}
    for part in (header or "").split(","):
        if not part:
            continue
        url, _, rel = part.partition(";")
        out[rel.strip().removeprefix('rel="').removesuffix('"')] = url.strip()[1:-1]
    return out


def auth(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def get(session: aiohttp.ClientSession, url: str, **kw: Any) -> Got:
    async with session.get(aiohttp.client.URL(url, encoded=True), **kw) as r:
        return Got(r.status, r.headers, await r.read())


async def send(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Got:
    """Any method; `data=` sends a urlencoded form, `json=` a JSON body."""
    async with session.request(method, aiohttp.client.URL(url, encoded=True), **kw) as r:
        return Got(r.status, r.headers, await r.read())
