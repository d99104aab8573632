"""When a request may start: a pacer for Canvas's leaky bucket, under a cap on requests in flight.

Canvas meters each token with a leaky bucket (reference §6). A request's start leaks the bucket by
`outflow x elapsed` and adds an up-front cost U (50); a start that then finds the bucket at or above its
high-water mark is refused (403 "Rate Limit Exceeded", or 429). The request's end adds `cost - U`, so the
reservation is handed back and the real cost stays. Responses carry X-Request-Cost and X-Rate-Limit-Remaining
(hwm - count after the request; negative after a refusal). Neither the outflow nor the mark is sent, and
hosted values differ from the code's defaults, so everything below is learnt from readings.

The model. `room` is what the bucket would have left with nothing in flight:

    room = remaining + U x (other requests in flight when the reading arrived)

Every reading re-anchors it; between readings it grows with the leak, at the estimated rate λ̂, but not
beyond the most remaining ever read (an empty bucket stops leaking).

The rule. A request may start at time t when

    room + λ̂·(t - t_reading) - (U + ĉ)·in_flight  >=  refusal + margin

that is, when the bucket, after the reservation and coming cost of everything in flight, still has more
than a start needs. `refusal` is U, or the most remaining a refused start ever reported if that is more
(the host's U is a Setting too). `margin` is `slack`, plus one more U when other requests were in flight at
the reading: one of them may not have reached the server yet, so its reservation may be missing from it.
Otherwise the queue's head waits the shortfall ÷ λ̂, or until a reading or a finished request changes it.
The run therefore spends the bucket's free room at once (a burst of up to room ÷ U requests in flight),
then settles at about λ/ĉ starts per second with the bucket just under its mark. Each reading corrects
the prediction, so an error in λ̂ moves only how full the bucket is kept, not how often a start is refused.

The estimates:
- ĉ: a moving average of X-Request-Cost.
- λ̂: over a window between two readings that arrived with the same number of other requests in flight,
  each from the newest request in flight (so the reservations inside the readings are exactly those of
  the requests counted, and cancel, however the server overlaps requests), the leak is
  Δremaining + the costs reported in the window, divided by its length (at least `window` seconds).
  Windows are combined as a ratio of sums that forgets over `memory` seconds. A reading within U of the most
  remaining ever read means the bucket may have emptied (and stopped leaking), so it starts no window.
  Until the first window closes, λ̂ is Canvas's default outflow.
- A reading without a cost is a refused start: it only lowers room, never lifts it, and is not used for λ̂.

Around the pacer:
- Until the server has answered once, one request at a time: we do not yet know whether it meters us,
  nor how full our bucket already is.
- Without throttle headers the pacer does nothing, and the cap alone is the limit (`maximum`, that is
  --concurrency). `quiet` answers in a row without them switch pacing off again.
- A throttled response (`on_throttled`) halves the cap, at most once per `cooldown` so one burst of refusals
  counts once, and leaves room at "nothing to spare", so the next start waits for `margin` of leak. Every
  answered request adds 1/cap back, i.e. one per window of `cap` answers.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    maximum: int = 32  # requests in flight, at most (--concurrency)
    up_front: float = 50.0  # Canvas's up_front_cost: what each request in flight holds in the bucket
    outflow: float = 10.0  # the leak rate (units per second) assumed until one is measured: Canvas's default
    slack: float = 5.0  # room kept beyond what a start needs, for errors in the estimates
    window: float = 2.0  # shortest window (seconds) a leak-rate measurement spans
    memory: float = 30.0  # seconds over which old leak-rate measurements fade
    min_outflow: float = 0.5  # never assume a slower leak, so no wait grows without bound
    quiet: int = 16  # answers in a row without throttle headers after which pacing stops
    cooldown: float = 1.0  # seconds: one burst of refusals halves the cap once
    # Longest wait for room (seconds) before one start. Canvas's bucket is at most 200 over its mark, 25.5 s of
    # leak at the default rate; a server that claims far more (or a leak near zero) is believed only this far:
    # the start then goes ahead, and a refusal is retried like any other.
    max_wait: float = 30.0
    # Canvas clamps its bucket's count to `maximum`, so X-Rate-Limit-Remaining goes no lower than hwm - maximum
    # (-200 by default). A reading far below that is no reading: it is ignored, as one without headers is.
    lowest_remaining: float = -1000.0


class AdaptiveLimit:
    """Admits request starts by the rule above. Use `async with limit.slot():` around one request."""

    def __init__(self, rule: ThrottleRule, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self._clock = clock
        self._cap = float(rule.maximum)
        self.lowest = self._cap
        self._last_cut = -math.inf
        self._answered = False
        self._queue: deque[_Turn] = deque()
        self._tickets = 0
        self._flying: dict[int, None] = {}  # tickets of the requests in flight, in start order
        # the bucket as last read
        self.metered = False
        self._room = 0.0
        self._read_at = 0.0
        self._margin = rule.slack
        self._top = -math.inf  # most remaining ever read
        self._refusal = rule.up_front
        self._quiet = 0
        self._warned = False
        self._warned_low = False
        # the estimates
        self._cost = 0.0
        self._costs = 0.0  # every reported cost, summed
        self._marks: dict[int, tuple[float, float]] = {}  # others in flight -> (time, remaining + costs)
        self._leaked = 0.0  # over the windows measured, faded: leak ...
        self._span = 0.0  # ... and time

    @property
    def limit(self) -> int:
        """The cap on requests in flight."""
        return max(1, int(self._cap))

    @property
    def in_flight(self) -> int:
        return len(self._flying)

    @property
    def outflow(self) -> float:
        """λ̂, the estimated leak rate in cost units per second."""
        if self._span <= 0.0:
            return self.rule.outflow
        return max(self.rule.min_outflow, self._leaked / self._span)

    @property
    def cost(self) -> float:
        """ĉ, the moving average of X-Request-Cost."""
        return self._cost

    # -- readings ---------------------------------------------------------------------------------------
    def on_answer(self, ticket: int, remaining: float | None, cost: float | None = None) -> None:
        """The answer to the request started with `ticket` (still in flight) arrived; see `_Slot`."""
        if remaining is None:
            self.on_response(None)
            return
        others = newer = 0
        for t in self._flying:
            if t < ticket:
                others += 1
            elif t > ticket:
                newer += 1
        self.on_response(remaining, cost, others, newest=newer == 0)

    def on_response(self, remaining: float | None, cost: float | None = None, others: int | None = None,
                    newest: bool = True) -> None:
        """An answer arrived, with its X-Rate-Limit-Remaining and X-Request-Cost; call it before release.

        `others`: requests in flight that were started before this one (`on_answer` counts them); by
        default every other request in flight. `newest`: no request started after this one is in flight.
        Only such a reading measures the leak: a later request may have reached the server before this
        one was served, and its reservation, counted nowhere, would read as leak that never happened.
        """
        self._answered = True
        if remaining is not None and remaining < self.rule.lowest_remaining:
            if not self._warned_low:
                self._warned_low = True
                log.warning("Canvas reported X-Rate-Limit-Remaining %.0f, far below what its bucket allows; "
                            "such readings are ignored", remaining)
            remaining = None
        if remaining is None or not math.isfinite(remaining):
            self._grow()
            self._quiet += 1
            if self._quiet >= self.rule.quiet:
                self.metered = False
            self._wake()
            return
        self._quiet = 0
        now = self._clock()
        if others is None:
            others = max(0, self.in_flight - 1)
        room = remaining + self.rule.up_front * others
        if cost is None or not math.isfinite(cost):  # refused: no cost is reported
            if others == 0:  # no answer raced with it, so this much room was not enough for one start
                self._refusal = max(self._refusal, remaining)
            if self.metered:
                room = min(room, self._room_at(now))
        else:
            self._grow()
            self._learn(now, remaining, cost, others, newest)
        self.metered = True
        self._room, self._read_at = room, now
        self._margin = self.rule.slack + (self.rule.up_front if others else 0.0)
        self._top = max(self._top, remaining)
        self._wake()

    def on_throttled(self) -> None:
        """A start was refused (call after release)."""
        now = self._clock()
        if now - self._last_cut >= self.rule.cooldown:
            self._last_cut = now
            self._cap = max(1.0, self._cap / 2)
            self.lowest = min(self.lowest, self._cap)
        if self.metered:  # whatever the last reading said, there was nothing to spare
            held = (self.rule.up_front + self._cost) * self.in_flight
            self._room, self._read_at = min(self._room_at(now), self._refusal + held), now

    def _learn(self, now: float, remaining: float, cost: float, others: int, newest: bool) -> None:
        self._cost = cost if self._costs == 0.0 else self._cost + 0.2 * (cost - self._cost)
        self._costs += cost
        if remaining >= self._top - self.rule.up_front:  # the bucket may have emptied since: no window
            self._marks.clear()
            return
        if not newest:
            return
        level = remaining + self._costs  # rises with the leak only
        mark = self._marks.get(others)
        if mark is None:
            self._marks[others] = (now, level)
            return
        span = now - mark[0]
        if span < self.rule.window:
            return
        fade = math.exp(-span / self.rule.memory)
        self._leaked = self._leaked * fade + (level - mark[1])
        self._span = self._span * fade + span
        self._marks[others] = (now, level)

    def _grow(self) -> None:
        if self._cap < self.rule.maximum:
            self._cap = min(float(self.rule.maximum), self._cap + 1.0 / self._cap)

    # -- the rule ---------------------------------------------------------------------------------------
    def _ceiling(self) -> float:
        """The most room the leak can make (an empty bucket stops leaking)."""
        return max(self._room, self._top, self._refusal + self._margin)

    def _room_at(self, now: float) -> float:
        return min(self._ceiling(), self._room + self.outflow * max(0.0, now - self._read_at))

    def delay(self) -> float:
        """Seconds until one more request may start: 0 now, inf until one in flight finishes."""
        flying = len(self._flying)
        if flying >= self._cap or (flying and not self._answered):
            return math.inf
        if not self.metered:
            return 0.0
        needed = self._refusal + self._margin + (self.rule.up_front + self._cost) * flying
        if needed > self._ceiling():
            return math.inf  # the leak alone cannot make this much room
        short = needed - self._room_at(self._clock())
        # a shortfall within rounding error is none: a wait of 1e-16 s would not move a float clock on
        if short <= 1e-6:
            return 0.0
        wait = short / self.outflow
        if wait > self.rule.max_wait:
            if not self._warned:
                self._warned = True
                log.warning("Canvas reports %.0f of rate-limit room needed beyond what it has; waits for room "
                            "are capped at %.0f s", short, self.rule.max_wait)
            return self.rule.max_wait
        return wait

    # -- the queue: FIFO; only its head watches the clock -----------------------------------------------
    def _wake(self) -> None:
        if self._queue:
            self._queue[0].event.set()

    async def acquire(self) -> int:
        """Wait for a start; returns its ticket (starts are numbered in order)."""
        if not self._queue and self.delay() == 0.0:
            return self._start()
        turn = _Turn()
        self._queue.append(turn)
        waiting_for_room = None  # when this turn, at the head, began to wait for the bucket's room
        try:
            while True:
                wait = self.delay() if self._queue[0] is turn else math.inf
                if wait <= 0.0:
                    break
                if wait == math.inf:  # a slot, not room: what is in flight must end first
                    waiting_for_room = None
                else:
                    now = self._clock()
                    waiting_for_room = now if waiting_for_room is None else waiting_for_room
                    if now - waiting_for_room >= self.rule.max_wait:
                        break  # believed this far only (see ThrottleRule.max_wait)
                    wait = min(wait, waiting_for_room + self.rule.max_wait - now)
                if turn.event.is_set():  # woken before: a fresh event for the next wake
                    turn.event = anyio.Event()
                if wait == math.inf:
                    await turn.event.wait()
                else:
                    with anyio.move_on_after(wait):
                        await turn.event.wait()
        except BaseException:
            self._queue.remove(turn)
            self._wake()
            raise
        self._queue.popleft()
        self._wake()
        return self._start()

    def _start(self) -> int:
        self._tickets += 1
        self._flying[self._tickets] = None
        return self._tickets

    def release(self, ticket: int | None = None) -> None:
        """One request ended; without a ticket, the oldest in flight."""
        if ticket is None:
            ticket = next(iter(self._flying), 0)
        del self._flying[ticket]
        self._wake()

    def slot(self) -> _Slot:
        return _Slot(self)


class _Turn:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = anyio.Event()


class _Slot:
    """One request's place in flight. A reading taken through it counts as "others" only the requests
    started before it: those have reached the server, while one started later may not have yet, and adding
    a reservation the reading does not hold would overstate the room."""

    __slots__ = ("_limit", "_ticket")

    def __init__(self, limit: AdaptiveLimit) -> None:
        self._limit = limit
        self._ticket = 0

    async def __aenter__(self) -> _Slot:
        self._ticket = await self._limit.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._limit.release(self._ticket)

    def on_response(self, remaining: float | None, cost: float | None = None) -> None:
        self._limit.on_answer(self._ticket, remaining, cost)
