"""Whole crawls through a hostile proxy: one course's sections list or one section's users list is broken
or malicious, and every case has a defined outcome.

For a failure: the run finishes, the snapshot is committed with status "partial", the manifest lists the
one item with its URL path and a reason that says what was wrong, and everything else equals the ground
truth. A row repeated across pages is not a failure: it is kept once and counted in "duplicates_dropped".
"""

from __future__ import annotations

import gzip

import re
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pyarrow.dataset as ds
import pytest
from aiohttp import web
from yarl import URL

from exporter.canvas.refs import account_ref, course_ref
from exporter.config import ClientConfig, CrawlConfig, RetryPolicy, Scope, Secret
from exporter.export import ExportResult, export
from exporter.sim import (
    ADMIN_TOKEN,
    AccountScope,
    CourseScope,
    Institution,
    SimOptions,
    Simulator,
    Truth,
    compare,
    ground_truth,
)
from tests.hostile import Bystander, HostileProxy, Streamed, Upstream, link_header, stream_json_list

FAST_RETRY = RetryPolicy(base_delay=0.001, throttle_delay=0.01, max_delay=0.05)
PER_PAGE = 20


# -- the institution and the two victims -------------------------------------------------------------------
@pytest.fixture(scope="module")
def inst() -> Institution:
    return Institution.generate(seed=3, courses=4, large_sections=0)


def victim_course(inst: Institution) -> int:
    """A course with several sections (so a per_page of 2 gives it several pages)."""
    return max(inst.account_courses(inst.root_account_id), key=lambda c: len(inst.course_sections(c.id))).id


def victim_section(inst: Institution) -> int:
    """A section of another course whose roster takes several pages of PER_PAGE."""
    other = [s for c in inst.account_courses(inst.root_account_id) if c.id != victim_course(inst)
             for s in inst.course_sections(c.id)]
    return max(other, key=lambda s: len(inst.section_roster(s.id))).id


def target(inst: Institution, kind: str) -> tuple[str, str, str]:
    """(rule pattern, manifest item, path prefix) of the victim list of this kind."""
    if kind == "sections":
        c = victim_course(inst)
        return rf"^/api/v1/courses/{c}/sections$", f"course {c}", f"/api/v1/courses/{c}/sections"
    s = victim_section(inst)
    return rf"^/api/v1/sections/{s}/users$", f"section {s}", f"/api/v1/sections/{s}/users"


def other_section(inst: Institution) -> int:
    """A section that is not the victim: where a hostile server sends a victim's pagination."""
    return min(s for s in inst.sections if s != victim_section(inst))


def truth_without(inst: Institution, kind: str) -> Truth:
    """The ground truth of `--account self` minus what the broken list holds."""
    if kind == "sections":  # the course's sections, and so their rosters, are missing
        return ground_truth(inst, AccountScope("self"), forbidden_courses={victim_course(inst)})
    truth = ground_truth(inst, AccountScope("self"))
    s = victim_section(inst)
    truth.section_users = [r for r in truth.section_users if r["section_id"] != s]
    assert any(r["id"] == s for r in truth.sections)  # the section itself is still exported
    return truth


# -- running a crawl through the proxy ---------------------------------------------------------------------
@asynccontextmanager
async def proxied(inst: Institution, rules: dict | None = None) -> AsyncIterator[tuple[Simulator, HostileProxy]]:
    async with Simulator(inst, SimOptions()) as sim, HostileProxy(sim.base_url, rules) as proxy:
        yield sim, proxy


def crawl_config(proxy: HostileProxy, out: Path, *, scope: Scope | None = None, per_page: int = PER_PAGE,
                 **client: Any) -> CrawlConfig:
    cfg = ClientConfig(base_url=proxy.base_url, token=Secret(ADMIN_TOKEN), per_page=per_page, concurrency=8,
                       retry=FAST_RETRY, **client)
    return CrawlConfig(client=cfg, scope=scope or Scope(account=account_ref("self")), out=str(out))


def manifest(out: Path, result: ExportResult) -> dict:
    return orjson.loads((out / "_manifests" / f"{result.snapshot_id}.json").read_bytes())


def one_failure(out: Path, result: ExportResult, item: str, path: str, *also: str) -> dict:
    """The manifest says partial and lists exactly this item, with its URL path (or one of `also`)."""
    paths = (path, *also)
    m = manifest(out, result)
    assert result.status == "partial" and m["status"] == "partial"
    assert len(m["failures"]) == 1, m["failures"]
    [failure] = m["failures"]
    assert failure["item"] == item
    assert failure["path"].startswith(paths), failure
    assert set(failure) >= {"kind", "item", "path", "status", "reason"}
    return failure


