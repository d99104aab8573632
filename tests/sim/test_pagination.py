"""Pagination: per_page, page, Link header format (lib/api.rb, folio), unit level and over HTTP."""

from __future__ import annotations

import pytest

from exporter.sim import Institution, Simulator
from exporter.sim.pagination import (
    InvalidPage,
    PageLinks,
    link_header,
    page_for,
    parse_query,
    per_page_for,
    to_query,
    unknown_total_links,
)

from .httpkit import get

ERROR_PAGE = {"errors": [{"message": "An error occurred.", "error_code": "not_found"}]}


def test_to_query_is_rails_style() -> None:
    params = parse_query("search_term=a%20b+c&include[]=z&include[]=avatar_url&b=%C3%A9%2F%25&a=1")
    assert params == {"search_term": "a b c", "include": ["z", "avatar_url"], "b": "é/%", "a": "1"}
    # pairs sorted as escaped strings; array order kept; spaces as +; CGI.escape for the rest
    assert to_query(params) == "a=1&b=%C3%A9%2F%25&include%5B%5D=z&include%5B%5D=avatar_url&search_term=a+b+c"
    assert to_query({"x": []}) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 10), ("5", 5), ("100", 100), ("101", 100), ("1000", 100), ("0", 1), ("-3", 1), ("", 1),
     ("abc", 1), ("12abc", 12), (" 7", 7)],
)
def test_per_page_is_clamped_like_ruby_to_i(raw: str | None, expected: int) -> None:
    assert per_page_for({} if raw is None else {"per_page": raw}) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", "٣"])
def test_bad_page_values_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidPage):
        page_for({"page": raw})


def test_page_defaults_to_one() -> None:
    assert page_for({}) == 1 and page_for({"page": ""}) == 1 and page_for({"page": "7"}) == 7


def test_link_header_order_separator_and_excluded_params() -> None:
    params = {"page": "2", "per_page": "3", "access_token": "secret", "api_key": "k", "include": ["x"]}
    header = link_header("http://h:1/api/v1/x", params, PageLinks(2, 3, 1, 1, 4), 3)
    assert header == (
        '<http://h:1/api/v1/x?include%5B%5D=x&page=2&per_page=3>; rel="current",'
        '<http://h:1/api/v1/x?include%5B%5D=x&page=3&per_page=3>; rel="next",'
        '<http://h:1/api/v1/x?include%5B%5D=x&page=1&per_page=3>; rel="prev",'
        '<http://h:1/api/v1/x?include%5B%5D=x&page=1&per_page=3>; rel="first",'
        '<http://h:1/api/v1/x?include%5B%5D=x&page=4&per_page=3>; rel="last"'
    )
    assert "secret" not in header


def test_link_header_drops_low_priority_rels_past_6kb() -> None:
    header = link_header("http://h/" + "a" * 1900, {}, PageLinks(2, 3, 1, 1, 4), 10)
    rels = [p.rsplit("rel=", 1)[1] for p in header.split(",")]
    assert rels == ['"next"', '"prev"', '"last"']  # next, last, prev fit; current and first do not


def test_unknown_total_links() -> None:
    assert unknown_total_links(1, 10, 10) == PageLinks(1, 2, None, 1, None)  # full page: next, no last
    assert unknown_total_links(3, 10, 4) == PageLinks(3, None, 2, 1, 3)  # short page: the end, last known
    assert unknown_total_links(1, 10, 0) == PageLinks(1, None, None, 1, 1)  # empty first page
    assert unknown_total_links(4, 10, 0) == PageLinks(4, 5, 3, 1, None)  # empty later page: still next


# ----- over HTTP -----

def _big_section(inst: Institution, minimum: int = 25) -> int:
    return next(s.id for s in inst.sections.values()
                if s.workflow_state == "active" and inst.courses[s.course_id].workflow_state != "deleted"
                and len(inst.section_roster(s.id)) >= minimum
                and not any(r.user.fake_student for r in inst.section_roster(s.id)))


