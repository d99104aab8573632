"""The leaky bucket with an injected clock (no sleeps), and throttling over HTTP in 403 and 429 modes."""

from __future__ import annotations

import pytest

from exporter.sim import ADMIN_TOKEN, NOSIS_TOKEN, BucketParams, LeakyBucket, Simulator
from exporter.sim.bucket import ruby_float

from .httpkit import auth, get


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0.0"), (600.0, "600.0"), (499.5, "499.5"), (-200.0, "-200.0"), (0.0123, "0.0123"),
     (0.0001, "0.0001"), (1.2e-05, "1.2e-05"), (1e-05, "1.0e-05"), (1e15, "1000000000000000.0"),
     (1e16, "1.0e+16"), (0.1 + 0.2, "0.30000000000000004")],
)
def test_ruby_float_to_s(value: float, text: str) -> None:
    assert ruby_float(value) == text


def test_bucket_arithmetic() -> None:
    clock = FakeClock()
    b = LeakyBucket(BucketParams(), clock)
    assert b.reserve() and b.count == 50 and b.remaining == 550
    b.settle(0.5)
    assert b.count == 0.5 and b.remaining == 599.5
    clock.now += 0.02  # leaks 0.2
    assert b.reserve() and b.count == pytest.approx(50.3)
    b.settle(2.0)
    assert b.count == pytest.approx(2.3)
    clock.now += 10  # leaks 100, floored at 0
    b.settle(50.0)  # a settle with cost == up front only leaks
    assert b.count == 0


def test_in_flight_requests_pay_up_front() -> None:
    b = LeakyBucket(BucketParams(), FakeClock())
    admitted = [b.reserve() for _ in range(12)]
    assert admitted == [True] * 11 + [False]  # the 12th finds 600 >= hwm
    for _ in range(10):
        b.reserve()
    assert b.count == 800 and b.remaining == -200  # clamped at maximum


async def test_throttle_off_sends_no_headers(sim: Simulator, http) -> None:
    got = await get(http, f"{sim.base_url}/api/v1/accounts/self/courses")
    assert "X-Request-Cost" not in got.headers and "X-Rate-Limit-Remaining" not in got.headers


@pytest.mark.parametrize(("mode", "status", "body"), [("403", 403, b"403 Forbidden (Rate Limit Exceeded)\n"),
                                                      ("429", 429, b"429 Too Many Requests (Rate Limit Exceeded)\n")])
async def test_throttling_over_http(sim: Simulator, http, mode: str, status: int, body: bytes) -> None:
    clock = FakeClock()
    sim.options.clock = clock
    sim.options.throttle = True
    sim.options.throttle_mode = mode  # type: ignore[assignment]
    sim.options.request_cost = 100.0
    url = f"{sim.base_url}/api/v1/accounts/self/courses"
    remaining = []
    for _ in range(6):
        got = await get(http, url)
        assert got.status == 200 and got.headers["X-Request-Cost"] == "100.0"
        remaining.append(got.headers["X-Rate-Limit-Remaining"])
    assert remaining == ["500.0", "400.0", "300.0", "200.0", "100.0", "0.0"]
    refused = await get(http, url)
    assert refused.status == status and refused.body == body
    assert refused.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert refused.headers["X-Rate-Limit-Remaining"] == "0.0"
    assert "X-Request-Cost" not in refused.headers and "Retry-After" not in refused.headers
    async with auth_session(NOSIS_TOKEN) as other:  # each token has its own bucket
        assert (await get(other, url)).status == 200
    clock.now += 10.0  # 100 leaked
    again = await get(http, url)
    assert again.status == 200 and again.headers["X-Rate-Limit-Remaining"] == "0.0"
    assert sim.stats.throttled == 1
    assert sim.bucket(ADMIN_TOKEN).count == 600


async def test_request_cost_can_depend_on_the_endpoint(sim: Simulator, http) -> None:
    sim.options.throttle = True
    sim.options.clock = FakeClock()
    sim.options.request_cost = lambda kind, items: 0.001 * items if kind == "account_courses" else 0.5
    got = await get(http, f"{sim.base_url}/api/v1/accounts/self/courses?per_page=5")
    assert got.headers["X-Request-Cost"] == "0.005"
    assert got.headers["X-Rate-Limit-Remaining"] == "599.995"


def auth_session(token: str):  # noqa: ANN201
    import aiohttp

    return aiohttp.ClientSession(headers=auth(token))