def first_page_query(request: web.BaseRequest) -> str:
    return str(URL(request.raw_path, encoded=True).update_query(page="1"))


async def first_page(proxy: HostileProxy, request: web.BaseRequest) -> list:
    return (await proxy.fetch(first_page_query(request), request.headers)).json()


# -- broken bodies ------------------------------------------------------------------------------------------
def invalid_json(request: web.BaseRequest, up: Upstream) -> web.Response:
    return up.response(body=up.body[: len(up.body) // 2])  # a whole, honest answer that is half a document


def html_200(request: web.BaseRequest, up: Upstream) -> web.Response:
    page = b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body>Back soon</body></html>"
    return up.response(body=page, headers={"Content-Type": "text/html; charset=utf-8"})


def object_not_list(request: web.BaseRequest, up: Upstream) -> web.Response:
    return up.response(json={"items": up.json(), "page": 1})


def with_item(change):  # noqa: ANN001, ANN201
    def rule(request: web.BaseRequest, up: Upstream) -> web.Response:
        items = up.json()
        if items:
            change(items[len(items) // 2])
        return up.response(json=items)

    return rule


BROKEN = {
    # case: (rule, expected kind, reason pattern)
    "invalid_json": (invalid_json, "bad_response", r"not valid JSON"),
    "html_200": (html_200, "bad_response", r"not valid JSON.*text/html.*<!DOCTYPE html>"),
    "object_not_list": (object_not_list, "bad_response", r"expected a JSON list, got a JSON dict"),
    "null_not_list": (lambda request, up: up.response(body=b"null"), "bad_response",
                      r"expected a JSON list, got a JSON NoneType"),
    "id_is_text": (with_item(lambda i: i.update(id="abc")), "bad_response", r"field 'id' is \"abc\": not an integer"),
    "created_at_is_number": (with_item(lambda i: i.update(created_at=5)), "bad_response",
                             r"field 'created_at' is 5: not an ISO 8601 timestamp"),
    "created_at_is_not_a_date": (with_item(lambda i: i.update(created_at="last tuesday")), "bad_response",
                                 r"field 'created_at' is \"last tuesday\""),
    "id_is_fractional": (with_item(lambda i: i.update(id=1.5)), "bad_response", r"field 'id' is 1.5"),
    "id_beyond_int64": (with_item(lambda i: i.update(id=2**63)), "bad_response", r"field 'id'.*int64"),
    "missing_id": (with_item(lambda i: i.pop("id")), "bad_response", r"item \d+ has no 'id'"),
}


@pytest.mark.parametrize("kind", ["sections", "users"])
@pytest.mark.parametrize("case", list(BROKEN))
async def test_broken_list_is_recorded_and_the_rest_exported(inst, tmp_path, kind, case):
    rule, failure_kind, reason = BROKEN[case]
    pattern, item, path = target(inst, kind)
    async with proxied(inst, {pattern: rule}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    assert proxy.hits[pattern] >= 1
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == failure_kind
    assert re.search(reason, failure["reason"]), failure["reason"]
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, kind)) == []


async def test_a_later_roster_page_of_null_fails_the_roster_instead_of_ending_it(inst, tmp_path):
    """`null` typed as an empty page would end the list early and lose the rest of the roster silently."""
    pattern, item, path = target(inst, "users")

    def null_page_3(request: web.BaseRequest, up: Upstream) -> web.Response:
        return up.response(body=b"null") if "page=3&" in request.raw_path else up.response()

    async with proxied(inst, {pattern: null_page_3}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_response" and "page=3&" in failure["path"]
    assert "expected a JSON list, got a JSON NoneType" in failure["reason"]
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, "users")) == []


async def test_a_field_of_the_wrong_type_is_recorded_with_its_http_status(inst, tmp_path):
    pattern, item, path = target(inst, "users")
    async with proxied(inst, {pattern: with_item(lambda i: i.update(id="abc"))}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    assert one_failure(tmp_path, result, item, path)["status"] == 200


async def test_a_course_listing_item_without_id_is_recorded(inst, tmp_path):
    """Not one of the two list kinds, but the same rule: the account's course listing names a course with no
    id; that entry is recorded and every other course exported."""
    dropped = inst.account_courses(inst.root_account_id)[0].id

    def rule(request: web.BaseRequest, up: Upstream) -> web.Response:
        items = up.json()
        for c in items:
            if c["id"] == dropped:
                c.pop("id")
        return up.response(json=items)

    async with proxied(inst, {r"^/api/v1/accounts/self/courses$": rule}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    m = manifest(tmp_path, result)
    assert m["status"] == "partial"
    [failure] = m["failures"]
    assert failure["path"].startswith("/api/v1/accounts/self/courses") and "no id" in failure["reason"]
    truth = ground_truth(inst, AccountScope("self"), forbidden_courses={dropped})
    assert compare(tmp_path, result.snapshot_id, truth) == []


BAD_COURSE_IDS = {
    # case: (the id the listing gives, how the reason shows it)
    "fraction": (1.5, "1.5"),
    "boolean": (True, "true"),
    "object": ({"id": 7}, '{"id":7}'),
    "list": ([7], "[7]"),
    "query": ("1?per_page=1&x=", '"1?per_page=1&x="'),
    "path": ("../../accounts/1", '"../../accounts/1"'),
    "signed": ("-1", '"-1"'),
    "negative": (-1, "-1"),
    "zero": (0, "0"),
    "beyond_int64": (2**63, str(2**63)),
    "spaced": (" 1", '" 1"'),
    "other_digits": ("\u0661\u0662", '"\u0661\u0662"'),
    "long": ("1" * 200, "a JSON string of 202 characters"),
}  # a listing that echoes the token is refused whole (tests/test_token_safety.py)


@pytest.mark.parametrize("case", list(BAD_COURSE_IDS))
async def test_a_course_listing_item_with_a_bad_id_is_recorded_and_never_requested(inst, tmp_path, case):
    """A course id goes into a URL path: only an integer, or a string of digits, is one. Anything else is
    recorded with the listing page's path and the item, never requested, and the other courses exported."""
    bad, shown = BAD_COURSE_IDS[case]
    listed = inst.account_courses(inst.root_account_id)
    dropped = listed[1].id

    def rule(request: web.BaseRequest, up: Upstream) -> web.Response:
        items = up.json()
        for c in items:
            if c["id"] == dropped:
                c["id"] = bad
        return up.response(json=items)

    async with proxied(inst, {r"^/api/v1/accounts/self/courses$": rule}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path, per_page=3))
    failure = one_failure(tmp_path, result, "course listing of account self", "/api/v1/accounts/self/courses")
    assert failure["kind"] == "bad_response" and failure["status"] == 200
    assert failure["path"] in {s.path_qs for s in proxy.requests_to(r"^/api/v1/accounts/self/courses$")}
    assert re.search(r"item \d+ has id (.*): not a Canvas id", failure["reason"]), failure["reason"]
    assert f"has id {shown}: " in failure["reason"]
    asked = [s.path_qs for s in proxy.seen if not s.path_qs.startswith("/api/v1/accounts/self/courses")]
    wanted = {c.id for c in listed} - {dropped}
    assert {int(p.split("/")[4]) for p in asked if p.startswith("/api/v1/courses/")} == wanted
    assert all(re.match(r"/api/v1/(courses|sections)/\d+/(sections|users)\?", p) for p in asked), asked
    assert all("x=" not in p for p in asked)
    truth = ground_truth(inst, AccountScope("self"), forbidden_courses={dropped})
    assert compare(tmp_path, result.snapshot_id, truth) == []


async def test_course_listing_with_string_ids_exports_everything(inst, tmp_path):
    """Canvas sends ids as strings of digits under `Accept: application/json+canvas-string-ids`."""

    def rule(request: web.BaseRequest, up: Upstream) -> web.Response:
        return up.response(json=[{**c, "id": str(c["id"])} for c in up.json()])

    async with proxied(inst, {r"^/api/v1/accounts/self/courses$": rule}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    assert proxy.hits and result.status == "complete", manifest(tmp_path, result)["failures"]
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


# -- a row repeated across pages -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sections", "users"])
async def test_row_repeated_across_pages_is_kept_once_and_counted(inst, tmp_path, kind):
    """Page 2 starts with the last row of page 1 (a list that shifted while it was paged): not a failure."""
    pattern, _, _ = target(inst, kind)
    per_page = 2 if kind == "sections" else PER_PAGE

    async def repeat_on_page_2(request: web.BaseRequest, up: Upstream) -> web.Response:
        if request.rel_url.query.get("page") != "2":
            return up.response()
        return up.response(json=[(await first_page(proxy, request))[-1], *up.json()])

    async with proxied(inst, {pattern: repeat_on_page_2}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path, per_page=per_page))
    assert any("page=2" in s.path_qs for s in proxy.requests_to(pattern))
    m = manifest(tmp_path, result)
    assert m["status"] == "complete" and m["failures"] == []
    assert m["duplicates_dropped"] == 1
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


@pytest.mark.parametrize("listing", ["roster", "account courses", "account courses, listed again in vain"])
async def test_a_list_that_shifts_while_its_pages_are_fetched_at_once_loses_nothing(tmp_path, listing):
    """Canvas pages by offset. Two pages are fetched at once: the later one is answered, then a row is added
    before both, then the earlier one is answered. It repeats a row of the page before it, and the row that
    moved from it onto the later page is on neither. The repeat gives the shift away: the list is walked again
    page by page, and nothing is missing."""
    import anyio

    inst = Institution.generate(seed=3, courses=12, large_sections=0)
    if listing == "roster":
        section = victim_section(inst)
        pattern, per_page, early, late = rf"^/api/v1/sections/{section}/users$", 4, "2", "3"

        def shift() -> None:  # a teacher joins (total_students, read before, stays right), and sorts first
            newcomer = inst.add_user("Aaron Aardvark", "Aaaa, Aaron")
            inst.enroll(newcomer.id, section, type="TeacherEnrollment")
            assert inst.section_roster(section)[0].user.id == newcomer.id
    else:
        pattern, per_page, early, late = r"^/api/v1/accounts/[^/]+/courses$", 3, "3", "4"
        live = [c.id for c in inst.account_courses(inst.root_account_id)]
        [restored] = [c for c in inst.courses.values() if c.workflow_state == "deleted"]
        assert live[3] < restored.id < live[4]  # it comes back in the middle of page 2

        def shift() -> None:  # a deleted course is restored
            restored.workflow_state = "available"
            inst.touch()

    asked: list[str | None] = []
    late_answered = anyio.Event()

    async def shift_between_pages(request: web.BaseRequest, up: Upstream) -> web.Response:
        page = request.rel_url.query.get("page")
        asked.append(page)
        if page == late and not late_answered.is_set():
            late_answered.set()
            shift()  # after the later page was read as the list was
            return up.response()
        if page == early and asked.count(early) == 1:
            await late_answered.wait()
            return (await proxy.fetch(request.raw_path, request.headers)).response()  # as the list is now
        if listing.endswith("in vain") and page in (None, "1") and late_answered.is_set():
            return up.response(status=503, body=b"down for maintenance")
        return up.response()

    async with proxied(inst, {pattern: shift_between_pages}) as (_, proxy):
        with anyio.fail_after(60):
            result = await export(crawl_config(proxy, tmp_path, per_page=per_page))
    m = manifest(tmp_path, result)
    if listing.endswith("in vain"):  # the first listing gave the scope: a failed second one is no abort
        assert m["status"] == "partial" and m["lists_walked_again"] == 1, m
        assert [f["item"] for f in m["failures"]] == ["course listing of account self"]
        return
    assert m["status"] == "complete" and m["lists_walked_again"] == 1, m
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


async def test_an_unusable_course_on_the_account_listing_listed_again_is_recorded(tmp_path):
    """The listing repeats a course (page 2 starts with page 1's last), so it is listed again, and that second
    listing, the one kept, holds a course without a usable id: it is a recorded failure, not silently skipped."""
    inst = Institution.generate(seed=3, courses=6, large_sections=0)
    firsts = 0

    async def repeat_then_break(request: web.BaseRequest, up: Upstream) -> web.Response:
        nonlocal firsts
        page = request.rel_url.query.get("page")
        if page in (None, "1"):
            firsts += 1
            return up.response(json=[*up.json(), {"id": None, "name": "Broken"}]) if firsts == 2 else up.response()
        if page == "2" and firsts == 1:
            first = (await proxy.fetch(request.raw_path.replace("page=2", "page=1"), request.headers)).json()
            return up.response(json=[first[-1], *up.json()])
        return up.response()

    async with proxied(inst, {r"^/api/v1/accounts/[^/]+/courses$": repeat_then_break}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path, per_page=3))
    m = manifest(tmp_path, result)
    assert firsts == 2 and m["lists_walked_again"] == 1
    [failure] = m["failures"]
    assert failure["item"] == "course listing of account self" and "has no id (absent or null)" in failure["reason"]
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


# -- lists that never end --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sections", "users"])
async def test_next_links_that_cycle_are_an_error_not_a_loop(inst, tmp_path, kind):
    """Every page has rows, and `next` goes 1 -> 2 -> 3 -> 1 -> ...: the list would never end."""
    pattern, item, path = target(inst, kind)

    async def cycle(request: web.BaseRequest, up: Upstream) -> web.Response:
        page = int(request.rel_url.query.get("page", "1"))
        nxt = URL(proxy.url(request.raw_path), encoded=True).update_query(page=str(page % 3 + 1))
        return up.response(json=await first_page(proxy, request), headers={"Link": link_header(next=str(nxt))})

    async with proxied(inst, {pattern: cycle}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_pagination" and "repeats an earlier page" in failure["reason"]
    assert proxy.hits[pattern] < 20  # refused after a few pages and a couple of re-fetches
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, kind)) == []


ENDLESS_CUTOFF = 150


@pytest.mark.parametrize("every_other_empty", [False, True], ids=["rows", "rows and empty pages"])
@pytest.mark.parametrize("kind", ["sections", "users"])
async def test_next_links_that_never_repeat_but_never_end(inst, tmp_path, kind, every_other_empty):
    """`next` is always page+1 and every page repeats the first page's rows, forever, or every other page is
    empty (as a page of test students only would be). (The proxy gives up after ENDLESS_CUTOFF pages with
    `[]`, so the test ends either way.) The list must be called broken long before that, not crawled until
    the server stops."""
    pattern, item, path = target(inst, kind)

    async def endless(request: web.BaseRequest, up: Upstream) -> web.Response:
        if proxy.hits[pattern] > ENDLESS_CUTOFF:
            return up.response(json=[], headers={"Link": None})
        page = int(request.rel_url.query.get("page", "1"))
        nxt = URL(proxy.url(request.raw_path), encoded=True).update_query(page=str(page + 1))
        rows = [] if every_other_empty and page % 2 == 0 else await first_page(proxy, request)
        return up.response(json=rows, headers={"Link": link_header(next=str(nxt))})

    async with proxied(inst, {pattern: endless}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    assert proxy.hits[pattern] < ENDLESS_CUTOFF
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_pagination"


# -- other hosts: next links and redirects ----------------------------------------------------------------------
OTHER_HOST_LINKS = {
    "absolute": "{other}/api/v1/sections/1/users?page=2",
    "scheme_relative": "//127.0.0.1:{other_port}/api/v1/sections/1/users?page=2",
    "userinfo_lookalike": "http://127.0.0.1:{proxy_port}@127.0.0.1:{other_port}/api/v1/x?page=2",
    "localhost_name": "http://localhost:{other_port}/api/v1/x?page=2",
    "same_host_other_port_upper_case": "HTTP://127.0.0.1:{other_port}/api/v1/x?page=2",
}


def other_url(template: str, proxy: HostileProxy, other: Bystander) -> str:
    return template.format(other=other.base_url, other_port=other.port, proxy_port=proxy.port)


@pytest.mark.parametrize("kind", ["sections", "users"])
@pytest.mark.parametrize("form", list(OTHER_HOST_LINKS))
async def test_next_link_to_another_host_is_refused_and_never_requested(inst, tmp_path, kind, form):
    pattern, item, path = target(inst, kind)
    async with Bystander() as other:
        def next_elsewhere(request: web.BaseRequest, up: Upstream) -> web.Response:
            return up.response(headers={"Link": link_header(next=other_url(OTHER_HOST_LINKS[form], proxy, other))})

        async with proxied(inst, {pattern: next_elsewhere}) as (_, proxy):
            result = await export(crawl_config(proxy, tmp_path, per_page=2 if kind == "sections" else PER_PAGE))
    assert other.seen == []
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_pagination" and "another host" in failure["reason"]
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, kind)) == []


