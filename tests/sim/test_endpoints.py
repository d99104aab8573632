"""The six endpoints over HTTP against a hand-built institution: order, scope, refs, shapes, parameters."""

from __future__ import annotations

from typing import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from exporter.sim import NOSIS_TOKEN, Institution, SimOptions, Simulator
from exporter.sim.institution import SHARD
from exporter.sim.server import route

from . import factory as f
from .httpkit import auth, get

NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}
SECTION_KEYS_NOSIS = {"id", "name", "course_id", "nonxlist_course_id", "start_at", "end_at",
                      "restrict_enrollments_to_section_dates", "created_at"}
SECTION_KEYS_ADMIN = SECTION_KEYS_NOSIS | {"integration_id", "sis_course_id", "sis_section_id", "sis_import_id"}


@pytest.fixture
def inst() -> Institution:
    return f.build()


@pytest.fixture
async def sim(inst: Institution) -> AsyncIterator[Simulator]:
    async with Simulator(inst, SimOptions()) as s:
        yield s


def enc(ref: str) -> str:
    """Percent-encode a reference for a path segment, as a client must."""
    return quote(ref, safe=":")


async def test_sections_sorted_by_collation_then_id_and_crosslisting(sim: Simulator, http) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/courses/{f.MATH}/sections?per_page=100")
    assert [s["id"] for s in got.json] == [f.S_XLIST, f.S_ELAN, f.S_ELAN_ACCENT, f.S_LAB_A, f.S_LAB_B,
                                          f.S_ZETA2, f.S_ZETA1]
    xlist = got.json[0]
    assert xlist["course_id"] == f.MATH and xlist["nonxlist_course_id"] == f.ODD
    assert xlist["sis_course_id"] == "MATH-101/F26"  # the course it now lives in
    odd = await get(http, f"{sim.base_url}/api/v1/courses/{f.ODD}/sections")
    assert [s["id"] for s in odd.json] == [f.S_ODD]  # gone from the original course


async def test_crosslisting_while_running(sim: Simulator, http) -> None:
    sim.institution.crosslist_section(f.S_ODD, f.DRAFT)
    draft = await get(http, f"{sim.base_url}/api/v1/courses/{f.DRAFT}/sections")
    assert {s["id"]: s["nonxlist_course_id"] for s in draft.json} == {f.S_DRAFT: None, f.S_ODD: f.ODD}
    assert (await get(http, f"{sim.base_url}/api/v1/courses/{f.ODD}/sections")).json == []
    sim.institution.uncrosslist_section(f.S_ODD)
    assert [s["id"] for s in (await get(http, f"{sim.base_url}/api/v1/courses/{f.ODD}/sections")).json] == [f.S_ODD]


async def test_account_courses_scope_and_states(sim: Simulator, http) -> None:
    async def ids(url: str) -> list[int]:
        return [c["id"] for c in (await get(http, f"{sim.base_url}{url}")).json]

    assert await ids("/api/v1/accounts/self/courses") == [f.MATH, f.DRAFT, f.ODD]  # by id, deleted left out
    assert await ids(f"/api/v1/accounts/{f.ROOT}/courses") == [f.MATH, f.DRAFT, f.ODD]
    assert await ids("/api/v1/accounts/1/courses") == [f.MATH, f.DRAFT, f.ODD]  # local id on shard 1
    assert await ids(f"/api/v1/accounts/sis_account_id:{enc('ENG')}/courses") == [f.DRAFT, f.ODD]
    assert await ids(f"/api/v1/accounts/sis_account_id:{enc('ENG/CS é')}/courses") == [f.ODD]
    assert await ids(f"/api/v1/accounts/sis_integration_id:{enc('acct+1')}/courses") == [f.ODD]
    assert await ids("/api/v1/accounts/self/courses?state[]=all") == [f.MATH, f.GONE, f.DRAFT, f.ODD]
    assert await ids("/api/v1/accounts/self/courses?state[]=deleted") == [f.GONE]
    assert await ids("/api/v1/accounts/self/courses?published=true") == [f.MATH]
    odd = (await get(http, f"{sim.base_url}/api/v1/accounts/self/courses")).json[-1]
    assert odd["workflow_state"] == "unpublished" and odd["sis_course_id"] == "a %+é 0042"
    missing = await get(http, f"{sim.base_url}/api/v1/accounts/sis_account_id:NOPE/courses")
    assert missing.status == 404 and missing.json == NOT_FOUND


