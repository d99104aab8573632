"""The Canvas HTTP client: one aiohttp session per run, bearer auth, timeouts on every attempt,
retries with backoff and jitter, throttle detection and error mapping.

Layering (outermost first): `get_page` (retries and backoff) → `_attempt` (limits, one request, read
body) → `_classify` (status and body → Page or an exception from `errors`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import anyio
import orjson
from aiohttp.http_exceptions import ContentEncodingError
from aiolimiter import AsyncLimiter
from yarl import URL

from exporter import __version__
from exporter.canvas.errors import (
    BadResponse,
    CanvasError,
    Forbidden,
    InvalidToken,
    NotFound,
    PaginationError,
    RetriesExhausted,
    RunAborted,
)
from exporter.canvas.links import on_origin, origin, parse_link_header, path_of
from exporter.canvas.throttle import AdaptiveLimit, ThrottleRule
from exporter.canvas.tokens import TokenFinder
from exporter.config import ClientConfig

log = logging.getLogger("exporter.client")

_JSON_PREFIX = b"while(1);"
_MAX_REDIRECTS = 5


@dataclass(slots=True)
class RequestStats:
    requests: int = 0  # attempts sent
    responses: int = 0
    retries: int = 0
    throttled: int = 0
    bytes: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    retry_reasons: Counter[str] = field(default_factory=Counter)
    # pages fetched ahead whose one attempt met a transient fault (not retried: the walk may not need them;
    # one it does need is fetched again, and that counts as a retry)
    ahead_failed: Counter[str] = field(default_factory=Counter)  # by reason, as retry_reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "responses": self.responses,
            "retries": self.retries,
            "throttled": self.throttled,
            "bytes": self.bytes,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "retry_reasons": dict(sorted(self.retry_reasons.items())),
            "look_ahead_failed": dict(sorted(self.ahead_failed.items())),
        }


@dataclass(frozen=True, slots=True)
class Page:
    url: str
    items: list[dict[str, Any]]
    links: dict[str, str]
    size: int  # body bytes
    data: Any = None  # what the caller made of the page (see `converted`); items and body are then dropped
    count: int = -1  # how many items the page held, once they are dropped
    body: bytes = b""  # the JSON list itself, unparsed, when asked for raw (`get_page(raw=True)`)
    content_type: str = ""

    @property
    def item_count(self) -> int:
        return len(self.items) if self.count < 0 else self.count

    def converted(self, data: Any, count: int) -> Page:
        """This page with `data` made of its `count` items, without the items or body (freed early)."""
        return Page(self.url, [], self.links, self.size, data, count)


class _Retry(Exception):
    """One attempt failed in a way worth trying again."""

    def __init__(self, reason: str, *, throttled: bool = False, status: int | None = None,
                 retry_after: float | None = None, connect: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.throttled = throttled
        self.status = status
        self.retry_after = retry_after
        self.connect = connect


def _without_prefix(body: bytes) -> bytes:
    """A 200 body without Canvas's `while(1);` guard, if it has one."""
    return body[len(_JSON_PREFIX):] if body.startswith(_JSON_PREFIX) else body


def _ended_by_close(resp: aiohttp.ClientResponse) -> bool:
    """A body with neither a length nor chunks ends where the connection closes: a connection that broke
    early looks to aiohttp just like the end of the body."""
    return (resp.headers.get("Content-Length") is None
            and "chunked" not in resp.headers.get("Transfer-Encoding", "").lower())


def _cut_short(body: bytes) -> bool:
    """Whether JSON stops before it is complete (not JSON that is wrong: that is no cause to ask again)."""
    data = _without_prefix(body)
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as bad:  # cut inside a character: its last bytes never came
            return bad.end == len(data) and bad.reason == "unexpected end of data"
        return exc.pos >= len(text.rstrip())  # orjson counts characters, not bytes
    return False


