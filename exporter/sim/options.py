"""The simulator's switches. Mutable on purpose: tests flip them while the server runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Literal

from exporter.sim.auth import DEFAULT_TOKENS, Permissions
from exporter.sim.bucket import BucketParams
from exporter.sim.endpoints import MIN_SEARCH_TERM_LENGTH
from exporter.sim.faults import Faults
from exporter.sim.views import STUDENTS_CAP


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
    now: Callable[[], float] = time.time  # wall clock: created_at and the default name of a created section
    # include[]=students lists at most this many (Canvas documents a cap without its value); None: no cap.
    students_cap: int | None = STUDENTS_CAP
    # search_term shorter than this is a 400 (docs say 2; SearchTermHelper had 3, later none); 0: no minimum.
    min_search_term_length: int = MIN_SEARCH_TERM_LENGTH
    # A section date that is not ISO 8601: False gives a 400 with Canvas's error shape; True stores null,
    # as Rails' typecast of an unparseable string would (what Canvas most likely does; not observed).
    lenient_dates: bool = False
    # GET answers joined from each item's cached JSON bytes (render.py), dropped whenever the institution
    # changes; False builds every answer from the model (the reference the cache is tested against).
    render_cache: bool = True
