"""pytest plugin (entry point ``pytest11: vlgate``): fixtures that start the provider emulator.

Fixtures:

* ``emulator`` — a fresh :class:`vlgate.testing.Emulator` per test (function scope).
* ``emulator_session`` — one emulator shared by the whole session; call ``.clear()`` if you
  need an empty record.

Example::

    def test_caption(emulator):
        client = openai.OpenAI(base_url=emulator.openai_base, api_key=emulator.api_key)
        ...
        assert emulator.requests[0].model == "gpt-4o"

This module imports nothing heavy at import time: pytest loads it for every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .emulator import Emulator

__all__ = ["emulator", "emulator_session"]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh loopback emulator for one test (key ``emu-key``, no latency, seed 0)."""
    from .emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    """One loopback emulator for the whole test session."""
    from .emulator import Emulator

    with Emulator() as emu:
        yield emu