@pytest.mark.parametrize("ref", ["MATH-101/F26", "a %+é 0042"])
async def test_sis_course_refs_round_trip(sim: Simulator, http, ref: str) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/courses/sis_course_id:{enc(ref)}")
    assert got.status == 200 and got.json["sis_course_id"] == ref
    sections = await get(http, f"{sim.base_url}/api/v1/courses/sis_course_id:{enc(ref)}/sections?per_page=1")
    # Links carry the reference re-escaped the way a Rails path helper does
    assert f"/courses/sis_course_id:{quote(ref, safe=chr(0) + ':+&')}/sections?" in sections.links["current"]
    again = await get(http, sections.links["current"])
    assert again.json == sections.json
    hexed = await get(http, f"{sim.base_url}/api/v1/courses/hex:sis_course_id:{ref.encode().hex()}")
    assert hexed.json["id"] == got.json["id"]


@pytest.mark.parametrize("ref", ["00017", "SEC/01 é", "007%2F", "001 + 002"])
async def test_sis_section_refs_round_trip(sim: Simulator, http, ref: str) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/sections/sis_section_id:{enc(ref)}")
    assert got.status == 200 and got.json["sis_section_id"] == ref
    via_course = await get(http, f"{sim.base_url}/api/v1/courses/sis_course_id:{enc('MATH-101/F26')}"
                                 f"/sections/sis_section_id:{enc(ref)}")
    assert via_course.json == got.json
    users = await get(http, f"{sim.base_url}/api/v1/sections/sis_section_id:{enc(ref)}/users")
    assert users.status == 200


async def test_integration_id_refs(sim: Simulator, http) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/courses/sis_integration_id:{enc('int/1')}/sections")
    assert [s["id"] for s in got.json] == [f.S_DRAFT]


def test_router_decodes_each_segment_once() -> None:
    r = route("/api/v1/courses/sis_course_id:A%2FB%25C%2B+%20%C3%A9/sections")
    assert r is not None and r.refs == ("sis_course_id:A/B%C++ é",)
    assert r.path() == "/api/v1/courses/sis_course_id:A%2FB%25C++%20%C3%A9/sections"
    assert route("/api/v1/courses/sis_course_id:%252F").refs == ("sis_course_id:%2F",)  # not decoded twice
    assert route("/api/v1/courses/a/b/c/d") is None and route("/api/v2/courses/1") is None


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/courses/{f.GONE}", f"/api/v1/courses/{f.GONE}/sections", f"/api/v1/sections/{f.S_GONE}",
        f"/api/v1/sections/{f.S_GONE}/users", f"/api/v1/sections/{f.S_DELETED}",
        f"/api/v1/sections/{f.S_DELETED}/users", f"/api/v1/courses/{f.MATH}/sections/{f.S_DELETED}",
        f"/api/v1/courses/{f.ODD}/sections/{f.S_XLIST}",  # cross-listed away from this course
        f"/api/v1/courses/{f.MATH}/sections/{f.S_ODD}",  # another course's section
        "/api/v1/courses/999999999999", "/api/v1/courses/sis_course_id:nope", "/api/v1/courses/bogus:1",
        "/api/v1/courses/12345678901234567890", "/api/v1/sections/sis_course_id:MATH-101%2FF26",
        "/api/v1/nothing/here",
    ],
)
async def test_missing_and_deleted_are_404(sim: Simulator, http, path: str) -> None:
    got = await get(http, sim.base_url + path)
    assert got.status == 404 and got.json == NOT_FOUND


