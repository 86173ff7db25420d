"""A handle on one injected fault: active for N hits, for a period, or until ended.

Every fault method of the simulator and the doubles returns a :class:`FaultHandle`. It is
active from creation; it ends after ``count`` hits, after ``seconds`` of real time, when
:meth:`FaultHandle.end` is called, or when a ``with`` block around it exits::

    with sim.faults.rest_errors(503, count=2):
        ...                      # the next two REST requests get 503
    handle = sim.faults.stall()  # explicit on ...
    handle.end()                 # ... and off
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["FaultHandle"]


class FaultHandle:
    """One fault's lifetime (thread-safe).

    Args:
        name: what the fault is (for logs and ``repr``).
        count: hits before it ends by itself (``None``: unlimited).
        seconds: real seconds before it ends by itself (``None``: no deadline).
        on_end: called once when the fault ends through :meth:`end` or a ``with`` exit.
    """

    def __init__(
        self,
        name: str,
        *,
        count: int | None = None,
        seconds: float | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._lock = threading.Condition()
        self._remaining = count
        self._deadline = None if seconds is None else time.monotonic() + seconds
        self._ended = False
        self._on_end = on_end
        self.hits = 0
        """How many times the fault was applied."""

    @property
    def active(self) -> bool:
        """Whether the fault still applies."""
        with self._lock:
            return self._active_locked()

    def _active_locked(self) -> bool:
        if self._ended or (self._remaining is not None and self._remaining <= 0):
            return False
        return self._deadline is None or time.monotonic() < self._deadline

    def consume(self) -> bool:
        """Take one hit if the fault is active.

        Returns:
            ``True`` if the fault applies to this occurrence.
        """
        with self._lock:
            if not self._active_locked():
                return False
            if self._remaining is not None:
                self._remaining -= 1
            self.hits += 1
            self._lock.notify_all()
            return True

    def end(self) -> None:
        """Stop the fault now (idempotent)."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._lock.notify_all()
            callback, self._on_end = self._on_end, None
        if callback is not None:
            callback()

    def wait(self, timeout: float) -> bool:
        """Block until the fault is no longer active (ended, used up or expired).

        Returns:
            ``True`` if it ended within ``timeout`` real seconds.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active_locked():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self._deadline is not None:
                    left = min(left, max(0.0, self._deadline - time.monotonic()) + 0.001)
                self._lock.wait(left)
            return True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()

    def __repr__(self) -> str:
        return f"FaultHandle({self.name!r}, active={self.active}, hits={self.hits})"
