"""Typed fast paths for the two big frames of the market connection.

They are ``!markPrice@arr`` (on every tick's critical path) and ``!ticker@arr`` (650 entries a
second, on the same socket, so a slow ticker parse delays the mark frame behind it).

:func:`messages.binance.parse_frame` is the reference parser. For these arrays it first tries
:func:`mark_prices` / :func:`tickers`, which decode the frame straight into typed structs with
msgspec (validation in C: event type, positive integer times, non-empty symbols) and convert
each number column in one call (finite, positive prices; finite funding rates; finite,
non-negative volumes). They accept only frames in which **every** entry is well formed and has
every field; anything else (an old frame without ``i``, an empty ``r``, one bad entry, a string
where an integer belongs) returns ``None`` and the reference parser takes the frame, so errors
are counted exactly as before. The two agree on every frame the fast path accepts
(tests/messages/test_binance_fast.py checks that on generated frames).
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import msgspec

from messages.market import MarkPrices, Ticker24h, Tickers

__all__ = ["mark_prices", "tickers"]

_MAX = sys.float_info.max
_PositiveFinite = Annotated[float, msgspec.Meta(gt=0, le=_MAX)]
_Finite = Annotated[float, msgspec.Meta(ge=-_MAX, le=_MAX)]
_NonNegativeFinite = Annotated[float, msgspec.Meta(ge=0, le=_MAX)]
_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_Symbol = Annotated[str, msgspec.Meta(min_length=1)]


class _Mark(msgspec.Struct):
    """One ``markPriceUpdate`` entry with every field present (unknown keys ignored)."""

    e: Literal["markPriceUpdate"]
    E: _PositiveInt
    s: _Symbol
    p: str
    i: str
    r: str
    T: _PositiveInt


class _Marks(msgspec.Struct):
    stream: str
    data: list[_Mark]


class _Ticker(msgspec.Struct):
    """One ``24hrTicker`` entry with every field we keep present (``p`` is a change: ignored)."""

    e: Literal["24hrTicker"]
    E: _PositiveInt
    s: _Symbol
    c: str
    q: str
    v: str
    o: str
    P: str
    n: int


class _Tickers(msgspec.Struct):
    stream: str
    data: list[_Ticker]


_MARKS = msgspec.json.Decoder(_Marks)
_BARE_MARKS = msgspec.json.Decoder(list[_Mark])
_TICKERS = msgspec.json.Decoder(_Tickers)
_MARKS_PREFIX = b'{"stream":"!markPrice@arr'
_BARE_MARKS_PREFIX = b'[{"e":"markPriceUpdate"'
_TICKERS_PREFIX = b'{"stream":"!ticker@arr"'
_POSITIVE = list[_PositiveFinite]
_NON_NEGATIVE = list[_NonNegativeFinite]
_FINITE = list[_Finite]
_convert = msgspec.convert
_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)


def mark_prices(raw: bytes | str, received_ms: int) -> MarkPrices | None:
    """``raw`` as :class:`MarkPrices` when it is a flawless mark-price array, else ``None``."""
    if raw.__class__ is not bytes:
        return None
    data: bytes = raw
    try:
        if data.startswith(_MARKS_PREFIX):
            items = _MARKS.decode(data).data
        elif data.startswith(_BARE_MARKS_PREFIX):
            items = _BARE_MARKS.decode(data)
        else:
            return None
        marks = _convert([x.p for x in items], _POSITIVE, strict=False)
        indexes = _convert([x.i for x in items], _POSITIVE, strict=False)
        fundings = _convert([x.r for x in items], _FINITE, strict=False)
    except _ERRORS:
        return None
    return MarkPrices(
        symbols=tuple([x.s for x in items]),  # type: ignore[misc]
        event_times_ms=tuple([x.E for x in items]),  # type: ignore[misc]
        mark_prices=tuple(marks),
        index_prices=tuple(indexes),
        funding_rates=tuple(fundings),
        next_funding_times_ms=tuple([x.T for x in items]),  # type: ignore[misc]
        received_ms=received_ms,  # type: ignore[arg-type]
    )


def tickers(raw: bytes | str, received_ms: int) -> Tickers | None:
    """``raw`` as :class:`Tickers` when it is a flawless ``!ticker@arr`` frame, else ``None``."""
    if raw.__class__ is not bytes or not raw.startswith(_TICKERS_PREFIX):
        return None
    try:
        items = _TICKERS.decode(raw).data
        last = _convert([x.c for x in items], _POSITIVE, strict=False)
        opens = _convert([x.o for x in items], _POSITIVE, strict=False)
        quote = _convert([x.q for x in items], _NON_NEGATIVE, strict=False)
        base = _convert([x.v for x in items], _NON_NEGATIVE, strict=False)
        change = _convert([x.P for x in items], _FINITE, strict=False)
    except _ERRORS:
        return None
    return Tickers(
        items=tuple(
            [
                Ticker24h(
                    symbol=x.s,
                    event_time_ms=x.E,
                    last_price=c,
                    quote_volume=q,
                    base_volume=v,
                    open_price=o,
                    price_change_percent=p,
                    trade_count=x.n,
                )
                for x, c, q, v, o, p in zip(items, last, quote, base, opens, change, strict=True)
            ]
        ),
        received_ms=received_ms,  # type: ignore[arg-type]
    )
