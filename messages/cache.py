"""Price-cache conversation: queries and their replies (use ``ask`` with a timeout)."""

from __future__ import annotations

from messages._base import Message, message
from messages.types import Symbol, TimestampMs

__all__ = ["GetPrice", "GetPrices", "PriceEntry", "PriceReply"]


@message
class GetPrice(Message):
    """Ask for one symbol; the reply is a :class:`PriceReply` with at most one entry."""

    symbol: Symbol
    """Upper-case symbol."""


@message
class GetPrices(Message):
    """Ask for many symbols, or for all of them when ``symbols`` is ``None``."""

    symbols: tuple[Symbol, ...] | None = None
    """The symbols wanted, upper case; ``None`` for every cached symbol."""


@message
class PriceEntry(Message):
    """One cached symbol with its freshness."""

    symbol: Symbol
    """Upper-case symbol."""
    mark_price: float
    """Latest mark price."""
    index_price: float | None
    """Latest index price, when the feed carried one."""
    funding_rate: float | None
    """Latest funding rate, when the feed carried one."""
    next_funding_time_ms: TimestampMs | None
    """Next funding time, when known."""
    event_time_ms: TimestampMs
    """Exchange event time of the latest update."""
    received_ms: TimestampMs
    """Local receipt time of the latest update."""
    age_s: float
    """Seconds since ``received_ms`` when the reply was made."""
    stale: bool
    """True when ``age_s`` exceeds the stale threshold (default 180 s)."""


@message
class PriceReply(Message):
    """The reply to :class:`GetPrice` / :class:`GetPrices`."""

    entries: tuple[PriceEntry, ...]
    """Found symbols, in request order (or sorted by symbol for "all")."""
    missing: tuple[Symbol, ...] = ()
    """Requested symbols the cache does not have."""
    as_of_ms: TimestampMs = TimestampMs(0)
    """When the reply was made."""
