"""The OI board: our own recent open-interest history per symbol, for ``oiChange``.

Volume alerts carry ``oiChange = (current OI - OI at the start of the alert's hour) / start OI``
(spec §1, a fraction), computed from **our own** samples instead of the backend's snapshot
endpoint, and omitted when unknown. The original looked the hour-start value up with no bound
on its age, so a symbol outside the liquid universe could be compared with a days-old snapshot
(WEAK-11); here the start sample must lie within ``max_start_gap_ms`` of the hour open and the
current one must be at most ``max_current_age_ms`` old.

One writer, many readers, no locks (like :class:`~actors._price_board.PriceBoard`):

- the OI poller is the only writer: it :meth:`~OiBoard.add` s every sample it gets (realtime,
  and the polled ones of the five-minute snapshot), and loads the persisted history at start;
- a symbol's series is two append-only arrays (times, then values, appended in that order);
  a reader takes the series once and reads at most ``len(values)`` entries, so it never sees
  a time without its value; trimming builds a new series and swaps it in with one ``dict``
  assignment, so a reader holding the old one still reads a consistent (older) view.

Memory: 16 bytes a sample; 340 symbols sampled every 10.5 s for two hours is ~4 MB.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "DEFAULT_MAX_CURRENT_AGE_MS",
    "DEFAULT_MAX_START_GAP_MS",
    "DEFAULT_RETENTION_MS",
    "HOUR_MS",
    "OiBoard",
]

HOUR_MS: Final = 3_600_000
DEFAULT_RETENTION_MS: Final = 2 * HOUR_MS
"""Samples kept behind the newest one: enough for the previous hour's start (a FULL_UPDATE at
:00 is about the hour that just closed) plus the start gap."""
DEFAULT_MAX_START_GAP_MS: Final = 360_000
"""The hour-start sample may be this far from the hour open: the five-minute snapshot samples
a non-liquid symbol every 300 s, so one of its samples is always this close."""
DEFAULT_MAX_CURRENT_AGE_MS: Final = 360_000
"""The current sample may be this old (a non-liquid symbol's newest snapshot sample)."""
_TRIM_SLACK_MS: Final = 600_000
"""Trim a series only once it holds this much more than the retention (amortised copies)."""


class _Series:
    __slots__ = ("times", "values")

    def __init__(self, times: Sequence[int] = (), values: Sequence[float] = ()) -> None:
        self.times = array("q", times)
        self.values = array("d", values)


class OiBoard:
    """Recent ``(time_ms, open_interest)`` samples per symbol; written by one actor.

    Args:
        retention_ms: samples older than ``newest - retention_ms`` are dropped (amortised).
    """

    def __init__(self, retention_ms: int = DEFAULT_RETENTION_MS) -> None:
        if retention_ms <= 0:
            raise ValueError("retention_ms must be positive")
        self._retention_ms = retention_ms
        self._series: dict[str, _Series] = {}

    @property
    def retention_ms(self) -> int:
        """How much history is kept behind each symbol's newest sample."""
        return self._retention_ms

    # --- writer side (the OI poller's thread only) --------------------------------------------

    def add(self, symbol: str, time_ms: int, open_interest: float) -> bool:
        """Append one sample; False (nothing stored) unless it is newer and a positive number."""
        if not (math.isfinite(open_interest) and open_interest > 0):
            return False
        series = self._series.get(symbol)
        if series is None:
            self._series[symbol] = _Series((time_ms,), (open_interest,))
            return True
        n = len(series.values)
        if n and time_ms <= series.times[n - 1]:
            return False
        series.times.append(time_ms)  # the time first: readers bound by len(values)
        series.values.append(open_interest)
        if time_ms - series.times[0] > self._retention_ms + _TRIM_SLACK_MS:
            cut = bisect_left(series.times, time_ms - self._retention_ms)
            self._series[symbol] = _Series(series.times[cut:], series.values[cut:])
        return True

    def load(self, rows: Iterable[tuple[str, int, float]]) -> int:
        """Add persisted ``(symbol, time_ms, oi)`` rows (any order); returns how many were kept."""
        ordered = sorted(rows, key=lambda row: row[1])
        return sum(self.add(str(s), int(t), float(oi)) for s, t, oi in ordered)

    def prune(self, now_ms: int) -> list[str]:
        """Drop symbols whose newest sample is older than the retention; returns them."""
        cutoff = now_ms - self._retention_ms
        gone = [s for s, ser in list(self._series.items()) if ser.times[-1] < cutoff]
        for symbol in gone:
            self._series.pop(symbol, None)
        return gone

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop these symbols' history (e.g. an invalid symbol)."""
        for symbol in symbols:
            self._series.pop(symbol, None)

    # --- reader side (any thread) -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._series

    def history(self, symbol: str) -> tuple[tuple[int, float], ...]:
        """``(time_ms, oi)`` of ``symbol``, oldest first (empty when unknown)."""
        series = self._series.get(symbol)
        if series is None:
            return ()
        n = len(series.values)
        return tuple(zip(series.times[:n], series.values[:n], strict=True))

    def latest(self, symbol: str) -> tuple[int, float] | None:
        """The newest ``(time_ms, oi)`` of ``symbol``, or ``None``."""
        series = self._series.get(symbol)
        if series is None:
            return None
        n = len(series.values)
        return (series.times[n - 1], series.values[n - 1]) if n else None

    def oi_change(
        self,
        symbol: str,
        hour_open_ms: int,
        now_ms: int,
        *,
        max_start_gap_ms: int = DEFAULT_MAX_START_GAP_MS,
        max_current_age_ms: int = DEFAULT_MAX_CURRENT_AGE_MS,
    ) -> float | None:
        """``(current - start) / start`` as a fraction, or ``None`` when it is not known.

        Args:
            symbol: upper-case symbol.
            hour_open_ms: the open of the alert's hour (exchange time, epoch ms).
            now_ms: exchange time now.
            max_start_gap_ms: the start sample is the latest one at or before ``hour_open_ms``
                no more than this before it; failing that, the first one after it no more
                than this after it.
            max_current_age_ms: the current sample (the newest) is at most this old.

        Returns:
            ``None`` when there is no such start or current sample, when both are the same
            sample (nothing to compare), or when the start OI is not positive.
        """
        series = self._series.get(symbol)
        if series is None:
            return None
        times, values = series.times, series.values
        n = len(values)
        if n == 0:
            return None
        current_ms, current = times[n - 1], values[n - 1]
        if now_ms - current_ms > max_current_age_ms:
            return None
        at_or_before = bisect_right(times, hour_open_ms, 0, n) - 1
        start = None
        if at_or_before >= 0 and hour_open_ms - times[at_or_before] <= max_start_gap_ms:
            start = at_or_before
        elif at_or_before + 1 < n and times[at_or_before + 1] - hour_open_ms <= max_start_gap_ms:
            start = at_or_before + 1
        if start is None or start == n - 1:
            return None
        base = values[start]
        if not (math.isfinite(base) and base > 0):
            return None
        return (current - base) / base
