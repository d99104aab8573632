"""The pacer, driven by hand: a fake clock, and the simulator's own LeakyBucket as the server."""

import heapq
import math

import anyio
import pytest

from exporter.canvas.throttle import AdaptiveLimit, ThrottleRule
from exporter.sim.bucket import BucketParams, LeakyBucket


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def limit(maximum=16, **rule):
    clock = Clock()
    return AdaptiveLimit(ThrottleRule(maximum=maximum, **rule), clock), clock


async def start(lim):
    """A start the rule allows now (the fast path returns without waiting)."""
    assert lim.delay() == 0.0
    return await lim.acquire()


async def crawl(lim, clock, bucket, seconds, *, to_server=0.0, at_server=0.0, back=0.0, cost=0.5):
    """Requests for `seconds` of fake time, as many as the limit lets start. Each reaches the bucket
    `to_server` after its start, is served for `at_server`, and its answer arrives `back` later.
    Returns the start times and the number refused."""
    events = []  # (time, order, kind, ticket, remaining, cost)
    order = 0
    starts, refused = [], 0
    while clock.now < seconds:
        wait = lim.delay()
        due = events[0][0] if events else math.inf
        if wait == 0.0:
            ticket = await lim.acquire()
            starts.append(clock.now)
            order += 1
            heapq.heappush(events, (clock.now + to_server, order, "arrive", ticket, 0.0, 0.0))
            continue
        clock.now = min(due, clock.now + wait)
        if clock.now < due:
            continue
        when, _, kind, ticket, remaining, charged = heapq.heappop(events)
        order += 1
        if kind == "arrive":
            if bucket.reserve():
                heapq.heappush(events, (when + at_server, order, "serve", ticket, 0.0, 0.0))
            else:
                bucket.settle(0.0)
                refused += 1
                heapq.heappush(events, (when + back, order, "answer", ticket, bucket.remaining, None))
        elif kind == "serve":
            bucket.settle(cost)
            heapq.heappush(events, (when + back, order, "answer", ticket, bucket.remaining, cost))
        else:
            lim.on_answer(ticket, remaining, charged)
            lim.release(ticket)
            if charged is None:
                lim.on_throttled()
    return starts, refused


def test_without_throttle_headers_nothing_is_paced():
    lim, _ = limit(maximum=4)
    lim.on_response(None)
    assert not lim.metered
    assert lim.delay() == 0.0

    async def fill():
        for _ in range(4):
            await start(lim)
    anyio.run(fill)
    assert lim.delay() == math.inf  # only the cap on requests in flight
    lim.release()
    assert lim.delay() == 0.0 and lim.limit == 4


async def test_one_request_at_a_time_until_the_server_has_answered():
    lim, _ = limit()
    await start(lim)
    assert lim.delay() == math.inf
    lim.on_response(None)  # an answer without throttle headers: the server does not meter us
    assert lim.delay() == 0.0


def test_wait_is_computed_from_the_leak_rate():
    lim, clock = limit()
    lim.on_response(-200.0, None)  # refused, and the bucket 200 over its mark
    # a start needs more than U (50) plus the slack (5) of room: 255 of leak at the assumed 10/s
    assert lim.delay() == pytest.approx(25.5)
    clock.now = 20.0
    assert lim.delay() == pytest.approx(5.5)
    clock.now = 25.5
    assert lim.delay() == 0.0


def test_room_is_reserved_for_every_request_in_flight():
    lim, _ = limit()
    lim.on_response(300.0, 1.0)
    # 300 of room, 51 (U + ĉ) held per start in flight, 55 needed for one more: with 4 in flight 96 are
    # left, so a fifth starts; with 5, 45 are left and a sixth may not
    assert starts_allowed(lim) == 5
    assert lim.delay() == math.inf  # only an answer can make room now