@pytest.mark.parametrize("kind", ["sections", "users"])
async def test_next_link_to_another_list_on_the_same_host_is_refused(inst, tmp_path, kind):
    """A roster's section comes from the crawl, not the data: another section's pages followed from it would
    be filed under it, and its own would be lost, in a run that says complete."""
    pattern, item, path = target(inst, kind)
    elsewhere = (f"/api/v1/courses/{victim_course(inst) + 1}/sections?page=1" if kind == "sections"
                 else f"/api/v1/sections/{other_section(inst)}/users?page=1")

    def next_to_another_list(request: web.BaseRequest, up: Upstream) -> web.Response:
        return up.response(headers={"Link": link_header(next=f"{proxy.base_url}{elsewhere}")})

    async with proxied(inst, {pattern: next_to_another_list}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path, per_page=2 if kind == "sections" else PER_PAGE))
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_pagination" and "leads to another list" in failure["reason"]
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, kind)) == []


@pytest.mark.parametrize("page", ["1", "2"])
async def test_a_page_redirected_to_another_list_is_refused(inst, tmp_path, page):
    """A page of a roster answers with a redirect, on the same host, to another section's roster: its users
    would be filed under this section, and this section's own pages lost. Page 1 too: the walk's list is the
    one asked for, not where page 1's redirect ended (that once gave a run that said complete)."""
    pattern, item, path = target(inst, "users")
    other = other_section(inst)

    def redirect(request: web.BaseRequest, up: Upstream) -> web.Response:
        if request.rel_url.query.get("page", "1") != page:
            return up.response()
        return web.Response(status=302, headers={"Location": f"/api/v1/sections/{other}/users?per_page=20"})

    async with proxied(inst, {pattern: redirect}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_pagination" and "redirected to another list" in failure["reason"]
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, "users")) == []


