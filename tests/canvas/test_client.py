"""Scripted exchanges (aioresponses) for the client's error mapping, retries and token handling."""

import re

import aiohttp
import pytest
from aioresponses import aioresponses

from exporter.canvas.client import CanvasClient
from exporter.canvas.errors import (
    BadResponse,
    Forbidden,
    InvalidToken,
    NotFound,
    PaginationError,
    RetriesExhausted,
    RunAborted,
)
from exporter.config import ClientConfig, RetryPolicy, Secret

TOKEN = "7~SeCrEtToKeN"
BASE = "https://canvas.test"
URL = f"{BASE}/api/v1/courses/1/sections"
THROTTLED = "403 Forbidden (Rate Limit Exceeded)\n"


class Sleeps(list):
    async def __call__(self, delay):
        self.append(delay)


def client(**retry) -> tuple[CanvasClient, Sleeps]:
    sleeps = Sleeps()
    config = ClientConfig(base_url=BASE, token=Secret(TOKEN), retry=RetryPolicy(**retry) if retry else RetryPolicy())
    return CanvasClient(config, sleep=sleeps), sleeps


def sent(m: aioresponses) -> list[tuple[str, dict]]:
    return [(str(url), kw.get("headers") or {}) for (method, url), calls in m.requests.items() for kw in
            [c.kwargs for c in calls]]


async def test_page_items_links_and_bearer_auth():
    c, _ = client()
    with aioresponses() as m:
        m.get(URL, status=200, body=b'[{"id": 1}]',
              headers={"link": f'<{URL}?page=2&per_page=10>; rel="next"'})
        async with c:
            page = await c.get_page(URL)
        assert page.items == [{"id": 1}]
        assert page.links["next"] == f"{URL}?page=2&per_page=10"
        assert sent(m)[0][1]["Authorization"] == f"Bearer {TOKEN}"


async def test_an_answer_with_room_but_no_cost_is_not_taken_for_a_refusal():
    c, _ = client()
    with aioresponses() as m:
        m.get(URL, status=200, body=b'[{"id": 1}]', headers={"X-Rate-Limit-Remaining": "300.0"})
        async with c:
            await c.get_page(URL)
    # a refusal's reading would have raised what a start needs to 300; an admitted answer's does not
    assert c.limit.metered and c.limit.delay() == 0.0


@pytest.mark.parametrize("status,body,ctype", [
    (403, THROTTLED, "text/plain; charset=utf-8"),
    (429, "429 Too Many Requests (Rate Limit Exceeded)\n", "text/plain"),
])
async def test_throttling_is_retried_with_backoff(status, body, ctype):
    c, sleeps = client()
    with aioresponses() as m:
        m.get(URL, status=status, body=body, content_type=ctype)
        m.get(URL, status=status, body=body, content_type=ctype)
        m.get(URL, status=200, body=b"[]")
        async with c:
            page = await c.get_page(URL)
    assert page.items == []
    assert c.stats.throttled == 2 and c.stats.retries == 2
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0  # exponential, jittered
    assert c.limit.limit < c.config.concurrency  # the adaptive limit backed off


async def test_retry_after_is_honoured():
    c, sleeps = client()
    with aioresponses() as m:
        m.get(URL, status=429, body="slow down", headers={"Retry-After": "7"})
        m.get(URL, status=200, body=b"[]")
        async with c:
            await c.get_page(URL)
    assert sleeps == [7.0]


@pytest.mark.parametrize("status,body,error", [
    (401, '{"status":"unauthorized","errors":[{"message":"user not authorized to perform that action"}]}',
     Forbidden),
    (403, '{"status":"unauthorized","errors":[{"message":"user not authorized to perform that action"}]}',
     Forbidden),
    (404, '{"errors":[{"message":"The specified resource does not exist."}]}', NotFound),
    (401, '{"errors":[{"message":"Invalid access token."}]}', InvalidToken),
    (401, '{"status":"unauthenticated","errors":[{"message":"user authorization required"}]}', InvalidToken),
    (400, '{"errors":[{"message":"Invalid enrollment type: x"}]}', BadResponse),
])
async def test_refusals_are_not_retried(status, body, error):
    c, sleeps = client()
    with aioresponses() as m:
        m.get(URL, status=status, body=body, content_type="application/json")
        async with c:
            with pytest.raises(error) as info:
                await c.get_page(URL)
    assert sleeps == [] and c.stats.requests == 1
    assert info.value.path == "/api/v1/courses/1/sections" and info.value.status == status
    assert "does not exist" in str(info.value) or "authori" in str(info.value) or "Invalid" in str(info.value)