def test_a_refused_reading_lowers_room_but_never_raises_it():
    lim, clock = limit()
    lim.on_response(20.0, 1.0)
    assert lim.delay() == pytest.approx(3.5)  # 55 needed, 20 there, 10/s
    lim.on_response(45.0, None)  # refused with 45 left: not more room than predicted
    assert lim.delay() == pytest.approx(3.5)
    lim.on_response(-100.0, None)
    assert lim.delay() == pytest.approx(15.5)


def starts_allowed(lim):
    async def go():
        n = 0
        while lim.delay() == 0.0:
            await lim.acquire()
            n += 1
        return n
    return anyio.run(go)


def test_a_refusal_with_more_than_u_left_raises_what_a_start_needs():
    usual, _ = limit()
    usual.on_response(140.0, 1.0)
    assert starts_allowed(usual) == 2  # 140 - 51 held leaves 89 >= 55 for the second
    learnt, _ = limit()
    learnt.on_response(90.0, None)  # this host refused a start with 90 left: its up-front cost is higher
    learnt.on_response(140.0, 1.0)
    assert starts_allowed(learnt) == 1  # a start now needs 90 + 5


def test_throttled_halves_the_cap_once_per_cooldown_and_answers_grow_it_back():
    lim, clock = limit()
    lim.on_throttled()
    lim.on_throttled()  # the same burst: counted once
    assert lim.limit == 8 and lim.lowest == 8
    clock.now = 1.5
    lim.on_throttled()
    assert lim.limit == 4
    for _ in range(10):
        clock.now += 2
        lim.on_throttled()
    assert lim.limit == 1 and lim.lowest == 1  # never below one
    answers = 0
    while lim.limit < 16:
        lim.on_response(None)
        answers += 1
    assert 100 < answers < 160  # about one per `cap` answers: 1+2+...+15, plus the slow start from 1
    assert lim.lowest == 1


def test_on_throttled_leaves_nothing_to_spare():
    lim, clock = limit()
    lim.on_response(500.0, 1.0)
    assert lim.delay() == 0.0
    lim.on_throttled()  # no reading came with it (a proxy's 429, say)
    assert lim.delay() == pytest.approx(5.0 / 10.0)  # the slack, at 10/s


def test_quiet_answers_switch_pacing_off():
    lim, _ = limit(quiet=3)
    lim.on_response(-50.0, None)
    assert lim.delay() > 0
    lim.on_response(None)
    lim.on_response(None)
    assert lim.delay() > 0
    lim.on_response(None)
    assert lim.delay() == 0.0


@pytest.mark.parametrize("hwm,outflow,cost", [(600, 10.0, 0.6761), (700, 3.0, 0.25), (600, 25.0, 6.8)])
async def test_burst_then_steady_rate_with_no_refusal(hwm, outflow, cost):
    lim, clock = limit(maximum=32)
    bucket = LeakyBucket(BucketParams(hwm=hwm, outflow=outflow), clock)
    seconds = 120.0
    starts, refused = await crawl(lim, clock, bucket, seconds, at_server=0.004, cost=cost)
    assert refused == 0
    # Everything the bucket can take in the time: its free room at the start, then the leak.
    best = (hwm - 50 + outflow * seconds) / cost
    assert 0.97 * best <= len(starts) <= best + 1
    late = [t for t in starts if t > seconds / 2]
    assert len(late) / (seconds / 2) == pytest.approx(outflow / cost, rel=0.03)  # settled at λ/c
    assert lim.outflow == pytest.approx(outflow, rel=0.05)  # learnt, not assumed
    assert lim.cost == pytest.approx(cost)


async def test_with_latency_and_requests_overlapping_at_the_server():
    lim, clock = limit(maximum=32)
    bucket = LeakyBucket(BucketParams(), clock)
    seconds = 120.0
    starts, refused = await crawl(lim, clock, bucket, seconds, to_server=0.03, at_server=0.25, back=0.03,
                                  cost=0.6761)
    assert refused <= 0.005 * len(starts)
    # Every request in flight holds U (50) of room, and the steady rate λ/c = 14.8/s with a 0.31 s round
    # trip keeps 4.6 in flight: that much room is held until the end, never spent on requests.
    held = 50 * (10.0 / 0.6761) * 0.31
    best = (550 - held + 10.0 * seconds) / 0.6761
    assert len(starts) >= 0.95 * best
    assert lim.outflow == pytest.approx(10.0, rel=0.15)


