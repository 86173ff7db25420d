"""Binance USD-M REST bodies → values and messages, as pure functions.

The REST counterpart of :mod:`messages.binance`: ``exchangeInfo`` (which symbols are TRADING
USDT perpetuals), ``klines`` rows (12-element arrays, strings and ints exactly as Binance sends
them) and ``openInterest``. Malformed input raises :class:`~messages.errors.FrameError` with a
stable ``reason``; a malformed row inside a list is skipped and reported, the rest kept.
"""

from __future__ import annotations

from typing import Any

import orjson

from messages.binance import _int, _price, _time, _volume
from messages.errors import FrameError
from messages.market import Kline
from messages.open_interest import OiSample
from messages.types import Symbol, TimestampMs

__all__ = ["kline_rows", "open_interest_sample", "trading_usdt_perpetuals"]


def _load(body: bytes | str | Any) -> Any:
    if isinstance(body, (bytes, bytearray, str)):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise FrameError("bad_json", str(exc)) from None
    return body


def trading_usdt_perpetuals(body: bytes | str | dict[str, Any]) -> tuple[Symbol, ...]:
    """The symbols an ``exchangeInfo`` body lists as TRADING, USDT-quoted PERPETUAL, sorted.

    All three conditions are required: real bodies hold ``contractType: ""`` listings,
    quarterlies (``BTCUSDT_210924``), BUSD/USDC-quoted perpetuals and SETTLING ones.
    """
    info = _load(body)
    symbols = info.get("symbols") if isinstance(info, dict) else None
    if not isinstance(symbols, list):
        raise FrameError("bad_exchange_info", "no symbols list in exchangeInfo")
    found = {
        entry["symbol"]
        for entry in symbols
        if isinstance(entry, dict)
        and entry.get("contractType") == "PERPETUAL"
        and entry.get("quoteAsset") == "USDT"
        and entry.get("status") == "TRADING"
        and isinstance(entry.get("symbol"), str)
        and entry["symbol"]
    }
    return tuple(Symbol(s) for s in sorted(found))


def kline_rows(
    symbol: str, interval: str, body: bytes | str | list[Any], now_ms: int
) -> tuple[tuple[Kline, ...], tuple[FrameError, ...]]:
    """``/fapi/v1/klines`` rows → candles, oldest first, and the rows that were rejected.

    A row is ``closed`` when its close time is before ``now_ms`` (the last row of a fresh
    answer is usually the candle still in progress).
    """
    rows = _load(body)
    if not isinstance(rows, list):
        raise FrameError("bad_klines", "klines answer is not a list")
    good: list[Kline] = []
    bad: list[FrameError] = []
    for row in rows:
        try:
            good.append(_kline_row(symbol, interval, row, now_ms))
        except FrameError as exc:
            bad.append(exc)
    return tuple(good), tuple(bad)


def _kline_row(symbol: str, interval: str, row: Any, now_ms: int) -> Kline:
    if not isinstance(row, list) or len(row) < 11:
        raise FrameError("bad_kline", f"a kline row has 12 fields, got {row!r:.80}")
    open_time = _time(row[0], "[0]")
    close_time = _time(row[6], "[6]")
    if close_time < open_time:
        raise FrameError("bad_kline", f"close time {close_time} before open time {open_time}")
    return Kline(
        symbol=Symbol(symbol),
        interval=interval,
        open_time_ms=TimestampMs(open_time),
        close_time_ms=TimestampMs(close_time),
        open=_price(row[1], "[1]"),
        high=_price(row[2], "[2]"),
        low=_price(row[3], "[3]"),
        close=_price(row[4], "[4]"),
        base_volume=_volume(row[5], "[5]"),
        quote_volume=_volume(row[7], "[7]"),
        trade_count=_int(row[8], "[8]"),
        closed=close_time < now_ms,
        taker_buy_quote_volume=_volume(row[10], "[10]"),
    )


def open_interest_sample(body: bytes | str | dict[str, Any]) -> OiSample:
    """``/fapi/v1/openInterest`` → :class:`OiSample` (sample time = the answer's ``time``)."""
    data = _load(body)
    if not isinstance(data, dict):
        raise FrameError("bad_open_interest", "openInterest answer is not an object")
    symbol = data.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise FrameError("bad_symbol", f"symbol={symbol!r}")
    try:
        raw = data["openInterest"]
        time_ms = data["time"]
    except KeyError as exc:
        raise FrameError("missing_field", f"openInterest answer without {exc}") from None
    value = _volume(raw, "openInterest")
    if value <= 0:
        raise FrameError("bad_open_interest", f"openInterest={raw!r} is not positive")
    return OiSample(
        symbol=Symbol(symbol), open_interest=value, time_ms=TimestampMs(_time(time_ms, "time"))
    )
