"""Walking a list: the same pages and the same end as a sequential walk, however much is fetched ahead."""

import re

import pytest
from aioresponses import aioresponses

from exporter.canvas.client import CanvasClient
from exporter.canvas.errors import NotFound, PaginationError
from exporter.canvas.pages import iter_pages
from exporter.config import ClientConfig, RetryPolicy, Secret

BASE = "https://canvas.test"
URL = f"{BASE}/api/v1/sections/5/users"


def client() -> CanvasClient:
    async def no_sleep(_):
        return None

    return CanvasClient(ClientConfig(base_url=BASE, token=Secret("t"), retry=RetryPolicy(attempts=2)),
                        sleep=no_sleep)


def link(page: int, *, nxt: bool = True, last: int | None = None) -> dict:
    parts = [f'<{URL}?page={page}&per_page=2>; rel="current"']
    if nxt:
        parts.append(f'<{URL}?page={page + 1}&per_page=2>; rel="next"')
    if last:
        parts.append(f'<{URL}?page={last}&per_page=2>; rel="last"')
    return {"Link": ",".join(parts)}


def serve(m: aioresponses, pages: dict[int, tuple[list, dict]], beyond: int = 200) -> None:
    for n, (items, headers) in pages.items():
        m.get(f"{URL}?page={n}&per_page=2" if n > 1 else f"{URL}?per_page=2", payload=items, headers=headers,
              repeat=True)
    m.get(re.compile(re.escape(URL) + r"\?page=\d+&per_page=2"), status=beyond, payload=[], repeat=True)


async def walk(expected_items=None) -> list[int]:
    ids = []
    async with client() as c:
        async for page in iter_pages(c, URL, [("per_page", "2")], per_page=2, expected_items=expected_items):
            ids += [i["id"] for i in page.items]
    return ids


@pytest.mark.parametrize("expected", [None, 2, 6, 40])
async def test_same_rows_whatever_the_look_ahead(expected):
    with aioresponses() as m:
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1)), 2: ([{"id": 3}, {"id": 4}], link(2)),
                  3: ([{"id": 5}], link(3, nxt=False))})
        assert await walk(expected) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("expected", [None, 30])
@pytest.mark.parametrize("empty_run,ends", [(5, False), (6, True)])
async def test_empty_pages_are_looked_past_until_too_many_in_a_row(expected, empty_run, ends):
    """Two items a page: five pages in a row could hold only test students (TEST_STUDENTS_IN_A_ROW), six cannot."""
    with aioresponses() as m:  # a page of test students only comes back empty, with its next link
        empty = {n: ([], link(n)) for n in range(4, 4 + empty_run)}
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1)), 2: ([], link(2)), 3: ([{"id": 3}], link(3)), **empty,
                  4 + empty_run: ([{"id": 99}], link(4 + empty_run, nxt=False))})
        assert await walk(expected_items=expected) == [1, 2, 3] + ([] if ends else [99])


async def test_after_an_empty_page_nothing_is_fetched_ahead():
    with aioresponses() as m:  # after page 2 the ramp would fetch 3 pages ahead; page 2 is empty, so it does not
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1)), 2: ([], link(2)), 3: ([{"id": 3}], link(3, nxt=False))})
        assert await walk() == [1, 2, 3]
        asked = {int(re.search(r"page=(\d+)", str(url)).group(1)) for (_, url) in m.requests if "page=" in str(url)}
    assert asked == {2, 3}


async def test_short_page_with_next_is_not_the_end():
    with aioresponses() as m:  # test students removed after paging leave short pages
        serve(m, {1: ([{"id": 1}], link(1)), 2: ([{"id": 3}], link(2)), 3: ([{"id": 5}], link(3, nxt=False))})
        assert await walk() == [1, 3, 5]


async def test_failing_pages_beyond_the_end_are_never_needed():
    with aioresponses() as m:
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1)), 2: ([{"id": 3}], link(2, nxt=False))}, beyond=404)
        assert await walk(expected_items=40) == [1, 2, 3]


async def test_a_needed_page_that_fails_fails_the_list():
    with aioresponses() as m:
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1))}, beyond=404)
        with pytest.raises(NotFound):
            await walk(expected_items=40)


async def test_plan_left_when_the_server_chain_differs():
    other = f"{URL}?page=7&per_page=2"
    with aioresponses() as m:
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1)),
                  2: ([{"id": 3}, {"id": 4}], {"Link": f'<{other}>; rel="next"'}),
                  3: ([{"id": 66}], link(3, nxt=False)),
                  7: ([{"id": 5}], link(7, nxt=False))})
        assert await walk(expected_items=10) == [1, 2, 3, 4, 5]


async def test_next_pointing_back_is_an_error_not_a_loop():
    with aioresponses() as m:
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1)),
                  2: ([{"id": 3}, {"id": 4}], {"Link": f'<{URL}?page=2&per_page=2>; rel="next"'})})
        with pytest.raises(PaginationError, match="repeats an earlier page"):
            await walk(expected_items=20)


async def test_last_link_fetches_the_rest_in_parallel():
    with aioresponses() as m:
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1, last=3)), 2: ([{"id": 3}, {"id": 4}], link(2, last=3)),
                  3: ([{"id": 5}], link(3, nxt=False, last=3))})
        assert await walk() == [1, 2, 3, 4, 5]


