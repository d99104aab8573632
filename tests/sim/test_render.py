"""The render cache (exporter/sim/render.py) against the reference path.

Two simulators over two identical institutions, one with `render_cache=True` and one with
`render_cache=False` (every answer built from the model), get the same requests; every answer must be the
same: status, body byte for byte, Link header (the host part aside), Content-Type and X-Request-Cost
(which here counts the items an answer holds, so a test student dropped from a page is counted too).
Both paths `orjson.dumps` the same dicts, so key order is not free to differ: bytes are compared, after
the parsed JSON (for a readable diff).

The cached simulator answers every page twice, cold then warm, and the lists are walked in an order
where items are shared (a user in two sections, a section in a list and on its own), so both the
per-variant item tables and the per-list pages are read back. After writes through the API, and edits
through the model, the cached simulator must show the change: no stale bytes.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote

import aiohttp
import pytest

from exporter.sim import ADMIN_TOKEN, NOSIS_TOKEN, Institution, SimOptions, Simulator
from exporter.sim.render import RenderCache

from . import factory as f
from .httpkit import Got, auth, get, send

NOW = 1_800_000_000  # created_at of a section made through the API, the same in both simulators
STRING_IDS = "application/json+canvas-string-ids"
MAX_PAGES = 40  # a walk that goes further is a pagination bug, not a long list
# Every way of asking: both tokens (with and without SIS rights), with and without string ids.
ASKERS = [(ADMIN_TOKEN, None), (ADMIN_TOKEN, STRING_IDS), (NOSIS_TOKEN, None), (NOSIS_TOKEN, STRING_IDS)]


def enc(ref: str) -> str:
    return quote(ref, safe=":")


def options(render_cache: bool) -> SimOptions:
    # The throttle is on only for X-Request-Cost, made a function of the item count: the clock stands
    # still and costs are tiny, so nothing is ever refused.
    return SimOptions(render_cache=render_cache, now=lambda: NOW, throttle=True, clock=lambda: 0.0,
                      request_cost=lambda kind, items: items / 1000)


def build_factory() -> Institution:
    inst = f.build()
    # Pending (personal fields hidden) in Lab A, active here: one user, two renderings in one variant.
    inst.enroll(f.U_PENDING, f.S_ODD)
    return inst


def build_generated() -> Institution:
    return Institution.generate(seed=3, courses=12)


@dataclass
class Twins:
    cached: Simulator
    reference: Simulator
    http: aiohttp.ClientSession

    def institutions(self) -> tuple[Institution, Institution]:
        return self.cached.institution, self.reference.institution

    async def read(self, path: str, token: str = ADMIN_TOKEN, accept: str | None = None) -> int:
        """Walk every page of GET /api/v1`path` in both (the cached one cold, then warm), asserting each
        answer is the same. How many pages there were."""
        headers = _headers(token, accept)
        url = f"/api/v1{path}"
        empty_before = False
        for number in range(1, MAX_PAGES + 1):
            reference = await get(self.http, self.reference.base_url + url, headers=headers)
            for state in ("cold", "warm"):
                cached = await get(self.http, self.cached.base_url + url, headers=headers)
                self.assert_same(cached, reference, f"GET {url} ({token}, {accept}) page {number} {state}")
            next_url = reference.links.get("next")
            # A page emptied by dropping its test student keeps `next`, as does every page past the end
            # of a list whose total is unknown: two empty pages in a row end the walk.
            empty = reference.status == 200 and reference.json == []
            if reference.status != 200 or next_url is None or (empty and empty_before):
                return number
            empty_before = empty
            url = next_url.removeprefix(self.reference.base_url)
        raise AssertionError(f"GET {path}: more than {MAX_PAGES} pages")

    async def read_all(self, paths: list[str], token: str = ADMIN_TOKEN, accept: str | None = None) -> int:
        return sum([await self.read(p, token, accept) for p in paths])

    async def write(self, method: str, path: str, token: str = ADMIN_TOKEN, **kw: Any) -> Got:
        """The same write to both; both must answer the same. The reference's answer."""
        url = f"/api/v1{path}"
        reference = await send(self.http, method, self.reference.base_url + url, headers=auth(token), **kw)
        cached = await send(self.http, method, self.cached.base_url + url, headers=auth(token), **kw)
        self.assert_same(cached, reference, f"{method} {url}")
        return reference

    def edit(self, change: Callable[[Institution], object]) -> None:
        """The same edit through the model of both."""
        for inst in self.institutions():
            change(inst)

    def assert_same(self, cached: Got, reference: Got, what: str) -> None:
        assert cached.status == reference.status, what
        assert cached.json == reference.json, what
        assert cached.body == reference.body, what
        assert _links(cached, self.cached) == _links(reference, self.reference), what
        for name in ("Content-Type", "X-Request-Cost"):
            assert cached.headers.get(name) == reference.headers.get(name), (what, name)