async def test_deleted_course_visible_with_all_courses(sim: Simulator, http) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/courses/{f.GONE}?include[]=all_courses")
    assert got.status == 200 and got.json["workflow_state"] == "deleted"


async def test_deleting_while_running(sim: Simulator, http) -> None:
    sim.institution.delete_section(f.S_LAB_A)
    assert (await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users")).status == 404
    assert f.S_LAB_A not in [s["id"] for s in
                             (await get(http, f"{sim.base_url}/api/v1/courses/{f.MATH}/sections")).json]
    sim.institution.delete_course(f.MATH)
    assert (await get(http, f"{sim.base_url}/api/v1/courses/{f.MATH}/sections")).status == 404
    assert (await get(http, f"{sim.base_url}/api/v1/sections/{f.S_XLIST}")).status == 404


async def test_section_json_keys_by_permission(sim: Simulator, http) -> None:
    admin = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_DRAFT}")
    assert set(admin.json) == SECTION_KEYS_ADMIN
    assert admin.json["sis_section_id"] is None and admin.json["start_at"] is None  # nulls kept
    async with aiohttp.ClientSession(headers=auth(NOSIS_TOKEN)) as nosis:
        got = await get(nosis, f"{sim.base_url}/api/v1/sections/{f.S_DRAFT}")
        assert set(got.json) == SECTION_KEYS_NOSIS  # absent keys, not nulls
        users = await get(nosis, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?per_page=100")
        for u in users.json:
            assert not {"sis_user_id", "integration_id", "login_id", "sis_import_id"} & set(u)


async def test_section_includes(sim: Simulator, http) -> None:
    url = f"{sim.base_url}/api/v1/courses/{f.MATH}/sections?per_page=100&include[]=total_students"
    totals = {s["id"]: s["total_students"] for s in (await get(http, url)).json}
    # active + invited students; not the test student, inactive, completed, rejected, deleted, teachers or TAs
    assert totals[f.S_LAB_A] == 7 and totals[f.S_LAB_B] == 0
    url = (f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}?include[]=students&include[]=enrollments"
           f"&include[]=permissions&include[]=passback_status")
    got = (await get(http, url)).json
    assert {u["id"] for u in got["students"]} == {f.U_ZOE, f.U_ZOE2, f.U_AGREN, f.U_AGREN2, f.U_BIG, f.U_PENDING,
                                                 f.U_TWICE, f.U_INACTIVE, f.U_REJECTED, f.U_DONE}
    assert all(u["enrollments"][0]["type"] == "StudentEnrollment" for u in got["students"])
    assert got["permissions"] == {"manage_calendar": True}
    assert "passback_status" in got and got["passback_status"] is None  # no SIS grade passback ever ran
    empty = (await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_B}?include[]=students")).json
    assert empty["students"] is None


async def test_students_are_capped_in_enrollment_order(sim: Simulator, http) -> None:
    # every non-deleted StudentEnrollment, in enrollment id order (find_each)
    everyone = [f.U_ZOE, f.U_ZOE2, f.U_AGREN, f.U_AGREN2, f.U_BIG, f.U_PENDING, f.U_TWICE, f.U_INACTIVE,
                f.U_REJECTED, f.U_DONE]
    url = f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}?include[]=students&include[]=avatar_url"
    got = (await get(http, url)).json
    assert [u["id"] for u in got["students"]] == everyone
    assert all("avatar_url" in u and "enrollments" not in u for u in got["students"])
    sim.options.students_cap = 3
    assert [u["id"] for u in (await get(http, url)).json["students"]] == everyone[:3]
    listed = await get(http, f"{sim.base_url}/api/v1/courses/{f.MATH}/sections?all=1&include[]=students")
    assert [len(s["students"] or ()) for s in listed.json if s["id"] == f.S_LAB_A] == [3]
    sim.options.students_cap = None
    assert len((await get(http, url)).json["students"]) == 10


