"""A simulator serving from a background thread, for tests that run the CLI (in-process or as a subprocess)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from exporter.sim import Institution, SimOptions, Simulator


@contextmanager
def threaded_simulator(institution: Institution, options: SimOptions | None = None) -> Iterator[Simulator]:
    ready = threading.Event()
    holder: dict = {}

    def serve() -> None:
        async def run() -> None:
            async with Simulator(institution, options or SimOptions()) as sim:
                holder["sim"], holder["stop"] = sim, asyncio.Event()
                holder["loop"] = asyncio.get_running_loop()
                ready.set()
                await holder["stop"].wait()

        asyncio.run(run())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError("the simulator did not start")
    try:
        yield holder["sim"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