REDIRECTS = {
    "302_absolute": (302, "{other}/api/v1/sections/1/users"),
    "307_absolute": (307, "{other}/api/v1/sections/1/users"),
    "301_scheme_relative": (301, "//127.0.0.1:{other_port}/api/v1/sections/1/users"),
    "302_via_a_same_host_hop": (302, "{proxy}/api/v1/hop"),
}


@pytest.mark.parametrize("kind", ["sections", "users"])
@pytest.mark.parametrize("case", list(REDIRECTS))
async def test_redirect_to_another_host_is_not_followed(inst, tmp_path, kind, case):
    pattern, item, path = target(inst, kind)
    status, location = REDIRECTS[case]
    async with Bystander() as other:
        def away(request: web.BaseRequest, up: Upstream) -> web.Response:
            to = location.format(other=other.base_url, other_port=other.port, proxy=proxy.base_url)
            return web.Response(status=status, headers={"Location": to})

        def hop(request: web.BaseRequest, up: Upstream) -> web.Response:
            return web.Response(status=302, headers={"Location": f"{other.base_url}/api/v1/sections/1/users"})

        async with proxied(inst, {pattern: away, r"^/api/v1/hop$": hop}) as (_, proxy):
            result = await export(crawl_config(proxy, tmp_path))
    assert other.seen == []
    # Through a same-host hop, the path recorded is the hop's (where the refused redirect was).
    failure = one_failure(tmp_path, result, item, path, "/api/v1/hop")
    assert failure["kind"] == "bad_pagination" and "redirected to another host" in failure["reason"]
    assert failure["status"] in (status, 302)
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, kind)) == []


