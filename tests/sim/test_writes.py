"""The five write operations over HTTP, each checked through the read endpoints and the ground truth."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any, AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from exporter.sim import (
    ADMIN_TOKEN,
    NOSIS_TOKEN,
    AccountScope,
    CourseScope,
    Faults,
    Institution,
    Permissions,
    SimOptions,
    Simulator,
    ground_truth,
)
from exporter.sim.server import route

from . import factory as f
from .httpkit import Got, auth, get, send
from .test_truth import by_key, crawl_account

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}
UNAUTHORIZED = {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]}
SECTION_KEYS_ADMIN = {"id", "name", "course_id", "nonxlist_course_id", "start_at", "end_at",
                      "restrict_enrollments_to_section_dates", "created_at", "integration_id", "sis_course_id",
                      "sis_section_id", "sis_import_id"}


def enc(ref: str) -> str:
    return quote(ref, safe=":")


def fields(kind: str, values: dict[str, Any], **top: Any) -> dict[str, Any]:
    """The same course_section[...] values as a urlencoded form or a JSON body."""
    if kind == "form":
        form = {f"course_section[{k}]": str(v) for k, v in values.items()}
        return {"data": {**form, **{k: str(v) for k, v in top.items()}}}
    return {"json": {"course_section": values, **top}}


@pytest.fixture
def inst() -> Institution:
    return f.build()


@pytest.fixture
async def sim(inst: Institution) -> AsyncIterator[Simulator]:
    async with Simulator(inst, SimOptions(now=lambda: NOW)) as s:
        yield s


@pytest.fixture
async def nosis() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=auth(NOSIS_TOKEN)) as s:
        yield s


class Api:
    """Short names for the calls these tests make."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.base = f"{sim.base_url}/api/v1"
        self.s = session

    async def get(self, path: str) -> Got:
        return await get(self.s, self.base + path)

    async def send(self, method: str, path: str, **kw: Any) -> Got:
        return await send(self.s, method, self.base + path, **kw)

    async def section_ids(self, course_id: int) -> list[int]:
        got = await self.get(f"/courses/{course_id}/sections?per_page=100")
        assert got.status == 200
        return [s["id"] for s in got.json]


@pytest.fixture
def admin(sim: Simulator, http: aiohttp.ClientSession) -> Api:
    return Api(sim, http)


@pytest.fixture
def teacher(sim: Simulator, nosis: aiohttp.ClientSession) -> Api:
    return Api(sim, nosis)


def truth_section_ids(inst: Institution, *course_ids: int) -> list[int]:
    return [r["id"] for r in ground_truth(inst, CourseScope(map(str, course_ids))).sections]


# ----- POST /api/v1/courses/:course_id/sections -----

@pytest.mark.parametrize("body", ["form", "json"])
async def test_create_then_read_it_back_every_way(admin: Api, inst: Institution, body: str) -> None:
    values = {"name": "Lab C", "sis_section_id": "LAB-C/01", "integration_id": "int-c",
              "start_at": "2026-09-01T08:00Z", "end_at": "2026-12-20T17:30:00-05:00",
              "restrict_enrollments_to_section_dates": "1" if body == "form" else True}
    got = await admin.send("POST", f"/courses/sis_course_id:{enc('MATH-101/F26')}/sections", **fields(body, values))
    assert got.status == 200, got.json
    new = got.json
    assert set(new) == SECTION_KEYS_ADMIN
    assert {k: new[k] for k in new if k != "id"} == {
        "name": "Lab C", "course_id": f.MATH, "nonxlist_course_id": None, "sis_section_id": "LAB-C/01",
        "integration_id": "int-c", "sis_course_id": "MATH-101/F26", "sis_import_id": None,
        "start_at": "2026-09-01T08:00:00Z", "end_at": "2026-12-20T22:30:00Z",
        "restrict_enrollments_to_section_dates": True, "created_at": "2027-01-15T08:00:00Z"}
    assert (await admin.get(f"/sections/{new['id']}")).json == new
    assert (await admin.get(f"/courses/{f.MATH}/sections/sis_section_id:{enc('LAB-C/01')}")).json == new
    assert (await admin.get("/sections/sis_integration_id:int-c")).json == new
    # listed by name collation: after "lab b", before "Zeta"
    assert await admin.section_ids(f.MATH) == [f.S_XLIST, f.S_ELAN, f.S_ELAN_ACCENT, f.S_LAB_A, f.S_LAB_B,
                                               new["id"], f.S_ZETA2, f.S_ZETA1]
    counted = await admin.get(f"/sections/{new['id']}?include[]=total_students")
    assert counted.json["total_students"] == 0
    assert (await admin.get(f"/sections/{new['id']}/users")).json == []
    assert new["id"] in truth_section_ids(inst, f.MATH)


