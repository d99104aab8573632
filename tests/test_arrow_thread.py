"""ArrowThread: the crawl's one thread for Arrow work, and the process's allocator settings."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import anyio
import pytest

from exporter.arrow_thread import ArrowThread, limit_malloc_arenas


async def test_work_runs_in_order_on_one_thread_that_is_not_the_loops() -> None:
    seen: list[tuple[int, int]] = []
    with ArrowThread() as arrow:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(arrow.run_sync, lambda i=i: seen.append((i, threading.get_ident())))
                await anyio.lowlevel.checkpoint()
    assert [i for i, _ in seen] == list(range(20))
    threads = {ident for _, ident in seen}
    assert len(threads) == 1 and threading.get_ident() not in threads


async def test_results_and_errors_come_back_to_the_caller() -> None:
    def fail() -> None:
        raise ValueError("bad page")

    with ArrowThread() as arrow:
        assert await arrow.run_sync(pow, 2, 10) == 1024
        with pytest.raises(ValueError, match="bad page"):
            await arrow.run_sync(fail)
        assert await arrow.run_sync(len, "still works") == 11


async def test_a_cancelled_caller_waits_for_its_work_to_end() -> None:
    """The work is never abandoned half done: the caller is cancelled only once the function has returned."""
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(30)
        finished.append("done")

    with ArrowThread() as arrow:
        outcome: list[str] = []

        async def caller(scope: anyio.CancelScope) -> None:
            with scope:
                await arrow.run_sync(slow)
                outcome.append("returned")
            outcome.append("cancelled" if scope.cancelled_caught else "not cancelled")
            outcome.append(f"work finished: {bool(finished)}")

        scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller, scope)
            await anyio.to_thread.run_sync(started.wait, 30)
            scope.cancel()
            await anyio.lowlevel.checkpoint()
            assert not outcome  # still waiting for the work
            release.set()
    assert outcome == ["cancelled", "work finished: True"]


def test_close_is_idempotent_and_refuses_later_work() -> None:
    arrow = ArrowThread()
    arrow.close()
    arrow.close()

    async def late() -> None:
        await arrow.run_sync(len, "x")

    with pytest.raises(RuntimeError):
        anyio.run(late)


def test_malloc_arenas_are_left_alone_when_the_user_chose(monkeypatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_arenas_are_limited_on_glibc(monkeypatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert limit_malloc_arenas() is True


@pytest.mark.parametrize("chosen, expected", [(None, "system"), ("jemalloc", "jemalloc"), ("mimalloc", "mimalloc")])
def test_arrows_allocator_is_the_systems_unless_the_user_chose(chosen, expected) -> None:
    """Importing the package before pyarrow sets Arrow's default pool; a choice in the environment wins."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = ("import exporter.crawl, pyarrow as pa, pyarrow.compute as pc;"
            "pc.add(pa.array([1]), 1);"  # something is allocated through the pool
            "print(pa.default_memory_pool().backend_name)")
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    backend = got.stdout.strip()
    if chosen and backend != expected and "unsupported" in got.stderr.lower():
        pytest.skip(f"this pyarrow build has no {chosen}")
    assert backend == expected
