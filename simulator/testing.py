"""Pytest fixtures: the simulator and the doubles, started and stopped in-process.

Use them from a ``conftest.py``::

    from simulator.testing import (  # noqa: F401 - fixtures
        backend_double, binance_sim, sim_config, telegram_double,
    )

or ``pytest_plugins = ["simulator.testing"]`` in the root ``conftest.py``. Override
``sim_config`` in a test module to change the simulator (``fast_config(symbols=650)``).
Teardown stops everything and joins every thread; :func:`simulator_threads` lists any that
are left (there should be none).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

import pytest

from simulator.backend import BackendDouble
from simulator.config import SimulatorConfig
from simulator.simulator import Simulator
from simulator.telegram import TelegramDouble

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "backend_double",
    "binance_sim",
    "fast_config",
    "sim_config",
    "simulator_threads",
    "telegram_double",
]

TEST_API_KEY = "test-ingest-key"
TEST_BOT_TOKEN = "123456:TEST-token"  # noqa: S105 - a test double's fixed token


def fast_config(**overrides: Any) -> SimulatorConfig:
    """A configuration for tests: a small universe and short periods (override anything)."""
    base = SimulatorConfig(
        symbols=40,
        kline_period=0.05,
        mark_price_period=0.3,
        mark_price_fast_period=0.1,
        ticker_period=0.3,
        ping_interval=60.0,
        pong_timeout=60.0,
        connection_lifetime=3600.0,
        timeout_hold_seconds=5.0,
        close_timeout=0.25,
    )
    return dataclasses.replace(base, **overrides)


def simulator_threads() -> list[str]:
    """Names of live threads started by the simulator or the doubles."""
    return [t.name for t in threading.enumerate() if t.name.startswith("sim-")]


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """The configuration :func:`binance_sim` uses (override per module)."""
    return fast_config()


@pytest.fixture
def binance_sim(sim_config: SimulatorConfig) -> Iterator[Simulator]:
    """A running :class:`~simulator.simulator.Simulator`, stopped after the test."""
    sim = Simulator(sim_config).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def backend_double() -> Iterator[BackendDouble]:
    """A running :class:`~simulator.backend.BackendDouble` (api key ``test-ingest-key``)."""
    double = BackendDouble(TEST_API_KEY).start()
    try:
        yield double
    finally:
        double.stop()


@pytest.fixture
def telegram_double() -> Iterator[TelegramDouble]:
    """A running :class:`~simulator.telegram.TelegramDouble` (token ``123456:TEST-token``)."""
    double = TelegramDouble(TEST_BOT_TOKEN).start()
    try:
        yield double
    finally:
        double.stop()
