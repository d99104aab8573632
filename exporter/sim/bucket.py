"""Canvas's request throttle: a leaky bucket per client (app/middleware/request_throttle.rb, LeakyBucket).

On request start the bucket leaks `outflow * elapsed` and takes `up_front_cost`; if it is then at or above the
high-water mark the request is refused. When the request ends the bucket takes `cost - up_front_cost`, so
the up-front charge is refunded and the real cost stays. The count is clamped to 0..maximum. The clock is
injected so tests move time by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

RATE_LIMIT_403_BODY = b"403 Forbidden (Rate Limit Exceeded)\n"
RATE_LIMIT_429_BODY = b"429 Too Many Requests (Rate Limit Exceeded)\n"


@dataclass(frozen=True, slots=True)
class BucketParams:
    hwm: float = 600.0
    maximum: float = 800.0
    outflow: float = 10.0  # units (seconds of cost) leaked per second
    up_front_cost: float = 50.0


class LeakyBucket:
    def __init__(self, params: BucketParams = BucketParams(), clock: Callable[[], float] = time.monotonic) -> None:
        self.params = params
        self.clock = clock
        self.count = 0.0
        self.last_touched: float | None = None

    def _increment(self, amount: float) -> None:
        now = self.clock()
        if self.last_touched is not None:
            self.count = max(0.0, self.count - self.params.outflow * max(0.0, now - self.last_touched))
        self.last_touched = now
        self.count = min(max(self.count + amount, 0.0), self.params.maximum)

    def reserve(self) -> bool:
        """Leak, take the up-front cost; False when the request must be refused (the bucket is full)."""
        self._increment(self.params.up_front_cost)
        return self.count < self.params.hwm

    def settle(self, cost: float) -> None:
        """The request ended: refund the up-front cost and charge the real one."""
        self._increment(cost - self.params.up_front_cost)

    @property
    def remaining(self) -> float:
        return self.params.hwm - self.count

    def peek_remaining(self) -> float:
        """Remaining as of now, leak applied, without touching the bucket."""
        if self.last_touched is None:
            return self.params.hwm
        leaked = max(0.0, self.count - self.params.outflow * max(0.0, self.clock() - self.last_touched))
        return self.params.hwm - leaked


def ruby_float(value: float) -> str:
    """Ruby's Float#to_s: shortest round-trip digits; exponent form below 1e-4 or from 1e16 on."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    decpt = len(digits) + exponent  # position of the decimal point relative to the digits
    prefix = "-" if sign else ""
    if decpt < -3 or decpt > 16:
        mantissa = text[0] + "." + (text[1:] or "0")
        return f"{prefix}{mantissa}e{decpt - 1:+03d}"
    if decpt <= 0:
        return f"{prefix}0.{'0' * -decpt}{text}"
    if decpt >= len(text):
        return f"{prefix}{text}{'0' * (decpt - len(text))}.0"
    return f"{prefix}{text[:decpt]}.{text[decpt:]}"
