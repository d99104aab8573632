"""Every page of one list, as fast as the list's shape allows and never past where it ends.

The pages are walked in `next` order exactly as a sequential crawler would walk them (the same end
rules, the same cycle and origin checks); numbered pages that are likely to follow are fetched ahead
in parallel (`links.pages_ahead`), and a prefetched page is used only if the walk reaches its URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

from exporter.canvas.client import CanvasClient, Page
from exporter.canvas.errors import ItemFailed, unwrap_group
from exporter.canvas.links import LinkWalk, canonical, page_number, pages_ahead


async def iter_pages(client: CanvasClient, url: str, params: Any = None, *, per_page: int = 100,
                     expected_items: int | None = None) -> AsyncIterator[Page]:
    page = await client.get_page(url, params)
    yield page
    walk = LinkWalk(page.url, client.home)
    last = page.links.get("last")
    last_page = page_number(last) if last else None
    round_no = 0
    while True:
        next_url = walk.next_url(page.links, len(page.items), page.url)
        if next_url is None:
            return
        round_no += 1
        planned = [next_url, *pages_ahead(next_url, last_page=last_page, expected_items=expected_items,
                                          per_page=per_page, round_no=round_no)]
        fetched = await fetch_all(client, planned)
        if isinstance(fetched[0], ItemFailed):
            raise fetched[0]
        page = fetched[0]
        yield page
        for planned_url, prefetched in zip(planned[1:], fetched[1:]):
            next_url = walk.next_url(page.links, len(page.items), page.url)
            if next_url is None:
                return
            if canonical(next_url) == canonical(planned_url):
                if isinstance(prefetched, ItemFailed):
                    raise prefetched  # the walk needs this page, and it could not be fetched
                page = prefetched
            else:  # the server's chain left the plan: follow the server
                page = await client.get_page(next_url)
                yield page
                break
            yield page


async def fetch_all(client: CanvasClient, urls: list[str]) -> list[Page | ItemFailed]:
    """Fetch pages concurrently (under the client's global limit). A page that fails is returned as its
    error, not raised: a page fetched ahead may turn out not to be needed."""
    results: list[Page | ItemFailed | None] = [None] * len(urls)

    async def fetch(i: int) -> None:
        try:
            results[i] = await client.get_page(urls[i])
        except ItemFailed as exc:
            results[i] = exc

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
