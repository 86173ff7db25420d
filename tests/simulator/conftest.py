"""Fixtures for the simulator's own tests (real protocols on 127.0.0.1)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from simulator.testing import (  # noqa: F401 - fixtures used by this package's tests
    assert_released,
    backend_double,
    binance_sim,
    sim_config,
    telegram_double,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Every thread a simulator or a double started must be gone after each test.

    The public fixtures check their own service's threads and ports (``simulator.testing``);
    this also covers the simulators these tests build themselves. Their threads are all named
    ``sim-...`` (accept loops, connection threads, the WebSocket loop, the publisher).
    """
    yield
    leftover = [t for t in threading.enumerate() if t.name.startswith("sim-")]
    assert_released(leftover, [], what="a simulator test")