async def test_a_passing_loop_in_the_links_is_fetched_again():
    with aioresponses() as m:
        m.get(f"{URL}?per_page=2", payload=[{"id": 1}, {"id": 2}], headers=link(1))
        m.get(f"{URL}?page=2&per_page=2", payload=[{"id": 3}, {"id": 4}],
              headers={"Link": f'<{URL}?per_page=2>; rel="next"'})  # once: back to page 1
        m.get(f"{URL}?page=2&per_page=2", payload=[{"id": 3}, {"id": 4}], headers=link(2))
        m.get(f"{URL}?page=3&per_page=2", payload=[{"id": 5}], headers=link(3, nxt=False))
        m.get(re.compile(re.escape(URL) + r"\?page=\d+&per_page=2"), payload=[], repeat=True)
        async with client() as c:
            ids = [i["id"] async for p in iter_pages(c, URL, [("per_page", "2")], per_page=2) for i in p.items]
            assert c.stats.retry_reasons["bad_link"] == 1
    assert ids == [1, 2, 3, 4, 5]


async def test_next_link_to_another_host_is_never_requested():
    with aioresponses() as m:
        m.get(f"{URL}?per_page=2", payload=[{"id": 1}, {"id": 2}],
              headers={"Link": '<https://evil.test/api/v1/sections/5/users?page=2>; rel="next"'}, repeat=True)
        with pytest.raises(PaginationError, match="another host"):
            await walk()
        assert all(url.host != "evil.test" for _, url in m.requests)


async def test_pages_fetched_ahead_get_one_attempt_and_no_retries_past_the_end():
    with aioresponses() as m:  # everything past page 2 answers 500: a list's end as some proxies show it
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1)), 2: ([{"id": 3}], link(2, nxt=False))}, beyond=500)
        async with client() as c:
            ids = [i["id"] async for p in iter_pages(c, URL, [("per_page", "2")], per_page=2, expected_items=12)
                   for i in p.items]
            assert ids == [1, 2, 3]
            assert c.stats.retries == 0  # pages 3..6 were asked once each, and never needed
            assert c.stats.ahead_failed == {"500": 4}
        asked = sorted(int(url.query.get("page", "1")) for (_, url), calls in m.requests.items() for _ in calls)
        assert [n for n in asked if n > 2] == [3, 4, 5, 6]  # each once


async def test_a_needed_page_whose_look_ahead_failed_is_fetched_again_with_retries():
    with aioresponses() as m:
        m.get(f"{URL}?per_page=2", payload=[{"id": 1}, {"id": 2}], headers=link(1))
        m.get(f"{URL}?page=2&per_page=2", payload=[{"id": 3}, {"id": 4}], headers=link(2))
        m.get(f"{URL}?page=3&per_page=2", status=503, payload=[])  # the look-ahead's one attempt
        m.get(f"{URL}?page=3&per_page=2", status=502, payload=[])  # the walk's first attempt: retried
        m.get(f"{URL}?page=3&per_page=2", payload=[{"id": 5}], headers=link(3, nxt=False))
        async with client() as c:
            ids = [i["id"] async for p in iter_pages(c, URL, [("per_page", "2")], per_page=2, expected_items=6)
                   for i in p.items]
            # the look-ahead's failed attempt, then the walk's own: both count as retries of page 3
            assert sum(c.stats.ahead_failed.values()) == 1 and c.stats.retries == 2
    assert ids == [1, 2, 3, 4, 5]


async def test_a_passing_bad_link_on_an_empty_page_is_retried_not_taken_for_the_end():
    with aioresponses() as m:
        m.get(f"{URL}?per_page=2", payload=[{"id": 1}, {"id": 2}], headers=link(1))
        m.get(f"{URL}?page=2&per_page=2", payload=[], headers={"Link": f'<{URL}?per_page=2>; rel="next"'})
        m.get(f"{URL}?page=2&per_page=2", payload=[], headers=link(2), repeat=True)
        m.get(f"{URL}?page=3&per_page=2", payload=[{"id": 5}], headers=link(3, nxt=False))
        m.get(re.compile(re.escape(URL) + r"\?page=\d+&per_page=2"), payload=[], repeat=True)
        async with client() as c:
            ids = [i["id"] async for p in iter_pages(c, URL, [("per_page", "2")], per_page=2) for i in p.items]
    assert ids == [1, 2, 5]


@pytest.mark.parametrize("expected", [None, 10])
async def test_an_empty_page_before_the_last_does_not_end_the_list(expected):
    """A counted roster (`last` on every page) whose page 2 held test students only, dropped after the page was
    cut (as CoursesController#users drops them): `last` says 4 pages, so page 2 is not the end."""
    with aioresponses() as m:
        serve(m, {1: ([{"id": 1}, {"id": 2}], link(1, last=4)), 2: ([], link(2, last=4)),
                  3: ([{"id": 3}, {"id": 4}], link(3, last=4)), 4: ([{"id": 5}], link(4, nxt=False, last=4))})
        assert await walk(expected_items=expected) == [1, 2, 3, 4, 5]
