"""PageDecoder: pages typed in batches on worker threads; every waiting page gets its own result.

Many tasks decode at once (so pages queue and go in shared batches), some with pages the columnar path
declines or that cannot be typed at all, and some are cancelled while they wait or while they are being
led to a lane. Each surviving task must get exactly the reference result for its own page, and nothing
may hang.
"""

from __future__ import annotations

import random

import anyio
import pytest
import orjson

from exporter.arrow_thread import ArrowThread
from exporter.canvas.errors import BadResponse
from exporter.columnar import PageDecoder, RawPage
from exporter.rows import SECTION_USERS, SECTIONS, to_batch


def _parse(page: RawPage) -> list:
    items = orjson.loads(page.body)
    if not isinstance(items, list):
        raise BadResponse("expected a JSON list", path=page.where)
    return items


def _users_page(section: int, n: int, rng: random.Random) -> bytes:
    items = []
    for i in range(n):
        item = {"id": section * 1000 + i, "name": f"U{i}", "created_at": "2025-01-02T03:04:05Z"}
        roll = rng.random()
        if roll < 0.3:
            item["sis_import_id"] = None
        elif roll < 0.6:
            item["sis_import_id"] = rng.randint(1, 10**12)
        items.append(item)
    return orjson.dumps(items)


def _page(i: int, rng: random.Random) -> tuple:
    """A page and the table it belongs to: mostly plain, some the columnar path declines, some broken."""
    context = {"section_id": i, "course_id": i // 3}
    kind = i % 10
    if kind == 7:  # a string id: declined, then typed the reference way
        return SECTION_USERS, RawPage(b'[{"id":"%d","name":"S"}]' % (i * 1000), f"/s/{i}", context)
    if kind == 8:  # not a list: the page's own BadResponse
        return SECTION_USERS, RawPage(b'{"errors":[]}', f"/s/{i}", context)
    if kind == 9:
        return SECTIONS, RawPage(orjson.dumps([{"id": i, "course_id": i // 3, "name": "Sec"}]), f"/c/{i}")
    return SECTION_USERS, RawPage(_users_page(i, rng.randint(0, 40), rng), f"/s/{i}", context)


@pytest.fixture(params=["anyio's thread pool, two lanes", "the crawl's ArrowThread, one lane"])
def decoder(request):
    """A decoder as tests build it by default, and as the crawl builds it."""
    if request.param.startswith("anyio"):
        yield PageDecoder(_parse)
        return
    with ArrowThread() as arrow:
        yield PageDecoder(_parse, arrow.run_sync, lanes=1)


def _expected(table, page: RawPage):
    try:
        return to_batch(table, _parse(page), page.where, page.context)
    except BadResponse as exc:
        return exc


async def test_every_page_gets_its_own_result_from_shared_batches(decoder) -> None:
    rng = random.Random(5)
    pages = [_page(i, rng) for i in range(300)]
    got: dict[int, object] = {}

    async def one(i: int) -> None:
        table, page = pages[i]
        try:
            got[i] = await decoder.decode(table, page)
        except BadResponse as exc:
            got[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(pages)):
            tg.start_soon(one, i)
    for i, (table, page) in enumerate(pages):
        want = _expected(table, page)
        if isinstance(want, BadResponse):
            assert isinstance(got[i], BadResponse) and got[i].status == 200, (i, got[i])
        else:
            assert got[i].equals(want), i
    stats = decoder.stats
    assert stats.columnar_pages + stats.reference_pages == len(pages)
    assert stats.batches < len(pages)  # pages went together
    assert stats.columnar_pages > 0 and stats.reference_pages > 0


async def test_cancelled_waiters_neither_hang_the_rest_nor_take_their_results(decoder) -> None:
    rng = random.Random(9)
    pages = [(SECTION_USERS, RawPage(_users_page(i, 30, rng), f"/s/{i}", {"section_id": i, "course_id": 1}))
             for i in range(400)]
    got: dict[int, object] = {}
    cancelled: set[int] = set()

    async def one(i: int, scope: anyio.CancelScope) -> None:
        with scope:
            got[i] = await decoder.decode(*pages[i])
        if scope.cancel_called:
            cancelled.add(i)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            scopes = [anyio.CancelScope() for _ in pages]
            for i, scope in enumerate(scopes):
                tg.start_soon(one, i, scope)
            for round_no in range(40):  # cancel some while they wait, lead, or have just been answered
                await anyio.sleep(0)
                for i in rng.sample(range(len(pages)), 5):
                    scopes[i].cancel()
    assert cancelled
    for i, (table, page) in enumerate(pages):
        if i in got:
            assert got[i].equals(_expected(table, page)), i
        else:
            assert i in cancelled, f"page {i} got no result and was not cancelled"
    assert len(got) + len(cancelled - set(got)) == len(pages)
    # the decoder is left idle and usable
    assert decoder._busy == 0 and not decoder._queue
    table, page = pages[0]
    assert (await decoder.decode(table, page)).equals(_expected(table, page))


async def test_a_page_cancelled_just_as_it_is_told_to_lead_passes_the_lane_on() -> None:
    """The lane's next leader is cancelled between being told and running: the page after it must lead
    instead, or it would wait for ever."""
    import asyncio

    rng = random.Random(3)
    decoder = PageDecoder(_parse)
    decoder.LANES = 1
    pages = [(SECTION_USERS, RawPage(_users_page(i, 20, rng), f"/s/{i}", {"section_id": i, "course_id": 1}))
             for i in range(3)]
    first = asyncio.ensure_future(decoder.decode(*pages[0]))
    await asyncio.sleep(0)  # it leads: its batch is on the worker thread
    told = asyncio.ensure_future(decoder.decode(*pages[1]))
    after = asyncio.ensure_future(decoder.decode(*pages[2]))
    await asyncio.sleep(0)  # both wait in the queue
    hand_over = decoder._hand_over

    def cancel_the_next_leader() -> None:
        hand_over()
        if not told.done():
            told.cancel()  # its future already says "lead"; the cancel lands first when it resumes
            decoder._hand_over = hand_over

    decoder._hand_over = cancel_the_next_leader
    with anyio.fail_after(20):
        assert (await first).equals(_expected(*pages[0]))
        assert (await after).equals(_expected(*pages[2]))
    assert told.cancelled()
    assert decoder._busy == 0 and not decoder._queue


async def test_a_cancel_is_not_turned_into_the_pages_error() -> None:
    """A waiting page whose batch gave it an error, cancelled before it resumes, ends cancelled: the page's
    BadResponse must not replace the cancellation (it would be recorded as a failed item)."""
    import asyncio

    rng = random.Random(4)
    decoder = PageDecoder(_parse)
    decoder.LANES = 1
    good = [(SECTION_USERS, RawPage(_users_page(i, 5, rng), f"/s/{i}", {"section_id": i, "course_id": 1}))
            for i in range(2)]
    bad = (SECTION_USERS, RawPage(b'{"errors":[]}', "/s/9", {"section_id": 9, "course_id": 1}))
    first = asyncio.ensure_future(decoder.decode(*good[0]))
    await asyncio.sleep(0)  # it leads alone
    second = asyncio.ensure_future(decoder.decode(*good[1]))
    doomed = asyncio.ensure_future(decoder.decode(*bad))
    await asyncio.sleep(0)  # both wait; the second will lead them both
    hand_over = decoder._hand_over

    second_led = [False]

    def cancel_once_answered() -> None:
        hand_over()
        if not doomed.done() and second_led[0]:  # its future holds its BadResponse; it has not resumed
            doomed.cancel()

    original = decoder._decode_all

    def note(jobs):  # the second's batch holds the doomed page
        if len(jobs) == 2:
            second_led[0] = True
        return original(jobs)

    decoder._decode_all = note
    decoder._hand_over = cancel_once_answered
    with anyio.fail_after(20):
        await first
        await second
        with pytest.raises(asyncio.CancelledError):
            await doomed
