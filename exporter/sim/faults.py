"""Switchable faults. Each is drawn independently per request from one seeded RNG, so a retry can succeed.

Faults happen in front of Canvas (a load balancer's 5xx, a dropped connection), so they are decided before
authentication and throttling, except the ones that damage a response that was produced (reset, cut body,
looping Link).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, fields

FAULT_KINDS = ("error", "reset", "truncate", "stall", "throttle", "link_loop")

HTML_ERROR_BODY = (
    "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n"
    "<body><h1>{status} {reason}</h1><p>The server encountered a temporary error.</p></body></html>\n"
)


@dataclass(slots=True)
class Faults:
    """Rates are probabilities per request in [0, 1]. All off by default."""

    error_rate: float = 0.0  # a 500/502/503/504 instead of the answer
    error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    html_error_share: float = 0.5  # of those errors, the share with an HTML body (the rest Canvas's JSON)
    reset_rate: float = 0.0  # headers and part of the body, then a TCP reset
    truncate_rate: float = 0.0  # Content-Length larger than the bytes sent, then a clean close
    stall_rate: float = 0.0  # no answer for stall_seconds (then the real answer)
    stall_seconds: float = 30.0
    throttle_rate: float = 0.0  # start a burst of throttled answers for this token
    throttle_burst: int = 3  # answers in a burst (including the first)
    link_loop_rate: float = 0.0  # rel="next" points back to an earlier page (page 1 -> itself)
    path_pattern: str | None = None  # only requests whose path matches this regex get faults

    def any(self) -> bool:
        return any((self.error_rate, self.reset_rate, self.truncate_rate, self.stall_rate,
                    self.throttle_rate, self.link_loop_rate))

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """From a CLI string: `error=0.05,reset=0.01,truncate=0.01,stall=0.001,stall_seconds=60,throttle=0.01,
        link_loop=0.001`. A name is a field with or without its `_rate` suffix."""
        names = {f.name for f in fields(cls)}
        out = cls()
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip().replace("-", "_")
            name = key if key in names else f"{key}_rate"
            if not sep or name not in names or name == "error_statuses":
                raise ValueError(f"unknown fault setting {part!r}; known: {', '.join(sorted(names))}")
            if name == "path_pattern":
                out.path_pattern = value
            else:
                setattr(out, name, int(value) if name == "throttle_burst" else float(value))
        return out


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What happens to one request."""

    error_status: int | None = None
    error_html: bool = False
    stall: bool = False
    throttle: bool = False
    reset: bool = False
    truncate: bool = False
    link_loop: bool = False


NO_FAULTS = FaultPlan()


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._bursts: dict[str, int] = {}  # token -> throttled answers still owed

    def plan(self, faults: Faults, path: str, client: str) -> FaultPlan:
        owed = self._bursts.get(client, 0)
        if owed:
            self._bursts[client] = owed - 1
            return FaultPlan(throttle=True)
        if not faults.any() or (faults.path_pattern and not re.search(faults.path_pattern, path)):
            return NO_FAULTS
        rng = self.rng
        draws = [rng.random() for _ in range(6)]  # always six draws: one request's faults don't shift others
        if draws[0] < faults.throttle_rate:
            self._bursts[client] = max(0, faults.throttle_burst - 1)
            return FaultPlan(throttle=True)
        if draws[1] < faults.error_rate:
            return FaultPlan(error_status=rng.choice(faults.error_statuses),
                             error_html=rng.random() < faults.html_error_share)
        return FaultPlan(
            stall=draws[2] < faults.stall_rate,
            reset=draws[3] < faults.reset_rate,
            truncate=draws[3] >= faults.reset_rate and draws[4] < faults.truncate_rate,
            link_loop=draws[5] < faults.link_loop_rate,
        )
