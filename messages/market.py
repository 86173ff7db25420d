"""Market-data conversation: what the WebSocket feeds tell the cache, universe and scanner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from messages._base import Message, message
from messages.types import Symbol, TimestampMs

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "Kline",
    "KlineUpdate",
    "KlineUpdates",
    "MarkPrice",
    "MarkPrices",
    "StreamReply",
    "Ticker24h",
    "Tickers",
    "TradingSymbols",
]


@message
class MarkPrice(Message):
    """One symbol's ``markPriceUpdate``: mark and index price, funding, next funding time.

    Optional fields are ``None`` when the frame did not carry them (old frames have no ``i``;
    delivery contracts send ``T: 0``); they are never replaced by zero. ``P`` (estimated
    settle price) only matters for delivery contracts and is not kept.
    """

    symbol: Symbol
    """Upper-case symbol (``s``)."""
    event_time_ms: TimestampMs
    """Exchange event time (``E``)."""
    mark_price: float
    """Mark price (``p``), always positive."""
    index_price: float | None = None
    """Index price (``i``), when present."""
    funding_rate: float | None = None
    """Current funding rate (``r``) as a fraction; may be negative; ``None`` when absent/empty."""
    next_funding_time_ms: TimestampMs | None = None
    """Next funding time (``T``); ``None`` when absent or ``0`` (delivery contracts)."""


@message
class MarkPrices(Message):
    """Every mark price of one frame (``!markPrice@arr@1s`` or a per-symbol stream).

    Stored column-wise (one tuple per field, all the same length) because a full-market frame
    holds ~650 entries every second and building 650 objects per frame would dominate the
    ingest cost. Iterate it to get :class:`MarkPrice` records; build it from records with
    :meth:`from_items`.
    """

    symbols: tuple[Symbol, ...]
    """Upper-case symbols (``s``)."""
    event_times_ms: tuple[TimestampMs, ...]
    """Exchange event times (``E``)."""
    mark_prices: tuple[float, ...]
    """Mark prices (``p``), positive."""
    index_prices: tuple[float | None, ...]
    """Index prices (``i``) or ``None`` where absent."""
    funding_rates: tuple[float | None, ...]
    """Funding rates (``r``) or ``None`` where absent/empty."""
    next_funding_times_ms: tuple[TimestampMs | None, ...]
    """Next funding times (``T``) or ``None`` where absent or ``0``."""
    received_ms: TimestampMs
    """Local wall-clock time the frame was received."""
    rejected: int = 0
    """Entries of the frame that failed validation (counted, not delivered)."""

    def __post_init__(self) -> None:
        """Check that all columns have the same length."""
        n = len(self.symbols)
        if not (
            len(self.event_times_ms)
            == len(self.mark_prices)
            == len(self.index_prices)
            == len(self.funding_rates)
            == len(self.next_funding_times_ms)
            == n
        ):
            raise ValueError("MarkPrices columns must all have the same length")

    def __len__(self) -> int:
        return len(self.symbols)

    def __iter__(self) -> Iterator[MarkPrice]:
        for sym, evt, mark, index, funding, nft in zip(
            self.symbols,
            self.event_times_ms,
            self.mark_prices,
            self.index_prices,
            self.funding_rates,
            self.next_funding_times_ms,
            strict=True,
        ):
            yield MarkPrice(
                symbol=sym,
                event_time_ms=evt,
                mark_price=mark,
                index_price=index,
                funding_rate=funding,
                next_funding_time_ms=nft,
            )

    @classmethod
    def from_items(
        cls, items: Iterable[MarkPrice], received_ms: TimestampMs, rejected: int = 0
    ) -> MarkPrices:
        """Build the column-wise message from records."""
        rows = tuple(items)
        return cls(
            symbols=tuple(m.symbol for m in rows),
            event_times_ms=tuple(m.event_time_ms for m in rows),
            mark_prices=tuple(m.mark_price for m in rows),
            index_prices=tuple(m.index_price for m in rows),
            funding_rates=tuple(m.funding_rate for m in rows),
            next_funding_times_ms=tuple(m.next_funding_time_ms for m in rows),
            received_ms=received_ms,
            rejected=rejected,
        )


@message
class Ticker24h(Message):
    """One symbol's rolling 24 h ticker (``24hrTicker``). ``p`` here is the price *change*."""

    symbol: Symbol
    """Upper-case symbol (``s``)."""
    event_time_ms: TimestampMs
    """Exchange event time (``E``)."""
    last_price: float
    """Last trade price (``c``)."""
    quote_volume: float
    """24 h quote-asset volume in USDT (``q``); the liquid universe is built from it."""
    base_volume: float | None = None
    """24 h base-asset volume (``v``)."""
    open_price: float | None = None
    """Price 24 h ago (``o``)."""
    price_change_percent: float | None = None
    """24 h price change in percent (``P``)."""
    trade_count: int | None = None
    """Trades in the window (``n``)."""


@message
class Tickers(Message):
    """The valid 24 h tickers of one ``!ticker@arr`` frame (only symbols that changed)."""

    items: tuple[Ticker24h, ...]
    """The valid entries, in frame order."""
    received_ms: TimestampMs
    """Local wall-clock time the frame was received."""
    rejected: int = 0
    """Entries that failed validation."""


@message
class Kline(Message):
    """One candle, from the kline stream (``k``) or a REST ``/fapi/v1/klines`` row."""

    symbol: Symbol
    """Upper-case symbol."""
    interval: str
    """Interval code (``"1h"``)."""
    open_time_ms: TimestampMs
    """Candle start (``t`` / row[0])."""
    close_time_ms: TimestampMs
    """Candle end, inclusive: open time + interval - 1 (``T`` / row[6])."""
    open: float
    """Open price."""
    high: float
    """High price."""
    low: float
    """Low price."""
    close: float
    """Close price (the last trade price while the candle is open)."""
    base_volume: float
    """Base-asset volume (``v`` / row[5])."""
    quote_volume: float
    """Quote-asset volume in USDT (``q`` / row[7]); the spike rule compares these."""
    trade_count: int
    """Number of trades (``n`` / row[8])."""
    closed: bool
    """True when the candle is final (``x`` on the stream; close time past for REST rows)."""
    taker_buy_quote_volume: float | None = None
    """Taker-buy quote volume (``Q`` / row[10]), when present."""


@message
class KlineUpdate(Message):
    """One kline event from the stream."""

    kline: Kline
    """The candle as of this event."""
    event_time_ms: TimestampMs
    """Exchange event time (``E``)."""
    received_ms: TimestampMs
    """Local wall-clock receipt time."""


@message
class KlineUpdates(Message):
    """A batch of kline events read together by one feed (latest per symbol is enough)."""

    items: tuple[KlineUpdate, ...]
    """The events, in arrival order."""


@message
class StreamReply(Message):
    """A reply to a JSON request on the socket (``SUBSCRIBE``, ``LIST_SUBSCRIPTIONS`` ...)."""

    request_id: int | None
    """The ``id`` of the request answered (``None`` when the server could not read it)."""
    result: tuple[str, ...] | None = None
    """``result`` of ``LIST_SUBSCRIPTIONS``; ``None`` for the others."""
    error_code: int | None = None
    """``code`` of an error reply."""
    error_msg: str | None = None
    """``msg`` of an error reply."""


@message
class TradingSymbols(Message):
    """The TRADING USDT perpetuals per ``exchangeInfo`` (the universe of kline feeds)."""

    symbols: tuple[Symbol, ...]
    """Upper-case symbols, sorted."""
    at_ms: TimestampMs
    """When ``exchangeInfo`` was read."""
