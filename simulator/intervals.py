"""Kline intervals: the futures enum and the alignment of candle open times (UTC).

Fixed-length intervals are aligned on the epoch, except ``1w`` (Monday 00:00 UTC) and ``1M``
(calendar months).
"""

from __future__ import annotations

import datetime as dt

__all__ = ["INTERVALS", "interval_open", "is_interval", "next_open"]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_MONDAY_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday

INTERVALS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
    "1M": 0,  # calendar month
}
"""Futures kline intervals (no ``1s`` on USD-M) and their length in ms (0: calendar month)."""


def is_interval(name: str) -> bool:
    """Whether ``name`` is a valid USD-M kline interval (case-sensitive: ``1m`` vs ``1M``)."""
    return name in INTERVALS


def _month_start(t_ms: int) -> int:
    d = dt.datetime.fromtimestamp(t_ms / 1000, tz=dt.UTC)
    return int(dt.datetime(d.year, d.month, 1, tzinfo=dt.UTC).timestamp() * 1000)


def interval_open(interval: str, t_ms: int) -> int:
    """Open time of the ``interval`` candle containing ``t_ms``."""
    if interval == "1M":
        return _month_start(t_ms)
    size = INTERVALS[interval]
    if interval == "1w":
        return (t_ms - _MONDAY_OFFSET_MS) // size * size + _MONDAY_OFFSET_MS
    return t_ms // size * size


def next_open(interval: str, open_ms: int) -> int:
    """Open time of the candle after the one opening at ``open_ms``."""
    if interval == "1M":
        d = dt.datetime.fromtimestamp(open_ms / 1000, tz=dt.UTC)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return int(dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp() * 1000)
    return open_ms + INTERVALS[interval]


def previous_open(interval: str, open_ms: int) -> int:
    """Open time of the candle before the one opening at ``open_ms``."""
    if interval == "1M":
        return _month_start(open_ms - 1)
    return open_ms - INTERVALS[interval]
