"""The liquid universe with its hysteresis, and the 5-minute snapshot plan, as pure logic.

No threads, sockets or files: :class:`UniverseTracker` is fed 24 h tickers and evaluated with
the set of TRADING USDT perpetuals and a time; its state goes out and comes back as plain
values so that a restart keeps the hysteresis (WEAK-20).

Rules (spec §2.2, with the decisions of issue 6):

- a non-member **enters** when its 24 h quote volume ``>= enter`` (default 4,000,000 USDT);
  a member **stays** while ``>= exit`` (default 2,000,000) and **leaves** when ``< exit``;
- only TRADING USDT perpetuals can be members; excluded symbols (default ``USDCUSDT``) never;
- ``!ticker@arr`` only carries symbols whose ticker changed, so a missing row is **not** a
  reason to leave: the last known volume counts until it is older than ``max_ticker_age_ms``
  (the original dropped symbols without a row);
- an evaluation that would end empty (no ticker data at all, an empty TRADING list, a feed
  outage that aged everything out) **keeps the previous set** and says why; an empty set is
  never posted to the backend, whose update replaces its whole set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from messages.open_interest import LiquidUniverse, OiSample, UniverseMember
from messages.types import Symbol, TimestampMs

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from messages.market import Ticker24h
    from supervisors.config import Config

__all__ = [
    "SnapshotPlan",
    "UniverseEvaluation",
    "UniverseRules",
    "UniverseTracker",
    "plan_snapshot",
]

DEFAULT_MAX_TICKER_AGE_MS: Final = 3_600_000
"""A symbol with no ticker change for an hour had no trade for an hour: not liquid."""


@dataclass(frozen=True, slots=True)
class UniverseRules:
    """Settings of the hysteresis."""

    enter_quote_24h: float = 4_000_000.0
    """A non-member enters when its 24 h quote volume is at least this (USDT)."""
    exit_quote_24h: float = 2_000_000.0
    """A member leaves when its 24 h quote volume falls below this (USDT)."""
    exclude: frozenset[str] = frozenset({"USDCUSDT"})
    """Never members."""
    max_ticker_age_ms: int = DEFAULT_MAX_TICKER_AGE_MS
    """A last known volume older than this no longer counts (the symbol cannot stay or enter)."""

    def __post_init__(self) -> None:
        """Check that the exit threshold is not above the enter threshold."""
        if not 0 <= self.exit_quote_24h <= self.enter_quote_24h:
            raise ValueError("need 0 <= exit_quote_24h <= enter_quote_24h")
        if self.max_ticker_age_ms <= 0:
            raise ValueError("max_ticker_age_ms must be positive")

    @classmethod
    def from_config(cls, config: Config, max_ticker_age_ms: int | None = None) -> UniverseRules:
        """Build from ``oi_liquid_enter/exit_quote_24h`` and ``oi_universe_exclude``."""
        return cls(
            enter_quote_24h=config.oi_liquid_enter_quote_24h,
            exit_quote_24h=config.oi_liquid_exit_quote_24h,
            exclude=frozenset(config.oi_universe_exclude),
            max_ticker_age_ms=max_ticker_age_ms or DEFAULT_MAX_TICKER_AGE_MS,
        )


@dataclass(frozen=True, slots=True)
class UniverseEvaluation:
    """The result of :meth:`UniverseTracker.evaluate`."""

    universe: LiquidUniverse
    """The set after this evaluation (the previous one when ``held``)."""
    held: str = ""
    """Non-empty when the previous set was kept instead of computing an empty one: why."""
    reasons: tuple[tuple[str, str], ...] = ()
    """``(symbol, why)`` per leaver: ``volume``, ``stale``, ``not-trading`` or ``excluded``."""


@dataclass(slots=True)
class _Seen:
    quote_volume: float
    last_seen_ms: int


@dataclass(slots=True)
class UniverseTracker:
    """Last known 24 h volumes plus the current members with their entry times.

    Args:
        rules: thresholds, exclusion list and maximum ticker age.
    """

    rules: UniverseRules = field(default_factory=UniverseRules)
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _entered: dict[str, int | None] = field(default_factory=dict)
    """Current members → entry time (``None`` when unknown, e.g. imported without one)."""

    def observe(self, tickers: Iterable[Ticker24h]) -> int:
        """Record the tickers' quote volumes, seen at their event time; returns how many counted."""
        counted = 0
        for ticker in tickers:
            if not (math.isfinite(ticker.quote_volume) and ticker.quote_volume >= 0):
                continue
            old = self._seen.get(ticker.symbol)
            if old is None or ticker.event_time_ms >= old.last_seen_ms:
                self._seen[ticker.symbol] = _Seen(ticker.quote_volume, ticker.event_time_ms)
                counted += 1
        return counted

    @property
    def members(self) -> frozenset[str]:
        """The current members."""
        return frozenset(self._entered)

    def evaluate(self, trading: Collection[str], now_ms: int) -> UniverseEvaluation:
        """Apply the hysteresis to every TRADING USDT perpetual in ``trading`` at ``now_ms``."""
        held = self._hold_reason(trading, now_ms)
        if held:
            return UniverseEvaluation(universe=self._universe(now_ms), held=held)
        keep: dict[str, int | None] = {}
        for symbol in sorted(trading):
            volume = self._fresh_volume(symbol, now_ms)
            if symbol in self.rules.exclude or volume is None:
                continue
            if symbol in self._entered and volume >= self.rules.exit_quote_24h:
                keep[symbol] = self._entered[symbol]
            elif symbol not in self._entered and volume >= self.rules.enter_quote_24h:
                keep[symbol] = now_ms
        if not keep and self._entered:
            return UniverseEvaluation(universe=self._universe(now_ms), held="would be empty")
        reasons = tuple(
            (s, self._why_left(s, trading, now_ms)) for s in sorted(self._entered) if s not in keep
        )
        entered = tuple(s for s in keep if s not in self._entered)
        self._entered = keep
        universe = self._universe(now_ms, entered=entered, left=tuple(s for s, _ in reasons))
        return UniverseEvaluation(universe=universe, reasons=reasons)

    def _hold_reason(self, trading: Collection[str], now_ms: int) -> str:
        if not trading:
            return "no trading symbols"
        oldest_fresh = now_ms - self.rules.max_ticker_age_ms
        if not any(s.last_seen_ms >= oldest_fresh for s in self._seen.values()):
            return "no ticker data"
        return ""

    def _fresh_volume(self, symbol: str, now_ms: int) -> float | None:
        seen = self._seen.get(symbol)
        if seen is None or now_ms - seen.last_seen_ms > self.rules.max_ticker_age_ms:
            return None
        return seen.quote_volume

    def _why_left(self, symbol: str, trading: Collection[str], now_ms: int) -> str:
        if symbol not in trading:
            return "not-trading"
        if symbol in self.rules.exclude:
            return "excluded"
        if self._fresh_volume(symbol, now_ms) is None:
            return "stale"
        return "volume"

    def _universe(
        self, now_ms: int, entered: tuple[str, ...] = (), left: tuple[str, ...] = ()
    ) -> LiquidUniverse:
        members = tuple(self._member(s) for s in sorted(self._entered))
        return LiquidUniverse(
            members=members, updated_ms=TimestampMs(now_ms), entered=entered, left=left
        )

    def _member(self, symbol: str) -> UniverseMember:
        seen = self._seen.get(symbol)
        entered = self._entered[symbol]
        return UniverseMember(
            symbol=Symbol(symbol),
            quote_volume_24h=seen.quote_volume if seen else 0.0,
            entered_ms=None if entered is None else TimestampMs(entered),
            last_seen_ms=TimestampMs(seen.last_seen_ms if seen else 0),
        )

    def forget_unlisted(self, trading: Collection[str]) -> None:
        """Drop last known volumes of symbols no longer trading (members leave at evaluation)."""
        self._seen = {s: v for s, v in self._seen.items() if s in trading or s in self._entered}

    def export_state(self) -> dict[str, list[tuple[Any, ...]]]:
        """The state as plain values (JSON- and SQLite-friendly).

        Returns:
            ``{"members": [(symbol, entered_ms | None)],
            "seen": [(symbol, quote_volume, last_seen_ms)]}``, sorted.
        """
        return {
            "members": sorted(self._entered.items()),
            "seen": sorted((s, v.quote_volume, v.last_seen_ms) for s, v in self._seen.items()),
        }

    def import_state(self, state: Mapping[str, Iterable[Any]]) -> None:
        """Restore :meth:`export_state` output, replacing the current state."""
        self._entered = {
            str(symbol): None if entered is None else int(entered)
            for symbol, entered in state.get("members", ())
        }
        self._seen = {
            str(symbol): _Seen(float(volume), int(last_seen))
            for symbol, volume, last_seen in state.get("seen", ())
        }


@dataclass(frozen=True, slots=True)
class SnapshotPlan:
    """How the 5-minute full-universe OI snapshot gets its rows."""

    reuse: tuple[OiSample, ...]
    """Fresh realtime samples to post as they are."""
    poll: tuple[Symbol, ...]
    """Symbols to poll (no realtime sample, or it is too old)."""


def plan_snapshot(
    symbols: Iterable[str], latest: Mapping[str, OiSample], now_ms: int, max_age_ms: int
) -> SnapshotPlan:
    """Split the snapshot's ``symbols`` into realtime samples to reuse and symbols to poll.

    Args:
        symbols: every TRADING USDT perpetual (the snapshot covers them all).
        latest: the newest realtime sample per symbol.
        now_ms: exchange (server) time now, comparable with ``OiSample.time_ms``.
        max_age_ms: a sample at most this old (by its exchange time) is reused.
    """
    reuse: list[OiSample] = []
    poll: list[Symbol] = []
    for symbol in sorted(set(symbols)):
        sample = latest.get(symbol)
        if sample is not None and now_ms - sample.time_ms <= max_age_ms:
            reuse.append(sample)
        else:
            poll.append(Symbol(symbol))
    return SnapshotPlan(reuse=tuple(reuse), poll=tuple(poll))