class CanvasClient:
    """`async with CanvasClient(config) as client: page = await client.get_page(url)`."""

    def __init__(self, config: ClientConfig, *, rule: ThrottleRule | None = None,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], Any] = anyio.sleep) -> None:
        self.config = config
        self.home = origin(config.base_url)
        self.stats = RequestStats()
        self.limit = AdaptiveLimit(rule or ThrottleRule(maximum=config.concurrency))
        self._rps = AsyncLimiter(config.max_rps, 1.0) if config.max_rps else None
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._token = config.token.reveal()
        self._token_bytes = self._token.encode()
        self._finder = TokenFinder(self._token)

    async def __aenter__(self) -> CanvasClient:
        t = self.config.timeouts
        connector = aiohttp.TCPConnector(limit=self.config.concurrency + 4, ttl_dns_cache=300,
                                         enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.read),
            # The token rides on every request of this session. That is safe because the session only ever
            # talks to the base URL's origin: get_page refuses other origins and redirects are not followed
            # automatically (see _redirect).
            headers={"Accept": "application/json", "User-Agent": f"canvas-export/{__version__}",
                     "Authorization": f"Bearer {self._token}"},
            json_serialize=lambda o: orjson.dumps(o).decode(),
            auto_decompress=True,
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    # -- public ---------------------------------------------------------------------------------------------
    async def get_page(self, url: str, params: dict[str, Any] | list[tuple[str, str]] | None = None, *,
                       speculative: bool = False, raw: bool = False) -> Page:
        """Fetch one page of a list endpoint, retrying transient faults and throttling. A `speculative`
        page (fetched ahead; the list may end before it) gets one attempt at a transient fault: the caller
        fetches it again, with every retry, if the walk turns out to need it. A `raw` page is not parsed
        here: its `body` is left to the caller, who must parse it with `parse_list` or something as strict."""
        try:
            foreign = not on_origin(url, self.home)
        except ValueError as exc:
            raise PaginationError(f"not a usable URL ({exc})", path=path_of(url)) from None
        if foreign:
            raise PaginationError("refusing to send the token to another host", path=path_of(url))
        if params:  # encoded once here, as Canvas's own links encode them (`include%5B%5D=x`)
            query = _encoded_query(tuple(params)) if isinstance(params, list) else urlencode(params)
            url = f"{url}{'&' if '?' in url else '?'}{query}"
            params = None
        retry = self.config.retry
        failures = throttles = 0
        while True:
            try:
                return await self._attempt(url, params, raw)
            except _Retry as why:
                if why.throttled:
                    throttles += 1
                    self.stats.throttled += 1
                    self.limit.on_throttled()
                    if throttles >= retry.throttled_attempts:
                        raise RetriesExhausted(f"still throttled after {throttles} attempts",
                                               path=path_of(url), status=why.status) from None
                    delay = self._backoff(retry.throttle_delay, throttles)
                else:
                    failures += 1
                    if why.connect and self.stats.responses == 0 and failures >= min(3, retry.attempts):
                        # The host has never answered: say so quickly rather than back off for a minute.
                        raise RunAborted(f"cannot reach {self.home[1]}:{self.home[2]}: {why.reason}",
                                         path=path_of(url)) from None
                    if speculative:
                        self.stats.ahead_failed[_reason_key(why)] += 1
                    if failures >= (1 if speculative else retry.attempts):
                        raise RetriesExhausted(f"{why.reason} (gave up after {failures} attempts)",
                                               path=path_of(url), status=why.status) from None
                    delay = self._backoff(retry.base_delay, failures)
                if why.retry_after is not None:
                    delay = max(delay, min(why.retry_after, retry.max_delay))
                self.stats.retries += 1
                self.stats.retry_reasons["throttled" if why.throttled else _reason_key(why)] += 1
                log.debug("retrying %s in %.2fs: %s", path_of(url), delay, why.reason)
                await self._sleep(delay)

    def redact(self, text: str) -> str:
        return self._finder.redact(text)

    def _message(self, body: bytes) -> str:
        """Canvas's words from an error body, token removed before the text is shortened."""
        return self.redact(_canvas_message(body))[:200]

    # -- one attempt ---------------------------------------------------------------------------------------
    def _backoff(self, base: float, attempt: int) -> float:
        ceiling = min(self.config.retry.max_delay, base * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * self._rng.random())  # jitter keeps retries from marching in step

    async def _attempt(self, url: str, params: Any, raw: bool = False) -> Page:
        assert self._session is not None, "use CanvasClient as an async context manager"
        if self._rps is not None:
            await self._rps.acquire()
        try:
            target: URL = URL(url, encoded=True)
        except ValueError as exc:
            raise BadResponse(f"not a usable URL ({exc})", path=path_of(url)) from None
        async with self.limit.slot() as slot:
            for _ in range(_MAX_REDIRECTS + 1):
                self.stats.requests += 1
                try:
                    async with self._session.get(target, params=params, allow_redirects=False) as resp:
                        if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                            target = self._redirect(target, resp)
                            params = None  # the Location carries the query
                            continue
                        body = await self._read(resp, url)
                        if resp.status == 200 and _ended_by_close(resp) and _cut_short(body):
                            raise _Retry("body cut short: the connection closed before its JSON ended")
                        if resp.status == 200 and not body.strip():
                            # Canvas always sends a list, `[]` at the least: nothing at all is a proxy's fault
                            raise _Retry("empty body: a 200 with no JSON at all")
                        self.stats.responses += 1
                        self.stats.bytes += len(body)
                        self.stats.by_status[resp.status] += 1
                        cost = _float(resp.headers.get("X-Request-Cost"))
                        if cost is None and resp.status < 400:
                            cost = 0.0  # an answered request was admitted: only a refusal comes without a cost
                        slot.on_response(_float(resp.headers.get("X-Rate-Limit-Remaining")), cost)
                        return self._classify(str(resp.url), resp, body, raw)
                except aiohttp.ClientConnectorError as exc:
                    raise _Retry(f"connection failed: {type(exc).__name__}", connect=True) from None
                except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                        aiohttp.ClientOSError) as exc:
                    if isinstance(exc.__cause__, ContentEncodingError):  # the bytes came; they are not what
                        # their Content-Encoding says. Not the connection's fault, and no better a second time.
                        what = getattr(exc.__cause__, "message", "") or "cannot decode it"
                        raise BadResponse(f"the body is not what its Content-Encoding says ({what})",
                                          path=path_of(url)) from None
                    raise _Retry(f"connection broke mid-response: {type(exc).__name__}") from None
                except (asyncio.TimeoutError, TimeoutError):
                    raise _Retry("timed out") from None
                except aiohttp.ClientResponseError as exc:
                    raise _Retry(f"malformed response: {exc.message}") from None
                except aiohttp.ClientError as exc:
                    raise _Retry(f"connection error: {type(exc).__name__}") from None
            raise BadResponse(f"more than {_MAX_REDIRECTS} redirects", path=path_of(url))

    def _redirect(self, current: URL, resp: aiohttp.ClientResponse) -> URL:
        try:
            location = current.join(URL(resp.headers["Location"], encoded=True))
            where = origin(str(location))
        except ValueError as exc:
            raise BadResponse(f"redirect to an unusable Location ({exc})", path=path_of(str(current)),
                              status=resp.status) from None
        if where != self.home:
            raise PaginationError(
                f"redirected to another host ({location.host}); not followed, so the token is not sent there",
                path=path_of(str(current)), status=resp.status)
        if location.user is not None or location.password is not None:
            raise BadResponse("redirect to a URL with a user name or password; not followed",
                              path=path_of(str(current)), status=resp.status)
        return location

    async def _read(self, resp: aiohttp.ClientResponse, url: str) -> bytes:
        cap = self.config.max_body_bytes
        if resp.content_length is not None and resp.content_length > cap:
            raise BadResponse(f"response body of {resp.content_length} bytes exceeds the {cap}-byte limit",
                              path=path_of(url), status=resp.status)
        # Content-Length counts the bytes on the wire: with a Content-Encoding, aiohttp inflates them, and a
        # small gzip can become gigabytes. Only an unencoded body is read whole; the rest is counted as inflated.
        if resp.content_length is not None and resp.headers.get("Content-Encoding", "identity") == "identity":
            return await resp.read()  # aiohttp reads exactly Content-Length bytes, or raises
        chunks: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_any():
            total += len(chunk)
            if total > cap:
                raise BadResponse(f"response body exceeds the {cap}-byte limit", path=path_of(url),
                                  status=resp.status)
            chunks.append(chunk)
        return b"".join(chunks)

    def _holds_token(self, body: bytes) -> bool:
        """Whether a body holds the token, written plainly, with its punctuation escaped, or with percent, HTML
        or JSON escapes (`1\\u007e...`). C-speed searches; only a body with an escape that could spell one of the
        token's characters is decoded first."""
        return self._finder.in_bytes(body) or self._finder.escaped_in_bytes(body)

    def _classify(self, url: str, resp: aiohttp.ClientResponse, body: bytes, raw: bool = False) -> Page:
        status = resp.status
        if status == 200:
            data = _without_prefix(body)
            ctype = resp.headers.get("Content-Type", "?")
            items = [] if raw else self.parse_list(data, ctype, url)  # a body that is no list says so, redacted
            if self._holds_token(body):
                if raw:  # a body that is no JSON list says that first, as it does when parsed here
                    self.parse_list(data, ctype, url)
                raise BadResponse("the response holds the API token (a server echoing credentials into its "
                                  "data); its rows are not stored", path=path_of(url), status=status)
            links = parse_link_header(resp.headers.getall("Link", None), url)
            if raw:
                return Page(url=url, items=[], links=links, size=len(body), body=data, content_type=ctype)
            return Page(url=url, items=items, links=links, size=len(body))
        ctype = resp.headers.get("Content-Type", "")
        text = body[:2000].decode("utf-8", "replace")
        if status == 429 or (status == 403 and "Rate Limit Exceeded" in text and "json" not in ctype):
            raise _Retry("throttled", throttled=True, status=status,
                         retry_after=_float(resp.headers.get("Retry-After")))
        if status in (408, 500, 502, 503, 504) or status >= 500:
            raise _Retry(f"server error {status}", status=status,
                         retry_after=_float(resp.headers.get("Retry-After")))
        message = self._message(body)
        path = path_of(url)
        if status == 401:
            if _json_status(body) == "unauthorized":
                raise Forbidden(f"not permitted: {message}", path=path, status=status)
            raise InvalidToken(f"Canvas refused the API token ({message}); check CANVAS_API_TOKEN "
                               "or --token-file", path=path, status=status)
        if status == 403:
            raise Forbidden(f"not permitted: {message}", path=path, status=status)
        if status == 404:
            raise NotFound(f"not found: {message}", path=path, status=status)
        raise BadResponse(f"unexpected status: {message}", path=path, status=status)

    def parse_list(self, data: bytes, ctype: str, url: str) -> list[dict[str, Any]]:
        """A 200 body (without any `while(1);` prefix) as the JSON list of objects it must be, or BadResponse
        saying what it is instead, token redacted. A body cut short never gets here: aiohttp raises first, or, for a
        body that ends where the connection closes, `_cut_short` asks again."""
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            lead = data.lstrip()
            # Rows gone wrong: their text (people's names) stays out of logs and the manifest.
            if lead.startswith(b"\xef\xbb\xbf"):
                start = "starts with a UTF-8 byte-order mark, which JSON does not allow"
            elif lead[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in lead[:4]:
                start = "is not UTF-8 (UTF-16, or NUL bytes)"
            elif lead[:1] == b"[":
                start = "starts as a JSON list"
            else:  # an HTML page, a proxy's message: its first words say what it is
                # Redacted before it is cut to 80 characters, from enough bytes to hold them and a token that
                # starts among them (a character is at most 4 bytes): a cut token would not be recognised.
                head = data[:4 * 80 + len(self._token_bytes)].decode("utf-8", "replace")
                start = f"starts {self.redact(head)[:80].replace(chr(10), ' ')!r}"
            raise BadResponse(f"body is not valid JSON ({exc.msg} at byte {exc.pos}; Content-Type {ctype}; "
                              f"{start})", path=path_of(url), status=200) from None
        if type(parsed) is not list:
            kind = type(parsed).__name__
            hint = f" ({self._message(data)})" if isinstance(parsed, dict) else ""
            raise BadResponse(f"expected a JSON list, got a JSON {kind}{hint}", path=path_of(url), status=200)
        if len(set(map(type, parsed)) - {dict}):
            i, item = next((i, item) for i, item in enumerate(parsed) if type(item) is not dict)
            raise BadResponse(f"item {i} of the list is a JSON {type(item).__name__}, not an object",
                              path=path_of(url), status=200)
        return parsed


@functools.lru_cache(maxsize=64)  # a crawl asks every list with the same few parameter lists
def _encoded_query(params: tuple[tuple[str, str], ...]) -> str:
    return urlencode(params)


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _reason_key(why: _Retry) -> str:
    if why.status is not None:
        return str(why.status)
    return why.reason.split(":")[0].split(" (")[0]


def _canvas_message(body: bytes) -> str:
    """Canvas's own words from an error body, or the start of the body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:4000].decode("utf-8", "replace").strip().replace("\n", " ")
        return text or "(empty body)"
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", errors[0]))[:4000]
        if isinstance(errors, str):
            return errors[:4000]
        if "message" in data:
            return str(data["message"])[:4000]
    return body[:4000].decode("utf-8", "replace")


def _json_status(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data.get("status") if isinstance(data, dict) else None


__all__ = ["CanvasClient", "CanvasError", "Page", "RequestStats"]
