"""Link header parsing and page planning.

Canvas paginates with an RFC 8288 `Link` header. We read rels by name, case-insensitively, whatever the
order and spacing, and use the URLs as opaque values: the only thing we ever change in one is the value
of its `page` parameter (one left, if it was given twice), and only when `rel="last"` proves the pages are
numbered (to fetch them in parallel). A list ends when there is no `next` or at an empty page (looked past
while it may have held only test students); a URL seen twice is a cycle; a URL on another origin is never
requested (it would be sent the token).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus, urljoin, urlsplit

from exporter.canvas.errors import PaginationError

_ENTRY = re.compile(r"<([^>]*)>([^<]*)")
_REL = re.compile(r"""(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.IGNORECASE)

# Canvas drops test students from a users page after cutting it, so a page of test students only is `[]` with
# a next link, like a page past the end. Each course has one test student; a section may hold several
# (cross-listed ones bring theirs along). Empty pages in a row are looked past while they could hold this many.
TEST_STUDENTS_IN_A_ROW = 10

# One list (a course's sections, a section's roster) is held in memory until it is complete, so a list that
# never ends would grow without bound. Canvas's largest sections hold tens of thousands of users; a list past
# either limit is called an error of the server's pagination, not fetched on.
MAX_LIST_ITEMS = 1_000_000
MAX_LIST_PAGES = 100_000


def parse_link_header(values: str | list[str] | None, base_url: str = "") -> dict[str, str]:
    """Map each rel (lower-cased) to its URL, resolved against `base_url`. The first URL for a rel wins."""
    if not values:
        return {}
    text = ",".join(values) if isinstance(values, list) else values
    links: dict[str, str] = {}
    for match in _ENTRY.finditer(text):
        url = match.group(1).strip()
        for rel_match in _REL.finditer(match.group(2)):
            rels = (rel_match.group(1) or rel_match.group(2) or "").split()
            for rel in rels:
                links.setdefault(rel.lower(), _resolved(url, base_url))
    return links


def _resolved(url: str, base_url: str) -> str:
    """A link's URL against the page's own. One that cannot be resolved (`//[::1/x`: no IPv6 address) is kept
    as sent: a `next` link is then refused by the walk as not a usable URL, and other rels go unused."""
    if url.startswith(("https://", "http://")) or not base_url:
        return url
    try:
        return urljoin(base_url, url)
    except ValueError:
        return url


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL; ValueError if it is not a usable URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    if "\\" in parts.netloc or not parts.hostname:
        raise ValueError(f"no usable host in {parts.netloc!r}")
    return scheme, parts.hostname.lower(), port


def on_origin(url: str, home: tuple[str, str, int | None]) -> bool:
    """Whether `url` is on the origin `home` (ValueError if it is not a usable URL, or one on `home` that names
    a user or password: aiohttp would send those beside the token). A URL that starts with
    exactly `scheme://host:port/` (or `scheme://host/` on the default port) is, since the authority ends at
    that slash; anything else is parsed and compared in full."""
    scheme, host, port = home
    if url.startswith(f"{scheme}://{host}:{port}/"):
        return True
    if {"http": 80, "https": 443}.get(scheme) == port and url.startswith(f"{scheme}://{host}/"):
        return True
    if origin(url) != home:
        return False
    if "@" in urlsplit(url).netloc:  # aiohttp would send them as Basic auth beside the token, or refuse the URL
        raise ValueError("a user name or password in the URL")
    return True


_SECRET_PARAMS = re.compile(r"(?:(?<=[?&])|^)(access_token|api_key)=[^&#]*", re.IGNORECASE)


def path_of(url: str) -> str:
    """The part of a URL that is safe and useful in a message: path and query, never userinfo, and never
    the value of an `access_token` or `api_key` parameter (a server may echo one into its links)."""
    parts = urlsplit(url)
    query = _SECRET_PARAMS.sub(r"\1=[redacted]", parts.query)
    return parts.path + (f"?{query}" if query else "")


