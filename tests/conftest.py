"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pykka
import pytest

FIXTURES_ENV_VAR = "VOLSPIKE_FIXTURES_DIR"
"""Environment variable naming the fixtures directory when it is not beside the repository."""

DEFAULT_FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
"""``../shared/fixtures`` beside the repository."""

FIXTURES = Path(
    os.environ.get(FIXTURES_ENV_VAR)
    or os.environ.get("VOLSPIKE_SIM_FIXTURES")  # the simulator's own override, read there too
    or DEFAULT_FIXTURES
).expanduser()
"""The recorded Binance payloads and history: ``$VOLSPIKE_FIXTURES_DIR``, else
``$VOLSPIKE_SIM_FIXTURES``, else :data:`DEFAULT_FIXTURES`."""


@pytest.fixture
def fixtures_dir() -> Path:
    """The shared fixtures directory; a test that needs it fails (not skips) without it."""
    if not FIXTURES.is_dir():
        pytest.fail(
            f"shared fixtures not found at {FIXTURES}: put them at {DEFAULT_FIXTURES} "
            f"or set {FIXTURES_ENV_VAR}"
        )
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
    from supervisors.logs import setup_logging, teardown_logging

    stream = LineWaiter()
    setup_logging(level="DEBUG", stream=stream)
    yield stream
    teardown_logging()