async def test_after_an_idle_spell_the_room_is_not_overestimated():
    lim, clock = limit(maximum=32)
    bucket = LeakyBucket(BucketParams(), clock)
    _, refused = await crawl(lim, clock, bucket, 30.0, at_server=0.004, cost=0.6761)
    clock.now += 600.0  # nothing to fetch for ten minutes: the bucket empties, and stops leaking
    _, refused_after = await crawl(lim, clock, bucket, clock.now + 30.0, at_server=0.004, cost=0.6761)
    assert refused == refused_after == 0
    assert lim.outflow == pytest.approx(10.0, rel=0.05)  # the idle spell did not drag the estimate down


async def test_a_waiter_starts_when_a_reading_makes_room():
    lim, clock = limit()
    lim.on_response(-100.0, None)
    started = []

    async def waiter():
        await lim.acquire()
        started.append(clock.now)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert started == []
        clock.now = 3.0
        lim.on_response(80.0, 0.5)  # another token's run ended: plenty of room now
        await anyio.wait_all_tasks_blocked()
        assert started == [3.0]


async def test_waiters_start_in_order_and_a_cancelled_one_leaks_nothing():
    lim, _ = limit(maximum=1)
    lim.on_response(None)
    first = await lim.acquire()
    order = []

    async def waiter(name):
        await lim.acquire()
        order.append(name)

    async with anyio.create_task_group() as tg:
        for name in "abc":
            tg.start_soon(waiter, name)
            await anyio.wait_all_tasks_blocked()
        with anyio.move_on_after(0.01):
            await lim.acquire()  # cancelled while queued
        lim.release(first)
        await anyio.wait_all_tasks_blocked()
        assert order == ["a"]
        lim.release()
        await anyio.wait_all_tasks_blocked()
        lim.release()
        await anyio.wait_all_tasks_blocked()
        assert order == ["a", "b", "c"]
    lim.release()
    assert lim.in_flight == 0


def test_a_wait_for_room_is_capped_whatever_the_server_claims(caplog):
    lim, _ = limit(max_wait=30.0)
    lim.on_response(-900.0, 1.0)  # an answered request that says the bucket is 900 over its mark
    lim._cost = 0.0
    assert lim.delay() == 30.0  # 955 of room short at 10 a second
    lim.on_response(1e12, None)  # a refusal that claims a trillion of room was not enough
    assert lim.delay() == 30.0
    assert sum("capped at 30 s" in r.getMessage() for r in caplog.records) == 1  # said once, not per start


def test_a_reading_far_below_what_canvas_allows_is_not_believed(caplog):
    """Canvas clamps its count, so remaining goes no lower than about -200: -1e9 is no reading at all (it made
    every start wait 30 s, again and again)."""
    lim, _ = limit()
    lim.on_response(500.0, 1.0)
    lim.on_response(-1e9, 1.0)
    assert lim.delay() == 0.0  # the reading before it stands: room for a start now
    lim.on_response(-1e9, 1.0)
    assert sum("far below" in r.getMessage() for r in caplog.records) == 1


async def test_one_start_waits_for_room_at_most_max_wait_in_all():
    """A server whose readings never leave room (a leak it never shows) gets a start every max_wait, not none:
    the head's wait is capped in all, not only each time it is computed."""
    lim, clock = limit(max_wait=0.05)
    lim.on_response(-900.0, 1.0)
    real = anyio.current_time()
    clock_at = clock.now

    async def tick():  # the fake clock follows real time, so the cap can pass
        while True:
            await anyio.sleep(0.005)
            clock.now = clock_at + anyio.current_time() - real

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        with anyio.fail_after(5):
            await lim.acquire()
        tg.cancel_scope.cancel()
    assert 0.05 <= clock.now - clock_at < 1.0