async def test_create_with_no_body_takes_canvas_defaults(admin: Api) -> None:
    got = await admin.send("POST", f"/courses/{f.DRAFT}/sections")
    assert got.status == 200
    assert got.json["name"] == f"Course {f.DRAFT} 2027-01-15"  # infer_defaults: course name and today
    assert got.json["restrict_enrollments_to_section_dates"] is None  # never set: null, not false
    assert got.json["start_at"] is None and got.json["sis_section_id"] is None
    assert got.json["id"] in await admin.section_ids(f.DRAFT)


async def test_a_teacher_creates_but_its_sis_ids_are_ignored(admin: Api, teacher: Api) -> None:
    got = await teacher.send("POST", f"/courses/{f.MATH}/sections", data={
        "course_section[name]": "Teacher's", "course_section[sis_section_id]": "T-1",
        "course_section[integration_id]": "T-int"})
    assert got.status == 200 and "sis_section_id" not in got.json and "integration_id" not in got.json
    seen = (await admin.get(f"/sections/{got.json['id']}")).json
    assert seen["name"] == "Teacher's" and seen["sis_section_id"] is None and seen["integration_id"] is None
    assert (await admin.get("/sections/sis_section_id:T-1")).status == 404


async def test_sis_id_clashes_and_reactivation(admin: Api, inst: Institution) -> None:
    def taken(sis: str) -> dict:
        message = f'SIS ID "{sis}" is already in use'
        return {"errors": {"sis_source_id": [{"attribute": "sis_source_id", "type": message, "message": message}]}}

    before = await admin.section_ids(f.MATH)
    dup = await admin.send("POST", f"/courses/{f.MATH}/sections", data={"course_section[sis_section_id]": "00017"})
    assert (dup.status, dup.json) == (400, taken("00017"))
    # reactivation only revives a deleted section: the holder is active, so still a clash
    active = await admin.send("POST", f"/courses/{f.MATH}/sections", json={
        "course_section": {"sis_section_id": "00017"}, "enable_sis_reactivation": True})
    assert (active.status, active.json) == (400, taken("00017"))
    assert await admin.section_ids(f.MATH) == before  # nothing was created

    assert (await admin.send("PUT", f"/sections/{f.S_LAB_B}", json={
        "course_section": {"integration_id": "lab-b-int"}})).status == 200
    assert (await admin.send("DELETE", f"/sections/{f.S_LAB_B}")).status == 200
    gone = await admin.send("POST", f"/courses/{f.MATH}/sections", data={"course_section[sis_section_id]": "00017"})
    assert (gone.status, gone.json) == (400, taken("00017"))  # a deleted section still holds its SIS id

    back = await admin.send("POST", f"/courses/{f.MATH}/sections", data={
        "course_section[name]": "not applied", "course_section[sis_section_id]": "00017",
        "enable_sis_reactivation": "1"})
    assert back.status == 200
    # the same section, its own name kept; integration_id set from the request, here absent, so cleared
    assert back.json["id"] == f.S_LAB_B and back.json["name"] == "lab b" and back.json["integration_id"] is None
    assert f.S_LAB_B in await admin.section_ids(f.MATH)
    assert (await admin.get("/sections/sis_integration_id:lab-b-int")).status == 404
    assert f.S_LAB_B in truth_section_ids(inst, f.MATH)

    fresh = await admin.send("POST", f"/courses/{f.MATH}/sections", data={
        "course_section[sis_section_id]": "NEW-9", "enable_sis_reactivation": "true"})
    assert fresh.status == 200 and fresh.json["sis_section_id"] == "NEW-9"  # nothing to revive: carries on


