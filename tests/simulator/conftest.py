"""Fixtures for the simulator's own tests (real protocols on 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from simulator.testing import (  # noqa: F401 - fixtures used by this package's tests
    backend_double,
    binance_sim,
    sim_config,
    simulator_threads,
    telegram_double,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Every thread the simulator or a double started must be gone after each test."""
    yield
    deadline = time.monotonic() + 5.0
    for t in threading.enumerate():
        if t.name.startswith("sim-"):
            t.join(max(0.0, deadline - time.monotonic()))
    assert simulator_threads() == []
