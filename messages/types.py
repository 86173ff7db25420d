"""Named scalar types shared by every message.

They are :class:`typing.NewType` aliases: free at run time, checked by mypy.
"""

from __future__ import annotations

from typing import Literal, NewType

__all__ = [
    "ActorName",
    "AlertType",
    "CandleDirection",
    "OiDirection",
    "OiSource",
    "OiTimeframe",
    "Symbol",
    "TimestampMs",
]

Symbol = NewType("Symbol", str)
"""An exchange symbol, upper case as Binance writes it in payloads (``"BTCUSDT"``)."""

TimestampMs = NewType("TimestampMs", int)
"""Milliseconds since the Unix epoch, UTC (exchange event time or local wall-clock time)."""

ActorName = NewType("ActorName", str)
"""The name a supervisor knows a child by (``"price-cache"``, ``"feed-market"``)."""

AlertType = Literal["SPIKE", "HALF_UPDATE", "FULL_UPDATE"]
"""The volume alert kinds of the backend contract (spec §4.2)."""

CandleDirection = Literal["bullish", "bearish"]
"""Direction of the current candle; a flat candle has none (the field is omitted)."""

OiDirection = Literal["UP", "DOWN"]
"""Direction of an open-interest alert."""

OiTimeframe = Literal["5 min", "15 min", "1 hour"]
"""The open-interest alert timeframes, labelled exactly as the backend stores them."""

OiSource = Literal["realtime", "snapshot"]
"""Where an open-interest sample batch comes from (``source`` in the ingest payload)."""
