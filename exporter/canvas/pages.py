"""Every page of one list, as fast as the list's shape allows and never past where it ends.

The pages are walked in `next` order exactly as a sequential crawler would walk them (the same end
rules, the same cycle and origin checks); numbered pages that are likely to follow are fetched ahead
in parallel (`links.pages_ahead`), and a prefetched page is used only if the walk reaches its URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from exporter.canvas.client import CanvasClient, Page
from exporter.canvas.errors import ItemFailed, PaginationError, RetriesExhausted, unwrap_group
from exporter.canvas.links import LinkWalk, canonical, page_number, pages_ahead


LINK_RETRIES = 2

Getter = Callable[..., Awaitable[Page]]  # (url, params=None) -> Page


async def iter_pages(client: CanvasClient, url: str, params: Any = None, *, per_page: int = 100,
                     expected_items: int | None = None,
                     convert: Callable[[Page], Awaitable[Any]] | None = None,
                     ahead: bool = True) -> AsyncIterator[Page]:
    """The pages of one list, in order. With `convert`, each page is fetched raw and converted as soon as it
    arrives: `await convert(page)` turns its `body` into its `data`, whose len() is the number of items (a
    record batch: one row per item). Pages fetched ahead then wait as compact data, not as JSON. With
    `ahead=False`, one page at a time, each asked for after the one before it was answered."""
    get = _getter(client, convert)
    page = await get(url, params)
    walk = LinkWalk(page.url, client.home, list_url=url)  # the list is the one asked for, wherever page 1 ended
    page, next_url = await _settle(get, client, walk, page)
    yield page
    last = page.links.get("last")
    last_page = page_number(last) if last else None
    round_no = 0
    while next_url is not None:
        round_no += 1
        # After an empty page, only the page that says whether the list goes on: the rest is likely past its end.
        planned = [next_url, *(pages_ahead(next_url, last_page=last_page, expected_items=expected_items,
                                           per_page=per_page, round_no=round_no,
                                           speculate=not client.limit.metered) if ahead and page.item_count else [])]
        fetched = await fetch_all(get, planned)
        for planned_url, got in zip(planned, fetched):
            if next_url != planned_url and canonical(next_url) != canonical(planned_url):
                break  # the server's chain left the plan: follow the server from here
            if isinstance(got, RetriesExhausted) and planned_url != planned[0]:
                # fetched ahead with one attempt, which failed: now the walk needs it, with every retry
                client.stats.retries += 1
                client.stats.retry_reasons["look-ahead page needed"] += 1
                got = await _fetch(get, planned_url)
            if isinstance(got, ItemFailed):
                raise got  # the walk needs this page, and it could not be fetched
            page, next_url = await _settle(get, client, walk, got)
            yield page
            if next_url is None:
                return


def _getter(client: CanvasClient, convert: Callable[[Page], Awaitable[Any]] | None) -> Getter:
    if convert is None:
        return client.get_page

    async def get(url: str, params: Any = None, *, speculative: bool = False) -> Page:
        page = await client.get_page(url, params, speculative=speculative, raw=True)
        data = await convert(page)
        return page.converted(data, len(data))

    return get


async def _fetch(get: Getter, url: str, speculative: bool = False) -> Page | ItemFailed:
    try:
        return await get(url, speculative=speculative)
    except ItemFailed as exc:
        return exc


async def _settle(get: Getter, client: CanvasClient, walk: LinkWalk, page: Page) -> tuple[Page, str | None]:
    """A page and the URL after it. A Link chain that loops or leaves the host may be a passing fault
    (a proxy, a cache): fetch the page again, up to LINK_RETRIES times, before calling it an error."""
    for attempt in range(LINK_RETRIES + 1):
        try:
            walk.same_list(page.url)
            return page, walk.next_url(page.links, page.item_count, page.url)
        except PaginationError:
            if attempt == LINK_RETRIES:
                raise
            client.stats.retries += 1
            client.stats.retry_reasons["bad_link"] += 1
            page = await get(page.url)
    raise AssertionError("unreachable")


async def fetch_all(get: Getter, urls: list[str]) -> list[Page | ItemFailed]:
    """Fetch pages concurrently (under the client's global limit). A page that fails is returned as its
    error, not raised: a page fetched ahead may turn out not to be needed, so all but the first are
    speculative (one attempt at a transient fault; iter_pages fetches one again if the walk needs it)."""
    results: list[Page | ItemFailed | None] = [None] * len(urls)

    async def fetch(i: int) -> None:
        results[i] = await _fetch(get, urls[i], speculative=i > 0)

    if len(urls) == 1:
        await fetch(0)
    else:
        try:
            async with anyio.create_task_group() as tg:
                for i in range(len(urls)):
                    tg.start_soon(fetch, i)
        except BaseExceptionGroup as group:
            raise unwrap_group(group) from None
    return [r for r in results if r is not None]
