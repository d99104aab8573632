"""Each fault, switched on while the server runs; a retry can succeed because draws are per request."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from exporter.sim import Faults, Simulator

from .httpkit import get, parse_links


def _users_url(sim: Simulator, per_page: int = 2) -> str:
    inst = sim.institution
    course = next(c for c in inst.account_courses(inst.root_account_id)
                  if any(len(inst.section_roster(s.id)) > 3 * per_page for s in inst.course_sections(c.id)))
    section = next(s for s in inst.course_sections(course.id) if len(inst.section_roster(s.id)) > 3 * per_page)
    return f"{sim.base_url}/api/v1/sections/{section.id}/users?per_page={per_page}"


async def test_server_errors_json_and_html(sim: Simulator, http) -> None:
    sim.options.faults = Faults(error_rate=1.0, html_error_share=1.0)
    got = await get(http, _users_url(sim))
    assert got.status in (500, 502, 503, 504) and got.headers["Content-Type"].startswith("text/html")
    assert b"<html>" in got.body
    sim.options.faults.html_error_share = 0.0
    got = await get(http, _users_url(sim))
    assert got.status in (500, 502, 503, 504) and got.json["errors"][0]["message"] == "An error occurred."
    sim.options.faults = Faults()
    assert (await get(http, _users_url(sim))).status == 200
    assert sim.stats.faults["error"] == 2 and sim.stats.by_status[200] == 1


async def test_errors_are_drawn_per_request(sim: Simulator, http) -> None:
    sim.options.faults = Faults(error_rate=0.5, error_statuses=(503,))
    statuses = [(await get(http, _users_url(sim))).status for _ in range(40)]
    assert set(statuses) == {200, 503}


async def test_connection_reset_mid_response(sim: Simulator, http) -> None:
    sim.options.faults = Faults(reset_rate=1.0)
    with pytest.raises(aiohttp.ClientError):
        await get(http, _users_url(sim))
    sim.options.faults = Faults()
    assert (await get(http, _users_url(sim))).status == 200  # the session recovers
    assert sim.stats.faults["reset"] == 1


async def test_body_cut_short(sim: Simulator, http) -> None:
    sim.options.faults = Faults(truncate_rate=1.0)
    with pytest.raises(aiohttp.ClientPayloadError):
        await get(http, _users_url(sim))
    assert sim.stats.faults["truncate"] == 1


async def test_stall_outlasts_a_client_timeout(sim: Simulator, http) -> None:
    sim.options.faults = Faults(stall_rate=1.0, stall_seconds=60)
    with pytest.raises(asyncio.TimeoutError):
        await get(http, _users_url(sim), timeout=aiohttp.ClientTimeout(total=0.2))
    sim.options.faults = Faults()
    assert (await get(http, _users_url(sim))).status == 200
    # leaving the simulator must not wait for the stalled handler (checked by the fixture's exit being quick)


async def test_stop_releases_stalled_requests(small) -> None:  # noqa: ANN001
    sim = Simulator(small)
    await sim.start()
    arrived = asyncio.Event()
    sim.hooks.append(lambda request: arrived.set())
    sim.options.faults = Faults(stall_rate=1.0, stall_seconds=60)
    async with aiohttp.ClientSession() as s:
        pending = asyncio.ensure_future(s.get(f"{sim.base_url}/api/v1/accounts/self/courses"))
        await arrived.wait()
        started = time.monotonic()
        await sim.stop()
        assert time.monotonic() - started < 5
        pending.cancel()


async def test_throttle_burst(sim: Simulator, http) -> None:
    sim.options.faults = Faults(throttle_rate=1.0, throttle_burst=3)
    first = await get(http, _users_url(sim))
    assert first.status == 403 and first.body == b"403 Forbidden (Rate Limit Exceeded)\n"
    sim.options.faults = Faults()  # the burst already started carries on
    assert [(await get(http, _users_url(sim))).status for _ in range(3)] == [403, 403, 200]
    sim.options.throttle_mode = "429"
    sim.options.faults = Faults(throttle_rate=1.0, throttle_burst=1)
    assert (await get(http, _users_url(sim))).status == 429
    assert sim.stats.throttled == 4


async def test_link_next_loops_back(sim: Simulator, http) -> None:
    sim.options.faults = Faults(link_loop_rate=1.0)
    url = _users_url(sim)
    page1 = await get(http, url)
    assert page1.links["next"] == page1.links["current"]
    page2 = await get(http, f"{url}&page=2")
    assert page2.links["next"] == page1.links["current"]  # back to page 1


async def test_latency_is_added(sim: Simulator, http) -> None:
    sim.options.latency_ms = 60
    started = time.monotonic()
    assert (await get(http, _users_url(sim))).status == 200
    assert time.monotonic() - started >= 0.06


async def test_path_pattern_limits_faults(sim: Simulator, http) -> None:
    sim.options.faults = Faults(error_rate=1.0, path_pattern=r"/users$")
    assert (await get(http, f"{sim.base_url}/api/v1/accounts/self/courses")).status == 200
    assert (await get(http, _users_url(sim))).status >= 500


def test_faults_parse() -> None:
    f = Faults.parse("error=0.05, reset_rate=0.01,truncate=0.02,stall=0.001,stall_seconds=90,throttle=0.1,"
                     "throttle_burst=5,link-loop=0.003,path_pattern=users")
    assert (f.error_rate, f.reset_rate, f.truncate_rate, f.stall_rate, f.stall_seconds, f.throttle_rate,
            f.throttle_burst, f.link_loop_rate, f.path_pattern) == (0.05, 0.01, 0.02, 0.001, 90, 0.1, 5, 0.003,
                                                                    "users")
    with pytest.raises(ValueError):
        Faults.parse("explode=1")


def test_links_helper_parses_canvas_header() -> None:
    assert parse_links('<a?page=1>; rel="current",<a?page=2>; rel="next"') == {"current": "a?page=1",
                                                                              "next": "a?page=2"}