MALFORMED_LINKS = {
    "port_out_of_range": "http://127.0.0.1:99999/api/v1/x?page=2",
    "two_ports": "http://127.0.0.1:{proxy_port}:1/api/v1/x?page=2",
    "backslash_in_authority": "http://127.0.0.1:{other_port}\\@127.0.0.1:{proxy_port}/api/v1/x?page=2",
}


@pytest.mark.parametrize("form", list(MALFORMED_LINKS))
async def test_malformed_next_link_fails_only_its_list(inst, tmp_path, form):
    pattern, item, path = target(inst, "users")
    async with Bystander() as other:
        def malformed(request: web.BaseRequest, up: Upstream) -> web.Response:
            return up.response(headers={"Link": link_header(next=other_url(MALFORMED_LINKS[form], proxy, other))})

        async with proxied(inst, {pattern: malformed}) as (_, proxy):
            try:
                result = await export(crawl_config(proxy, tmp_path))
            finally:
                assert other.seen == []  # whatever else happens, the token did not go there
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_pagination"
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, "users")) == []


async def test_malformed_redirect_location_fails_only_its_list(inst, tmp_path):
    pattern, item, path = target(inst, "users")
    async with Bystander() as other:
        def malformed(request: web.BaseRequest, up: Upstream) -> web.Response:
            return web.Response(status=302, headers={
                "Location": f"http://127.0.0.1:{other.port}\\@127.0.0.1:{proxy.port}/api/v1/x"})

        async with proxied(inst, {pattern: malformed}) as (_, proxy):
            try:
                result = await export(crawl_config(proxy, tmp_path))
            finally:
                assert other.seen == []
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] in ("bad_pagination", "bad_response")
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, "users")) == []


