"""Clocks: everything that reads time takes a :class:`Clock`, so tests can run on a fake one.

Three readings, each for one job:

- :meth:`Clock.time` / :meth:`Clock.time_ms`: wall-clock time since the epoch (timestamps in
  payloads, hour boundaries once corrected by :class:`ServerTimeOffset`);
- :meth:`Clock.monotonic`: for measuring intervals (stall detection, backoff, liveness);
- :meth:`Clock.wait`: block until some of this clock's time has passed, or an event is set.

:class:`FakeClock` moves only when a test calls :meth:`FakeClock.advance`; threads blocked in
:meth:`FakeClock.wait` wake up as soon as the fake time reaches their deadline, and a test can
wait until a given number of threads are parked (:meth:`FakeClock.wait_for_waiters`) before it
advances, so nothing in a test has to sleep.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "ServerTimeOffset", "SystemClock", "exchange_now_ms"]


@runtime_checkable
class Clock(Protocol):
    """What every time-reading component depends on."""

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch."""
        ...

    def time_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (no defined origin)."""
        ...

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """Block until ``seconds`` of this clock's time have passed or ``event`` is set.

        Returns:
            ``True`` if ``event`` is set, ``False`` if the time ran out.
        """
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (``time.time``)."""
        return _time.time()

    def time_ms(self) -> int:
        """Wall-clock milliseconds since the epoch."""
        return _time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        """``time.monotonic``."""
        return _time.monotonic()

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """``event.wait(seconds)``."""
        return event.wait(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that moves only when told to; thread-safe.

    Args:
        start: the initial wall-clock time, seconds since the epoch.
        monotonic_start: the initial monotonic reading.
    """

    _POLL_S = 0.02
    """Real seconds between checks of a waiter's event (events cannot notify a condition)."""

    def __init__(self, start: float = 1_773_900_000.0, monotonic_start: float = 1000.0) -> None:
        self._cond = threading.Condition()
        self._wall = float(start)
        self._mono = float(monotonic_start)
        self._waiters = 0

    def time(self) -> float:
        """Fake wall-clock seconds."""
        with self._cond:
            return self._wall

    def time_ms(self) -> int:
        """Fake wall-clock milliseconds."""
        with self._cond:
            return round(self._wall * 1000)

    def monotonic(self) -> float:
        """Fake monotonic seconds."""
        with self._cond:
            return self._mono

    @property
    def waiters(self) -> int:
        """How many threads are blocked in :meth:`wait` right now."""
        with self._cond:
            return self._waiters

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds`` and wake every waiter that is now due."""
        if seconds < 0:
            raise ValueError("a FakeClock cannot go backwards; use jump_wall() for wall jumps")
        with self._cond:
            self._wall += seconds
            self._mono += seconds
            self._cond.notify_all()

    def set_time(self, wall: float) -> None:
        """Move the wall clock to ``wall`` (forward only) and monotonic by the same amount."""
        with self._cond:
            delta = wall - self._wall
        self.advance(delta)

    def jump_wall(self, seconds: float) -> None:
        """Step only the wall clock (an NTP correction); monotonic time does not move."""
        with self._cond:
            self._wall += seconds
            self._cond.notify_all()

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """Block until fake time has moved ``seconds`` forward or ``event`` is set."""
        with self._cond:
            deadline = self._mono + max(0.0, seconds)
            self._waiters += 1
            self._cond.notify_all()
            try:
                while not event.is_set() and self._mono < deadline:
                    self._cond.wait(self._POLL_S)
            finally:
                self._waiters -= 1
                self._cond.notify_all()
            return event.is_set()

    def wait_for_waiters(self, count: int, timeout: float = 5.0) -> bool:
        """Block (real time) until at least ``count`` threads are parked in :meth:`wait`.

        Tests call this before :meth:`advance` so that the thread under test has computed its
        deadline from the current fake time.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._waiters >= count, timeout)

    def __repr__(self) -> str:
        return f"FakeClock(time={self._wall!r}, monotonic={self._mono!r})"


class ServerTimeOffset:
    """Holds the offset between Binance server time and the local wall clock.

    ``offset_ms = server_time - local_time``; the exchange's hour boundaries are computed from
    ``local + offset``. Updated from ``GET /fapi/v1/time`` with the round-trip midpoint, and
    readable from any thread.
    """

    def __init__(self, clock: Clock, offset_ms: int = 0) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._offset_ms = offset_ms
        self._samples = 0

    @property
    def offset_ms(self) -> int:
        """Server time minus local time, in milliseconds."""
        with self._lock:
            return self._offset_ms

    @property
    def samples(self) -> int:
        """How many server-time readings have been applied."""
        with self._lock:
            return self._samples

    def update(self, server_time_ms: int, sent_ms: int, received_ms: int) -> int:
        """Apply one server-time reading taken between ``sent_ms`` and ``received_ms``.

        Returns:
            The new offset in milliseconds.
        """
        if received_ms < sent_ms:
            raise ValueError("received_ms is before sent_ms")
        midpoint = (sent_ms + received_ms) // 2
        with self._lock:
            self._offset_ms = server_time_ms - midpoint
            self._samples += 1
            return self._offset_ms

    def now_ms(self) -> int:
        """Binance server time now, as best we know it (epoch milliseconds)."""
        return self._clock.time_ms() + self.offset_ms

    def __repr__(self) -> str:
        return f"ServerTimeOffset(offset_ms={self.offset_ms})"


def exchange_now_ms(server_time: ServerTimeOffset | None, clock: Clock) -> int:
    """Binance server time when an offset holder is given, else ``clock``'s wall time (ms)."""
    return server_time.now_ms() if server_time is not None else clock.time_ms()
