"""A crawl under a mix of server and network faults loses nothing and counts every retry."""

from __future__ import annotations

import orjson
import pytest

from exporter.canvas.refs import account_ref
from exporter.config import ClientConfig, CrawlConfig, RetryPolicy, Scope, Secret, Timeouts
from exporter.export import export
from exporter.sim import ADMIN_TOKEN, AccountScope, Faults, Institution, SimOptions, Simulator, compare, ground_truth


@pytest.mark.parametrize("seed", [1, 2])
async def test_fault_mix_output_equals_truth(tmp_path, seed):
    inst = Institution.generate(seed=seed, courses=12, large_sections=1, large_section_size=(400, 600))
    faults = Faults(error_rate=0.04, reset_rate=0.015, truncate_rate=0.015, stall_rate=0.01, stall_seconds=3.0,
                    throttle_rate=0.01, link_loop_rate=0.01)
    client = ClientConfig(base_url="http://127.0.0.1", token=Secret(ADMIN_TOKEN), per_page=20, concurrency=8,
                          timeouts=Timeouts(connect=2.0, read=0.3, total=5.0),
                          retry=RetryPolicy(attempts=8, base_delay=0.001, throttle_delay=0.01, max_delay=0.05))
    async with Simulator(inst, SimOptions(seed=seed, faults=faults)) as sim:
        client = ClientConfig(**{**{f: getattr(client, f) for f in client.__dataclass_fields__},
                                 "base_url": sim.base_url})
        cfg = CrawlConfig(client=client, scope=Scope(account=account_ref("self")), out=str(tmp_path))
        result = await export(cfg)
        faults_seen = dict(sim.stats.faults)
        requests = sim.stats.requests
    injected = sum(faults_seen.values())
    assert injected >= 0.05 * requests, f"only {injected} faults in {requests} requests"
    assert compare(tmp_path, result.snapshot_id, ground_truth(inst, AccountScope("self"))) == []
    m = orjson.loads((tmp_path / "_manifests" / f"{result.snapshot_id}.json").read_bytes())
    assert m["status"] == "complete" and m["failures"] == []
    # Every fault costs a retry, except on a page fetched ahead that the walk never needed: a looping Link
    # there is never followed, and a transient fault there is counted as look_ahead_failed, not retried.
    must_retry = injected - faults_seen.get("link_loop", 0)
    ahead = m["requests"]["look_ahead_failed"]
    assert m["requests"]["retries"] + sum(ahead.values()) >= must_retry, (m["requests"], faults_seen)
    reasons = {k: m["requests"]["retry_reasons"].get(k, 0) + ahead.get(k, 0)
               for k in {*m["requests"]["retry_reasons"], *ahead}}
    if faults_seen.get("stall"):
        assert reasons.get("timed out", 0) >= 1
    if faults_seen.get("throttle"):
        assert reasons.get("throttled", 0) >= 1
