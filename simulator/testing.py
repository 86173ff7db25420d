"""Pytest fixtures: the simulator and the doubles, started and stopped in-process.

Use them from a ``conftest.py``::

    from simulator.testing import (  # noqa: F401 - fixtures
        backend_double, binance_sim, sim_config, telegram_double,
    )

or ``pytest_plugins = ["simulator.testing"]`` in the root ``conftest.py``. Override
``sim_config`` in a test module to change the simulator (``fast_config(symbols=650)``).
Teardown stops everything, then fails the test if the service left a thread running or a
port bound (:func:`assert_released`: only that service's own threads and ports, so other
suites' threads never trip it); :func:`simulator_threads` lists every live ``sim-`` thread.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from simulator.backend import BackendDouble
from simulator.config import SimulatorConfig
from simulator.simulator import Simulator
from simulator.telegram import TelegramDouble

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "assert_released",
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


class _Service(Protocol):
    def threads(self) -> list[threading.Thread]: ...
    def stop(self) -> None: ...


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen()
        except OSError:
            return False
        return True


def assert_released(
    threads: list[threading.Thread],
    ports: list[int],
    *,
    what: str,
    host: str = "127.0.0.1",
    timeout: float = 5.0,
) -> None:
    """Fail unless every one of ``threads`` has ended and every one of ``ports`` is free.

    Call it after stopping a service, with the threads it reported (``service.threads()``
    taken before the stop) and its ports; waits up to ``timeout`` real seconds for threads.
    """
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = sorted(t.name for t in threads if t.is_alive())
    assert not alive, f"{what} left threads running: {alive}"
    bound = [p for p in ports if not _port_is_free(host, p)]
    assert not bound, f"{what} left ports bound: {bound}"


def _stop_and_check(service: _Service, ports: list[int], what: str) -> None:
    threads = service.threads()
    service.stop()
    assert_released([*threads, *service.threads()], ports, what=what)


@pytest.fixture
def sim_config() -> SimulatorConfig:
    """The configuration :func:`binance_sim` uses (override per module)."""
    return fast_config()


@pytest.fixture
def binance_sim(sim_config: SimulatorConfig) -> Iterator[Simulator]:
    """A running :class:`~simulator.simulator.Simulator`, stopped after the test."""
    sim = Simulator(sim_config).start()
    ports = [sim.ws.port, sim.rest.port]
    try:
        yield sim
    finally:
        _stop_and_check(sim, ports, "binance_sim")


@pytest.fixture
def backend_double() -> Iterator[BackendDouble]:
    """A running :class:`~simulator.backend.BackendDouble` (api key ``test-ingest-key``)."""
    double = BackendDouble(TEST_API_KEY).start()
    try:
        yield double
    finally:
        _stop_and_check(double, [double.port], "backend_double")


@pytest.fixture
def telegram_double() -> Iterator[TelegramDouble]:
    """A running :class:`~simulator.telegram.TelegramDouble` (token ``123456:TEST-token``)."""
    double = TelegramDouble(TEST_BOT_TOKEN).start()
    try:
        yield double
    finally:
        _stop_and_check(double, [double.port], "telegram_double")