async def test_user_count_counts_live_enrollments(sim: Simulator, http) -> None:
    got = (await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}?include[]=user_count")).json
    # active or pending, test student left out; Twice counts twice (student and TA)
    assert got["user_count"] == 10


@pytest.mark.parametrize(
    ("query", "minimum", "status", "expected"),
    [
        ("search_term=lab", 2, 200, [f.S_LAB_A, f.S_LAB_B]),  # case-insensitive substring of the name
        ("search_term=LA", 2, 200, [f.S_ELAN, f.S_ELAN_ACCENT, f.S_LAB_A, f.S_LAB_B]),
        ("search_term=%20", 2, 200, [f.S_XLIST, f.S_ELAN, f.S_ELAN_ACCENT, f.S_LAB_A, f.S_LAB_B, f.S_ZETA2,
                                     f.S_ZETA1]),  # blank: no search
        ("search_term=z", 2, 400, "2 or more characters is required"),
        ("search_term[]=lab", 2, 400, "2 or more characters is required"),  # not a string
        ("search_term=la", 3, 400, "3 or more characters is required"),
        ("search_term=z", 0, 200, [f.S_ZETA2, f.S_ZETA1]),
    ],
)
async def test_sections_search_term(sim: Simulator, http, query: str, minimum: int, status: int,
                                    expected: list[int] | str) -> None:
    sim.options.min_search_term_length = minimum
    got = await get(http, f"{sim.base_url}/api/v1/courses/{f.MATH}/sections?per_page=100&{query}")
    assert got.status == status
    if status == 200:
        assert [s["id"] for s in got.json] == expected
    else:
        assert got.json == {"errors": [{"field": "search_term", "code": "invalid", "message": expected}]}


async def test_users_roster_order_and_one_entry_per_user(sim: Simulator, http) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?per_page=100")
    assert [u["id"] for u in got.json] == [f.U_AGREN, f.U_AGREN2, f.U_BERG, f.U_BIG, f.U_DONE, f.U_INACTIVE,
                                          f.U_PENDING, f.U_TWICE, f.U_ZOE, f.U_ZOE2]
    by_id = {u["id"]: u for u in got.json}
    assert set(by_id[f.U_ZOE]) == {"id", "name", "created_at", "sortable_name", "short_name", "sis_user_id",
                                   "integration_id", "sis_import_id", "login_id", "email", "pronouns"}
    assert "pronouns" not in by_id[f.U_ZOE2] and "avatar_url" not in by_id[f.U_ZOE2]
    # only invited: no pseudonym, no personal info
    assert set(by_id[f.U_PENDING]) == {"id", "name", "created_at", "sortable_name", "short_name"}
    assert by_id[f.U_BIG]["id"] == f.U_BIG  # > 2**53, exact through orjson
    with_avatar = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?include[]=avatar_url")
    assert all(u["avatar_url"].startswith("https://") for u in with_avatar.json)