def _headers(token: str, accept: str | None) -> dict[str, str]:
    return auth(token) | ({"Accept": accept} if accept else {})


def _links(got: Got, sim: Simulator) -> str | None:
    """The Link header with the simulator's own address taken out (the two listen on different ports)."""
    header = got.headers.get("Link")
    return None if header is None else header.replace(sim.base_url, "")


@asynccontextmanager
async def start_twins(build: Callable[[], Institution], http: aiohttp.ClientSession) -> AsyncIterator[Twins]:
    async with Simulator(build(), options(True)) as cached, Simulator(build(), options(False)) as reference:
        yield Twins(cached, reference, http)


@pytest.fixture
async def twins(http: aiohttp.ClientSession) -> AsyncIterator[Twins]:
    async with start_twins(build_factory, http) as t:
        yield t


@pytest.fixture
async def generated(http: aiohttp.ClientSession) -> AsyncIterator[Twins]:
    async with start_twins(build_generated, http) as t:
        yield t


# ----- what is read -----

SECTION_INCLUDES = [
    "",
    "include[]=total_students",
    "include[]=students",
    "include[]=students&include[]=enrollments",
    "include[]=students&include[]=avatar_url",
    "include[]=enrollments&include[]=avatar_url",  # without students: no effect, still a variant
    "include[]=passback_status",
    "include[]=permissions",
    "include[]=user_count",
    "include[]=total_students&include[]=students&include[]=enrollments&include[]=avatar_url"
    "&include[]=passback_status&include[]=permissions",
]
USER_QUERIES = [
    "",
    "include[]=avatar_url",
    "include[]=enrollments",
    "include[]=test_student",
    "include[]=test_student&include[]=avatar_url&include[]=enrollments",
    "enrollment_type[]=student",
    "enrollment_type[]=student_view",
    "enrollment_type[]=teacher&enrollment_type[]=ta",
    "exclude_inactive=true",
    "exclude_inactive=1&include[]=test_student&include[]=avatar_url",
    "search_term=zo",
]


def course_reads() -> list[str]:
    return [
        "/accounts/self/courses?per_page=2",
        "/accounts/self/courses?per_page=3&include[]=ui_invoked",  # known total: rel=last
        "/accounts/self/courses?state[]=all",
        f"/accounts/{f.ENG}/courses",
        "/accounts/self/courses?search_term=course&per_page=2",
        "/accounts/self/courses?search_term=MATH",  # a SIS id: matches only with SIS rights
        "/accounts/self/courses?published=true",
        f"/courses/{f.MATH}",
        f"/courses/sis_course_id:{enc('a %+é 0042')}",
        f"/courses/{f.GONE}?include[]=all_courses",
        f"/courses/{f.GONE}",  # 404
    ]


def section_reads(course_ids: list[int], section_ids: list[int]) -> list[str]:
    paths = []
    for course in course_ids:
        for include in SECTION_INCLUDES:
            paths += [f"/courses/{course}/sections?per_page=3&{include}",
                      f"/courses/{course}/sections?all=1&{include}"]
        paths.append(f"/courses/{course}/sections?search_term=lab&include[]=total_students")
    for section in section_ids:
        for include in SECTION_INCLUDES[:4]:
            paths += [f"/sections/{section}?{include}", f"/courses/{f.MATH}/sections/{section}?{include}"]
    return paths