# -- a body of several hundred megabytes ---------------------------------------------------------------------
HUGE = 300 * 1024 * 1024
DEFAULT_CAP = ClientConfig(base_url="https://x.test", token=Secret("t")).max_body_bytes


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content_length"])
async def test_huge_body_is_refused_without_exhausting_memory(inst, tmp_path, declare_length):
    assert DEFAULT_CAP == 64 * 1024 * 1024
    pattern, item, path = target(inst, "users")
    streamed = Streamed()

    async def huge(request: web.BaseRequest, up: Upstream) -> web.StreamResponse:
        return await stream_json_list(request, HUGE, stats=streamed, declare_length=declare_length)

    tracemalloc.start()
    try:
        async with proxied(inst, {pattern: huge}) as (_, proxy):
            started = time.monotonic()
            result = await export(crawl_config(proxy, tmp_path))  # the default max_body_bytes
            elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_response" and f"exceeds the {DEFAULT_CAP}-byte limit" in failure["reason"]
    assert proxy.hits[pattern] == 1  # refused, not retried
    # The exporter stopped reading near the cap: the proxy could not write the rest, and the process never
    # held anything like the whole body.
    assert not streamed.finished and streamed.bytes_written < HUGE // 2, streamed
    assert peak < DEFAULT_CAP + 48 * 1024 * 1024, f"peak traced memory {peak / 2**20:.0f} MiB"
    if declare_length:
        assert streamed.bytes_written < 16 * 1024 * 1024  # refused from the header, before reading
    assert elapsed < 30
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, "users")) == []


