"""The simulator's clocks: an accelerated clock for replay, and a jumpable wrapper for faults.

Both implement the project's :class:`supervisors.clock.Clock` protocol (``time``, ``time_ms``,
``monotonic``, ``wait``), so the daemon under test can share the simulator's notion of time.

- :class:`AcceleratedClock`: ``sim time = start + real elapsed x speed``. ``wait(seconds)``
  blocks for ``seconds / speed`` real seconds. ``speed=1`` with ``start=now`` is a wall clock.
  :meth:`AcceleratedClock.set_speed` changes the speed on the fly (boot slowly, replay fast).
- :class:`SimClock`: wraps any clock (accelerated, :class:`~supervisors.clock.FakeClock`,
  :class:`~supervisors.clock.SystemClock`) and adds a wall-clock offset that the fault API can
  step (:meth:`SimClock.jump`), the way an NTP correction or a skewed exchange would.
"""

from __future__ import annotations

import threading
import time as _time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisors.clock import Clock

__all__ = ["AcceleratedClock", "SimClock"]


class AcceleratedClock:
    """A clock that runs ``speed`` times faster than real time from a chosen start.

    Args:
        start: the simulated wall-clock time at construction, seconds since the epoch
            (``None``: the real time now).
        speed: simulated seconds per real second (must be > 0).
    """

    _SLICE_S = 0.1
    """Longest real block inside :meth:`wait`, so a speed change reaches every waiter."""

    def __init__(self, start: float | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._real0 = _time.monotonic()
        self._base = 0.0
        """Simulated seconds elapsed at ``_real0`` (moves when the speed changes)."""
        self._start = _time.time() if start is None else float(start)
        self._mono0 = 1000.0

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        with self._lock:
            return self._speed

    def set_speed(self, speed: float) -> None:
        """Run at ``speed`` from now on; time read so far is kept (no jump either way).

        Threads blocked in :meth:`wait` follow the new speed within ``_SLICE_S`` real seconds,
        e.g. a daemon boots at a slow speed and the replay then runs fast.
        """
        if speed <= 0:
            raise ValueError("speed must be > 0")
        with self._lock:
            now = _time.monotonic()
            self._base += (now - self._real0) * self._speed
            self._real0 = now
            self._speed = float(speed)

    def _elapsed(self) -> float:
        with self._lock:
            return self._base + (_time.monotonic() - self._real0) * self._speed

    def time(self) -> float:
        """Simulated wall-clock seconds since the epoch."""
        return self._start + self._elapsed()

    def time_ms(self) -> int:
        """Simulated wall-clock milliseconds since the epoch."""
        return int(self.time() * 1000)

    def monotonic(self) -> float:
        """Simulated monotonic seconds (advances ``speed`` times faster than real time)."""
        return self._mono0 + self._elapsed()

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """Block for ``seconds`` of simulated time (``seconds / speed`` real) or until ``event``.

        Returns:
            ``True`` if ``event`` is set, ``False`` if the time ran out.
        """
        deadline = self.monotonic() + max(0.0, seconds)
        while True:
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                return event.is_set()
            if event.wait(min(remaining / self.speed, self._SLICE_S)):
                return True

    def __repr__(self) -> str:
        return f"AcceleratedClock(time={self.time():.3f}, speed={self._speed})"


class SimClock:
    """A clock wrapper whose wall-clock reading can be stepped by a fault.

    Args:
        base: the clock being wrapped; its monotonic reading and ``wait`` are passed through.
    """

    def __init__(self, base: Clock) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._offset = 0.0

    @property
    def base(self) -> Clock:
        """The wrapped clock."""
        return self._base

    @property
    def offset(self) -> float:
        """Seconds added to the base clock's wall time by :meth:`jump`."""
        with self._lock:
            return self._offset

    def jump(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (may be negative); monotonic time does not move."""
        with self._lock:
            self._offset += seconds

    def time(self) -> float:
        """Base wall time plus the jump offset."""
        return self._base.time() + self.offset

    def time_ms(self) -> int:
        """:meth:`time` in integer milliseconds."""
        return round(self.time() * 1000)

    def monotonic(self) -> float:
        """The base clock's monotonic reading (jumps never move it)."""
        return self._base.monotonic()

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """The base clock's ``wait``."""
        return self._base.wait(seconds, event)

    def __repr__(self) -> str:
        return f"SimClock(base={self._base!r}, offset={self.offset})"
