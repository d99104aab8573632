"""Shared test setup."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import aioresponses.core
from aiohttp import ClientResponse


def _aioresponses_compat() -> None:
    """aiohttp 3.14 made `stream_writer` a required argument of ClientResponse; aioresponses 0.7.x does not
    pass it (pnuckowski/aioresponses#289). Give its mocked responses a finished writer with nothing sent."""
    if "stream_writer" not in inspect.signature(ClientResponse.__init__).parameters:
        return

    class _MockedResponse(ClientResponse):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _MockedResponse  # type: ignore[misc]


_aioresponses_compat()
