"""The token never appears in a file, a log line, an error message, or a request to another host; plain http
is refused except to loopback; `--token-file` warns when others can read it.

The servers here echo the Authorization header back (in error bodies, HTML pages, JSON objects): whatever
the exporter shows of what a server said must show `[token]` instead. A leak is looked for as the whole
token and as any 12-character piece of it (a token cut in half is still a leak).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import orjson
import pyarrow.dataset
import pytest
from aiohttp import web
from aioresponses import aioresponses

import exporter.cli
import exporter.config
from exporter.canvas.client import CanvasClient
from exporter.canvas.errors import InvalidToken, PaginationError, RunAborted
from exporter.canvas.pages import iter_pages
from exporter.canvas.refs import account_ref
from exporter.cli import main
from exporter.config import ClientConfig, ConfigError, CrawlConfig, RetryPolicy, Scope, Secret
from exporter.export import export
from exporter.sim import ADMIN, Faults, Institution, SimOptions, Simulator
from tests.hostile import Bystander, HostileProxy, Upstream, link_header, threaded

SECRET = "7~Zq8vK2mN5pR1tX4wY7bC0dF3gH6jL9aS2eU5iO8rT1yW4qE7zX0cV3bN6mK9lP"
TOKENS = {SECRET: ADMIN}
FAST_RETRY = RetryPolicy(attempts=10, base_delay=0.001, throttle_delay=0.01, max_delay=0.05)
PIECE = 12


def leaks(data: bytes | str, token: str = SECRET) -> list[str]:
    """The pieces of the token found in data (empty: no leak)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return sorted({token[i:i + PIECE] for i in range(len(token) - PIECE + 1) if token[i:i + PIECE] in text})


