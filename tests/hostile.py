"""A hostile reverse proxy for tests: it forwards to a running simulator and lets a test replace or damage
the answer for chosen paths.

    async with Simulator(inst) as sim, HostileProxy(sim.base_url) as proxy:
        proxy.rules[r"^/api/v1/sections/42/users$"] = lambda request, upstream: web.Response(text="<html>")
        ...  # crawl proxy.base_url

A rule is `(request, upstream) -> web.StreamResponse` (or an awaitable of one); it is matched with
`re.search` against the request's raw path (without the query). `upstream` is the simulator's answer to
the same request, with its Link and Location URLs already pointing at the proxy, so pagination keeps going
through the proxy. Requests no rule matches are passed through unchanged.

`Bystander` is "another host": a server that records every request it receives and answers `[]`.
Both bind 127.0.0.1 only. `threaded(...)` serves them from a background thread, for tests that run the CLI.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

T = TypeVar("T")
Rule = Callable[[web.BaseRequest, "Upstream"], "web.StreamResponse | Awaitable[web.StreamResponse]"]

# Headers that describe one hop (or the encoding aiohttp already undid), never copied to the client.
_HOP_HEADERS = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Content-Encoding", "Date", "Server",
    "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Upgrade",
))
_FORWARDED = ("Authorization", "Accept", "User-Agent")


@dataclass
class Seen:
    """One request a server received: method, path with query, and every header as sent."""

    method: str
    path_qs: str
    headers: dict[str, str]


@dataclass
class Upstream:
    """The simulator's answer to a request, as the proxy would pass it on."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def response(self, *, body: bytes | None = None, json: Any = None, status: int | None = None,
                 headers: Mapping[str, str | None] | None = None) -> web.Response:
        """This answer, optionally with another body (bytes, or a value to serialize), status or headers.
        A header given as None is removed."""
        out = CIMultiDict(self.headers)
        for name, value in (headers or {}).items():
            out.popall(name, None)
            if value is not None:
                out[name] = value
        if json is not None:
            body = orjson.dumps(json)
        return web.Response(status=self.status if status is None else status,
                            body=self.body if body is None else body, headers=out)


class _Recorder:
    """A one-handler aiohttp server on 127.0.0.1 that records what it receives."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.base_url = ""
        self.port = 0
        self._runner: web.ServerRunner | None = None

    async def __aenter__(self) -> Any:
        server = web.Server(self._receive, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        await self._started()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stopping()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _started(self) -> None:
        pass

    async def _stopping(self) -> None:
        pass

    async def _receive(self, request: web.BaseRequest) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.raw_path, dict(request.headers)))
        return await self.handle(request)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raise NotImplementedError


class Bystander(_Recorder):
    """Another host. It must never be asked anything by the exporter; if it is, it answers a harmless `[]`."""

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=b"[]", content_type="application/json")


class HostileProxy(_Recorder):
    def __init__(self, upstream: str, rules: Mapping[str, Rule] | None = None) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.rules: dict[str, Rule] = dict(rules or {})
        self.hits: dict[str, int] = {}  # rule pattern -> requests it answered
        self._session: aiohttp.ClientSession | None = None

    async def _started(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=True, trust_env=False)

    async def _stopping(self) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path_qs: str) -> str:
        """An absolute URL on the proxy."""
        return f"{self.base_url}{path_qs}"

    async def fetch(self, path_qs: str, headers: Mapping[str, str]) -> Upstream:
        """GET path_qs from the simulator (forwarding the client's auth and Accept headers); Link and
        Location URLs in the answer are rewritten from the simulator's origin to the proxy's."""
        assert self._session is not None
        sent = {k: headers[k] for k in _FORWARDED if k in headers}
        async with self._session.get(f"{self.upstream}{path_qs}", headers=sent, allow_redirects=False) as resp:
            body = await resp.read()
            out: CIMultiDict[str] = CIMultiDict()
            for name, value in resp.headers.items():
                if name.lower() in _HOP_HEADERS:
                    continue
                if name.lower() in ("link", "location"):
                    value = value.replace(self.upstream, self.base_url)
                out.add(name, value)
            return Upstream(resp.status, out, body)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        upstream = await self.fetch(request.raw_path, request.headers)
        path = request.raw_path.partition("?")[0]
        for pattern, rule in list(self.rules.items()):
            if re.search(pattern, path):
                self.hits[pattern] = self.hits.get(pattern, 0) + 1
                answer = rule(request, upstream)
                return await answer if inspect.isawaitable(answer) else answer
        return upstream.response()

    def requests_to(self, pattern: str) -> list[Seen]:
        return [s for s in self.seen if re.search(pattern, s.path_qs.partition("?")[0])]


def link_header(**rels: str) -> str:
    """A Link header in Canvas's format from rel=url pairs: `link_header(next=url, last=url)`."""
    return ",".join(f'<{url}>; rel="{rel}"' for rel, url in rels.items())


@dataclass
class Streamed:
    """How much of a streamed body was written before the client hung up."""

    bytes_written: int = 0
    finished: bool = False
    errors: list[str] = field(default_factory=list)


async def stream_json_list(request: web.BaseRequest, total_bytes: int, *, stats: Streamed,
                           declare_length: bool = False, chunk_bytes: int = 1 << 20) -> web.StreamResponse:
    """A 200 answer whose body is a JSON list of about `total_bytes` bytes, written chunk by chunk from one
    reused buffer (never built in memory). Chunked unless `declare_length`, which sends Content-Length."""
    item = b'{"id":1,"name":"padding padding padding padding"},'
    chunk = item * max(1, chunk_bytes // len(item))
    n_chunks = max(1, total_bytes // len(chunk))
    tail = b'{"id":1}]'
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json; charset=utf-8"})
    if declare_length:
        response.content_length = 1 + n_chunks * len(chunk) + len(tail)
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        await response.write(b"[")
        for _ in range(n_chunks):
            await response.write(chunk)
            stats.bytes_written += len(chunk)
        await response.write_eof(tail)
        stats.finished = True
    except (ConnectionError, RuntimeError) as exc:  # the client hung up: stop writing
        stats.errors.append(type(exc).__name__)
    return response




@contextmanager
def threaded(factory: Callable[[], AbstractAsyncContextManager[T]]) -> Iterator[T]:
    """Enter the async context manager `factory()` on an event loop in a background thread and yield what it
    gives, so a test can run the CLI (which runs its own loop) in this thread against servers in that one."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        async def run() -> None:
            try:
                async with factory() as value:
                    holder["value"], holder["stop"] = value, asyncio.Event()
                    holder["loop"] = asyncio.get_running_loop()
                    ready.set()
                    await holder["stop"].wait()
            except BaseException as exc:  # noqa: BLE001 - reported to the waiting test
                holder["error"] = exc
                ready.set()

        asyncio.run(run())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    if not ready.wait(60) or "error" in holder:
        raise RuntimeError("the servers did not start") from holder.get("error")
    try:
        yield holder["value"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