async def test_link_header_over_http_is_absolute_and_ordered(sim: Simulator, http) -> None:
    sid = _big_section(sim.institution)
    got = await get(http, f"{sim.base_url}/api/v1/sections/{sid}/users?per_page=5&page=2&include[]=avatar_url"
                          f"&access_token=zzz&include[]=email&a=%C3%A9")
    assert got.status == 200
    base = f"{sim.base_url}/api/v1/sections/{sid}/users?a=%C3%A9&include%5B%5D=avatar_url&include%5B%5D=email&"
    assert got.headers["Link"] == (
        f'<{base}page=2&per_page=5>; rel="current",<{base}page=3&per_page=5>; rel="next",'
        f'<{base}page=1&per_page=5>; rel="prev",<{base}page=1&per_page=5>; rel="first"'
    )


async def test_per_page_over_http(sim: Simulator, http) -> None:
    sid = _big_section(sim.institution)
    for raw, n in (("", 1), ("0", 1), ("abc", 1), ("3", 3), ("1000", 100)):
        got = await get(http, f"{sim.base_url}/api/v1/sections/{sid}/users?per_page={raw}")
        assert len(got.json) == min(n, len(sim.institution.section_roster(sid)))
        assert got.links["current"].endswith(f"page=1&per_page={n}")
    got = await get(http, f"{sim.base_url}/api/v1/sections/{sid}/users")
    assert len(got.json) == 10


@pytest.mark.parametrize("page", ["0", "-1", "abc"])
async def test_bad_page_is_404(sim: Simulator, http, page: str) -> None:
    sid = _big_section(sim.institution)
    got = await get(http, f"{sim.base_url}/api/v1/sections/{sid}/users?page={page}")
    assert got.status == 404 and got.json == ERROR_PAGE


async def test_sections_pages_know_their_count(sim: Simulator, http) -> None:
    inst = sim.institution
    course = max(inst.courses.values(), key=lambda c: len(inst.course_sections(c.id))
                 if c.workflow_state != "deleted" else -1)
    n = len(inst.course_sections(course.id))
    assert n >= 3
    url = f"{sim.base_url}/api/v1/courses/{course.id}/sections?per_page=2"
    first = await get(http, url)
    pages = -(-n // 2)
    assert first.links["last"].endswith(f"page={pages}&per_page=2")
    assert list(first.links) == ["current", "next", "first", "last"]
    last = await get(http, first.links["last"])
    assert "next" not in last.links and list(last.links) == ["current", "prev", "first", "last"]
    # past the end: 200 [] with current/next/prev/first and no last
    past = await get(http, f"{url}&page={pages + 3}")
    assert past.status == 200 and past.json == []
    assert list(past.links) == ["current", "next", "prev", "first"]
    assert past.links["next"].endswith(f"page={pages + 4}&per_page=2")
    # all=1: everything, no Link
    everything = await get(http, f"{sim.base_url}/api/v1/courses/{course.id}/sections?all=1&per_page=1")
    assert len(everything.json) == n and "Link" not in everything.headers


async def test_account_courses_have_no_last_until_the_short_page(sim: Simulator, http) -> None:
    inst = sim.institution
    total = len(inst.account_courses(inst.root_account_id))
    per_page = 4 if total % 4 else 5
    assert total % per_page
    url = f"{sim.base_url}/api/v1/accounts/self/courses?per_page={per_page}"
    seen, page = [], 1
    while True:
        got = await get(http, f"{url}&page={page}")
        seen += [c["id"] for c in got.json]
        if len(got.json) == per_page:
            assert "next" in got.links and "last" not in got.links
        else:
            assert "next" not in got.links and got.links["last"].endswith(f"page={page}&per_page={per_page}")
            break
        page += 1
    assert seen == sorted(c.id for c in inst.account_courses(inst.root_account_id))


async def test_exact_multiple_gives_an_empty_page_with_next(sim: Simulator, http) -> None:
    inst = sim.institution
    total = len(inst.account_courses(inst.root_account_id))
    url = f"{sim.base_url}/api/v1/accounts/self/courses?per_page={total}"
    full = await get(http, url)
    assert len(full.json) == total and "next" in full.links and "last" not in full.links
    empty = await get(http, full.links["next"])
    assert empty.status == 200 and empty.json == []
    assert list(empty.links) == ["current", "next", "prev", "first"]


async def test_users_never_have_last_on_full_pages(sim: Simulator, http) -> None:
    sid = _big_section(sim.institution)
    got = await get(http, f"{sim.base_url}/api/v1/sections/{sid}/users?per_page=5")
    assert set(got.links) == {"current", "next", "first"}
