"""Open-interest conversation: samples from the poller, alerts, and the liquid universe."""

from __future__ import annotations

from messages._base import Message, message
from messages.types import OiDirection, OiSource, OiTimeframe, Symbol, TimestampMs

__all__ = [
    "LiquidUniverse",
    "OiAlert",
    "OiSample",
    "OiSamples",
    "TradingUniverse",
    "UniverseMember",
]


@message
class OiSample(Message):
    """One ``/fapi/v1/openInterest`` reading, enriched from the price cache when fresh."""

    symbol: Symbol
    """Upper-case symbol."""
    open_interest: float
    """Open interest in contracts (base units)."""
    time_ms: TimestampMs
    """The response's ``time`` (exchange sample time), not our processing time."""
    mark_price: float | None = None
    """Mark price at sampling, omitted when missing or stale (never 0.0)."""
    funding_rate: float | None = None
    """Funding rate at sampling, when known."""

    @property
    def open_interest_usd(self) -> float | None:
        """Notional in USDT, or ``None`` when the mark price is unknown."""
        if self.mark_price is None:
            return None
        return self.open_interest * self.mark_price


@message
class OiSamples(Message):
    """A batch of samples for delivery (chunked to at most 100 by the poster)."""

    items: tuple[OiSample, ...]
    """The samples."""
    source: OiSource
    """``"realtime"`` from the liquid-universe poller, ``"snapshot"`` from the 5-minute sweep."""
    created_ms: TimestampMs
    """When the batch was assembled."""


@message
class OiAlert(Message):
    """An open-interest alert (payload of ``POST /api/open-interest-alerts/ingest``)."""

    symbol: Symbol
    """Upper-case symbol."""
    direction: OiDirection
    """``UP`` or ``DOWN``."""
    baseline: float
    """Open interest at the baseline, contracts."""
    current: float
    """Open interest now, contracts."""
    pct_change: float
    """``(current - baseline) / baseline`` as a fraction."""
    abs_change: float
    """``current - baseline``, contracts, signed."""
    timestamp_ms: TimestampMs
    """Sample time of the current reading."""
    timeframe: OiTimeframe
    """Which window crossed."""
    price_change: float | None = None
    """Mark price change over the same window as a fraction, when both marks are known."""
    funding_rate: float | None = None
    """Funding rate now, when known."""
    source: str = "oi_realtime_poller"
    """The ``source`` field of the payload."""


@message
class UniverseMember(Message):
    """One symbol of the liquid universe."""

    symbol: Symbol
    """Upper-case symbol."""
    quote_volume_24h: float
    """24 h quote volume (USDT) at the last evaluation."""
    entered_ms: TimestampMs | None
    """When it entered the universe; ``None`` if unknown (kept from before a restart)."""
    last_seen_ms: TimestampMs
    """When its ticker was last seen."""


@message
class LiquidUniverse(Message):
    """The liquid universe after one evaluation (enter ≥ 4 M, leave < 2 M by default)."""

    members: tuple[UniverseMember, ...]
    """Members, ordered by symbol."""
    updated_ms: TimestampMs
    """When it was evaluated."""
    entered: tuple[str, ...] = ()
    """Symbols that entered in this evaluation."""
    left: tuple[str, ...] = ()
    """Symbols that left in this evaluation."""


@message
class TradingUniverse(Message):
    """Every TRADING USDT perpetual the five-minute OI snapshot covers (spec §2.1).

    Told by the universe actor to the OI poller with every evaluation (level-triggered, so a
    restarted poller has it again within one evaluation period). Excluded symbols
    (``OI_UNIVERSE_EXCLUDE``) are not in it.
    """

    symbols: tuple[Symbol, ...]
    """The symbols, sorted."""
    updated_ms: TimestampMs
    """When the list was last read from ``exchangeInfo`` (exchange time)."""