def files_leaking(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and (pieces := leaks(path.read_bytes())):
            found[str(path.relative_to(root))] = pieces
    return found


# -- an institution, and rules that echo the Authorization header ------------------------------------------------
@pytest.fixture(scope="module")
def inst() -> Institution:
    return Institution.generate(seed=3, courses=4, large_sections=0)


def courses(inst: Institution) -> list[int]:
    return [c.id for c in inst.account_courses(inst.root_account_id)]


def sections_of(inst: Institution, course_id: int) -> list[int]:
    return [s.id for s in inst.course_sections(course_id)]


def said(request: web.BaseRequest) -> str:
    return request.headers.get("Authorization", "")


def echo_404(request: web.BaseRequest, up: Upstream) -> web.Response:
    body = {"errors": [{"message": f"no course visible to {said(request)}"}]}
    return web.Response(status=404, body=orjson.dumps(body), content_type="application/json")


def echo_html_200(request: web.BaseRequest, up: Upstream) -> web.Response:
    return web.Response(status=200, text=f"<p>{said(request)}</p>", content_type="text/html")


def echo_object_200(request: web.BaseRequest, up: Upstream) -> web.Response:
    return up.response(json={"errors": [{"message": f"{said(request)} may not list users"}]})


def echo_500(request: web.BaseRequest, up: Upstream) -> web.Response:
    return web.Response(status=500, text=f"<h1>500</h1><pre>headers: Authorization: {said(request)}</pre>",
                        content_type="text/html")


def echo_rules(inst: Institution, *, with_500: bool = True) -> tuple[dict, set[str]]:
    """Four lists that echo the token back, and the manifest items they fail."""
    c = courses(inst)
    s_a, s_b = sections_of(inst, c[2])[0], sections_of(inst, c[3])[0]
    rules = {
        rf"^/api/v1/courses/{c[0]}/sections$": echo_404,
        rf"^/api/v1/courses/{c[1]}/sections$": echo_html_200,
        rf"^/api/v1/sections/{s_a}/users$": echo_object_200,
    }
    items = {f"course {c[0]}", f"course {c[1]}", f"section {s_a}"}
    if with_500:
        rules[rf"^/api/v1/sections/{s_b}/users$"] = echo_500
        items.add(f"section {s_b}")
    return rules, items


@asynccontextmanager
async def proxied(inst: Institution, rules: dict, **options: Any) -> AsyncIterator[tuple[Simulator, HostileProxy]]:
    async with Simulator(inst, SimOptions(tokens=TOKENS, **options)) as sim, \
            HostileProxy(sim.base_url, rules) as proxy:
        yield sim, proxy


def crawl_config(base_url: str, out: Path, **kw: Any) -> CrawlConfig:
    client = ClientConfig(base_url=base_url, token=Secret(SECRET), per_page=20, concurrency=8, retry=FAST_RETRY)
    return CrawlConfig(client=client, scope=Scope(account=account_ref("self")), out=str(out), **kw)


# -- files -------------------------------------------------------------------------------------------------------
async def test_no_file_under_out_holds_the_token_staged_failed_or_committed(inst, tmp_path):
    """A crawl under faults, with four lists echoing the token, is stopped half way (staging, journal, part
    files on disk), scanned, resumed to the end, and scanned again."""
    rules, items = echo_rules(inst)
    async with proxied(inst, rules, faults=Faults(error_rate=0.2)) as (sim, proxy):
        cfg = crawl_config(proxy.base_url, tmp_path, snapshot_id="S1", checkpoint_seconds=0)
        stop = anyio.Event()
        sim.hooks.append(lambda request: stop.set() if sim.stats.requests >= 40 else None)
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(export, cfg)
                await stop.wait()
                tg.cancel_scope.cancel()
        staged = tmp_path / "_staging" / "S1"
        assert staged.exists() and any(staged.rglob("*.parquet")) and any(staged.rglob("journal/*"))
        assert files_leaking(tmp_path) == {}

        result = await export(replace(cfg, resume=True))
    assert files_leaking(tmp_path) == {}
    m = orjson.loads((tmp_path / "_manifests" / "S1.json").read_bytes())
    assert {f["item"] for f in m["failures"]} == items
    assert m["requests"]["retries"] > 0
    # What the servers said is kept, with the token replaced, where it helps to say what went wrong.
    echoed = [f for f in m["failures"] if f["status"] != 500 and "[token]" in f["reason"]]
    assert len(echoed) == 3, m["failures"]
    assert result.status == "partial"


async def test_a_token_echoed_into_the_data_is_never_stored(inst, tmp_path):
    section_id = sections_of(inst, courses(inst)[0])[0]

    def echo_into_a_name(request: web.BaseRequest, up: Upstream) -> web.Response:
        users = orjson.loads(up.body)
        users[0]["name"] = f"Ann {said(request)}"  # the Authorization header, token and all
        return up.response(json=users)

    async with proxied(inst, {rf"^/api/v1/sections/{section_id}/users$": echo_into_a_name}) as (_, proxy):
        result = await export(crawl_config(proxy.base_url, tmp_path))
    [failure] = result.manifest["failures"]
    assert failure["item"] == f"section {section_id}" and "holds the API token" in failure["reason"]
    names = pyarrow.dataset.dataset(tmp_path / "section_users", partitioning="hive").to_table().column("name")
    assert names.null_count < len(names) and leaks(" ".join(n for n in names.to_pylist() if n)) == []
    assert files_leaking(tmp_path) == {}


@pytest.mark.parametrize("where", ["value", "key"])
@pytest.mark.parametrize("spelling", ["tilde escaped", "every character escaped, upper-case hex"])
async def test_a_token_echoed_into_the_data_with_json_escapes_is_never_stored(inst, tmp_path, spelling, where):
    """JSON lets a server write any character as an escape (`1\\u007e...`): the page still holds the token
    once decoded, and is refused like one that holds it plainly."""
    section_id = sections_of(inst, courses(inst)[0])[0]
    escaped = (SECRET.replace("~", "\\u007e") if spelling == "tilde escaped"
               else "".join(f"\\u{ord(c):04X}" for c in SECRET))

    def echo_escaped(request: web.BaseRequest, up: Upstream) -> web.Response:
        users = orjson.loads(up.body)
        if where == "value":
            users[0]["name"] = "Ann PLACEHOLDER"
        else:
            users[0]["PLACEHOLDER"] = 1
        body = orjson.dumps(users).replace(b"PLACEHOLDER", escaped.encode())
        return up.response(body=body)

    async with proxied(inst, {rf"^/api/v1/sections/{section_id}/users$": echo_escaped}) as (_, proxy):
        result = await export(crawl_config(proxy.base_url, tmp_path))
    [failure] = result.manifest["failures"]
    assert failure["item"] == f"section {section_id}" and "holds the API token" in failure["reason"]
    assert files_leaking(tmp_path) == {}


async def test_a_refused_run_leaves_no_token_behind(tmp_path):
    """A run whose token is refused at the first request leaves nothing with the token in OUT."""
    async with proxied(Institution.generate(seed=5, courses=2, large_sections=0), {}) as (_, proxy):
        cfg = crawl_config(proxy.base_url, tmp_path)
        bad = replace(cfg, client=replace(cfg.client, token=Secret(SECRET[::-1])))
        with pytest.raises(InvalidToken):
            await export(bad)
    assert files_leaking(tmp_path) == {} and leaks(b"".join(p.read_bytes() for p in tmp_path.rglob("*")
                                                             if p.is_file()), SECRET[::-1]) == []


# -- error messages ----------------------------------------------------------------------------------------------
def echo_401(request: web.BaseRequest, up: Upstream) -> web.Response:
    body = {"errors": [{"message": f"Invalid access token: {said(request)}"}]}
    return web.Response(status=401, body=orjson.dumps(body), content_type="application/json",
                        headers={"WWW-Authenticate": 'Bearer realm="canvas-lms"'})


def echo_account_html(request: web.BaseRequest, up: Upstream) -> web.Response:
    return web.Response(status=200, text=f"{said(request)} <html>login</html>", content_type="text/html")


def echo_account_403(request: web.BaseRequest, up: Upstream) -> web.Response:
    body = {"status": "unauthorized", "errors": [{"message": f"{said(request)} may not read the account"}]}
    return web.Response(status=403, body=orjson.dumps(body), content_type="application/json")


STOPPERS = {"401_invalid_token": (echo_401, InvalidToken), "200_html": (echo_account_html, RunAborted),
            "403_refused": (echo_account_403, RunAborted)}


@pytest.mark.parametrize("case", list(STOPPERS))
async def test_run_stopping_error_shows_token_placeholder(inst, tmp_path, case):
    rule, error = STOPPERS[case]
    async with proxied(inst, {r"^/api/v1/accounts/self/courses$": rule}) as (_, proxy):
        with pytest.raises(error) as info:
            await export(crawl_config(proxy.base_url, tmp_path))
    text = f"{info.value!s} {info.value!r} {info.value.reason}"
    assert leaks(text) == [] and "[token]" in text
    assert files_leaking(tmp_path) == {}


def item_echo_rules(inst: Institution, rule) -> tuple[dict, str]:  # noqa: ANN001
    s = sections_of(inst, courses(inst)[0])[0]
    return {rf"^/api/v1/sections/{s}/users$": rule}, f"section {s}"


def token_as_a_field_value(request: web.BaseRequest, up: Upstream) -> web.Response:
    items = up.json()
    items[0]["id"] = said(request)  # a broken server puts the header where the id belongs
    return up.response(json=items)


def token_past_the_cut(request: web.BaseRequest, up: Upstream) -> web.Response:
    # The token starts 20 characters before the first 200 of the message.
    message = "x" * 180 + said(request).removeprefix("Bearer ")
    return web.Response(status=404, body=orjson.dumps({"errors": [{"message": message}]}),
                        content_type="application/json")


def token_past_the_snippet(request: web.BaseRequest, up: Upstream) -> web.Response:
    # A 200 body that is not JSON, the token starting 60 bytes in (the reason quotes 80).
    return web.Response(status=200, text="<" * 60 + said(request).removeprefix("Bearer "), content_type="text/html")


ITEM_ECHOES = {
    "as_a_field_value": token_as_a_field_value,  # the reason quotes the value it could not type
    "cut_at_200_chars": token_past_the_cut,  # a message is cut short for the reason: redact first
    "cut_at_80_bytes": token_past_the_snippet,  # so is the start of a body that is not JSON
}


@pytest.mark.parametrize("case", list(ITEM_ECHOES))
async def test_item_failure_reason_never_holds_the_token(inst, tmp_path, case):
    rules, item = item_echo_rules(inst, ITEM_ECHOES[case])
    async with proxied(inst, rules) as (_, proxy):
        result = await export(crawl_config(proxy.base_url, tmp_path))
    [failure] = result.manifest["failures"]
    assert failure["item"] == item
    assert leaks(orjson.dumps(failure)) == []
    assert files_leaking(tmp_path) == {}


async def test_token_in_a_next_link_query_is_not_written_down(inst, tmp_path):
    rules, item = item_echo_rules(inst, None)
    [pattern] = rules

    def next_with_token(request: web.BaseRequest, up: Upstream) -> web.Response:
        if request.rel_url.query.get("page") == "2":
            return web.Response(status=200, text="<html>gone</html>", content_type="text/html")
        nxt = proxy.url(f"{request.raw_path.partition('?')[0]}?page=2&per_page=20&access_token={SECRET}")
        return up.response(headers={"Link": link_header(next=nxt)})

    async with proxied(inst, {pattern: next_with_token}) as (_, proxy):
        result = await export(crawl_config(proxy.base_url, tmp_path))
    [failure] = result.manifest["failures"]
    assert failure["item"] == item
    assert files_leaking(tmp_path) == {}


# -- log lines: the CLI in-process, -v, both formats, under faults, retries and failures --------------------------
@pytest.fixture
def cli_env(monkeypatch):
    monkeypatch.setenv("CANVAS_API_TOKEN", SECRET)
    for name in ("CANVAS_BASE_URL", "CANVAS_EXPORT_OUT"):
        monkeypatch.delenv(name, raising=False)
    # The CLI's own code path, with retries that do not wait.
    monkeypatch.setattr(exporter.cli, "ClientConfig", functools.partial(ClientConfig, retry=FAST_RETRY))


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse
        return int(exc.code or 0)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_log_line_or_printed_line_holds_the_token(inst, tmp_path, capsys, cli_env, log_format):
    rules, items = echo_rules(inst)
    victim = courses(inst)[0]

    @asynccontextmanager
    async def servers():
        async with proxied(inst, rules, faults=Faults(error_rate=0.2)) as pair:
            yield pair

    with threaded(servers) as (sim, proxy):
        code = run_cli(["crawl", "--base-url", proxy.base_url, "--account", "self", "--out", str(tmp_path),
                        "--per-page", "20", "-v", "--log-format", log_format, "--no-progress"])
        faults = sum(sim.stats.faults.values())
    printed = capsys.readouterr()
    assert code == 3, printed.err
    assert faults > 0
    assert leaks(printed.out) == [] and leaks(printed.err) == []
    lines = printed.err.splitlines()
    if log_format == "json":
        records = [orjson.loads(line) for line in lines]
        messages = [r["msg"] for r in records]
    else:
        messages = lines
    assert any("retrying" in m for m in messages), "the run should have logged its retries"
    assert sum(" failed: " in m for m in messages) == len(items)
    assert any("[token]" in m for m in messages) and "[token]" in printed.out
    assert f"course {victim}" in printed.out
    assert files_leaking(tmp_path) == {}


def crawl_with_listing(inst: Institution, out: Path, listing: Any, *flags: str) -> int:
    """The CLI crawling `--account self` through a proxy whose course listing answers with `listing`."""
    @asynccontextmanager
    async def servers():
        async with proxied(inst, {r"^/api/v1/accounts/self/courses$": listing}) as pair:
            yield pair

    with threaded(servers) as (_, proxy):
        return run_cli(["crawl", "--base-url", proxy.base_url, "--account", "self", "--out", str(out), *flags])


def test_refused_token_echoed_by_the_server_is_not_printed(inst, tmp_path, capsys, cli_env):
    code = crawl_with_listing(inst, tmp_path, echo_401, "-v", "--log-format", "json")
    printed = capsys.readouterr()
    assert code == 2
    assert "refused the API token" in printed.err and "[token]" in printed.err
    assert leaks(printed.out + printed.err) == []


def test_a_run_that_aborts_on_the_account_listing_does_not_print_the_token(inst, tmp_path, capsys, cli_env):
    # The listing redirects to a URL holding the token, then answers with something that is not JSON: the
    # run stops (nothing is known of the scope), and its one-line error quotes the path.
    def redirect_then_html(request: web.BaseRequest, up: Upstream) -> web.Response:
        if "x" in request.rel_url.query:
            return web.Response(status=200, text=f"<html>{SECRET}</html>", content_type="text/html")
        raise web.HTTPFound(f"/api/v1/accounts/self/courses?x={SECRET}")

    code = crawl_with_listing(inst, tmp_path, redirect_then_html, "--log-format", "text", "--no-progress")
    printed = capsys.readouterr()
    assert code == 2
    assert "nothing committed" in printed.err and "[token]" in printed.err
    assert leaks(printed.out + printed.err) == []
    assert files_leaking(tmp_path) == {}


def test_a_token_given_as_a_flag_value_is_refused_without_echoing_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CANVAS_API_TOKEN", raising=False)
    code = run_cli(["crawl", "--base-url", "https://canvas.example.edu", "--account", "self",
                    "--out", str(tmp_path), "--token", SECRET])
    printed = capsys.readouterr()
    assert code == 2
    assert leaks(printed.out + printed.err) == []


# -- other hosts --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["next_link", "redirect_302", "redirect_307"])
def test_other_host_never_receives_the_token_from_the_cli(inst, tmp_path, capsys, cli_env, how):
    section = sections_of(inst, courses(inst)[1])[0]
    pattern = rf"^/api/v1/sections/{section}/users$"

    @asynccontextmanager
    async def servers():
        async with Bystander() as other, proxied(inst, {}) as (sim, proxy):
            def away(request: web.BaseRequest, up: Upstream) -> web.Response:
                to = f"{other.base_url}/api/v1/sections/{section}/users?page=2&per_page=20"
                if how == "next_link":
                    return up.response(headers={"Link": link_header(next=to)})
                return web.Response(status=int(how[-3:]), headers={"Location": to})

            proxy.rules[pattern] = away
            yield other, proxy

    with threaded(servers) as (other, proxy):
        code = run_cli(["crawl", "--base-url", proxy.base_url, "--account", "self", "--out", str(tmp_path),
                        "--per-page", "20", "--no-progress"])
        seen = list(other.seen)
    printed = capsys.readouterr()
    assert code == 3 and f"section {section}" in printed.out
    assert [s.headers.get("Authorization") for s in seen] == []  # not asked at all, let alone with the token
    assert all(SECRET in s.headers.get("Authorization", "") for s in proxy.seen)


TOKEN = "7~unit-test-token-0123456789abcdef"
HTTPS_BASE = "https://canvas.test"


def https_client() -> CanvasClient:
    return CanvasClient(ClientConfig(base_url=HTTPS_BASE, token=Secret(TOKEN), retry=FAST_RETRY))


@pytest.mark.parametrize("location", ["http://canvas.test/api/v1/sections/1/users",
                                      "https://canvas.test:8443/api/v1/sections/1/users",
                                      "https://sub.canvas.test/api/v1/sections/1/users"])
async def test_redirect_to_another_origin_of_the_same_host_is_refused(location):
    """Scheme downgrade (the token would cross in clear text), another port, a sub-domain: all other origins."""
    url = f"{HTTPS_BASE}/api/v1/sections/1/users"
    with aioresponses() as m:
        m.get(url, status=302, headers={"Location": location})
        m.get(location, status=200, body=b"[]")
        async with https_client() as c:
            with pytest.raises(PaginationError, match="redirected to another host"):
                await c.get_page(url)
        assert [str(u) for _, u in m.requests] == [url]


@pytest.mark.parametrize("next_url", ["http://canvas.test/api/v1/sections/1/users?page=2",
                                      "https://canvas.test:444/api/v1/sections/1/users?page=2"])
async def test_next_link_to_another_origin_of_the_same_host_is_refused(next_url):
    url = f"{HTTPS_BASE}/api/v1/sections/1/users"
    with aioresponses() as m:
        m.get(url, payload=[{"id": 1}], headers={"Link": f'<{next_url}>; rel="next"'}, repeat=True)
        m.get(next_url, payload=[{"id": 2}])
        async with https_client() as c:
            with pytest.raises(PaginationError, match="another host"):
                async for _ in iter_pages(c, url):
                    pass
        assert {str(u) for _, u in m.requests} == {url}


# -- plain http ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://127.0.0.1:8800", "http://127.9.9.9", "http://localhost:1",
                                 "http://LOCALHOST", "http://[::1]:8800"])
