"""Hostile servers, second round (a new user's review at 5a2cb1e): the token echoed in spellings other than
JSON's, throttle readings no Canvas sends, credentials in a same-host URL, and bodies that are not what their
headers say. None of these comes from a real Canvas (reference §1.2, §6); each came from a broken proxy or a
hostile server, and each once leaked, hung, crashed or misled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import orjson
import pytest
from aiohttp import web

from exporter.canvas.refs import account_ref
from exporter.config import ClientConfig, CrawlConfig, RetryPolicy, Scope, Secret
from exporter.export import export
from exporter.sim import Institution, SimOptions, Simulator
from tests.hostile import HostileProxy, Upstream
from tests.test_token_safety import SECRET, TOKENS, files_leaking, leaks

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.001, throttle_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def inst() -> Institution:
    return Institution.generate(seed=3, courses=4, large_sections=0)


def a_section(inst: Institution) -> int:
    c = inst.account_courses(inst.root_account_id)[0].id
    return inst.course_sections(c)[0].id


@asynccontextmanager
async def proxied(inst: Institution, rules: dict, **options) -> AsyncIterator[HostileProxy]:
    async with Simulator(inst, SimOptions(tokens=TOKENS, **options)) as sim, \
            HostileProxy(sim.base_url, rules) as proxy:
        yield proxy


def config(proxy: HostileProxy, out: Path, **client) -> CrawlConfig:
    cfg = ClientConfig(base_url=proxy.base_url, token=Secret(SECRET), per_page=20, concurrency=8,
                       retry=FAST_RETRY, **client)
    return CrawlConfig(client=cfg, scope=Scope(account=account_ref("self")), out=str(out))


def failed_without_leaking(result, out: Path, section: int) -> None:
    """The section's roster is the one failure, and neither it nor any file holds a piece of the token."""
    [failure] = result.manifest["failures"]
    assert failure["item"] == f"section {section}"
    assert leaks(orjson.dumps(failure)) == [], failure["reason"]
    assert files_leaking(out) == {}


def bearer(request: web.BaseRequest) -> str:
    return request.headers.get("Authorization", "").removeprefix("Bearer ")


# -- 1. token leak: the 80-character snippet of a non-JSON 200 body is cut in bytes, redacted in characters --
async def test_a_token_after_multibyte_text_in_an_html_200_is_not_quoted_in_part(inst, tmp_path):
    s = a_section(inst)

    def html(request: web.BaseRequest, up: Upstream) -> web.Response:
        # 50 two-byte characters (100 bytes) and then the token: `data[:80 + len(token)]` cuts the token,
        # `redact` no longer finds it whole, and `[:80]` characters still reach 30 of its characters.
        return web.Response(status=200, text="é" * 50 + bearer(request), content_type="text/html")

    async with proxied(inst, {rf"^/api/v1/sections/{s}/users$": html}) as proxy:
        result = await export(config(proxy, tmp_path))
    failed_without_leaking(result, tmp_path, s)


# -- 2. token leak: an echoed token written with an escape other than JSON's ---------------------------------
ESCAPED = {
    "percent": SECRET.replace("~", "%7E"),
    "html_entity": SECRET.replace("~", "&#126;"),
    "json_escape_in_a_non_json_body": SECRET.replace("~", "\\u007e"),
}


@pytest.mark.parametrize("status", [200, 404])
@pytest.mark.parametrize("spelling", list(ESCAPED))
async def test_an_escaped_token_echoed_into_an_error_is_not_quoted(inst, tmp_path, spelling, status):
    s = a_section(inst)

    def echo(request: web.BaseRequest, up: Upstream) -> web.Response:
        return web.Response(status=status, text=f"<p>bad {ESCAPED[spelling]}</p>", content_type="text/html")

    async with proxied(inst, {rf"^/api/v1/sections/{s}/users$": echo}) as proxy:
        result = await export(config(proxy, tmp_path))
    failed_without_leaking(result, tmp_path, s)


