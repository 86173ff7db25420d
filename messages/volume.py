"""Volume-spike conversation: the scanner's alerts (payload of the volume ingest endpoint)."""

from __future__ import annotations

from messages._base import Message, message
from messages.types import AlertType, CandleDirection, Symbol, TimestampMs

__all__ = ["VolumeAlert"]


@message
class VolumeAlert(Message):
    """A SPIKE, HALF_UPDATE or FULL_UPDATE for one symbol-hour (spec §1.7 and §4.2).

    Optional fields are ``None`` when unknown and are omitted from the payload, never sent as
    ``0.0`` or ``null``.
    """

    symbol: Symbol
    """Upper-case symbol."""
    asset: str
    """The symbol with ``USDT`` removed."""
    current_volume: float
    """Quote volume of the current (or just-closed) candle, USDT."""
    previous_volume: float
    """Quote volume of the candle before it, USDT."""
    volume_ratio: float
    """``current_volume / previous_volume``, unrounded."""
    message: str
    """The human message in the original's format."""
    timestamp_ms: TimestampMs
    """When the alert was made."""
    detection_time_ms: TimestampMs
    """When the crossing was detected (the actual instant, not a 5-minute floor)."""
    hour_timestamp_ms: TimestampMs
    """Open time of the candle the alert is about."""
    alert_type: AlertType = "SPIKE"
    """SPIKE, HALF_UPDATE or FULL_UPDATE."""
    price: float | None = None
    """Close of the current candle (last trade price)."""
    funding_rate: float | None = None
    """Funding rate from the price cache, when fresh."""
    candle_direction: CandleDirection | None = None
    """``bullish`` if close > open, ``bearish`` if close < open, ``None`` for a flat candle."""
    price_change: float | None = None
    """``(close - open) / open`` as a fraction."""
    oi_change: float | None = None
    """Open-interest change since the hour's start, from our own OI history."""

    @property
    def is_update(self) -> bool:
        """True for HALF_UPDATE and FULL_UPDATE."""
        return self.alert_type != "SPIKE"
