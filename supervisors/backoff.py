"""Restart backoff: jittered, exponential, capped, and reset after a healthy period.

Pure logic, no threads and no clock: callers pass the current monotonic reading and a random
source, so tests can pin every delay.

The delay before restart number ``n`` (0-based, counted since the last reset) is::

    base  = min(max_s, initial_s * multiplier ** n)
    delay = base * (1 + jitter * (2 * r - 1))          # r uniform in [0, 1)
    delay = clamp(delay, 0, max_s)

so with ``jitter = 0.2`` a delay lands within ±20 % of its base and never above the cap. When
the incarnation that just failed had been running for at least ``reset_after_s``, the count
starts again from 0: a child that crashes once a day restarts fast every time, a child in a
crash loop slows down to ``max_s`` between attempts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffPolicy:
    """The shape of a child's restart delays (immutable, shareable between children)."""

    initial_s: float = 0.1
    """Delay before the first restart after a reset."""
    max_s: float = 30.0
    """The cap; no delay is ever longer."""
    multiplier: float = 2.0
    """Growth factor per consecutive restart."""
    jitter: float = 0.2
    """Relative spread, 0 to 1: each delay is scaled by a factor in ``[1 - jitter, 1 + jitter)``."""
    reset_after_s: float = 60.0
    """An incarnation that ran this long before failing resets the count."""

    def __post_init__(self) -> None:
        """Refuse values that would make the delay negative, shrinking or undefined."""
        if self.initial_s < 0 or self.max_s < 0:
            raise ValueError("backoff delays cannot be negative")
        if self.initial_s > self.max_s:
            raise ValueError("backoff initial_s cannot exceed max_s")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")
        if self.reset_after_s < 0:
            raise ValueError("backoff reset_after_s cannot be negative")

    @classmethod
    def immediate(cls) -> BackoffPolicy:
        """No delay at all (tests, and children whose restart is always cheap)."""
        return cls(initial_s=0.0, max_s=0.0, jitter=0.0)

    def delay(self, attempt: int, random_value: float) -> float:
        """The delay before restart number ``attempt`` (0-based), given ``r`` in ``[0, 1)``."""
        if attempt < 0:
            raise ValueError("attempt cannot be negative")
        if self.initial_s == 0:
            return 0.0
        # Cap the exponent first so huge attempt counts cannot overflow the float.
        limit = math.log(self.max_s / self.initial_s, self.multiplier) if self.multiplier > 1 else 0
        exponent = min(float(attempt), limit + 1)
        base = min(self.max_s, self.initial_s * self.multiplier**exponent)
        spread = 1.0 + self.jitter * (2.0 * random_value - 1.0)
        return min(self.max_s, max(0.0, base * spread))


class Backoff:
    """One child's backoff state: how many restarts since the last reset.

    Used only in its supervisor's thread.

    Args:
        policy: the delay shape.
        rand: a source of uniform floats in ``[0, 1)``; inject a constant in tests.
    """

    def __init__(self, policy: BackoffPolicy, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rand = rand
        self.attempt = 0
        """Restarts since the last reset (the exponent of the next delay)."""

    def next_delay(self, *, now: float, running_since: float | None) -> float:
        """The delay before the next restart, and count it.

        Args:
            now: the current monotonic reading.
            running_since: when the incarnation that just ended completed its start (monotonic),
                or ``None`` if it never did. A long enough run resets the count first.
        """
        if running_since is not None and now - running_since >= self.policy.reset_after_s:
            self.attempt = 0
        delay = self.policy.delay(self.attempt, self._rand())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start counting from 0 again."""
        self.attempt = 0

    def __repr__(self) -> str:
        return f"Backoff(attempt={self.attempt}, policy={self.policy!r})"
