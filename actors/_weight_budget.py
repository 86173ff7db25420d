"""The process-wide REST weight budget, as pure logic (no threads, no clock of its own).

Binance counts request weight per IP in fixed calendar minutes of *server* time and answers
``X-MBX-USED-WEIGHT-1m`` on every response. The budget:

- spends at most ``target`` weight per minute (default 2000 of the 2400 limit), keeping the
  rest as a margin for clock skew and for other programs on the same IP;
- counts its own spending locally and **raises** the count to the header's value whenever the
  server has seen more (another client on the same IP), never lowers it within a minute;
- after an HTTP 429, refuses everything until the ``Retry-After`` instant;
- after an HTTP 418 (ban), refuses everything until the ban ends;
- keeps weight per caller for metrics.

Callers pass server-time milliseconds (``ServerTimeOffset.now_ms()``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["HEADER_GUARD_MS", "Decision", "WeightBudget", "header_counts", "oi_poll_interval"]

MINUTE_MS = 60_000
HEADER_GUARD_MS = 1_000
"""A used-weight header is trusted only for requests sent at least this long after the start
of the minute they were sent in (our estimate of server time), see :func:`header_counts`."""


def header_counts(sent_ms: int, answered_ms: int) -> bool:
    """Whether an answer's ``X-MBX-USED-WEIGHT-1m`` counts the window we are in now.

    The exchange counts weight per calendar minute of *its* clock; ours is an estimate a few ms
    off. A request sent just after our minute rolled may still land in the exchange's previous
    minute, and its header then carries that minute's total: applied to the new window it would
    claim, say, 1,755 of 2,000 already used, and every caller would wait for the next minute
    (seen in the benchmark as a 50 s stall of the OI poller). So a header counts only when the
    request was sent and answered in the same minute and sent at least
    :data:`HEADER_GUARD_MS` after it began; a header that lands late in a minute can only show
    a *smaller* count (the exchange's next minute), which never lowers ours.
    """
    return (
        sent_ms // MINUTE_MS == answered_ms // MINUTE_MS and sent_ms % MINUTE_MS >= HEADER_GUARD_MS
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to :meth:`WeightBudget.acquire`."""

    granted: bool
    """True when the request may go now (its weight is already counted)."""
    wait_s: float = 0.0
    """When refused: seconds until asking again makes sense."""
    reason: str = ""
    """When refused: ``"budget"``, ``"rate-limited"`` or ``"banned"``."""


@dataclass(slots=True)
class WeightBudget:
    """One IP's weight budget.

    Args:
        limit: the exchange's per-minute limit (``exchangeInfo.rateLimits`` REQUEST_WEIGHT).
        target: what we allow ourselves per minute (at most ``limit``).
    """

    limit: int = 2400
    target: int = 2000
    window_start_ms: int = 0
    used: int = 0
    """Weight counted in the current window (ours, raised to the server's count)."""
    paused_until_ms: int = 0
    """No request before this instant (429 / 418)."""
    pause_reason: str = ""
    by_caller: Counter[str] = field(default_factory=Counter)
    """Weight spent per caller since start."""
    refusals: Counter[str] = field(default_factory=Counter)
    """Refusals by reason since start."""

    def __post_init__(self) -> None:
        """Check the limits."""
        if not 0 < self.target <= self.limit:
            raise ValueError("target must be between 1 and limit")

    def _roll(self, now_ms: int) -> None:
        start = now_ms - now_ms % MINUTE_MS
        if start != self.window_start_ms:
            self.window_start_ms = start
            self.used = 0

    @property
    def reserve_ceiling(self) -> int:
        """How far a control-plane request may go: halfway from the target to the limit."""
        return self.target + (self.limit - self.target) // 2

    def acquire(
        self, weight: int, now_ms: int, caller: str = "unknown", *, reserve: bool = False
    ) -> Decision:
        """Ask to spend ``weight`` now; counts it when granted.

        ``reserve`` lets a control-plane request (exchangeInfo, server time: tiny weights that
        everything else waits on) use the reserve above the target, up to
        :attr:`reserve_ceiling`, so a minute spent by OI polling and backfills cannot hold it
        back to the next minute. A 429/418 pause holds it like any other.
        """
        if weight < 0:
            raise ValueError("weight cannot be negative")
        if now_ms < self.paused_until_ms:
            reason = self.pause_reason or "rate-limited"
            self.refusals[reason] += 1
            return Decision(
                granted=False, wait_s=(self.paused_until_ms - now_ms) / 1000, reason=reason
            )
        self._roll(now_ms)
        if self.used + weight > (self.reserve_ceiling if reserve else self.target):
            self.refusals["budget"] += 1
            next_window = self.window_start_ms + MINUTE_MS
            return Decision(granted=False, wait_s=(next_window - now_ms) / 1000, reason="budget")
        self.used += weight
        self.by_caller[caller] += weight
        return Decision(granted=True)

    def observe_used_weight(self, used: int, now_ms: int) -> None:
        """Apply an ``X-MBX-USED-WEIGHT-1m`` value read at ``now_ms`` (server time)."""
        self._roll(now_ms)
        self.used = max(self.used, used)

    def rate_limited(self, retry_after_s: float, now_ms: int) -> None:
        """HTTP 429: pause every caller for ``retry_after_s`` (at least one second)."""
        self._pause(now_ms + int(max(1.0, retry_after_s) * 1000), "rate-limited")

    def banned(self, until_ms: int) -> None:
        """HTTP 418: freeze every caller until ``until_ms`` (server time)."""
        self._pause(until_ms, "banned")

    def _pause(self, until_ms: int, reason: str) -> None:
        if until_ms > self.paused_until_ms:
            self.paused_until_ms = until_ms
            self.pause_reason = reason

    def set_limit(self, limit: int) -> None:
        """Apply the limit read from ``exchangeInfo`` (the target is capped by it)."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.limit = limit
        self.target = min(self.target, limit)

    def headroom(self, now_ms: int) -> int:
        """Weight still available in the current window (0 while paused)."""
        if now_ms < self.paused_until_ms:
            return 0
        self._roll(now_ms)
        return max(0, self.target - self.used)


def oi_poll_interval(symbols: int, requests_per_min: float, min_s: float, max_s: float) -> float:
    """Seconds between two samples of the same symbol when polling ``symbols`` evenly.

    ``interval = clamp(60 * symbols / requests_per_min, min_s, max_s)``, the original's
    formula without its integer rounding. Requests are then spaced ``interval / symbols``
    apart, so the weight per minute is ``60 * symbols / interval <= requests_per_min``.
    """
    if symbols <= 0 or requests_per_min <= 0:
        return max_s
    return min(max_s, max(min_s, 60.0 * symbols / requests_per_min))
