"""Canvas's numeric pagination: per_page, page, and the Link header (lib/api.rb + the folio gem).

Everything here is pure: the server hands in the parsed query and the collection, gets back the page slice
and the Link header text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, TypeVar
from urllib.parse import parse_qsl, quote, quote_plus

PER_PAGE = 10
MAX_PER_PAGE = 100
MAX_LINK_HEADERS_SIZE = 6 * 1024
EXCLUDE_IN_PAGINATION_LINKS = frozenset({"page", "per_page", "access_token", "api_key"})
LINK_ORDER = ("current", "next", "prev", "first", "last")
LINK_PRIORITY = ("next", "last", "prev", "current", "first")

Params = dict[str, "str | list[str]"]
T = TypeVar("T")

_RUBY_INT = re.compile(r"\s*([+-]?\d+)")
# Rails' escape_segment keeps unreserved characters, sub-delims, ':' and '@'.
_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"


class InvalidPage(Exception):
    """Folio::InvalidPage: the server answers 404."""


def parse_query(query_string: str) -> Params:
    """Rack's nested query parsing, for the forms Canvas clients use: `k=v` and `k[]=v` (a list)."""
    params: Params = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key.endswith("[]"):
            base = key[:-2]
            existing = params.get(base)
            if isinstance(existing, list):
                existing.append(value)
            else:
                params[base] = [value]
        else:
            params[key] = value
    return params


def as_list(value: str | list[str] | None) -> list[str]:
    """Ruby's Array(params[:x])."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def ruby_to_i(text: str) -> int:
    """String#to_i: leading integer or 0."""
    m = _RUBY_INT.match(text)
    return int(m.group(1)) if m else 0


def per_page_for(params: Params, default: int = PER_PAGE, maximum: int = MAX_PER_PAGE) -> int:
    raw = params.get("per_page")
    if raw is None:
        return default
    if isinstance(raw, list):  # Array#to_i does not exist in Ruby; Rails would 500. Treat as invalid.
        return 1
    return min(max(ruby_to_i(raw), 1), maximum)


def page_for(params: Params) -> int:
    raw = params.get("page")
    if raw is None or raw == "":
        return 1
    if isinstance(raw, list) or not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise InvalidPage(raw)
    return int(raw)


def to_query(params: Params) -> str:
    """ActiveSupport Hash#to_query: CGI-escaped pairs, arrays as `k%5B%5D=v`, sorted, empty arrays dropped."""
    pairs = []
    for key, value in params.items():
        if isinstance(value, list):
            if not value:
                continue
            prefix = quote_plus(f"{key}[]", safe="")
            pairs.append("&".join(f"{prefix}={quote_plus(v, safe='')}" for v in value))
        else:
            pairs.append(f"{quote_plus(key, safe='')}={quote_plus(value, safe='')}")
    pairs.sort()
    return "&".join(pairs)


def escape_segment(value: str) -> str:
    """How a Rails URL helper writes a path parameter (so `sis_course_id:A/B` becomes `sis_course_id:A%2FB`)."""
    return quote(value, safe=_SEGMENT_SAFE)


@dataclass(frozen=True, slots=True)
class PageLinks:
    current: int
    next: int | None
    prev: int | None
    first: int
    last: int | None


def known_total_page(items: Sequence[T], page: int, per_page: int) -> tuple[Sequence[T], PageLinks]:
    """A page of a collection whose COUNT ran (sections index): `last` always, no `next` on the last page."""
    total_pages = max(1, -(-len(items) // per_page))
    if page > total_pages:
        return past_end(page)
    offset = (page - 1) * per_page
    return items[offset:offset + per_page], PageLinks(
        current=page,
        next=page + 1 if page < total_pages else None,
        prev=page - 1 if page > 1 else None,
        first=1,
        last=total_pages,
    )


def unknown_total_links(page: int, per_page: int, length: int) -> PageLinks:
    """folio with total_entries: nil. BasicPage#replace learns the total from a short page (page 1, or non-empty);
    otherwise the stream is "infinite": `next` is page+1 and there is no `last`."""
    if length < per_page and (page == 1 or length > 0):
        offset = (page - 1) * per_page
        last = max(1, -(-(offset + length) // per_page))
        return PageLinks(current=page, next=None, prev=page - 1 if page > 1 else None, first=1, last=last)
    return PageLinks(current=page, next=page + 1, prev=page - 1 if page > 1 else None, first=1, last=None)


def unknown_total_page(items: Sequence[T], page: int, per_page: int) -> tuple[Sequence[T], PageLinks]:
    offset = (page - 1) * per_page
    chunk = items[offset:offset + per_page]
    return chunk, unknown_total_links(page, per_page, len(chunk))


def past_end(page: int) -> tuple[list, PageLinks]:
    """Api.paginate_collection! rescue: a new, total-unknown page object with no items."""
    return [], PageLinks(current=page, next=page + 1, prev=page - 1 if page > 1 else None, first=1, last=None)


def link_header(base_url: str, params: Params, links: PageLinks, per_page: int) -> str | None:
    """build_links_hash + build_links_from_hash: base?query&page=N&per_page=M, rels in Canvas's order,
    dropped in LINK_PRIORITY order past 6 KB. None when there is no link at all."""
    return render_links(link_base(base_url, params), links, per_page)


def link_base(base_url: str, params: Params) -> str:
    """What every link of one list shares: the URL and the kept query, ready for `page=N&per_page=M`."""
    kept = {k: v for k, v in params.items() if k not in EXCLUDE_IN_PAGINATION_LINKS}
    base = base_url + ("&" if "?" in base_url else "?")
    query = to_query(kept) if kept else ""
    if query:
        base += query + "&"
    return base


def render_links(base: str, links: PageLinks, per_page: int) -> str | None:
    """The Link header from link_base's text and the page numbers."""
    pages = {"current": links.current, "next": links.next, "prev": links.prev, "first": links.first,
             "last": links.last}
    rendered: dict[str, str] = {}
    size = 0
    for rel in LINK_PRIORITY:
        number = pages[rel]
        if number is None:
            continue
        link = f'<{base}page={number}&per_page={per_page}>; rel="{rel}"'
        if size + len(link) > MAX_LINK_HEADERS_SIZE:
            break
        size += len(link)
        rendered[rel] = link
    if not rendered:
        return None
    return ",".join(rendered[rel] for rel in LINK_ORDER if rel in rendered)
