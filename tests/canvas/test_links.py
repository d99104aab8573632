from urllib.parse import urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from exporter.canvas.errors import PaginationError
from exporter.canvas.links import (
    LinkWalk,
    _query,
    on_origin,
    origin,
    page_number,
    pages_ahead,
    parse_link_header,
    with_page,
)

BASE = "https://canvas.test/api/v1/courses/1/sections"


def test_canvas_format_comma_without_space():
    header = (f'<{BASE}?page=1&per_page=10>; rel="current",<{BASE}?page=2&per_page=10>; rel="next",'
              f'<{BASE}?page=1&per_page=10>; rel="first",<{BASE}?page=5&per_page=10>; rel="last"')
    links = parse_link_header(header)
    assert links == {"current": f"{BASE}?page=1&per_page=10", "next": f"{BASE}?page=2&per_page=10",
                     "first": f"{BASE}?page=1&per_page=10", "last": f"{BASE}?page=5&per_page=10"}


@pytest.mark.parametrize("header", [
    f'<{BASE}?page=3>; REL="NEXT"',
    f'<{BASE}?page=3>;rel=next',
    f'<{BASE}?page=9>; rel="last",\n      <{BASE}?page=3>; rel="next"',
    f'<{BASE}?page=3>; title="x, y"; rel="next prev"',
    f'<{BASE}?page=3> ; Rel = "Next"',
])
def test_any_case_order_and_spacing(header):
    assert parse_link_header(header)["next"] == f"{BASE}?page=3"


def test_several_link_headers_and_relative_urls():
    links = parse_link_header(["</api/v1/x?page=2>; rel=\"next\"", f"<{BASE}?page=4>; rel=\"last\""],
                              "https://canvas.test/api/v1/x?page=1")
    assert links["next"] == "https://canvas.test/api/v1/x?page=2"
    assert links["last"] == f"{BASE}?page=4"


def test_missing_and_garbage_headers():
    assert parse_link_header(None) == {}
    assert parse_link_header("") == {}
    assert parse_link_header("not a link header") == {}
    assert parse_link_header(f"<{BASE}?page=2>") == {}  # no rel at all


def walk() -> LinkWalk:
    return LinkWalk(f"{BASE}?per_page=10", origin(BASE))


def pages(n: int, per_page: int = 10) -> str:
    return f"{BASE}?page={n}&per_page={per_page}"


def test_walk_stops_without_next():
    w = walk()
    assert w.next_url({}, 10, BASE) is None
    assert w.next_url({"next": pages(2)}, 3, pages(1)) == pages(2)


@pytest.mark.parametrize("per_page,looked_past", [(100, 1), (10, 1), (3, 4), (1, 10)])
def test_empty_pages_are_looked_past_while_test_students_could_fill_them(per_page, looked_past):
    """A users page that held only test students comes back empty, with its next link; past the end, a page
    is empty too. Empty pages in a row are followed while TEST_STUDENTS_IN_A_ROW could fill them."""
    w = walk()
    assert w.next_url({"next": pages(2, per_page)}, per_page, pages(1, per_page)) == pages(2, per_page)
    n = 2
    for _ in range(looked_past):
        assert w.next_url({"next": pages(n + 1, per_page)}, 0, pages(n, per_page)) == pages(n + 1, per_page)
        n += 1
    assert w.next_url({"next": pages(n + 1, per_page)}, 0, pages(n, per_page)) is None  # one more: the end
    w = walk()  # a page with rows starts the count again
    assert w.next_url({"next": pages(3, per_page)}, 0, pages(2, per_page)) == pages(3, per_page)
    assert w.next_url({"next": pages(4, per_page)}, 1, pages(3, per_page)) == pages(4, per_page)
    assert w.next_url({"next": pages(5, per_page)}, 0, pages(4, per_page)) == pages(5, per_page)


@pytest.mark.parametrize("links", [
    {"next": pages(3, per_page=30)},  # folio's default page size in the links of a page past the end
    {"next": f"{BASE}?page=3"},  # no page size
    {"next": pages(3), "last": pages(2)},  # past the last page the server counted
    {"next": pages(3), "last": f"{BASE}?page=x"},  # a last page that names no number
])
def test_an_empty_page_whose_next_link_changes_the_page_size_ends_the_list(links):
    assert walk().next_url(links, 0, pages(2)) is None


def test_a_refused_link_on_an_empty_page_counts_nothing():
    """The page is fetched again (a passing fault) and its good link is then taken as the first empty page."""
    w = walk()
    w.next_url({"next": pages(2)}, 10, pages(1))
    with pytest.raises(PaginationError, match="another host"):
        w.next_url({"next": pages(3).replace("canvas.test", "elsewhere.test")}, 0, pages(2))
    assert w.next_url({"next": pages(3)}, 0, pages(2)) == pages(3)
    assert w.items == 10


