"""Fixtures for the supervision tests: trees that are always shut down, clocks, log capture."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pykka
import pytest
from loguru import logger

from supervisors import FakeClock, RootHandle, start_tree

from .probes import WAIT, Journal, Script

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from supervisors import ChildSpec

TOP_OF_HOUR = 1_773_900_000.0
"""An epoch instant that is exactly on the hour (2026-03-19 06:00:00 UTC)."""


@pytest.fixture(autouse=True)
def _no_actor_survives_a_test() -> Iterator[None]:
    """Stop whatever a test left running (bounded), so no thread leaks into the next one."""
    yield
    for _ in range(5):
        if not pykka.ActorRegistry.get_all():
            break
        try:
            pykka.ActorRegistry.stop_all(block=True, timeout=WAIT)
        except pykka.Timeout:
            continue


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fake clock two minutes past the top of an hour (so :05 is three minutes away)."""
    return FakeClock(start=TOP_OF_HOUR + 120)


@pytest.fixture
def trees() -> Iterator[Callable[..., RootHandle]]:
    """Start trees with :func:`start_tree`; every one is shut down after the test."""
    handles: list[RootHandle] = []

    def start(spec: ChildSpec, **kwargs: Any) -> RootHandle:
        kwargs.setdefault("wait_started_s", WAIT)
        handle = start_tree(spec, **kwargs)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.shutdown("test over", timeout=WAIT * 2)


class LogCapture:
    """Formatted loguru messages, waitable."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.lines: list[str] = []

    def write(self, message: Any) -> None:
        with self._cond:
            self.lines.append(str(message).rstrip("\n"))
            self._cond.notify_all()

    def wait_for(self, needle: str, count: int = 1, timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.matching(needle)) >= count, timeout)

    def matching(self, needle: str) -> list[str]:
        with self._cond:
            return [line for line in self.lines if needle in line]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Capture every loguru message at INFO and above for the test's duration."""
    capture = LogCapture()
    sink_id = logger.add(capture.write, level="INFO", format="{message}")
    yield capture
    try:
        logger.remove(sink_id)
    except ValueError:
        pass  # another fixture already removed every sink