def user_reads(section_ids: list[int], per_pages: tuple[int, ...] = (7, 100)) -> list[str]:
    return [f"/sections/{section}/users?per_page={per_page}&{query}"
            for section in section_ids for per_page in per_pages for query in USER_QUERIES]


def factory_reads() -> list[str]:
    return [
        *course_reads(),
        *section_reads([f.MATH, f.ODD, f.DRAFT], [f.S_LAB_A, f.S_XLIST, f.S_ODD]),
        f"/courses/{f.GONE}/sections",  # 404
        f"/sections/sis_section_id:{enc('SEC/01 é')}?include[]=students",
        f"/courses/sis_course_id:{enc('MATH-101/F26')}/sections/sis_section_id:00017",
        f"/courses/{f.ODD}/sections/{f.S_XLIST}",  # 404: cross-listed away
        *user_reads([f.S_LAB_A]),
        # after Lab A, where the same users were rendered (U_PENDING with personal fields hidden)
        *user_reads([f.S_XLIST, f.S_ODD, f.S_DRAFT, f.S_LAB_B], per_pages=(100,)),
        f"/sections/{f.S_DELETED}/users",  # 404
    ]


# ----- reads -----

@pytest.mark.parametrize(("token", "accept"), ASKERS)
async def test_every_read_matches_the_reference(twins: Twins, token: str, accept: str | None) -> None:
    pages = await twins.read_all(factory_reads(), token, accept)
    assert pages > 150  # the walks did go past the first pages
    assert len(twins.cached.render) > 0 and len(twins.reference.render) == 0  # the cache served, and only there


async def test_a_page_short_of_its_test_student_keeps_next_and_is_counted_without_it(twins: Twins) -> None:
    """Test students are dropped after paging: the cached page must drop the same one, from the bytes and
    from the item count, and keep the Link header of the full page."""
    lab_a = twins.cached.institution.section_roster(f.S_LAB_A)
    position = next(i for i, r in enumerate(lab_a) if r.user.fake_student)
    page = await get(twins.http, f"{twins.cached.base_url}/api/v1/sections/{f.S_LAB_A}/users?per_page=1"
                                 f"&page={position + 1}", headers=auth())
    assert (page.json, page.headers["X-Request-Cost"]) == ([], "0.0")
    assert "next" in page.links
    assert await twins.read(f"/sections/{f.S_LAB_A}/users?per_page=1") > len(lab_a)  # walked past it


async def test_pages_of_different_sizes_over_one_list(twins: Twins) -> None:
    """The same roster paged with overlapping ranges, in both orders, then every page size again."""
    sizes = [3, 1, 5, 2, 100, 4]
    for size in sizes + sizes[::-1]:
        await twins.read(f"/sections/{f.S_LAB_A}/users?per_page={size}&include[]=avatar_url")
        await twins.read(f"/courses/{f.MATH}/sections?per_page={size}&include[]=students")
    for page in (3, 1, 2):  # pages out of order, each warm before the page next to it
        await twins.read(f"/sections/{f.S_LAB_A}/users?per_page=4&page={page}")


@pytest.mark.parametrize(("token", "accept"), [(ADMIN_TOKEN, STRING_IDS), (NOSIS_TOKEN, None)])
async def test_a_generated_institution_matches_the_reference(generated: Twins, token: str, accept: str | None) -> None:
    inst = generated.cached.institution
    courses = [c.id for c in inst.account_courses(inst.root_account_id)]
    biggest = sorted(inst.sections, key=lambda s: len(inst.section_roster(s)), reverse=True)[:3]
    with_test_student = [s for s in inst.sections if any(r.user.fake_student for r in inst.section_roster(s))]
    assert len(inst.section_roster(biggest[0])) > 100 and with_test_student  # what the reads below rely on
    accounts = ["/accounts/self/courses?per_page=4", "/accounts/self/courses?per_page=100"]
    await generated.read_all(accounts, token, accept)
    for course in courses:
        await generated.read_all([f"/courses/{course}/sections?per_page=2&include[]=total_students",
                                  f"/courses/{course}/sections?all=1&include[]=students&include[]=avatar_url"],
                                 token, accept)
    # a roster of 100+: many pages at 7, two at 100
    assert await generated.read_all([f"/sections/{biggest[0]}/users?per_page=7&include[]=avatar_url",
                                     f"/sections/{biggest[0]}/users?per_page=7&exclude_inactive=1"],
                                    token, accept) > 25
    await generated.read_all([f"/sections/{s}/users?per_page=100&{q}" for s in biggest
                              for q in ("", "include[]=avatar_url")], token, accept)
    await generated.read_all([f"/sections/{s}/users?per_page=100&{q}" for s in with_test_student
                              for q in ("", "include[]=test_student&include[]=enrollments")], token, accept)


