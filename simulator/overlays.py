"""Scenario overlays: time ramps laid over the base market, per symbol.

The base market is a pure function of (seed, time). Scripted events do not mutate it; they add
overlays that the market applies when it answers a query:

- extra quote volume spread linearly over ``[start, end)`` (volume spikes);
- a price multiplier ramping from 1 to ``1 + pct`` over ``[start, end]`` and staying there;
- an open-interest multiplier, the same way (OI jumps).

Writers (the scenario book, on a test's thread) replace whole tuples under a lock; readers
(the publisher, REST handler threads) read without locking.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Overlays", "Ramp"]


@dataclass(frozen=True, slots=True)
class Ramp:
    """A linear change over ``[start_ms, end_ms]``; ``amount`` is a volume or a fraction."""

    start_ms: int
    end_ms: int
    amount: float

    def progress(self, t_ms: int) -> float:
        """0 before the start, 1 after the end, linear in between."""
        if t_ms <= self.start_ms:
            return 0.0
        if t_ms >= self.end_ms:
            return 1.0
        return (t_ms - self.start_ms) / (self.end_ms - self.start_ms)

    def share(self, a_ms: int, b_ms: int) -> float:
        """``amount`` x the fraction of the ramp that falls inside ``[a_ms, b_ms)``."""
        return self.amount * (self.progress(b_ms) - self.progress(a_ms))


class Overlays:
    """Per-symbol volume, price and open-interest ramps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._volume: dict[str, tuple[Ramp, ...]] = {}
        self._price: dict[str, tuple[Ramp, ...]] = {}
        self._oi: dict[str, tuple[Ramp, ...]] = {}
        self._version = 0

    @property
    def version(self) -> int:
        """Bumped on every change (lets caches know when to drop derived values)."""
        return self._version

    def _add(self, table: dict[str, tuple[Ramp, ...]], symbol: str, ramp: Ramp) -> None:
        with self._lock:
            table[symbol] = (*table.get(symbol, ()), ramp)
            self._version += 1

    def add_volume(self, symbol: str, ramp: Ramp) -> None:
        """Add ``ramp.amount`` quote volume spread over the ramp."""
        self._add(self._volume, symbol, ramp)

    def add_price(self, symbol: str, ramp: Ramp) -> None:
        """Multiply prices by ``1 + ramp.amount x progress``."""
        self._add(self._price, symbol, ramp)

    def add_open_interest(self, symbol: str, ramp: Ramp) -> None:
        """Multiply open interest by ``1 + ramp.amount x progress``."""
        self._add(self._oi, symbol, ramp)

    def clear(self) -> None:
        """Remove every overlay."""
        with self._lock:
            self._volume, self._price, self._oi = {}, {}, {}
            self._version += 1

    def touches(self, symbol: str, end_ms: int) -> bool:
        """Whether any price or volume overlay of ``symbol`` starts before ``end_ms``."""
        return any(r.start_ms < end_ms for r in self._price.get(symbol, ())) or any(
            r.start_ms < end_ms for r in self._volume.get(symbol, ())
        )

    def has_price(self, symbol: str) -> bool:
        """Whether ``symbol`` has a price overlay."""
        return symbol in self._price

    def price_factor(self, symbol: str, t_ms: int) -> float:
        """The product of every price ramp of ``symbol`` at ``t_ms``."""
        f = 1.0
        for r in self._price.get(symbol, ()):
            f *= 1.0 + r.amount * r.progress(t_ms)
        return f

    def extra_volume(self, symbol: str, a_ms: int, b_ms: int) -> float:
        """Extra quote volume of ``symbol`` inside ``[a_ms, b_ms)``."""
        return sum(r.share(a_ms, b_ms) for r in self._volume.get(symbol, ()))

    def oi_factor(self, symbol: str, t_ms: int) -> float:
        """The product of every open-interest ramp of ``symbol`` at ``t_ms``."""
        f = 1.0
        for r in self._oi.get(symbol, ()):
            f *= 1.0 + r.amount * r.progress(t_ms)
        return f
