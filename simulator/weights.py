"""REQUEST_WEIGHT accounting per IP: fixed calendar minutes, 429 pauses and escalating 418 bans.

The rules (``spec/binance-usdm.md`` §3):

- every request adds its weight to the IP's count for the current calendar minute of the
  simulator's clock; the count resets at the next minute (``X-MBX-USED-WEIGHT-1m``);
- a request that would take the count over the limit gets **429** ``-1003`` with
  ``Retry-After`` = seconds to the next minute, and opens a *pause* until then;
- a client that keeps sending during the pause gets 429 again, and after
  ``ban_after_violations`` such requests a **418** ban "until <ms>"; bans start at 2 minutes
  and double for repeat offenders, up to 3 days. During a ban every request gets 418.

Rejected requests do not add weight.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisors.clock import Clock

__all__ = ["Decision", "WeightLimiter", "klines_weight"]

MINUTE_MS = 60_000


def klines_weight(limit: int) -> int:
    """Weight of ``/fapi/v1/klines`` by ``limit``: [1,100) 1, [100,500) 2, [500,1000] 5, else 10."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request."""

    status: int
    """200 (go ahead), 429 (over the limit) or 418 (banned)."""
    used: int
    """The IP's weight in the current minute after this request."""
    retry_after: int | None = None
    """Seconds to wait (429: to the next minute; 418: to the end of the ban)."""
    banned_until_ms: int | None = None


@dataclass(slots=True)
class _IpState:
    minute: int = -1
    used: int = 0
    pause_until_ms: int = 0
    violations: int = 0
    ban_until_ms: int = 0
    bans: int = 0


class WeightLimiter:
    """Per-IP weight windows on a :class:`~supervisors.clock.Clock` (thread-safe).

    Args:
        clock: the simulator's clock (windows are its calendar minutes).
        limit: REQUEST_WEIGHT per minute.
        ban_after_violations: requests tolerated during a 429 pause before a ban.
        ban_base_seconds: the first ban's length.
        ban_max_seconds: the longest ban.
    """

    def __init__(
        self,
        clock: Clock,
        limit: int = 2400,
        *,
        ban_after_violations: int = 3,
        ban_base_seconds: float = 120.0,
        ban_max_seconds: float = 259_200.0,
    ) -> None:
        self._clock = clock
        self.limit = limit
        self.ban_after_violations = ban_after_violations
        self.ban_base_ms = int(ban_base_seconds * 1000)
        self.ban_max_ms = int(ban_max_seconds * 1000)
        self._lock = threading.Lock()
        self._ips: dict[str, _IpState] = {}

    def _state(self, ip: str, now_ms: int) -> _IpState:
        st = self._ips.setdefault(ip, _IpState())
        minute = now_ms // MINUTE_MS
        if st.minute != minute:
            st.minute, st.used = minute, 0
        return st

    def check(self, ip: str, weight: int) -> Decision:
        """Account one request of ``weight`` from ``ip`` and say whether it may proceed."""
        now = self._clock.time_ms()
        with self._lock:
            st = self._state(ip, now)
            if now < st.ban_until_ms:
                return Decision(418, st.used, _ceil_s(st.ban_until_ms - now), st.ban_until_ms)
            if now < st.pause_until_ms:
                st.violations += 1
                if st.violations > self.ban_after_violations:
                    st.bans += 1
                    length = min(self.ban_base_ms * 2 ** (st.bans - 1), self.ban_max_ms)
                    st.ban_until_ms = now + length
                    st.pause_until_ms = 0
                    return Decision(418, st.used, _ceil_s(length), st.ban_until_ms)
                return Decision(429, st.used, _ceil_s(st.pause_until_ms - now))
            if st.used + weight > self.limit:
                st.pause_until_ms = (now // MINUTE_MS + 1) * MINUTE_MS
                st.violations = 0
                return Decision(429, st.used, _ceil_s(st.pause_until_ms - now))
            st.used += weight
            return Decision(200, st.used)

    def consume(self, weight: int, ip: str = "127.0.0.1") -> int:
        """Add ``weight`` for ``ip`` without a request ("another client on the same IP").

        Returns:
            The IP's used weight in the current minute afterwards.
        """
        now = self._clock.time_ms()
        with self._lock:
            st = self._state(ip, now)
            st.used += weight
            return st.used

    def used(self, ip: str = "127.0.0.1") -> int:
        """The IP's weight in the current minute."""
        now = self._clock.time_ms()
        with self._lock:
            return self._state(ip, now).used

    def banned_until(self, ip: str = "127.0.0.1") -> int | None:
        """End of the IP's current ban (epoch ms), or ``None``."""
        now = self._clock.time_ms()
        with self._lock:
            st = self._ips.get(ip)
            return st.ban_until_ms if st is not None and st.ban_until_ms > now else None

    def reset(self) -> None:
        """Forget every IP's weight, pauses and bans."""
        with self._lock:
            self._ips.clear()


def _ceil_s(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))