async def test_server_errors_retried_then_succeed():
    c, sleeps = client()
    with aioresponses() as m:
        m.get(URL, status=502, body="<html><body>Bad Gateway</body></html>", content_type="text/html")
        m.get(URL, status=503, body="")
        m.get(URL, exception=aiohttp.ServerDisconnectedError())
        m.get(URL, exception=TimeoutError())
        m.get(URL, status=200, body=b'[{"id": 2}]')
        async with c:
            page = await c.get_page(URL)
    assert page.items == [{"id": 2}]
    assert c.stats.retries == 4
    assert dict(c.stats.retry_reasons) == {"502": 1, "503": 1, "connection broke mid-response": 1, "timed out": 1}


async def test_retries_exhausted_names_path_and_cause():
    c, sleeps = client(attempts=3)
    with aioresponses() as m:
        m.get(URL, status=500, body="oops", repeat=True)
        async with c:
            with pytest.raises(RetriesExhausted, match=r"/api/v1/courses/1/sections: HTTP 500: server error 500 "
                                                       r"\(gave up after 3 attempts\)"):
                await c.get_page(URL)
    assert len(sleeps) == 2


async def test_unreachable_host_aborts_the_run():
    c, _ = client(attempts=2)
    with aioresponses() as m:
        m.get(URL, exception=aiohttp.ClientConnectorError(None, OSError(111, "refused")), repeat=True)
        async with c:
            with pytest.raises(RunAborted, match="cannot reach canvas.test"):
                await c.get_page(URL)


@pytest.mark.parametrize("body,ctype,message", [
    (b"<!DOCTYPE html><html>Maintenance</html>", "text/html", "not valid JSON"),
    (b"[", "application/json", "not valid JSON"),  # an empty 200 is asked again: see below
    (b'{"errors":[{"message":"nope"}]}', "application/json", "expected a JSON list, got a JSON dict \\(nope\\)"),
    (b"[1, 2]", "application/json", "item 0 of the list is a JSON int"),
])
async def test_bodies_that_are_not_a_list_of_objects(body, ctype, message):
    c, _ = client()
    with aioresponses() as m:
        # with its length given: an empty body that ended where the connection closed is asked for again
        m.get(URL, status=200, body=body, content_type=ctype, headers={"Content-Length": str(len(body))})
        async with c:
            with pytest.raises(BadResponse, match=message) as info:
                await c.get_page(URL)
    assert info.value.path == "/api/v1/courses/1/sections"


async def test_while1_prefix_and_big_ids_exact():
    c, _ = client()
    big = 2**53 + 1
    with aioresponses() as m:
        m.get(URL, status=200, body=b'while(1);[{"id": %d}]' % big)
        async with c:
            page = await c.get_page(URL)
    assert page.items[0]["id"] == big


async def test_redirect_to_other_host_refused_without_sending_token():
    c, _ = client()
    with aioresponses() as m:
        m.get(URL, status=302, headers={"Location": "https://evil.test/steal"})
        m.get("https://evil.test/steal", status=200, body=b"[]")
        async with c:
            with pytest.raises(PaginationError, match="redirected to another host"):
                await c.get_page(URL)
        assert all("evil.test" not in url for url, _ in sent(m))


async def test_same_host_redirect_followed():
    c, _ = client()
    with aioresponses() as m:
        m.get(URL, status=301, headers={"Location": "/api/v1/courses/1/sections?moved=1"})
        m.get(f"{URL}?moved=1", status=200, body=b'[{"id": 1}]')
        async with c:
            page = await c.get_page(URL)
    assert page.items == [{"id": 1}]


@pytest.mark.parametrize("url", [
    "https://evil.test/api/v1/x",
    "https://canvas.test@evil.test/api/v1/x",        # userinfo that looks like the host
    "https://canvas.test:443@evil.test/api/v1/x",
    "https://canvas.test.evil.test/api/v1/x",        # the host as a prefix of another
    "https://canvas.test:4430/api/v1/x",             # another port
    "http://canvas.test/api/v1/x",                   # another scheme
])
async def test_foreign_url_never_requested(url):
    c, _ = client()
    with aioresponses() as m:
        async with c:
            with pytest.raises(PaginationError, match="another host"):
                await c.get_page(url)
        assert m.requests == {}


@pytest.mark.parametrize("url", [f"{BASE}:443/api/v1/x", "HTTPS://Canvas.Test/api/v1/x"])
async def test_the_same_origin_spelled_otherwise_is_home(url):
    c, _ = client()
    with aioresponses() as m:
        m.get(re.compile(r".*/api/v1/x.*"), status=200, body=b"[]")
        async with c:
            assert (await c.get_page(url)).items == []


async def test_token_echoed_by_server_is_redacted():
    c, _ = client()
    with aioresponses() as m:
        m.get(URL, status=404, body=f'{{"errors":[{{"message":"no such token {TOKEN}"}}]}}',
              content_type="application/json")
        async with c:
            with pytest.raises(NotFound) as info:
                await c.get_page(URL)
    assert TOKEN not in str(info.value) and "[token]" in str(info.value)