def canonical(url: str) -> tuple[str, ...]:
    """A URL's identity for cycle detection: the same page however its query is spelled or ordered."""
    parts = urlsplit(url)
    query = parts.query.split("#", 1)[0]
    pairs = [p if "=" in p else f"{p}=" for p in query.split("&") if p]
    if "%" in query or "+" in query:
        pairs = [unquote_plus(p) for p in pairs]
    if not any(p.startswith("page=") for p in pairs):
        pairs.append("page=1")  # a list's first URL names no page: it is page 1
    return (parts.path, *sorted(pairs))


@dataclass
class LinkWalk:
    """Follows `next` links for one list, refusing cycles and foreign origins."""

    first_url: str  # the first page's own URL, where any redirect ended
    home: tuple[str, str, int | None]
    max_items: int = MAX_LIST_ITEMS
    max_pages: int = MAX_LIST_PAGES
    list_url: str = ""  # the URL asked for the first page, which says the list (default: first_url)

    def __post_init__(self) -> None:
        # The pages taken, as `canonical` keys. The first page's key is made when a next link comes to be
        # checked against it: most lists (a small section's roster) end on their first page.
        self._seen: set[tuple[str, ...]] = set()
        self.pages = 1
        self.items = 0
        self.empty_in_a_row = 0
        self.list_url = self.list_url or self.first_url
        self.path = _list_path(self.list_url)

    def check(self, url: str, came_from: str) -> str:
        try:
            home = on_origin(url, self.home)
        except ValueError as exc:
            raise PaginationError(f"next link is not a usable URL ({exc})", path=path_of(came_from)) from None
        if not home:
            host = urlsplit(url).hostname or "?"
            raise PaginationError(
                f"next link points to another host ({host}); not followed, so the token is not sent there",
                path=path_of(came_from),
            )
        if _list_path(url) != self.path:
            # Canvas keeps the path in its links. Another list's pages would be filed under this one (a
            # roster's section id comes from the crawl, not the data) and this list's own would be lost.
            raise PaginationError(f"next link leads to another list ({path_of(url)}); not followed",
                                  path=path_of(came_from))
        if not self._seen:
            self._seen.add(canonical(self.first_url))
        key = canonical(url)
        if key in self._seen:
            raise PaginationError(f"next link repeats an earlier page ({path_of(url)}); the list would loop",
                                  path=path_of(came_from))
        self._seen.add(key)
        self.pages += 1
        return url

    def same_list(self, url: str) -> None:
        """A page's own URL (where redirects ended) is on this list, or PaginationError. The first page's too:
        a redirect from it must not make another list this one."""
        if url != self.list_url and _list_path(url) != self.path:
            raise PaginationError(f"a page was redirected to another list ({path_of(url)}); not taken",
                                  path=path_of(self.list_url))

    def next_url(self, links: dict[str, str], item_count: int, came_from: str) -> str | None:
        """The page to fetch after this one, or None when the list has ended. Nothing is counted unless the
        next link is taken: a link refused here may be fetched again and turn out fine."""
        nxt = links.get("next")
        if not nxt:
            return None
        empty = self.empty_in_a_row + 1 if item_count == 0 else 0
        if empty and not _may_hide_test_students(empty, links, nxt, came_from):
            return None  # past its end, a list of unknown length answers `[]`, with a next link
        items = self.items + item_count
        if items >= self.max_items or self.pages >= self.max_pages:
            raise PaginationError(f"the list goes on past {self.pages:,} pages and {items:,} items "
                                  f"(limits {self.max_pages:,} and {self.max_items:,}); its next links do not "
                                  "lead to an end", path=path_of(came_from))
        url = self.check(nxt, came_from)
        self.items, self.empty_in_a_row = items, empty
        return url


