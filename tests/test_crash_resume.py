"""SIGKILL the real CLI at many points of a crawl, resume it, and get exactly what a clean run gets.

Kill points are spread from the first request to the commit: at the K-th request the simulator sees (the
simulator kills the exporter process itself, so the point is exact), and at the snapshot's named
failpoints (part file closed, journal written, commit started, a table moved, manifest written).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from exporter.sim import ADMIN_TOKEN, AccountScope, Institution, compare, ground_truth
from tests.simthread import threaded_simulator

REQUEST_POINTS = (1, 2, 8, 20, 45, 80, 120, 180, -1)  # -1: the last request of the crawl
FAILPOINTS = ("part-closed", "journal-written", "commit-intent", "table-moved", "manifest-written")


@pytest.fixture(scope="module")
def institution() -> Institution:
    return Institution.generate(seed=5, courses=10, large_sections=1, large_section_size=(300, 400))


def crawl(base_url: str, out: Path, snapshot_id: str, *, resume: bool = False,
          failpoint: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "CANVAS_API_TOKEN": ADMIN_TOKEN}
    env.pop("CANVAS_EXPORT_FAILPOINT", None)
    if failpoint:
        env["CANVAS_EXPORT_FAILPOINT"] = failpoint
    argv = [sys.executable, "-m", "exporter", "crawl", "--base-url", base_url, "--account", "self",
            "--out", str(out), "--snapshot-id", snapshot_id, "--per-page", "10", "--concurrency", "4",
            "--checkpoint-seconds", "0", "--no-progress", "--log-format", "json"]
    return subprocess.Popen(argv + (["--resume"] if resume else []), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def durable_rosters(staging: Path) -> set[int]:
    """Sections whose whole roster the journal vouches for (the kill left them in closed part files)."""
    durable: set[int] = set()
    for entry in (staging / "journal").glob("section_users-*.json"):
        durable.update(int(unit) for unit in orjson.loads(entry.read_bytes())["units"])
    return durable


def visible_snapshots(out: Path) -> dict[str, set[str]]:
    """What a reader globbing OUT/<table>/*/*.parquet sees, checked to be readable."""
    seen = {}
    for table in ("sections", "section_users"):
        ids = {p.name.split("=", 1)[1] for p in (out / table).glob("snapshot_id=*")}
        for sid in ids:
            duckdb.sql(f"select count(*) from read_parquet('{out}/{table}/snapshot_id={sid}/*.parquet')").fetchall()
        seen[table] = ids
    return seen


def test_killed_anywhere_then_resumed_equals_a_clean_run(institution, tmp_path):
    out = tmp_path / "out"
    truth = ground_truth(institution, AccountScope("self"))
    with threaded_simulator(institution) as sim:
        clean = crawl(sim.base_url, out, "clean")
        assert clean.wait(120) == 0, clean.stderr.read().decode()
        total_requests = sim.stats.requests
        assert total_requests > 150
        assert compare(out, "clean", truth) == []
        before = digest(out / "sections") | digest(out / "section_users")

        points = [("request", k if k > 0 else total_requests + k) for k in REQUEST_POINTS]
        points += [("failpoint", name) for name in FAILPOINTS]
        committed = {"clean"}
        durable_late: dict[int, int] = {}  # kills past halfway -> rosters durable then
        for n, (kind, where) in enumerate(points):
            sid = f"k{n}"
            start = sim.stats.requests
            proc_holder: dict = {}

            def kill_at(request, k=where if kind == "request" else None):  # noqa: ANN001
                if k is not None and sim.stats.requests - start == k and "proc" in proc_holder:
                    os.kill(proc_holder["proc"].pid, signal.SIGKILL)

            sim.hooks[:] = [kill_at]
            proc = crawl(sim.base_url, out, sid, failpoint=where if kind == "failpoint" else None)
            proc_holder["proc"] = proc
            assert proc.wait(120) == -signal.SIGKILL, f"{kind} {where}: not killed: {proc.stderr.read()!r}"
            sim.hooks[:] = []

            # A reader sees complete snapshots only: the committed ones, and no part of sid before commit.
            seen = visible_snapshots(out)
            for table, ids in seen.items():
                assert ids - {sid} == committed, f"{kind} {where}: {table} shows {ids}"

            durable = durable_rosters(out / "_staging" / sid)
            asked: list[str] = []
            sim.hooks[:] = [lambda request: asked.append(request.path)]
            resumed = crawl(sim.base_url, out, sid, resume=True)
            assert resumed.wait(120) == 0, f"{kind} {where}: {resumed.stderr.read()!r}"
            sim.hooks[:] = []
            committed.add(sid)
            assert compare(out, sid, truth) == [], f"{kind} {where}"
            manifest = orjson.loads((out / "_manifests" / f"{sid}.json").read_bytes())
            assert manifest["status"] == "complete"
            # What was made durable before the kill is not fetched again.
            refetched = {p for p in asked if p.startswith("/api/v1/sections/")
                         and int(p.split("/")[4]) in durable}
            assert not refetched, f"{kind} {where}: fetched durable rosters again: {sorted(refetched)[:3]}"
            if kind == "request" and where >= total_requests // 2:
                durable_late[where] = len(durable)
            if kind == "failpoint" and where in ("commit-intent", "table-moved", "manifest-written"):
                assert asked == [], f"{where}: the commit should just be finished, not crawl again"

        # Checkpoints happen during the crawl: past halfway, rosters were durable at some kill point (which
        # ones depends on when the writer thread ran, so not every point is asked to show some).
        assert any(durable_late.values()), f"nothing was durable past halfway: {durable_late}"
        after = digest(out / "sections") | digest(out / "section_users")
        assert {k: v for k, v in after.items() if k in before} == before  # earlier snapshots untouched
        assert not (out / "_staging").exists() or not any((out / "_staging").iterdir())


@pytest.mark.parametrize("damage", ["part_file_deleted", "part_file_cut", "journal_entry_cut"])
def test_a_damaged_journal_entry_or_part_file_is_fetched_again(institution, tmp_path, damage):
    """A journal entry vouches for a part file. Deleted or cut by hand (or by a power cut before the data
    reached the disk), the resume once committed a snapshot short of rows, or unreadable, or died with a
    traceback; now the entry is dropped and its units are fetched again."""
    out = tmp_path / "out"
    with threaded_simulator(institution) as sim:
        proc = crawl(sim.base_url, out, "d", failpoint="journal-written")
        assert proc.wait(120) == -signal.SIGKILL
        [entry] = (out / "_staging" / "d").glob("journal/*.json")
        listed = orjson.loads(entry.read_bytes())
        part = out / "_staging" / "d" / listed["table"] / listed["file"]
        if damage == "part_file_deleted":
            part.unlink()
        elif damage == "part_file_cut":
            part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
        else:
            entry.write_bytes(entry.read_bytes()[:20])
        resumed = crawl(sim.base_url, out, "d", resume=True)
        assert resumed.wait(120) == 0, resumed.stderr.read().decode()[-800:]
        assert b"is damaged" in resumed.stderr.read()
    assert compare(out, "d", ground_truth(institution, AccountScope("self"))) == []