def test_plain_http_to_loopback_is_allowed(url):
    ClientConfig(base_url=url, token=Secret(TOKEN))


@pytest.mark.parametrize("url", ["http://canvas.example.edu", "http://10.0.0.1", "http://192.168.1.5:8800",
                                 "http://localhost.example.edu", "http://127.0.0.1.nip.io", "http://[fe80::1]"])
def test_plain_http_elsewhere_is_refused_unless_allowed(url):
    with pytest.raises(ConfigError, match="plain http") as info:
        ClientConfig(base_url=url, token=Secret(TOKEN))
    assert TOKEN not in str(info.value)
    ClientConfig(base_url=url, token=Secret(TOKEN), allow_insecure_http=True)


def test_allow_insecure_http_flag_reaches_the_run(inst, tmp_path, capsys, cli_env, monkeypatch):
    """Treat the simulator's 127.0.0.1 as if it were a remote host: refused, then allowed by the flag."""
    monkeypatch.setattr(exporter.config, "is_loopback", lambda host: False)

    @asynccontextmanager
    async def servers():
        async with proxied(inst, {}) as pair:
            yield pair

    with threaded(servers) as (sim, proxy):
        argv = ["crawl", "--base-url", proxy.base_url, "--account", "self", "--out", str(tmp_path), "--no-progress"]
        assert run_cli(argv) == 2
        refused = capsys.readouterr().err
        assert sim.stats.requests == 0
        assert run_cli([*argv, "--allow-insecure-http"]) == 0
    assert "plain http" in refused and "--allow-insecure-http" in refused
    assert leaks(refused) == []


