"""Restart intensity: at most ``max_restarts`` restarts within any ``within_s`` seconds.

The rule of Erlang/OTP supervisors. A supervisor records every restart it decides on; the one
that would make the count in the sliding window exceed ``max_restarts`` is refused, and the
supervisor gives up: it stops its children and fails, so its own parent sees the failure (and
the root turns it into a non-zero process exit). Pure logic: the caller passes the time.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RestartIntensity"]


class RestartIntensity:
    """A sliding window of restart instants.

    Args:
        max_restarts: restarts allowed within the window; 0 means the first failure escalates.
        within_s: the window's length in seconds.
    """

    def __init__(self, max_restarts: int, within_s: float) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts cannot be negative")
        if within_s <= 0:
            raise ValueError("within_s must be positive")
        self.max_restarts = max_restarts
        self.within_s = within_s
        self._instants: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Record a restart at monotonic time ``now``.

        Returns:
            ``True`` if it is allowed, ``False`` if it exceeds the intensity (give up).
        """
        horizon = now - self.within_s
        while self._instants and self._instants[0] <= horizon:
            self._instants.popleft()
        self._instants.append(now)
        return len(self._instants) <= self.max_restarts

    def recent(self, now: float) -> int:
        """How many restarts fall within the window ending at ``now``."""
        horizon = now - self.within_s
        return sum(1 for t in self._instants if t > horizon)

    def __repr__(self) -> str:
        return f"RestartIntensity(max_restarts={self.max_restarts}, within_s={self.within_s})"