async def test_reactivation_looks_in_this_course_only(admin: Api) -> None:
    made = await admin.send("POST", f"/courses/{f.ODD}/sections", data={"course_section[sis_section_id]": "ODD-1"})
    assert (await admin.send("DELETE", f"/sections/{made.json['id']}")).status == 200
    elsewhere = await admin.send("POST", f"/courses/{f.MATH}/sections", data={
        "course_section[sis_section_id]": "ODD-1", "enable_sis_reactivation": "1"})
    assert elsewhere.status == 400 and "sis_source_id" in elsewhere.json["errors"]


async def test_integration_id_clash(admin: Api) -> None:
    assert (await admin.send("POST", f"/courses/{f.MATH}/sections", data={
        "course_section[integration_id]": "dup"})).status == 200
    clash = await admin.send("POST", f"/courses/{f.DRAFT}/sections", data={"course_section[integration_id]": "dup"})
    message = 'INTEGRATRION ID "dup" is already in use'  # sic, Canvas's spelling
    assert (clash.status, clash.json) == (400, {"errors": {"integration_id": [
        {"attribute": "integration_id", "type": message, "message": message}]}})


async def test_bad_dates_and_names(sim: Simulator, admin: Api) -> None:
    before = await admin.section_ids(f.MATH)
    url = f"/courses/{f.MATH}/sections"
    garbage = await admin.send("POST", url, data={"course_section[start_at]": "next tuesday"})
    assert (garbage.status, garbage.json) == (400, {"errors": {"start_at": [
        {"attribute": "start_at", "type": "invalid", "message": "invalid"}]}})
    backwards = await admin.send("POST", url, json={"course_section": {"start_at": "2026-02-01",
                                                                       "end_at": "2026-01-01"}})
    message = "End date cannot be before start date"
    assert (backwards.status, backwards.json) == (400, {"errors": {"end_at": [
        {"attribute": "end_at", "type": message, "message": message}]}})
    several = await admin.send("POST", url, json={"course_section": {"name": "n" * 256, "end_at": 20260101}})
    assert several.status == 400 and set(several.json["errors"]) == {"name", "end_at"}
    assert several.json["errors"]["name"][0]["type"] == "too_long"
    assert await admin.section_ids(f.MATH) == before

    sim.options.lenient_dates = True  # as Rails' typecast would: an unreadable date is stored as null
    lenient = await admin.send("POST", url, data={"course_section[start_at]": "next tuesday"})
    assert lenient.status == 200 and lenient.json["start_at"] is None

    cleared = await admin.send("PUT", f"/sections/{f.S_LAB_B}", data={"course_section[start_at]": ""})
    assert cleared.status == 200 and cleared.json["start_at"] is None  # "" clears a date