def test_repeated_url_is_an_error_whatever_its_query_order():
    w = walk()
    w.next_url({"next": f"{BASE}?page=2&per_page=10"}, 10, BASE)
    with pytest.raises(PaginationError, match="repeats an earlier page"):
        w.next_url({"next": f"{BASE}?per_page=10&page=2"}, 10, BASE)


def test_next_on_another_origin_is_refused():
    w = walk()
    for other in ("https://evil.test/api/v1/x?page=2", "http://canvas.test/api/v1/x?page=2",
                  "https://canvas.test:8443/api/v1/x?page=2"):
        with pytest.raises(PaginationError, match="another host"):
            w.next_url({"next": other}, 10, BASE)


def test_next_to_another_list_is_refused_and_the_same_list_however_spelled_is_not():
    w = walk()
    for other in (BASE.replace("/api/v1/", "/api/v1/other/") + "?page=2", f"{BASE}/extra?page=2"):
        with pytest.raises(PaginationError, match="leads to another list"):
            w.next_url({"next": other}, 10, BASE)
    same = BASE.replace("/api/", "/%61pi/") + "/?page=2"  # escaped and with a trailing slash: the same list
    assert w.next_url({"next": same}, 10, BASE) == same


def test_ahead_up_to_last_when_canvas_gives_it():
    q = "include%5B%5D=total_students"
    ahead = pages_ahead(f"{BASE}?{q}&page=2&per_page=100", last_page=4, expected_items=None, per_page=100,
                        round_no=1)
    assert ahead == [f"{BASE}?{q}&page={n}&per_page=100" for n in (3, 4)]


def test_ahead_from_expected_items():
    # 950 users at 100 a page: pages 1..10; page 2 is next, so 3..10 ahead
    ahead = pages_ahead(f"{BASE}?page=2&per_page=100", last_page=None, expected_items=950, per_page=100,
                        round_no=1)
    assert [page_number(u) for u in ahead] == list(range(3, 11))


def test_ahead_ramps_up_when_length_is_unknown():
    sizes = [len(pages_ahead(f"{BASE}?page=2", last_page=None, expected_items=None, per_page=100, round_no=r))
             for r in range(1, 8)]
    assert sizes == [0, 3, 7, 15, 31, 32, 32]


def test_no_speculative_ahead_when_every_request_costs_bucket_room():
    url = f"{BASE}?page=2&per_page=100"
    assert pages_ahead(url, last_page=None, expected_items=None, per_page=100, round_no=5, speculate=False) == []
    # pages that are known, or all but certain, to exist are still fetched ahead
    known = pages_ahead(url, last_page=4, expected_items=None, per_page=100, round_no=5, speculate=False)
    hinted = pages_ahead(url, last_page=None, expected_items=450, per_page=100, round_no=5, speculate=False)
    assert [page_number(u) for u in known] == [3, 4] and [page_number(u) for u in hinted] == [3, 4, 5]


@pytest.mark.parametrize("url", [f"{BASE}?page=bookmark:abc", f"{BASE}?cursor=2"])
def test_no_ahead_for_opaque_pages(url):
    assert pages_ahead(url, last_page=9, expected_items=None, per_page=10, round_no=5) == []


def test_first_url_without_page_is_page_one():
    w = LinkWalk(f"{BASE}?per_page=10&include%5B%5D=x", origin(BASE))
    with pytest.raises(PaginationError, match="repeats"):
        w.next_url({"next": f"{BASE}?include[]=x&page=1&per_page=10"}, 10, BASE)


@pytest.mark.parametrize("limits,per_page,pages_ok", [({"max_items": 450}, 100, 4), ({"max_pages": 6}, 1, 5)])
def test_a_list_that_never_ends_is_an_error_not_a_memory_leak(limits, per_page, pages_ok):
    w = LinkWalk(f"{BASE}?page=1", origin(BASE), **limits)
    for n in range(2, pages_ok + 2):  # every page full and new, its next always one further
        assert w.next_url({"next": f"{BASE}?page={n}"}, per_page, BASE) == f"{BASE}?page={n}"
    with pytest.raises(PaginationError, match="do not lead to an end"):
        w.next_url({"next": f"{BASE}?page={pages_ok + 2}"}, per_page, BASE)


