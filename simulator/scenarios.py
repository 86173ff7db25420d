"""Scripted market events at given simulated times.

Each event becomes an overlay on the deterministic market (see :mod:`simulator.overlays`), so it
shows up consistently in every view (streams, REST, 24 h tickers) from its start time on:

- :meth:`Scenarios.volume_spike`: the current hour's quote volume reaches ``ratio`` x the
  previous hour's by minute ``by_minute`` (optionally with a price move);
- :meth:`Scenarios.oi_jump`: open interest rises (or falls) by ``pct`` over ``over_minutes``;
- :meth:`Scenarios.list_symbol` / :meth:`Scenarios.delist`: a symbol appears in, or disappears
  from, exchangeInfo, every stream and REST (``-1121 Invalid symbol.``).

Times are epoch milliseconds on the simulator's clock (``None``: now). :meth:`Scenarios.load`
reads the same events from JSON, with times like ``"+10m"`` relative to the simulation start.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from simulator.history import HOUR_MS
from simulator.overlays import Ramp

if TYPE_CHECKING:
    from simulator.market import Market

__all__ = ["Delisting", "Listing", "OiJump", "Scenarios", "VolumeSpike"]

MINUTE_MS = 60_000
_RELATIVE = re.compile(r"^\+(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 1, "s": 1000, "m": MINUTE_MS, "h": HOUR_MS, "d": 24 * HOUR_MS}


@dataclass(frozen=True, slots=True)
class VolumeSpike:
    """A scripted volume spike, with the numbers it was computed from."""

    symbol: str
    at_ms: int
    by_ms: int
    hour_ms: int
    ratio: float
    previous_quote_volume: float
    target_quote_volume: float
    extra_quote_volume: float
    price_change: float


@dataclass(frozen=True, slots=True)
class OiJump:
    """A scripted open-interest change of ``pct`` (a fraction) over ``[at_ms, end_ms]``."""

    symbol: str
    at_ms: int
    end_ms: int
    pct: float


@dataclass(frozen=True, slots=True)
class Listing:
    """A symbol that starts trading at ``at_ms``."""

    symbol: str
    at_ms: int
    template: str | None


@dataclass(frozen=True, slots=True)
class Delisting:
    """A symbol that stops trading at ``at_ms``."""

    symbol: str
    at_ms: int


Event = VolumeSpike | OiJump | Listing | Delisting


class Scenarios:
    """The scenario book of one simulator (thread-safe; call from any thread)."""

    def __init__(self, market: Market) -> None:
        self._market = market
        self._lock = threading.Lock()
        self._events: list[Event] = []

    @property
    def events(self) -> list[Event]:
        """Every scripted event, in the order it was added."""
        with self._lock:
            return list(self._events)

    def _now(self, at_ms: int | None) -> int:
        return self._market.now_ms() if at_ms is None else int(at_ms)

    def _record(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
        logger.info("simulator scenario: {}", event)

    def volume_spike(  # noqa: PLR0913 - one keyword per knob of the event
        self,
        symbol: str,
        *,
        at_ms: int | None = None,
        ratio: float = 5.0,
        by_minute: float = 10.0,
        price_change: float = 0.0,
        min_quote_volume: float = 0.0,
    ) -> VolumeSpike:
        """Make the hour containing ``at_ms`` reach ``ratio`` x the previous hour's volume.

        Args:
            symbol: a symbol of the universe.
            at_ms: when the extra volume starts (default: now).
            ratio: the hour's quote volume at minute ``by_minute`` over the previous hour's.
            by_minute: minute of the hour by which the ratio is reached (0 < m <= 60).
            price_change: optional price move over the same ramp (0.05 = +5 %), kept after it.
            min_quote_volume: raise the target to at least this quote volume (USDT).
        """
        at = self._now(at_ms)
        hour = at // HOUR_MS * HOUR_MS
        by = max(hour + round(by_minute * MINUTE_MS), at + 1000)
        market = self._market
        prev = market.aggregate(symbol, hour - HOUR_MS, hour)
        so_far = market.aggregate(symbol, hour, by)
        if so_far is None:
            raise ValueError(f"{symbol} does not trade at {at}")
        prev_q = prev.q if prev is not None else 0.0
        target = max(ratio * prev_q, min_quote_volume)
        extra = max(0.0, target - so_far.q)
        market.overlays.add_volume(symbol, Ramp(at, by, extra))
        if price_change:
            market.overlays.add_price(symbol, Ramp(at, by, price_change))
        spike = VolumeSpike(symbol, at, by, hour, ratio, prev_q, target, extra, price_change)
        self._record(spike)
        return spike

    def oi_jump(
        self,
        symbol: str,
        *,
        at_ms: int | None = None,
        pct: float = 0.05,
        over_minutes: float = 5.0,
    ) -> OiJump:
        """Change ``symbol``'s open interest by ``pct`` (0.05 = +5 %) over ``over_minutes``."""
        if self._market.instrument(symbol) is None:
            raise KeyError(symbol)
        at = self._now(at_ms)
        end = at + max(1, round(over_minutes * MINUTE_MS))
        self._market.overlays.add_open_interest(symbol, Ramp(at, end, pct))
        jump = OiJump(symbol, at, end, pct)
        self._record(jump)
        return jump

    def list_symbol(
        self, symbol: str, *, at_ms: int | None = None, template: str | None = None
    ) -> Listing:
        """``symbol`` starts trading at ``at_ms`` (created from ``template``'s history if new)."""
        at = self._now(at_ms)
        inst = self._market.instrument(symbol) or self._market.add_instrument(symbol, template)
        inst.listed_from = at
        if inst.delisted_at is not None and inst.delisted_at <= at:
            inst.delisted_at = None
        listing = Listing(symbol, at, inst.template)
        self._record(listing)
        return listing

    def delist(self, symbol: str, *, at_ms: int | None = None) -> Delisting:
        """``symbol`` stops trading at ``at_ms``."""
        inst = self._market.instrument(symbol)
        if inst is None:
            raise KeyError(symbol)
        at = self._now(at_ms)
        inst.delisted_at = at
        event = Delisting(symbol, at)
        self._record(event)
        return event

    def clear(self) -> None:
        """Forget every volume, price and OI overlay (listings stay as they are)."""
        self._market.overlays.clear()
        with self._lock:
            self._events = [e for e in self._events if isinstance(e, Listing | Delisting)]

    # -- JSON scripts -------------------------------------------------------------------

    def _time(self, value: Any) -> int:
        if value is None:
            return self._market.now_ms()
        if isinstance(value, int | float):
            return int(value)
        match = _RELATIVE.match(str(value).strip())
        if match is None:
            raise ValueError(f"bad time {value!r}: use epoch ms or '+<n><ms|s|m|h|d>'")
        return self._market.start_ms + round(float(match.group(1)) * _UNITS[match.group(2)])

    def load(self, script: list[dict[str, Any]]) -> list[Event]:
        """Add the events of a script.

        A script is a list like ``[{"type": "volume_spike", "symbol": "BTCUSDT", "at": "+10m",
        "ratio": 4}, ...]``; types are ``volume_spike``, ``oi_jump``, ``list`` and ``delist``,
        and ``at`` is epoch ms or ``+<n><ms|s|m|h|d>`` after the simulation start.
        """
        out: list[Event] = []
        for item in script:
            spec = dict(item)
            kind = spec.pop("type")
            symbol = spec.pop("symbol")
            at = self._time(spec.pop("at", None))
            if kind == "volume_spike":
                out.append(self.volume_spike(symbol, at_ms=at, **spec))
            elif kind == "oi_jump":
                out.append(self.oi_jump(symbol, at_ms=at, **spec))
            elif kind == "list":
                out.append(self.list_symbol(symbol, at_ms=at, **spec))
            elif kind == "delist":
                out.append(self.delist(symbol, at_ms=at))
            else:
                raise ValueError(f"unknown scenario type {kind!r}")
        return out

    def load_file(self, path: Path | str) -> list[Event]:
        """:meth:`load` a JSON file."""
        return self.load(json.loads(Path(path).read_text(encoding="utf-8")))
