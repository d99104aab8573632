"""Fixtures: a small seeded institution, a running simulator, an admin HTTP session."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import pytest

from exporter.sim import Institution, SimOptions, Simulator

from .httpkit import auth


@pytest.fixture
def small() -> Institution:
    return Institution.generate(seed=3, courses=12)


@pytest.fixture
async def sim(small: Institution) -> AsyncIterator[Simulator]:
    async with Simulator(small, SimOptions()) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=auth()) as s:
        yield s
