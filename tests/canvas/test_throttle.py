import anyio
import pytest

from exporter.canvas.throttle import AdaptiveLimit, ThrottleRule


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def limit(maximum=16):
    clock = Clock()
    return AdaptiveLimit(ThrottleRule(maximum=maximum, low_water=150, high_water=300, cooldown=1.0), clock), clock


def test_starts_at_maximum_and_ignores_missing_headers():
    lim, _ = limit()
    lim.on_response(None)
    assert lim.limit == 16


def test_throttled_halves_once_per_cooldown():
    lim, clock = limit()
    lim.on_throttled()
    lim.on_throttled()  # the same burst: counted once
    assert lim.limit == 8
    clock.now = 1.5
    lim.on_throttled()
    assert lim.limit == 4
    for _ in range(10):
        clock.now += 2
        lim.on_throttled()
    assert lim.limit == 1  # never below one


def test_low_room_shrinks_high_room_grows_back_additively():
    lim, clock = limit()
    lim.on_response(100.0)
    assert lim.limit == 12
    lim.on_response(200.0)  # between the marks: hold
    assert lim.limit == 12
    grown = 0
    while lim.limit < 16:
        lim.on_response(550.0)
        grown += 1
    assert 40 < grown < 70  # about one per window of `limit` responses: 12+13+14+15
    lim.on_response(600.0)
    assert lim.limit == 16  # capped at the maximum


async def test_semaphore_follows_the_limit():
    lim, _ = limit(maximum=4)
    held = []
    for _ in range(4):
        await lim.acquire()
        held.append(1)
    lim.on_throttled()  # limit 2 while 4 are in flight
    got = []

    async def waiter():
        await lim.acquire()
        got.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        lim.release()
        lim.release()
        await anyio.wait_all_tasks_blocked()
        assert got == []  # 2 in flight, limit 2: still waiting
        lim.release()
        await anyio.wait_all_tasks_blocked()
        assert got == [1]
    assert lim.in_flight == 2


async def test_cancelled_waiter_does_not_leak_a_slot():
    lim, _ = limit(maximum=1)
    await lim.acquire()
    with anyio.move_on_after(0.01):
        await lim.acquire()
    lim.release()
    assert lim.in_flight == 0
    await lim.acquire()
    assert lim.in_flight == 1


@pytest.mark.parametrize("remaining", [-200.0, 0.0])
def test_negative_room_after_throttle_is_a_cut(remaining):
    lim, _ = limit()
    lim.on_response(remaining)
    assert lim.limit == 12