@pytest.mark.parametrize("url,expected", [
    ("https://canvas.test/api/v1/x", True),
    ("https://canvas.test:443/api/v1/x", True),
    ("HTTPS://CANVAS.test/api/v1/x", True),
    ("https://canvas.test@evil.test/api/v1/x", False),
    ("https://canvas.test:443@evil.test/", False),
    ("https://canvas.test.evil.test/", False),
    ("https://canvas.test:4431/", False),
    ("http://canvas.test/", False),
])
def test_on_origin_fast_path_agrees_with_full_parse(url, expected):
    home = origin("https://canvas.test")
    assert on_origin(url, home) is expected
    assert (origin(url) == home) is expected


@given(st.lists(st.sampled_from(["http:", "https:", "//", "/", "?", "#", "&", "@", ":", "[", "]", "h", "page=",
                                 "3", "%3F", ";", "\\", "\t", "\n"]), max_size=14).map("".join))
def test_the_query_is_read_as_urlsplit_reads_it(url):
    # page_number and the per_page checks read the query without splitting the whole URL
    try:
        expected = urlsplit(url).query
    except ValueError:  # a bracket that is no IPv6 address: urlsplit refuses the URL, _query still reads it
        assume(False)
    assert _query(url) == expected


def test_an_empty_page_before_the_last_counted_page_is_looked_past():
    """A counted roster (`last` on every page) whose test students were dropped after paging: an empty page
    before the last one is not the end."""
    w = walk()
    w.next_url({"next": pages(2), "last": pages(4)}, 10, pages(1))
    assert w.next_url({"next": pages(3), "last": pages(4)}, 0, pages(2)) == pages(3)


@pytest.mark.parametrize("url", [f"{BASE}?page=²&per_page=10", f"{BASE}?page=&per_page=10", f"{BASE}?page=-1",
                                 f"{BASE}?page=٣"])
def test_a_page_number_only_in_ascii_digits_is_read(url):
    assert page_number(url) is None  # '²'.isdigit() is True, but int('²') fails; '٣' is no number to Rails


def test_a_page_size_that_is_no_number_ends_the_list_at_an_empty_page():
    w = walk()
    w.next_url({"next": f"{BASE}?page=2&per_page=10"}, 10, f"{BASE}?per_page=10")
    assert w.next_url({"next": f"{BASE}?page=3&per_page=²"}, 0, f"{BASE}?page=2&per_page=²") is None


@pytest.mark.parametrize("nxt,looked_past", [
    (f"{BASE}?page=3&per%5Fpage=10", True),  # the same page size, escaped: Rails reads per_page=10
    (f"{BASE}?page=3&per_page=010", True),  # the same number
    (f"{BASE}?page=3&per_page=10&per_page=30", False),  # Rails takes the last value: 30, another page size
])
def test_the_page_size_of_an_empty_pages_next_link_is_read_as_canvas_reads_it(nxt, looked_past):
    w = walk()
    w.next_url({"next": f"{BASE}?page=2&per_page=10"}, 10, f"{BASE}?per_page=10")
    assert (w.next_url({"next": nxt}, 0, f"{BASE}?page=2&per_page=10") is not None) is looked_past


@pytest.mark.parametrize("url,number,expected", [
    (f"{BASE}?page=2&per_page=10", 3, f"{BASE}?page=3&per_page=10"),
    (f"{BASE}?per_page=10&page=2#f", 5, f"{BASE}?per_page=10&page=5#f"),
    (f"{BASE}?page=2&per_page=10&page=7", 9, f"{BASE}?page=9&per_page=10"),  # one page parameter left
    (f"{BASE}?p%61ge=2&per_page=10", 4, f"{BASE}?page=4&per_page=10"),
])
def test_with_page_sets_the_page_canvas_will_read(url, number, expected):
    assert with_page(url, number) == expected
    assert page_number(with_page(url, number)) == number


def test_page_number_takes_the_last_page_parameter_as_rails_does():
    assert page_number(f"{BASE}?page=2&per_page=10&page=7") == 7
    assert page_number(f"{BASE}?p%61ge=4") == 4


def test_an_unresolvable_relative_link_is_kept_as_sent():
    """urljoin raises on `//[::1/x` (no IPv6 address); the link is kept, and the walk refuses it if followed."""
    links = parse_link_header('<//[::1/api/v1/x?page=2>; rel="next", <https://canvas.test/x?page=9>; rel="last"',
                              "https://canvas.test/api/v1/x?page=1")
    assert links == {"next": "//[::1/api/v1/x?page=2", "last": "https://canvas.test/x?page=9"}
    with pytest.raises(PaginationError, match="not a usable URL"):
        walk().next_url(links, 10, BASE)
