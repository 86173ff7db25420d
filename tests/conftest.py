"""Fixtures shared by the whole suite."""

from __future__ import annotations

import threading
from pathlib import Path

import pykka
import pytest

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
"""The recorded Binance payloads and history (``../shared/fixtures`` beside the repo)."""


@pytest.fixture
def fixtures_dir() -> Path:
    """The shared fixtures directory; tests that need it are skipped loudly without it."""
    if not FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture
def _stop_all():
    """Stop every actor a test left running, so no thread leaks into the next test."""
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


class LineWaiter:
    """A text stream for ``setup_logging(stream=...)`` that tests can wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._text: list[str] = []

    def write(self, text: str) -> int:
        with self._cond:
            self._text.append(text)
            self._cond.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self._text)

    def wait_for(self, needle: str, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: needle in "".join(self._text), timeout)


@pytest.fixture
def log_stream():
    """Route the logging pipeline into a :class:`LineWaiter` for the test's duration."""
    from loguru import logger

    from supervisors.logs import setup_logging

    stream = LineWaiter()
    setup_logging(level="DEBUG", stream=stream)
    yield stream
    logger.remove()