async def test_body_over_the_cap_is_refused():
    sleeps = Sleeps()
    config = ClientConfig(base_url=BASE, token=Secret(TOKEN), max_body_bytes=1000)
    c = CanvasClient(config, sleep=sleeps)
    with aioresponses() as m:
        m.get(URL, status=200, body=b"[" + b'{"id":1},' * 200 + b'{"id":1}]')
        async with c:
            with pytest.raises(BadResponse, match=re.escape("exceeds the 1000-byte limit")):
                await c.get_page(URL)


class CloseFramedServer:
    """A server that answers with neither Content-Length nor chunks, so the body ends where the connection
    closes; `cut` answers end early (the connection broke), as their turn comes."""

    def __init__(self, body: bytes, cut: list[bool]) -> None:
        self.body, self.cut, self.requests = body, cut, 0

    async def __aenter__(self) -> str:
        import asyncio

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            cut = self.cut[self.requests] if self.requests < len(self.cut) else False
            self.requests += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                         + (self.body[:len(self.body) // 2] if cut else self.body))
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(answer, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("names", ["ascii", "non-ascii", "cut inside a character"])
async def test_a_body_cut_short_where_the_connection_closes_is_fetched_again(raw, names):
    name = {"ascii": "user", "non-ascii": "Zoë", "cut inside a character": "Zoë"}[names]
    body = ('[' + ",".join(f'{{"id": {i}, "name": "{name} {i}"}}' for i in range(50)) + ']').encode()
    if names == "cut inside a character":  # padded so that the cut (half the body) falls inside the last ë
        head = body[:body.rindex("ë".encode()) + 1]
        body = body + b" " * (2 * len(head) - len(body))
        assert body[:len(body) // 2] == head
    async with CloseFramedServer(body, cut=[True, True, False]) as base:
        config = ClientConfig(base_url=base, token=Secret(TOKEN), retry=RetryPolicy(base_delay=0.001))
        async with CanvasClient(config) as c:
            page = await c.get_page(f"{base}/api/v1/sections/1/users", raw=raw)
    assert (page.body == body) if raw else (len(page.items) == 50)
    assert c.stats.retries == 2 and c.stats.retry_reasons["body cut short"] == 2


async def test_a_whole_body_of_bad_json_where_the_connection_closes_is_not_asked_again():
    async with CloseFramedServer(b'[{"id": 1}] trailing', cut=[]) as server_base:
        config = ClientConfig(base_url=server_base, token=Secret(TOKEN), retry=RetryPolicy(base_delay=0.001))
        async with CanvasClient(config) as c:
            with pytest.raises(BadResponse, match="not valid JSON"):
                await c.get_page(f"{server_base}/api/v1/sections/1/users")
    assert c.stats.retries == 0 and c.stats.requests == 1


@pytest.mark.parametrize("body,says", [
    (b'[{"id": 1, "name": "Valentina Abbott"}, {"id": 2,, "name": "Ann Lee"}]', "starts as a JSON list"),
    (b"<html><body>Bad Gateway</body></html>", "starts '<html><body>Bad Gateway"),
])
async def test_a_bad_json_list_is_described_without_quoting_its_rows(body, says):
    """The error of a body that is no valid JSON quotes its start, to say what it is (an HTML page, a proxy's
    message), except when it starts as the list of rows: people's names do not go into logs and manifests."""
    c, _ = client()
    with aioresponses() as m:
        m.get(URL, status=200, body=body, content_type="application/json",
              headers={"Content-Length": str(len(body))})
        async with c:
            with pytest.raises(BadResponse, match="not valid JSON") as info:
                await c.get_page(URL)
    assert says in str(info.value) and "Abbott" not in str(info.value) and "Ann Lee" not in str(info.value)


@pytest.mark.parametrize("raw", [False, True])
async def test_an_empty_200_is_asked_again_and_then_named(raw):
    c, sleeps = client(attempts=3)
    with aioresponses() as m:
        m.get(URL, status=200, body=b"", headers={"Content-Length": "0"})
        m.get(URL, status=200, body=b" \r\n", headers={"Content-Length": "3"})
        m.get(URL, status=200, body=b'[{"id": 1}]')
        async with c:
            page = await c.get_page(URL, raw=raw)
    assert (page.body == b'[{"id": 1}]') if raw else (page.items == [{"id": 1}])
    assert dict(c.stats.retry_reasons) == {"empty body": 2} and len(sleeps) == 2

    c, _ = client(attempts=2)
    with aioresponses() as m:
        m.get(URL, status=200, body=b"", headers={"Content-Length": "0"}, repeat=True)
        async with c:
            with pytest.raises(RetriesExhausted, match=r"empty body: a 200 with no JSON at all \(gave up after 2"):
                await c.get_page(URL, raw=raw)
