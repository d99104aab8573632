"""Authentication and permission errors (application_controller, authentication_methods)."""

from __future__ import annotations

import aiohttp

from exporter.sim import ADMIN_TOKEN, Simulator

from .httpkit import auth, get

UNAUTHORIZED = {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]}


def _section_of(sim: Simulator) -> tuple[int, int]:
    inst = sim.institution
    course = next(c for c in inst.account_courses(inst.root_account_id) if inst.course_sections(c.id))
    return course.id, inst.course_sections(course.id)[0].id


async def test_no_credentials(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as anon:
        got = await get(anon, f"{sim.base_url}/api/v1/accounts/self/courses")
    assert got.status == 401
    assert got.json == {"status": "unauthenticated", "errors": [{"message": "user authorization required"}]}
    assert got.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'


async def test_invalid_token(sim: Simulator) -> None:
    async with aiohttp.ClientSession(headers=auth("1~nope")) as bad:
        got = await get(bad, f"{sim.base_url}/api/v1/accounts/self/courses")
    assert got.status == 401 and got.json == {"errors": [{"message": "Invalid access token."}]}
    assert got.headers["WWW-Authenticate"] == 'Bearer realm="canvas-lms"'


async def test_access_token_parameter_works_and_is_left_out_of_links(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as anon:
        got = await get(anon, f"{sim.base_url}/api/v1/accounts/self/courses?per_page=1&access_token={ADMIN_TOKEN}")
    assert got.status == 200 and "access_token" not in got.headers["Link"]


async def test_forbidden_course_is_401_then_403_with_the_flag(sim: Simulator, http) -> None:
    course_id, section_id = _section_of(sim)
    sim.options.forbidden_courses = {course_id}
    for path in (f"/api/v1/courses/{course_id}", f"/api/v1/courses/{course_id}/sections",
                 f"/api/v1/courses/{course_id}/sections/{section_id}", f"/api/v1/sections/{section_id}",
                 f"/api/v1/sections/{section_id}/users"):
        got = await get(http, sim.base_url + path)
        assert (got.status, got.json) == (401, UNAUTHORIZED), path
        assert "WWW-Authenticate" not in got.headers  # the caller is authenticated
    sim.options.auth_error_updates = True
    got = await get(http, f"{sim.base_url}/api/v1/sections/{section_id}/users")
    assert (got.status, got.json) == (403, UNAUTHORIZED)
    assert got.headers["Content-Type"].startswith("application/json")  # unlike a rate-limit 403
    # the listing still shows the course: a crawler meets the refusal one level down
    listed = await get(http, f"{sim.base_url}/api/v1/accounts/self/courses?per_page=100")
    assert course_id in [c["id"] for c in listed.json]
