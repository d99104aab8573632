"""The crawl's one thread for Arrow work: typing pages (`columnar.PageDecoder`) and encoding Parquet.

Why one long-lived thread rather than anyio's thread pool: memory. Arrow's JSON reader allocates about three
times a page's bytes to type it, and that memory is freed a moment later. How soon it is used again depends on
the allocator, and every allocator measured kept more of it when the work moved between threads: with the
pool's threads (two typing, one writing), peak RSS on the cpu benchmark was 283-311 MB; with this one thread,
206-222 MB, and 170-176 MB with the system's malloc (`benchmarks/README.md`, "Memory"). The one thread costs
little time: the event loop, not typing, is the limit (wall time within the run-to-run noise of this VM,
7.0-8.5 s either way). It also keeps the work in order: a row group is encoded between two batches of pages,
never beside them.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio
import anyio.lowlevel

T = TypeVar("T")


class ArrowThread:
    """Runs functions, one at a time and in the order given, on a thread of its own; `close` ends it."""

    def __init__(self, name: str = "canvas-export-arrow") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run_sync(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on the thread. A caller cancelled meanwhile still waits for it to end (work on Arrow
        data is never abandoned half done, and its result may be others' too) and is cancelled after."""
        future = self._executor.submit(fn, *args)
        with anyio.CancelScope(shield=True):
            result = await asyncio.wrap_future(future)
        await anyio.lowlevel.checkpoint_if_cancelled()
        return result

    def close(self) -> None:
        """Wait for what was given to end, then stop the thread. Idempotent."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> ArrowThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Ask glibc for at most `arenas` malloc arenas (the event loop's and the Arrow thread's), unless the user
    set MALLOC_ARENA_MAX. glibc gives a thread that allocates an arena of its own and keeps what is freed in
    it for reuse there; with more arenas than threads that do the work, memory freed in one is not reused by
    the next allocation elsewhere. Call before threads start. False where it does not apply (not glibc)."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # no C library to load, or one without mallopt (musl)
        return False