# ----- changes: no stale bytes -----

def core_reads(section_ids: list[int]) -> list[str]:
    """What a write to a MATH, ODD or DRAFT section can change, read with and without includes."""
    includes = ("", "include[]=total_students&include[]=students&include[]=avatar_url")
    return [
        "/accounts/self/courses?per_page=3&include[]=ui_invoked",
        "/accounts/self/courses?state[]=all",
        *[f"/courses/{c}/sections?per_page=3&{i}" for c in (f.MATH, f.ODD, f.DRAFT) for i in includes],
        f"/courses/{f.MATH}/sections?all=1",
        f"/courses/{f.MATH}/sections?search_term=lab",
        *[f"/sections/{s}?{i}" for s in section_ids for i in includes],
        *[f"/courses/{c}/sections/{s}" for s in section_ids for c in (f.MATH, f.ODD)],
        *[f"/sections/{s}/users?per_page={n}&{q}" for s in section_ids for n in (7, 100)
          for q in ("", "include[]=avatar_url", "include[]=test_student")],
    ]


async def edit_and_compare(twins: Twins) -> None:
    """Warm everything, then change the institution step by step, comparing what each step can change."""
    sections = [f.S_LAB_A, f.S_LAB_B, f.S_XLIST, f.S_ODD, f.S_DRAFT]
    for token, accept in ASKERS[:3]:
        await twins.read_all(core_reads(sections), token, accept)
    created = await twins.write("POST", f"/courses/{f.MATH}/sections",
                                data={"course_section[name]": "Lab C", "course_section[sis_section_id]": "LAB-C"})
    assert created.status == 200
    sections.append(created.json["id"])

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("edit", lambda: twins.write("PUT", f"/sections/{f.S_LAB_A}", json={"course_section": {
            "name": "Aardvark lab", "start_at": "2026-09-01T08:00Z", "sis_section_id": "LAB-A2"}})),
        ("edit as a teacher", lambda: twins.write("PUT", f"/sections/{f.S_LAB_B}", NOSIS_TOKEN,
                                                  data={"course_section[name]": "Lab B (evening)"})),
        ("cross-list", lambda: twins.write("POST", f"/sections/{f.S_ODD}/crosslist/{f.MATH}")),
        ("un-cross-list", lambda: twins.write("DELETE", f"/sections/{f.S_XLIST}/crosslist")),
        ("cross-list back", lambda: twins.write("POST", f"/sections/{f.S_XLIST}/crosslist/{f.DRAFT}")),
        ("delete", lambda: twins.write("DELETE", f"/sections/{f.S_LAB_B}")),
        ("delete the new one", lambda: twins.write("DELETE", f"/sections/{created.json['id']}")),
        ("enroll", lambda: twins.edit(lambda inst: inst.enroll(f.U_AGREN2, f.S_ODD))),
        ("unenroll", lambda: twins.edit(lambda inst: inst.unenroll(f.U_ZOE, f.S_LAB_A))),
        ("rename a user", lambda: twins.edit(_rename_agren)),
    ]
    for name, step in steps:
        answer = step()
        if answer is not None:
            got = await answer
            assert got.status == 200, (name, got.json)
        for token, accept in ASKERS[:3]:
            await twins.read_all(core_reads(sections), token, accept)