async def test_create_refusals(sim: Simulator, admin: Api) -> None:
    assert (await admin.send("POST", f"/courses/{f.GONE}/sections")).json == NOT_FOUND
    assert (await admin.send("POST", "/courses/sis_course_id:nope/sections")).status == 404
    bad = await admin.send("POST", f"/courses/{f.MATH}/sections", data=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert (bad.status, bad.json) == (400, {"errors": [{"message": "An error occurred.",
                                                        "error_code": "bad_request"}]})
    sim.options.tokens["1~reader"] = Permissions()  # reads rosters, manages nothing
    async with aiohttp.ClientSession(headers=auth("1~reader")) as reader:
        refused = await send(reader, "POST", f"{admin.base}/courses/{f.MATH}/sections")
    assert (refused.status, refused.json) == (401, UNAUTHORIZED)
    assert "WWW-Authenticate" not in refused.headers


# ----- PUT /api/v1/sections/:id -----

@pytest.mark.parametrize("body", ["form", "json"])
async def test_edit_then_read_it_back(admin: Api, body: str) -> None:
    values = {"name": "Lab B (evening)", "start_at": "2026-01-05T18:00Z", "end_at": "2026-05-01T18:00Z",
              "restrict_enrollments_to_section_dates": "true" if body == "form" else True}
    got = await admin.send("PUT", "/sections/sis_section_id:00017", **fields(body, values))
    assert got.status == 200
    read = (await admin.get(f"/courses/{f.MATH}/sections/{f.S_LAB_B}")).json
    assert read == got.json
    assert (read["name"], read["start_at"], read["end_at"], read["restrict_enrollments_to_section_dates"]) == (
        "Lab B (evening)", "2026-01-05T18:00:00Z", "2026-05-01T18:00:00Z", True)
    assert read["sis_section_id"] == "00017"  # not passed, not changed
    listed = {s["id"]: s for s in (await admin.get(f"/courses/{f.MATH}/sections?per_page=100")).json}
    assert listed[f.S_LAB_B] == read
    off = await admin.send("PUT", f"/sections/{f.S_LAB_B}", **fields(
        body, {"restrict_enrollments_to_section_dates": "0" if body == "form" else False}))
    assert off.json["restrict_enrollments_to_section_dates"] is False


async def test_edit_with_no_body_changes_nothing(admin: Api) -> None:
    before = (await admin.get(f"/sections/{f.S_LAB_A}")).json
    got = await admin.send("PUT", f"/sections/{f.S_LAB_A}")
    assert got.status == 200 and got.json == before


async def test_sticky_fields_survive_override_sis_stickiness_false(admin: Api) -> None:
    before = (await admin.get(f"/sections/{f.S_LAB_B}")).json
    got = await admin.send("PUT", f"/sections/{f.S_LAB_B}", data={
        "course_section[name]": "New Name", "course_section[start_at]": "2030-01-01T00:00Z",
        "course_section[restrict_enrollments_to_section_dates]": "1", "override_sis_stickiness": "false"})
    assert got.status == 200
    assert got.json["name"] == before["name"] and got.json["start_at"] == before["start_at"]
    assert got.json["restrict_enrollments_to_section_dates"] is True  # the one field that is not sticky


async def test_sis_ids_are_edited_only_with_manage_sis(admin: Api, teacher: Api, inst: Institution) -> None:
    refused = await teacher.send("PUT", f"/sections/{f.S_LAB_A}", data={
        "course_section[name]": "New Name", "course_section[sis_section_id]": "NEWSIS"})
    assert (refused.status, refused.json) == (
        401, {"message": "You must have manage_sis permission to update sis attributes"})
    assert (await admin.get(f"/sections/{f.S_LAB_A}")).json["name"] == "Lab A"  # nothing changed
    renamed = await teacher.send("PUT", f"/sections/{f.S_LAB_A}", data={"course_section[name]": "Lab Alpha"})
    assert renamed.status == 200 and renamed.json["name"] == "Lab Alpha"

    got = await admin.send("PUT", f"/sections/{f.S_LAB_A}", json={
        "course_section": {"sis_section_id": "NEWSIS", "integration_id": "int1"}})
    assert got.status == 200 and (got.json["sis_section_id"], got.json["integration_id"]) == ("NEWSIS", "int1")
    assert (await admin.get("/sections/sis_section_id:NEWSIS")).json["id"] == f.S_LAB_A
    assert (await admin.get("/sections/sis_integration_id:int1")).json["id"] == f.S_LAB_A
    assert (await admin.get(f"/sections/sis_section_id:{enc('SEC/01 é')}")).status == 404  # the old one is free
    users = await admin.get(f"/sections/{f.S_LAB_A}/users?include[]=enrollments&per_page=1")
    assert users.json[0]["enrollments"][0]["sis_section_id"] == "NEWSIS"
    clash = await admin.send("PUT", f"/sections/{f.S_LAB_B}", data={"course_section[sis_section_id]": "NEWSIS"})
    assert clash.status == 400 and "sis_source_id" in clash.json["errors"]
    cleared = await admin.send("PUT", f"/sections/{f.S_LAB_A}", data={"course_section[sis_section_id]": ""})
    assert cleared.json["sis_section_id"] is None and cleared.json["integration_id"] == "int1"
    assert (await admin.get("/sections/sis_section_id:NEWSIS")).status == 404
    row = next(r for r in ground_truth(inst, CourseScope([str(f.MATH)])).sections if r["id"] == f.S_LAB_A)
    assert (row["name"], row["sis_section_id"], row["integration_id"]) == ("Lab Alpha", None, "int1")


@pytest.mark.parametrize("section", [f.S_DELETED, f.S_GONE, 999_999_999])
async def test_edit_missing_deleted_or_in_deleted_course_is_404(admin: Api, section: int) -> None:
    got = await admin.send("PUT", f"/sections/{section}", data={"course_section[name]": "x"})
    assert (got.status, got.json) == (404, NOT_FOUND)


# ----- DELETE /api/v1/sections/:id -----

async def test_delete_returns_the_former_section_and_it_is_gone(admin: Api, inst: Institution) -> None:
    before = (await admin.get(f"/sections/{f.S_LAB_B}")).json
    got = await admin.send("DELETE", "/sections/sis_section_id:00017")
    assert got.status == 200 and got.json == before
    for path in (f"/sections/{f.S_LAB_B}", f"/sections/{f.S_LAB_B}/users", f"/courses/{f.MATH}/sections/{f.S_LAB_B}"):
        assert (await admin.get(path)).json == NOT_FOUND
    assert f.S_LAB_B not in await admin.section_ids(f.MATH)
    assert f.S_LAB_B not in truth_section_ids(inst, f.MATH)
    assert (await admin.send("DELETE", f"/sections/{f.S_LAB_B}")).status == 404


async def test_delete_refuses_a_section_with_enrollments(admin: Api, inst: Institution) -> None:
    got = await admin.send("DELETE", f"/sections/{f.S_LAB_A}")
    assert (got.status, got.json) == (400, {"message": "You can't delete a section that has enrollments"})
    assert f.S_LAB_A in await admin.section_ids(f.MATH)
    for user in {e.user_id for e in inst.enrollments_in_section(f.S_XLIST)}:
        inst.unenroll(user, f.S_XLIST)
    assert (await admin.send("DELETE", f"/sections/{f.S_XLIST}")).status == 200  # emptied through the model


async def test_rejected_and_test_student_enrollments_do_not_block_deleting(admin: Api, inst: Institution) -> None:
    made = (await admin.send("POST", f"/courses/{f.MATH}/sections", data={"course_section[name]": "tmp"})).json
    inst.enroll(f.U_REJECTED, made["id"], state="rejected")
    inst.enroll(f.U_TEST, made["id"], "StudentViewEnrollment")
    assert (await admin.send("DELETE", f"/sections/{made['id']}")).status == 200
    assert {e.workflow_state for e in inst.enrollments_in_section(made["id"])} == {"deleted"}


# ----- POST /api/v1/sections/:id/crosslist/:new_course_id -----

async def test_crosslist_moves_the_section_and_its_enrollments(admin: Api, inst: Institution) -> None:
    got = await admin.send("POST", f"/sections/{f.S_ODD}/crosslist/{f.DRAFT}")
    assert got.status == 200
    assert (got.json["id"], got.json["course_id"], got.json["nonxlist_course_id"]) == (f.S_ODD, f.DRAFT, f.ODD)
    assert await admin.section_ids(f.DRAFT) == [f.S_DRAFT, f.S_ODD]
    assert await admin.section_ids(f.ODD) == []
    assert (await admin.get(f"/courses/{f.DRAFT}/sections/{f.S_ODD}")).json == got.json
    assert (await admin.get(f"/courses/{f.ODD}/sections/{f.S_ODD}")).status == 404
    users = await admin.get(f"/sections/{f.S_ODD}/users?include[]=enrollments")
    assert [u["id"] for u in users.json] == [f.U_ZOE]
    assert users.json[0]["enrollments"][0]["course_id"] == f.DRAFT
    assert truth_section_ids(inst, f.ODD, f.DRAFT) == [f.S_DRAFT, f.S_ODD]
    # a second cross-listing keeps the original course
    again = await admin.send("POST", f"/sections/{f.S_ODD}/crosslist/sis_course_id:{enc('MATH-101/F26')}")
    assert (again.json["course_id"], again.json["nonxlist_course_id"]) == (f.MATH, f.ODD)


async def test_crosslist_by_sis_refs_and_edge_cases(admin: Api, teacher: Api) -> None:
    same = await admin.send("POST", f"/sections/sis_section_id:XL-1/crosslist/{f.MATH}")
    assert (same.status, same.json["course_id"], same.json["nonxlist_course_id"]) == (200, f.MATH, f.ODD)
    moved = await admin.send("POST", f"/sections/sis_section_id:XL-1/crosslist/sis_integration_id:{enc('int/1')}")
    assert (moved.json["course_id"], moved.json["nonxlist_course_id"]) == (f.DRAFT, f.ODD)
    # back into the original course by cross-listing: Canvas keeps nonxlist_course_id (crosslist_to_course)
    home = await admin.send("POST", f"/sections/{f.S_XLIST}/crosslist/{f.ODD}")
    assert (home.json["course_id"], home.json["nonxlist_course_id"]) == (f.ODD, f.ODD)
    # override_sis_stickiness=false: nothing moves, and Canvas answers before checking permissions
    kept = await teacher.send("POST", f"/sections/{f.S_LAB_B}/crosslist/{f.DRAFT}?override_sis_stickiness=false")
    assert (kept.status, kept.json["course_id"]) == (200, f.MATH)
    refused = await teacher.send("POST", f"/sections/{f.S_LAB_B}/crosslist/{f.DRAFT}")
    assert (refused.status, refused.json) == (401, UNAUTHORIZED)  # no :manage on the destination
    for path in (f"/sections/{f.S_LAB_B}/crosslist/{f.GONE}", f"/sections/{f.S_LAB_B}/crosslist/999999999",
                 f"/sections/{f.S_DELETED}/crosslist/{f.DRAFT}", f"/sections/{f.S_GONE}/crosslist/{f.DRAFT}"):
        assert (await admin.send("POST", path)).json == NOT_FOUND, path
    assert f.S_LAB_B in await admin.section_ids(f.MATH)


# ----- DELETE /api/v1/sections/:id/crosslist -----

async def test_uncrosslist_returns_the_section_to_its_original_course(admin: Api, inst: Institution) -> None:
    got = await admin.send("DELETE", "/sections/sis_section_id:XL-1/crosslist")
    assert got.status == 200
    assert (got.json["course_id"], got.json["nonxlist_course_id"]) == (f.ODD, None)
    assert f.S_XLIST not in await admin.section_ids(f.MATH)
    assert await admin.section_ids(f.ODD) == [f.S_XLIST, f.S_ODD]
    assert truth_section_ids(inst, f.ODD) == [f.S_XLIST, f.S_ODD]
    again = await admin.send("DELETE", f"/sections/{f.S_XLIST}/crosslist")
    assert (again.status, again.json) == (400, {"message": "section is not cross-listed"})


async def test_uncrosslist_edge_cases(admin: Api, teacher: Api, inst: Institution) -> None:
    assert (await teacher.send("DELETE", f"/sections/{f.S_XLIST}/crosslist")).json == UNAUTHORIZED
    # not cross-listed is answered before the permission check
    assert (await teacher.send("DELETE", f"/sections/{f.S_ODD}/crosslist")).status == 400
    kept = await admin.send("DELETE", f"/sections/{f.S_XLIST}/crosslist", data={"override_sis_stickiness": "0"})
    assert (kept.json["course_id"], kept.json["nonxlist_course_id"]) == (f.MATH, f.ODD)
    # the original course was deleted: un-cross-listing revives it (as "claimed")
    inst.delete_course(f.ODD)
    assert (await admin.get(f"/courses/{f.ODD}")).status == 404
    back = await admin.send("DELETE", f"/sections/{f.S_XLIST}/crosslist")
    assert back.status == 200 and back.json["course_id"] == f.ODD
    assert (await admin.get(f"/courses/{f.ODD}")).json["workflow_state"] == "unpublished"
    # the course it is cross-listed into is deleted: the section is not found
    await admin.send("POST", f"/sections/{f.S_XLIST}/crosslist/{f.DRAFT}")
    inst.delete_course(f.DRAFT)
    assert (await admin.send("DELETE", f"/sections/{f.S_XLIST}/crosslist")).json == NOT_FOUND


# ----- every write: permissions, auth, routing, faults -----

WRITES = [
    ("POST", f"/courses/{f.MATH}/sections"),
    ("PUT", f"/sections/{f.S_LAB_B}"),
    ("DELETE", f"/sections/{f.S_LAB_B}"),
    ("POST", f"/sections/{f.S_LAB_B}/crosslist/{f.DRAFT}"),
    ("DELETE", f"/sections/{f.S_XLIST}/crosslist"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_writes_to_a_forbidden_course_are_refused_and_change_nothing(
        sim: Simulator, admin: Api, inst: Institution, method: str, path: str) -> None:
    before = ground_truth(inst, CourseScope([str(f.MATH), str(f.ODD), str(f.DRAFT)]))
    sim.options.forbidden_courses = {f.MATH}
    got = await admin.send(method, path, data={"course_section[name]": "x"})
    assert (got.status, got.json) == (401, UNAUTHORIZED)
    sim.options.auth_error_updates = True
    got = await admin.send(method, path, data={"course_section[name]": "x"})
    assert (got.status, got.json) == (403, UNAUTHORIZED)
    assert got.headers["Content-Type"].startswith("application/json")
    assert ground_truth(inst, CourseScope([str(f.MATH), str(f.ODD), str(f.DRAFT)])) == before


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_writes_need_a_valid_token(sim: Simulator, method: str, path: str) -> None:
    async with aiohttp.ClientSession() as anon:
        got = await send(anon, method, f"{sim.base_url}/api/v1{path}")
        assert got.status == 401 and got.json["status"] == "unauthenticated"
    async with aiohttp.ClientSession(headers=auth("1~nope")) as bad:
        got = await send(bad, method, f"{sim.base_url}/api/v1{path}")
        assert (got.status, got.json) == (401, {"errors": [{"message": "Invalid access token."}]})


def test_routes_by_method() -> None:
    assert route("/api/v1/courses/1/sections", "POST").kind == "section_create"
    assert route("/api/v1/courses/1/sections").kind == "course_sections"
    assert route("/api/v1/sections/sis_section_id:A%2FB", "PUT").refs == ("sis_section_id:A/B",)
    assert route("/api/v1/sections/1", "DELETE").kind == "section_delete"
    assert route("/api/v1/sections/1/crosslist/sis_course_id:X", "POST").refs == ("1", "sis_course_id:X")
    assert route("/api/v1/sections/1/crosslist", "DELETE").kind == "section_uncrosslist"
    assert route("/api/v1/sections/1", "HEAD").kind == "section_show"
    for method, path in (("PATCH", "/api/v1/sections/1"), ("GET", "/api/v1/sections/1/crosslist"),
                         ("POST", "/api/v1/sections/1"), ("DELETE", "/api/v1/courses/1/sections/2"),
                         ("PUT", "/api/v1/courses/1/sections/2")):
        assert route(path, method) is None, (method, path)


async def test_string_ids_on_a_write(admin: Api) -> None:
    got = await admin.send("POST", f"/sections/{f.S_ODD}/crosslist/{f.MATH}",
                           headers={"Accept": "application/json+canvas-string-ids"})
    assert (got.json["id"], got.json["course_id"], got.json["nonxlist_course_id"]) == (
        str(f.S_ODD), str(f.MATH), str(f.ODD))


async def test_a_replaced_answer_writes_nothing_a_cut_one_still_writes(inst: Institution) -> None:
    async with aiohttp.ClientSession(headers=auth(ADMIN_TOKEN)) as http:
        async with Simulator(inst, SimOptions(faults=Faults(error_rate=1.0))) as sim:
            got = await send(http, "POST", f"{sim.base_url}/api/v1/courses/{f.MATH}/sections")
            assert got.status >= 500
        assert len(inst.course_sections(f.MATH)) == 7
        async with Simulator(inst, SimOptions(faults=Faults(truncate_rate=1.0))) as sim:
            with pytest.raises(aiohttp.ClientError):
                await send(http, "POST", f"{sim.base_url}/api/v1/courses/{f.MATH}/sections")
        assert len(inst.course_sections(f.MATH)) == 8


# ----- interleaving with reads -----

async def test_writes_and_model_mutations_interleave_with_crawls() -> None:
    """Three crawlers page through every course while one client writes over HTTP and a hook edits rosters
    through the model: no answer is a 5xx, every page is consistent in itself, and once things are quiet a
    fresh crawl equals the ground truth."""
    inst = Institution.generate(seed=5, courses=6, large_sections=0, section_size=(5, 40, 15))
    rng = random.Random(7)
    courses = [c.id for c in inst.account_courses(inst.root_account_id)]
    users = list(inst.users)
    statuses: Counter = Counter()

    async with Simulator(inst) as sim, aiohttp.ClientSession(headers=auth(ADMIN_TOKEN)) as http:
        base = f"{sim.base_url}/api/v1"

        def churn(request: Any) -> None:
            if sim.stats.requests % 3 == 0:
                section = rng.choice(list(inst.sections))
                if rng.random() < 0.6:
                    inst.enroll(rng.choice(users), section)
                else:
                    for e in inst.enrollments_in_section(section)[:3]:
                        inst.unenroll(e.user_id, section)

        async def pages(url: str) -> AsyncIterator[Got]:
            while url:
                got = await get(http, url)
                statuses["read", got.status] += 1
                if got.status != 200 or not got.json:
                    return
                yield got
                url = got.links.get("next", "")

        async def crawler() -> None:
            for course in courses:
                async for page in pages(f"{base}/courses/{course}/sections?per_page=2"):
                    assert all(sec["course_id"] == course for sec in page.json)  # one snapshot per answer
                    for sec in page.json:
                        async for users_page in pages(f"{base}/sections/{sec['id']}/users?per_page=5"
                                                      "&include[]=enrollments"):
                            assert all(e["course_section_id"] == sec["id"]
                                       for u in users_page.json for e in u["enrollments"])

        async def writer() -> None:
            made: list[int] = []
            for i in range(60):
                section = rng.choice(made or list(inst.sections))
                course = rng.choice(courses)
                method, path, kw = [
                    ("POST", f"/courses/{course}/sections", {"data": {"course_section[name]": f"W{i}"}}),
                    ("PUT", f"/sections/{section}", {"json": {"course_section": {"name": f"Renamed {i}"}}}),
                    ("POST", f"/sections/{section}/crosslist/{course}", {}),
                    ("DELETE", f"/sections/{section}/crosslist", {}),
                    ("DELETE", f"/sections/{section}", {}),
                ][i % 5]
                got = await send(http, method, base + path, **kw)
                statuses["write", got.status] += 1
                if method == "POST" and "crosslist" not in path and got.status == 200:
                    made.append(got.json["id"])
                await asyncio.sleep(0)

        sim.hooks.append(churn)
        await asyncio.gather(*(crawler() for _ in range(3)), writer())
        sim.hooks.clear()
        sections, section_users = await crawl_account(sim.base_url, ADMIN_TOKEN, "self")

    assert {status for kind, status in statuses if kind == "read"} <= {200, 404}
    assert {status for kind, status in statuses if kind == "write"} <= {200, 400, 404}
    assert statuses["write", 200] >= 25 and statuses["read", 200] >= 100, statuses
    truth = ground_truth(inst, AccountScope("self"))  # un-cross-listing may have revived a deleted course
    assert by_key(sections, "id") == by_key(truth.sections, "id")
    assert by_key(section_users, "section_id", "user_id") == by_key(truth.section_users, "section_id", "user_id")