def _may_hide_test_students(empty_in_a_row: int, links: dict[str, str], nxt: str, came_from: str) -> bool:
    """Whether the latest of `empty_in_a_row` empty pages may have held test students only, with the list
    going on after it: its next link keeps the page size, it does not go past a `last` page the server gave,
    and the empty pages so far are fewer than TEST_STUDENTS_IN_A_ROW could fill. A page past the end may carry
    another page size in its links (folio's default). The link is then checked like any other."""
    size = _count(_param("per_page", came_from))
    if not size or _count(_param("per_page", nxt)) != size:
        return False
    if "last" in links:  # a counted list: a page before its last is not past its end
        following, last = page_number(nxt), page_number(links["last"])
        if following is None or last is None or following > last:
            return False
    return empty_in_a_row <= -(-TEST_STUDENTS_IN_A_ROW // size)


def _param(name: str, url: str) -> str:
    """A query parameter's value as Rails reads it: names and values unescaped, the last one given wins
    ("" if there is none)."""
    value = ""
    for pair in _query(url).split("&"):
        if _key(pair) == name:
            raw = pair.partition("=")[2]
            value = unquote_plus(raw) if "%" in raw or "+" in raw else raw
    return value


def _key(pair: str) -> str:
    key = pair.partition("=")[0]
    return unquote_plus(key) if "%" in key or "+" in key else key


def _whole_number(text: str) -> int | None:
    """A whole number written in ASCII digits, or None (`²` is a digit to str.isdigit, not to int)."""
    return int(text) if text.isascii() and text.isdigit() else None


def _count(text: str) -> int | None:
    """A positive whole number written in ASCII digits, or None."""
    n = _whole_number(text)
    return n if n else None


def _list_path(url: str) -> str:
    """Which list a URL is a page of: its path, however escaped, without a trailing slash."""
    return unquote(urlsplit(url).path).rstrip("/")


def _query(url: str) -> str:
    """What `urlsplit(url).query` is, without splitting the rest: the text after the first `?` that comes
    before any `#` (neither can be in the scheme or the authority), once tabs and line breaks are dropped."""
    if "\t" in url or "\n" in url or "\r" in url:
        url = url.replace("\t", "").replace("\n", "").replace("\r", "")
    return url.partition("#")[0].partition("?")[2]


def page_number(url: str) -> int | None:
    """The page a URL asks for, as Canvas reads its `page` parameter; None if it names none it can read."""
    return _whole_number(_param("page", url))


def with_page(url: str, number: int) -> str:
    """The URL asking for page `number`: its first `page` parameter (escaped or not) set, any other dropped."""
    parts = urlsplit(url)
    pairs: list[str] = []
    placed = False
    for pair in parts.query.split("&") if parts.query else []:
        if _key(pair) == "page":
            if placed:
                continue
            pair, placed = f"page={number}", True
        pairs.append(pair)
    if not placed:
        pairs.append(f"page={number}")
    return parts._replace(query="&".join(pairs)).geturl()


MAX_AHEAD = 32


def pages_ahead(next_url: str, *, last_page: int | None, expected_items: int | None, per_page: int,
                round_no: int, speculate: bool = True) -> list[str]:
    """URLs of the pages after `next_url` worth fetching now, in parallel with it.

    Only when the pages are numbered (`page=N`), and only as many as are likely to exist: up to `last`
    when Canvas gave it; else up to what `expected_items` (e.g. a section's total_students) suggests;
    else a ramp that doubles each round (0, 0, 3, 7, 15, ...) so a long list of unknown length is not
    fetched one page at a time. Pages past the end are cheap `[]` answers and are never used: the
    caller still walks the pages in `next` order and stops where the list ends. Cheap, but not free
    when Canvas meters the token: every request then costs bucket room, so with `speculate=False`
    only pages known (`last`) or all but certain (`expected_items`) to exist are fetched ahead.
    """
    n = page_number(next_url)
    if n is None:
        return []
    if last_page is not None:
        extra = last_page - n
    elif expected_items is not None and -(-expected_items // per_page) > n:
        extra = -(-expected_items // per_page) - n
    elif speculate:
        extra = (1 << round_no) - 1 if round_no >= 2 else 0
    else:
        extra = 0
    extra = max(0, min(extra, MAX_AHEAD))
    return [with_page(next_url, n + k) for k in range(1, extra + 1)]
