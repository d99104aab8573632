"""The simulator's switches. Mutable on purpose: tests flip them while the server runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Literal

from exporter.sim.auth import DEFAULT_TOKENS, Permissions
from exporter.sim.bucket import BucketParams
from exporter.sim.faults import Faults


@dataclass(slots=True)
class SimOptions:
    seed: int = 1
    courses: int = 100  # institution size when the simulator generates one itself
    latency_ms: float = 0.0  # added to every response
    throttle: bool = False  # Canvas's leaky bucket per token; off: no X-Request-Cost / X-Rate-Limit-Remaining
    throttle_mode: Literal["403", "429"] = "403"
    bucket: BucketParams = field(default_factory=BucketParams)
    # X-Request-Cost of one request in seconds: a number, or a function of (kind, item count) where kind is
    # the endpoint name ("section_users", "course_sections", ...).
    request_cost: float | Callable[[str, int], float] = 0.05
    faults: Faults = field(default_factory=Faults)
    forbidden_courses: set[int] = field(default_factory=set)  # course ids no token may read
    auth_error_updates: bool = False  # site-admin flag api_auth_error_updates: unpermitted -> 403, not 401
    tokens: dict[str, Permissions] = field(default_factory=lambda: dict(DEFAULT_TOKENS))
    clock: Callable[[], float] = time.monotonic  # the bucket's clock
