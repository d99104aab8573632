"""The adaptive limit on requests in flight.

Canvas meters each token with a leaky bucket: every request in flight reserves an up-front cost (50),
each finished request adds what it really cost, the bucket leaks at a fixed rate, and a request that
arrives while the bucket is above its high-water mark is refused (403 "Rate Limit Exceeded", or 429).
`X-Rate-Limit-Remaining` tells how far below the mark the bucket is.

The control rule is additive increase, multiplicative decrease:
- a throttled response halves the limit (at most once per `cooldown` seconds, so one burst of refusals
  counts once);
- a response whose remaining room is below `low_water` shrinks the limit by a quarter (once per cooldown);
- a response with room above `high_water` grows the limit by 1/limit, i.e. by one per window of
  `limit` such responses;
- the limit stays within [1, maximum]. Without throttle headers (throttling off) nothing changes and the
  limit stays at its maximum.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    maximum: int = 32
    low_water: float = 150.0  # three up-front reservations of room left: back off
    high_water: float = 300.0  # six reservations of room: safe to add one more request in flight
    cooldown: float = 1.0


class AdaptiveLimit:
    """A semaphore whose size follows the rule above. Use `async with limit.slot():`."""

    def __init__(self, rule: ThrottleRule, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self._clock = clock
        self._limit = float(rule.maximum)
        self._in_flight = 0
        self._waiters: deque[anyio.Event] = deque()
        self._last_cut = -math.inf
        self.lowest = self._limit

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- the control rule -------------------------------------------------------------------------------
    def on_throttled(self) -> None:
        self._cut(0.5)

    def on_response(self, remaining: float | None) -> None:
        if remaining is None:
            return
        if remaining < self.rule.low_water:
            self._cut(0.75)
        elif remaining > self.rule.high_water and self._limit < self.rule.maximum:
            self._limit = min(float(self.rule.maximum), self._limit + 1.0 / self._limit)
            self._grant()

    def _cut(self, factor: float) -> None:
        now = self._clock()
        if now - self._last_cut < self.rule.cooldown:
            return
        self._last_cut = now
        self._limit = max(1.0, self._limit * factor)
        self.lowest = min(self.lowest, self._limit)

    # -- the semaphore: FIFO, waking only as many waiters as there are free slots ----------------------
    def _grant(self) -> None:
        while self._waiters and self._in_flight < self.limit:
            waiter = self._waiters.popleft()
            self._in_flight += 1
            waiter.set()

    async def acquire(self) -> None:
        if self._in_flight < self.limit and not self._waiters:
            self._in_flight += 1
            return
        waiter = anyio.Event()
        self._waiters.append(waiter)
        try:
            await waiter.wait()
        except BaseException:
            if waiter.is_set():  # granted while being cancelled: hand the slot on
                self.release()
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self._in_flight -= 1
        self._grant()

    def slot(self) -> _Slot:
        return _Slot(self)


class _Slot:
    __slots__ = ("_limit",)

    def __init__(self, limit: AdaptiveLimit) -> None:
        self._limit = limit

    async def __aenter__(self) -> None:
        await self._limit.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._limit.release()