async def test_a_gzip_bomb_is_refused_by_what_it_inflates_to(inst, tmp_path):
    # 64 MB of JSON padding gzips to about 64 KB: Content-Length says little, the inflated body is what counts
    pattern, item, path = target(inst, "users")
    padding = b"[" + b" " * (4 * 1024 * 1024) + b"]"
    bomb = gzip.compress(padding, compresslevel=9)
    cap = 1024 * 1024

    async def gzip_bomb(request: web.BaseRequest, up: Upstream) -> web.Response:
        return web.Response(status=200, body=bomb, headers={"Content-Type": "application/json",
                                                            "Content-Encoding": "gzip"})

    async with proxied(inst, {pattern: gzip_bomb}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path, max_body_bytes=cap))
    assert len(bomb) < cap < len(padding)
    failure = one_failure(tmp_path, result, item, path)
    assert failure["kind"] == "bad_response" and f"exceeds the {cap}-byte limit" in failure["reason"]
    assert compare(tmp_path, result.snapshot_id, truth_without(inst, "users")) == []


async def test_a_later_page_of_the_account_listing_failing_keeps_what_was_listed(inst, tmp_path):
    courses = [c.id for c in inst.account_courses(inst.root_account_id)]
    assert len(courses) > 2

    def page_two_fails(request: web.BaseRequest, up: Upstream) -> web.Response:
        if request.rel_url.query.get("page", "1") != "1":
            return web.Response(status=500, text="<html>Internal Server Error</html>", content_type="text/html")
        return up.response()

    async with proxied(inst, {r"^/api/v1/accounts/self/courses$": page_two_fails}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path, per_page=2))
    m = manifest(tmp_path, result)
    assert result.status == "partial"
    [failure] = m["failures"]
    assert failure["item"] == "course listing of account self" and failure["status"] == 500
    assert failure["path"].startswith("/api/v1/accounts/self/courses") and "page=2" in failure["path"]
    truth = ground_truth(inst, AccountScope("self"), forbidden_courses=set(courses[2:]))
    assert compare(tmp_path, result.snapshot_id, truth) == []


# -- Content-Type without charset, non-ASCII text -----------------------------------------------------------
NAMES = {"name": "Zoë Ñúñez 李", "sortable_name": "Ñúñez, Zoë", "short_name": "Zoë 李", "pronouns": "elle/iel ✓"}
SECTION_NAME = "Übung 演習 — Ångström"


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/octet-stream",
                                   "application/json; charset=iso-8859-1"])
async def test_content_type_without_charset_keeps_non_ascii_exact(tmp_path, ctype):
    inst = Institution.generate(seed=3, courses=4, large_sections=0)
    section_id = victim_section(inst)
    user = inst.section_roster(section_id)[0].user
    for k, v in NAMES.items():
        setattr(user, k, v)
    inst.sections[section_id].name = SECTION_NAME
    inst.touch()

    def retype(request: web.BaseRequest, up: Upstream) -> web.Response:
        return up.response(headers={"Content-Type": ctype})

    course = inst.sections[section_id].course_id
    rules = {r"^/api/v1/sections/\d+/users$": retype, r"^/api/v1/courses/\d+/sections$": retype}
    async with proxied(inst, rules) as (_, proxy):
        scope = Scope(courses=(course_ref(str(course)),))
        result = await export(crawl_config(proxy, tmp_path, scope=scope))
    assert result.status == "complete"
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, CourseScope([str(course)]))) == []
    users = ds.dataset(tmp_path / "section_users", partitioning="hive").to_table().to_pylist()
    [row] = [r for r in users if r["user_id"] == user.id and r["section_id"] == section_id]
    assert {k: row[k] for k in NAMES} == NAMES
    sections = ds.dataset(tmp_path / "sections", partitioning="hive").to_table().to_pylist()
    assert [s["name"] for s in sections if s["id"] == section_id] == [SECTION_NAME]


@pytest.mark.parametrize("change", [lambda i: i.update(created_at=5), lambda i: i.update(course_id="abc"),
                                    lambda i: i.update(name={"x": 1}), lambda i: i.pop("course_id")],
                         ids=["created_at a number", "course_id text", "name an object", "course_id missing"])