async def test_test_students_are_removed_after_paging(sim: Simulator, http) -> None:
    base = f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?per_page=2"
    page4 = await get(http, f"{base}&page=4")
    assert [u["id"] for u in page4.json] == [f.U_PENDING]  # the test student was its second entry
    assert "next" in page4.links
    with_test = await get(http, f"{base}&page=4&include[]=test_student")
    assert [u["id"] for u in with_test.json] == [f.U_PENDING, f.U_TEST]
    view = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?enrollment_type[]=student_view")
    assert [u["id"] for u in view.json] == [f.U_TEST]
    last = await get(http, f"{base}&page=6")
    assert [u["id"] for u in last.json] == [f.U_ZOE2] and "next" not in last.links
    assert last.links["last"].endswith("page=6&per_page=2")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("enrollment_type=teacher", [f.U_BERG]),
        ("enrollment_type[]=ta", [f.U_TWICE]),
        ("enrollment_type[]=ta&enrollment_type[]=teacher", [f.U_BERG, f.U_TWICE]),
        ("enrollment_type[]=observer", [f.U_DONE]),
        ("enrollment_type[]=designer", []),
        ("exclude_inactive=true&enrollment_type=student",
         [f.U_AGREN, f.U_AGREN2, f.U_BIG, f.U_DONE, f.U_PENDING, f.U_TWICE, f.U_ZOE, f.U_ZOE2]),
        ("search_term=ZO", [f.U_ZOE, f.U_ZOE2]),  # substring of the name, case-insensitive
        ("search_term=zo%C3%AB", [f.U_ZOE]),  # ILIKE is accent-sensitive
        ("search_term=login" + str(f.U_BERG % 10000), [f.U_BERG]),  # login ids are searchable by admins
    ],
)
async def test_users_parameters(sim: Simulator, http, query: str, expected: list[int]) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?per_page=100&{query}")
    assert got.status == 200 and [u["id"] for u in got.json] == expected


async def test_users_enrollments_include_groups_enrollments(sim: Simulator, http) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?per_page=100&include[]=enrollments")
    twice = next(u for u in got.json if u["id"] == f.U_TWICE)
    assert sorted(e["type"] for e in twice["enrollments"]) == ["StudentEnrollment", "TaEnrollment"]
    assert all(e["course_section_id"] == f.S_LAB_A for e in twice["enrollments"])


async def test_bad_user_parameters_are_400(sim: Simulator, http) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?enrollment_type[]=wizard")
    assert got.status == 400 and got.json == {"errors": [{"message": "Invalid enrollment type: wizard"}]}
    short = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?search_term=z")
    assert short.status == 400 and short.json["errors"][0]["field"] == "search_term"


async def test_string_ids(sim: Simulator, http) -> None:
    headers = {"Accept": "application/json+canvas-string-ids"}
    got = await get(http, f"{sim.base_url}/api/v1/courses/{f.MATH}/sections?per_page=100", headers=headers)
    xlist = got.json[0]
    assert xlist["id"] == str(f.S_XLIST) and xlist["course_id"] == str(f.MATH)
    assert xlist["nonxlist_course_id"] == str(f.ODD) and xlist["sis_import_id"] == str(SHARD + 9)
    assert got.json[-1]["nonxlist_course_id"] is None  # nulls stay null
    users = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_A}/users?include[]=enrollments",
                      headers=headers)
    u = users.json[0]
    assert u["id"] == str(f.U_AGREN) and u["sis_user_id"] == f"{f.U_AGREN % 10000:08d}"
    assert u["enrollments"][0]["course_section_id"] == str(f.S_LAB_A)
    plain = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_XLIST}")
    assert plain.json["id"] == f.S_XLIST and plain.body.startswith(b'{"id":9010000000000301,')


async def test_timestamps_are_utc_whole_seconds(sim: Simulator, http) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/sections/{f.S_LAB_B}")
    assert got.json["created_at"] == "2026-01-01T00:03:20Z"  # TS + 200 s
    assert got.json["start_at"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("token", ["admin", "nosis"])
@pytest.mark.parametrize("includes", [set(), {"avatar_url"}, {"sis_user_id", "email", "avatar_url"}])
def test_fast_user_json_matches_user_json(inst: Institution, token: str, includes: set[str]) -> None:
    from exporter.sim.auth import ADMIN, NOSIS
    from exporter.sim.endpoints import users_json_fast
    from exporter.sim.views import user_json

    perms = ADMIN if token == "admin" else NOSIS
    roster = inst.section_roster(f.S_LAB_A)
    assert users_json_fast(roster, perms, includes) == [
        user_json(r.user, perms, includes, hidden=r.personal_hidden) for r in roster]