def _rename_agren(inst: Institution) -> None:
    """Model fields changed by hand, then touch(), as Institution asks (not the sortable name: a sort key,
    which would need reindex())."""
    user = inst.users[f.U_AGREN]
    user.name, user.pronouns, user.avatar_url = "Cy Zed", "they/them", "https://canvas.example.edu/a/new"
    inst.touch()


async def test_changes_through_the_api_and_the_model_show_at_once(twins: Twins) -> None:
    await edit_and_compare(twins)
    # the steps did change what is read: Lab A is renamed and first in MATH now, Zoë left it
    got = await get(twins.http, f"{twins.cached.base_url}/api/v1/courses/{f.MATH}/sections?per_page=1",
                    headers=auth())
    assert (got.json[0]["id"], got.json[0]["name"]) == (f.S_LAB_A, "Aardvark lab")
    users = await get(twins.http, f"{twins.cached.base_url}/api/v1/sections/{f.S_LAB_A}/users?per_page=100",
                      headers=auth())
    assert f.U_ZOE not in [u["id"] for u in users.json]


async def test_the_comparison_notices_a_cache_that_is_never_dropped(twins: Twins,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above can fail: with invalidation switched off, stale bytes are caught."""
    monkeypatch.setattr(RenderCache, "current", lambda self, inst: self)
    with pytest.raises(AssertionError, match=r"^GET /api/v1/"):  # a read differs (not a write, not a status)
        await edit_and_compare(twins)


async def test_a_failed_write_changes_nothing_and_keeps_the_cache(twins: Twins) -> None:
    paths = core_reads([f.S_LAB_A, f.S_LAB_B])
    await twins.read_all(paths)
    rendered = len(twins.cached.render)
    clash = await twins.write("PUT", f"/sections/{f.S_LAB_B}", data={"course_section[sis_section_id]": "SEC/01 é"})
    assert clash.status == 400
    assert (await twins.write("DELETE", f"/sections/{f.S_LAB_A}")).status == 400  # it has enrollments
    await twins.read(f"/sections/{f.S_LAB_B}")
    assert len(twins.cached.render) == rendered  # not dropped (that would leave only Lab B rendered)
    await twins.read_all(paths)


async def test_another_institution_at_the_same_version_is_not_served_from_the_cache(twins: Twins) -> None:
    paths = [f"/courses/{f.MATH}/sections?per_page=100", f"/sections/{f.S_LAB_A}/users?include[]=avatar_url",
             f"/sections/{f.S_LAB_A}"]
    await twins.read_all(paths)
    replacements = []
    for _ in range(2):
        inst = build_factory()
        # edited before any view is built: no touch() needed, so the version stays that of the one replaced
        inst.sections[f.S_LAB_A].name = "Replaced"
        inst.users[f.U_BERG].name = "Replaced Berg"
        replacements.append(inst)
    assert replacements[0].version == twins.cached.institution.version
    twins.cached.institution, twins.reference.institution = replacements
    await twins.read_all(paths)
    got = await get(twins.http, f"{twins.cached.base_url}/api/v1/sections/{f.S_LAB_A}", headers=auth())
    assert got.json["name"] == "Replaced"


async def test_options_that_shape_an_answer_change_it_at_once(twins: Twins) -> None:
    """students_cap and a token's permissions are part of the variant, not of the institution."""
    paths = [f"/courses/{f.MATH}/sections?include[]=students", f"/sections/{f.S_LAB_A}?include[]=students",
             f"/sections/{f.S_LAB_A}/users?per_page=100", "/accounts/self/courses"]
    await twins.read_all(paths)
    for sim in (twins.cached, twins.reference):
        sim.options.students_cap = 2
    await twins.read_all(paths)
    for sim in (twins.cached, twins.reference):
        sim.options.tokens[ADMIN_TOKEN] = sim.options.tokens[NOSIS_TOKEN]
    await twins.read_all(paths)
    got = await get(twins.http, f"{twins.cached.base_url}/api/v1/sections/{f.S_LAB_A}?include[]=students",
                    headers=auth())
    assert len(got.json["students"]) == 2 and "sis_section_id" not in got.json