async def test_a_percent_encoded_token_in_a_row_is_not_stored(inst, tmp_path):
    s = a_section(inst)

    def echo(request: web.BaseRequest, up: Upstream) -> web.Response:
        users = up.json()
        users[0]["avatar_url"] = "https://cdn.example.net/a.png?t=" + bearer(request).replace("~", "%7E")
        return up.response(json=users)

    async with proxied(inst, {rf"^/api/v1/sections/{s}/users$": echo}) as proxy:
        await export(config(proxy, tmp_path))
    assert files_leaking(tmp_path) == {}


# -- 3. hang: an X-Rate-Limit-Remaining far below zero ---------------------------------------------------------
@pytest.mark.parametrize("remaining", ["-1000000000.0"])
async def test_a_hugely_negative_remaining_does_not_stall_the_crawl(inst, tmp_path, remaining):
    def deep(request: web.BaseRequest, up: Upstream) -> web.Response:
        return up.response(headers={"X-Rate-Limit-Remaining": remaining, "X-Request-Cost": "0.01"})

    async with proxied(inst, {r"^/api/v1/accounts/self/courses$": deep}) as proxy:
        with anyio.fail_after(60):  # the whole crawl takes well under a second
            result = await export(config(proxy, tmp_path))
    assert result.status == "complete"


# -- 4. crash: a same-host URL with credentials in it (a redirect's Location, or a next link) -----------------
@pytest.mark.parametrize("how", ["redirect", "next_link"])
async def test_a_same_host_url_with_userinfo_fails_only_its_list(inst, tmp_path, how):
    s = a_section(inst)

    def rule(request: web.BaseRequest, up: Upstream) -> web.Response:
        if request.rel_url.query.get("page") or "moved" in request.raw_path:
            return up.response()
        path = request.raw_path.partition("?")[0]
        elsewhere = f"http://someone:secret@127.0.0.1:{proxy.port}{path}?page=2&per_page=20&moved=1"
        if how == "redirect":
            return web.Response(status=302, headers={"Location": elsewhere})
        return up.response(headers={"Link": f'<{elsewhere}>; rel="next"'})

    async with proxied(inst, {rf"^/api/v1/sections/{s}/users$": rule}) as proxy:
        result = await export(config(proxy, tmp_path))  # must not raise
    [failure] = result.manifest["failures"]
    assert failure["item"] == f"section {s}"
    assert "secret" not in orjson.dumps(failure).decode()


# -- 5. misleading errors: a body that is not what its headers say --------------------------------------------
async def test_a_body_that_is_not_the_gzip_it_claims_is_not_called_a_broken_connection(inst, tmp_path):
    s = a_section(inst)

    def lying_gzip(request: web.BaseRequest, up: Upstream) -> web.Response:
        return up.response(headers={"Content-Encoding": "gzip"})  # plain JSON, labelled gzip

    async with proxied(inst, {rf"^/api/v1/sections/{s}/users$": lying_gzip}) as proxy:
        result = await export(config(proxy, tmp_path))
    [failure] = result.manifest["failures"]
    assert "connection broke" not in failure["reason"], failure["reason"]
    assert "gzip" in failure["reason"] or "encod" in failure["reason"], failure["reason"]


async def test_a_bom_before_a_roster_does_not_put_a_name_in_the_manifest(inst, tmp_path):
    s = a_section(inst)
    first = {}

    def bom(request: web.BaseRequest, up: Upstream) -> web.Response:
        first.setdefault("name", up.json()[0]["name"])
        return up.response(body=b"\xef\xbb\xbf" + up.body)

    async with proxied(inst, {rf"^/api/v1/sections/{s}/users$": bom}) as proxy:
        result = await export(config(proxy, tmp_path))
    [failure] = result.manifest["failures"]
    assert first["name"] not in failure["reason"], failure["reason"]  # the "starts as a JSON list" branch
