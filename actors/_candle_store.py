"""The volume scanner's candle store: the last three 1h candles of every symbol, pure logic.

Candles come from the kline stream (``<sym>@kline_1h``) and from REST backfill rows; both are
:class:`~messages.market.Kline`. The store keeps, per symbol, the candles of the newest hour
seen and the two hours before it (previous closed hour, and the one before that for the
previous hour's FULL_UPDATE and closing evaluation). Hours are the candles' own open times
(Binance server time); the store never reads a clock.

Ordering: the feed can deliver an old event after a newer one (two connections, a REST row
fetched before a stream event). Within one candle, ``(closed, trade_count, quote_volume)``
only grows, so a version that does not exceed the stored one is ignored as stale. This works
for stream events and REST rows alike (REST rows have no event time).

A symbol listed mid-run has no previous hour. The store learns that from a backfill: the
REST answer for "the latest candles" contains no row for the previous hour, only newer ones.
Such a symbol is not reported by :meth:`CandleStore.needs_backfill` again for that hour.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable

    from messages.market import Kline

__all__ = ["HOUR_MS", "CandleStore", "PutResult", "hour_floor"]

HOUR_MS = 3_600_000
KEPT_HOURS = 3
"""Candles kept per symbol: the newest hour and the two before it."""

PutResult = Literal["accepted", "stale", "too_old", "unknown_symbol", "rejected"]
"""What :meth:`CandleStore.put` did with a candle."""


def hour_floor(t_ms: int) -> int:
    """The start of the UTC hour containing ``t_ms``."""
    return t_ms - t_ms % HOUR_MS


def _version(kline: Kline) -> tuple[bool, int, float]:
    """A key that only grows while one candle is being built (closed beats open)."""
    return (kline.closed, kline.trade_count, kline.quote_volume)


def _valid(kline: Kline) -> bool:
    return (
        kline.interval == "1h"
        and kline.open_time_ms % HOUR_MS == 0
        and math.isfinite(kline.quote_volume)
        and kline.quote_volume >= 0
    )


class CandleStore:
    """Per-symbol 1h candles for the symbols of the current universe.

    Only symbols given to :meth:`set_universe` are stored; events for other symbols (a late
    event of a delisted symbol) are refused, so a removed symbol cannot come back by accident.
    """

    def __init__(self) -> None:
        self._universe: set[str] = set()
        self._candles: dict[str, dict[int, Kline]] = {}
        self._listed_ms: dict[str, int] = {}

    # --- universe ------------------------------------------------------------------------

    def set_universe(self, symbols: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Replace the tracked symbols; drops everything kept for removed ones.

        Returns:
            ``(added, removed)``, each sorted.
        """
        new = set(symbols)
        added = tuple(sorted(new - self._universe))
        removed = tuple(sorted(self._universe - new))
        for symbol in removed:
            self._candles.pop(symbol, None)
            self._listed_ms.pop(symbol, None)
        self._universe = new
        return added, removed

    @property
    def symbols(self) -> frozenset[str]:
        """The tracked symbols."""
        return frozenset(self._universe)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._universe

    # --- candles -------------------------------------------------------------------------

    def put(self, kline: Kline) -> PutResult:
        """Store ``kline`` if it is valid, tracked and newer than what is kept for its hour."""
        if not _valid(kline):
            return "rejected"
        if kline.symbol not in self._universe:
            return "unknown_symbol"
        candles = self._candles.setdefault(kline.symbol, {})
        old = candles.get(kline.open_time_ms)
        if old is not None:
            if _version(kline) <= _version(old):
                return "stale"
            candles[kline.open_time_ms] = kline
            return "accepted"
        newest = max(candles, default=kline.open_time_ms)
        if kline.open_time_ms < newest - (KEPT_HOURS - 1) * HOUR_MS:
            return "too_old"
        candles[kline.open_time_ms] = kline
        oldest_kept = max(newest, kline.open_time_ms) - (KEPT_HOURS - 1) * HOUR_MS
        for open_ms in [t for t in candles if t < oldest_kept]:
            del candles[open_ms]
        return "accepted"

    def candle(self, symbol: str, open_ms: int) -> Kline | None:
        """The newest known version of ``symbol``'s candle opening at ``open_ms``."""
        candles = self._candles.get(symbol)
        return None if candles is None else candles.get(open_ms)

    def closed_candle(self, symbol: str, open_ms: int) -> Kline | None:
        """The final version of that candle, or ``None`` while it is open or unknown."""
        kline = self.candle(symbol, open_ms)
        return kline if kline is not None and kline.closed else None

    # --- listings and backfill -----------------------------------------------------------

    def known_absent(self, symbol: str, open_ms: int) -> bool:
        """True when ``symbol`` is known to have no candle at ``open_ms`` (listed later)."""
        listed = self._listed_ms.get(symbol)
        return listed is not None and open_ms < listed

    def note_backfill(self, symbol: str, open_times: Iterable[int], now_ms: int) -> None:
        """Learn from a complete REST answer ("the latest candles") fetched at ``now_ms``.

        If it holds no candle for the previous hour and nothing older, the symbol was listed
        after it: its first candle is the oldest row (or the current hour when there is none).
        """
        if symbol not in self._universe:
            return
        times = set(open_times)
        previous = hour_floor(now_ms) - HOUR_MS
        if previous in times:
            return
        first = min(times, default=previous + HOUR_MS)
        if first > previous:
            self._listed_ms[symbol] = first

    def needs_backfill(self, now_ms: int, grace_ms: int) -> tuple[str, ...]:
        """Symbols whose previous hour's closed candle is missing (sorted).

        During the first ``grace_ms`` of an hour the final event of the hour that just ended
        may still be in flight, so the check is then made for the hour before it.
        """
        hour = hour_floor(now_ms)
        target = hour - HOUR_MS if now_ms - hour >= grace_ms else hour - 2 * HOUR_MS
        return tuple(
            sorted(
                symbol
                for symbol in self._universe
                if self.closed_candle(symbol, target) is None
                and not self.known_absent(symbol, target)
            )
        )