# -- --token-file -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain_sim():
    inst = Institution.generate(seed=5, courses=2, large_sections=0)

    @asynccontextmanager
    async def servers():
        async with Simulator(inst, SimOptions(tokens=TOKENS)) as sim:
            yield sim

    with threaded(servers) as sim:
        yield sim


def crawl_in_a_process(base_url: str, out: Path, token_file: Path, *extra: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in a fresh process (logging starts unconfigured, as it does for them)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CANVAS_API_TOKEN", "CANVAS_BASE_URL")}
    argv = [sys.executable, "-m", "exporter", "crawl", "--base-url", base_url, "--account", "self",
            "--out", str(out), "--token-file", str(token_file), "--no-progress", *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode,warns", [(0o640, True), (0o604, True), (0o400, False)])
def test_token_file_is_read_and_warns_when_others_can_read_it(plain_sim, tmp_path, mode, warns):
    token_file = tmp_path / "token"
    token_file.write_text(f"  {SECRET}\r\n")
    os.chmod(token_file, mode)
    done = crawl_in_a_process(plain_sim.base_url, tmp_path / "o", token_file)
    assert done.returncode == 0, done.stderr
    assert ("readable by other users" in done.stderr) == warns
    assert leaks(done.stdout + done.stderr) == []


def test_token_file_warning_follows_the_log_format(plain_sim, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    os.chmod(token_file, 0o644)
    done = crawl_in_a_process(plain_sim.base_url, tmp_path / "o", token_file, "--log-format", "json")
    assert done.returncode == 0, done.stderr
    [warning] = [orjson.loads(line) for line in done.stderr.splitlines()]  # every line is a JSON record
    assert warning["level"] == "warning" and "readable by other users" in warning["msg"]