async def test_a_malformed_recheck_page_of_claimed_sections_is_recorded(inst, tmp_path, change):
    """The second listing of a course's sections holds only sections taken already, but broken: it is refused
    and recorded as the first listing would be, though nothing of it would be written."""
    pattern, item, path = target(inst, "sections")
    answered = 0

    def second_listing_broken(request: web.BaseRequest, up: Upstream) -> web.Response:
        nonlocal answered
        answered += 1
        if answered == 1:  # the first pass: honest
            return up.response()
        items = up.json()
        for i in items:
            change(i)
        return up.response(json=items)

    async with proxied(inst, {pattern: second_listing_broken}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    assert answered >= 2
    failure = one_failure(tmp_path, result, f"recheck of {item}", path)
    assert failure["kind"] == "bad_response"
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


async def test_a_page_past_the_end_whose_links_carry_another_page_size_ends_the_roster(tmp_path):
    """Folio may write its default page size (30) into the links of a page past the end. Following that link
    would walk the roster again in other pages (reference 1.5, unconfirmed); the empty page is the end."""
    inst = Institution.generate(seed=3, courses=4, large_sections=0)
    section = max(inst.sections, key=lambda s: len(inst.section_roster(s)))
    visible = lambda: len([e for e in inst.section_roster(section) if not e.user.fake_student])  # noqa: E731
    k = 0
    while visible() < 200:  # exactly two full pages: the third is past the end
        k += 1
        inst.enroll(inst.add_user(f"Zed Filler{k:03d}").id, section)

    def folio_past_end(request: web.BaseRequest, up: Upstream) -> web.Response:
        if up.body.strip() == b"[]" and "Link" in up.headers:
            return up.response(headers={"Link": re.sub(r"per_page=\d+", "per_page=30", up.headers["Link"])})
        return up.response()

    async with proxied(inst, {r"^/api/v1/sections/\d+/users$": folio_past_end}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path, per_page=100))
    assert manifest(tmp_path, result)["status"] == "complete"
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


async def test_a_user_added_while_the_roster_is_paged_past_its_test_student(tmp_path):
    """One user a page: the test student's page is answered empty; then someone who sorts first joins, so the
    next page holds the test student and is empty too. Nobody who was in the section all along is lost."""
    inst = Institution.generate(seed=5, courses=6, large_sections=0)
    section = next(s for s in inst.sections if any(e.user.fake_student for e in inst.section_roster(s)[:-2]))
    t_page = str(next(k for k, e in enumerate(inst.section_roster(section)) if e.user.fake_student) + 1)
    shifted = anyio.Event()

    async def rule(request: web.BaseRequest, up: Upstream) -> web.Response:
        page = request.rel_url.query.get("page")
        if page == t_page and not shifted.is_set():
            inst.enroll(inst.add_user("Aaron Aardvark", "Aaaa, Aaron").id, section, type="TeacherEnrollment")
            shifted.set()
            return up.response()
        if page == str(int(t_page) + 1):
            await shifted.wait()
            return (await proxy.fetch(request.raw_path, request.headers)).response()
        return up.response()

    async with proxied(inst, {rf"^/api/v1/sections/{section}/users$": rule}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path, per_page=1))
    new = max(u.id for u in inst.users.values() if u.name == "Aaron Aardvark")
    missing = compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self")))
    assert [d for d in missing if "missing" in d and str(new) not in d] == []


# -- pagination a reviewer broke (found at 7eef3a4) ---------------------------------------------------------------
async def test_a_last_link_whose_page_is_no_number_is_ignored(inst, tmp_path):
    """Only the look-ahead reads `last`: a page number it cannot read (`²` is a digit to str.isdigit, not to int)
    means no look-ahead, not a crash."""
    pattern, _, path = target(inst, "users")

    def odd_last(request: web.BaseRequest, up: Upstream) -> web.Response:
        return up.response(headers={"Link": up.headers["Link"] + f',<{proxy.base_url}{path}?page=²&per_page=20>; '
                                    'rel="last"'})

    async with proxied(inst, {pattern: odd_last}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    assert manifest(tmp_path, result)["status"] == "complete"
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []


@pytest.mark.parametrize("rel", ["next", "prev"])
async def test_a_link_that_cannot_be_resolved_fails_at_most_its_list(inst, tmp_path, rel):
    """urljoin raises on `//[::1/x` (no IPv6 address), whatever the rel: a `next` one fails its list, another is
    never used."""
    pattern, item, path = target(inst, "users")

    def bad_link(request: web.BaseRequest, up: Upstream) -> web.Response:  # the first link of a rel wins
        return up.response(headers={"Link": f'<//[::1/api/v1/x?page=2>; rel="{rel}",' + up.headers["Link"]})

    async with proxied(inst, {pattern: bad_link}) as (_, proxy):
        result = await export(crawl_config(proxy, tmp_path))
    if rel == "next":
        assert one_failure(tmp_path, result, item, path)["kind"] == "bad_pagination"
        assert compare(tmp_path, result.snapshot_id, truth_without(inst, "users")) == []
    else:
        assert manifest(tmp_path, result)["status"] == "complete"
        assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []
