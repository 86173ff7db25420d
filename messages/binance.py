"""Binance USD-M WebSocket frames → messages, as pure functions.

Frames are dispatched by **event type** (``e``), never by which keys happen to be present:
the original stored the 24 h ticker's ``p`` (price *change*) as the mark price because both
events carry a ``p``.

Accepted frame shapes (all seen in real captures, see ``fixtures/binance``):

- the combined envelope ``{"stream": "...", "data": <event or array>}``;
- a bare array of events (``!markPrice@arr`` on a ``/ws`` connection);
- a bare event object;
- replies to socket requests ``{"result": ..., "id": n}`` and errors ``{"code": n, "msg": ...}``.

Validation: prices must be finite and positive, volumes finite and non-negative, funding
rates finite (negative and zero are real values), times integers. A number sent as a string
must not hold an underscore: Python's ``float()`` takes ``"1_000"``, which no exchange sends
and the msgspec fast path refuses. (``float()`` is still more lenient than JSON in ways that
cost more to check: ``" 1"``, ``"+1"``, ``".5"``, non-ASCII digits.) A bad entry inside an
array is rejected and counted (``rejected`` on the message, and a :class:`FrameError` in
:attr:`Parsed.errors`), the rest of the frame is kept. A frame that is not JSON, or has no
known shape, raises :class:`FrameError`. Missing optional fields (old frames without ``i`` or
``P``) become ``None``; nothing is ever replaced by zero. Unknown keys (``ap``, ``st``) are
ignored.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import orjson

from messages._binance_fast import mark_prices as _fast_mark_prices
from messages._binance_fast import tickers as _fast_tickers
from messages.errors import FrameError
from messages.market import (
    Kline,
    KlineUpdate,
    MarkPrice,
    MarkPrices,
    StreamReply,
    Ticker24h,
    Tickers,
)

__all__ = ["Parsed", "parse_frame", "parse_kline_event", "parse_mark_price", "parse_ticker"]

_isfinite = math.isfinite

FrameMessage = MarkPrices | Tickers | KlineUpdate | StreamReply


class Parsed(NamedTuple):
    """What one frame yields."""

    message: FrameMessage
    """The message built from the frame."""
    errors: tuple[FrameError, ...] = ()
    """Entry-level rejections inside the frame (each counted in the message's ``rejected``)."""


def _num(value: Any, field: str) -> float:
    """A JSON string or number as a finite float."""
    if value.__class__ is str:
        try:
            if "_" in value:  # float("1_000") == 1000.0; JSON has no such number
                raise ValueError(value)
            out = float(value)
        except ValueError:
            raise FrameError("bad_number", f"{field}={value!r} is not a number") from None
    elif value.__class__ is float or value.__class__ is int:
        out = float(value)
    else:
        raise FrameError("bad_number", f"{field}={value!r} is not a number")
    if not _isfinite(out):
        raise FrameError("bad_number", f"{field}={value!r} is not finite")
    return out


def _price(value: Any, field: str) -> float:
    out = _num(value, field)
    if out <= 0.0:
        raise FrameError("bad_price", f"{field}={value!r} is not a positive price")
    return out


def _volume(value: Any, field: str) -> float:
    out = _num(value, field)
    if out < 0.0:
        raise FrameError("bad_volume", f"{field}={value!r} is negative")
    return out


def _int(value: Any, field: str) -> int:
    if value.__class__ is not int:
        raise FrameError("bad_integer", f"{field}={value!r} is not an integer")
    return int(value)


def _time(value: Any, field: str) -> int:
    out = _int(value, field)
    if out <= 0:
        raise FrameError("bad_time", f"{field}={value!r} is not a positive timestamp")
    return out


def _symbol(value: Any) -> str:
    if value.__class__ is not str or not value:
        raise FrameError("bad_symbol", f"s={value!r} is not a symbol")
    return str(value)


def _require(event: dict[str, Any], key: str) -> Any:
    try:
        return event[key]
    except KeyError:
        raise FrameError("missing_field", f"{event.get('e')} without {key!r}") from None


def parse_mark_price(event: dict[str, Any]) -> MarkPrice:
    """One ``markPriceUpdate`` object → :class:`MarkPrice`.

    ``i`` and ``P`` may be absent (old frames); ``r`` may be ``""`` (delivery contracts) and
    ``T`` may be ``0``: those become ``None``.
    """
    get = event.get
    symbol = _symbol(get("s"))
    index = get("i")
    funding = get("r")
    next_funding = get("T")
    return MarkPrice(
        symbol=symbol,  # type: ignore[arg-type]
        event_time_ms=_time(_require(event, "E"), "E"),  # type: ignore[arg-type]
        mark_price=_price(_require(event, "p"), "p"),
        index_price=None if index is None or index == "" else _price(index, "i"),
        funding_rate=None if funding is None or funding == "" else _num(funding, "r"),
        next_funding_time_ms=(
            None if next_funding is None or next_funding == 0 else _time(next_funding, "T")  # type: ignore[arg-type]
        ),
    )


def parse_ticker(event: dict[str, Any]) -> Ticker24h:
    """One ``24hrTicker`` object → :class:`Ticker24h` (``p`` is a price *change*, ignored)."""
    get = event.get
    base = get("v")
    open_ = get("o")
    pct = get("P")
    count = get("n")
    return Ticker24h(
        symbol=_symbol(get("s")),  # type: ignore[arg-type]
        event_time_ms=_time(_require(event, "E"), "E"),  # type: ignore[arg-type]
        last_price=_price(_require(event, "c"), "c"),
        quote_volume=_volume(_require(event, "q"), "q"),
        base_volume=None if base is None else _volume(base, "v"),
        open_price=None if open_ is None else _price(open_, "o"),
        price_change_percent=None if pct is None else _num(pct, "P"),
        trade_count=None if count is None else _int(count, "n"),
    )


def parse_kline_event(event: dict[str, Any], received_ms: int) -> KlineUpdate:
    """One ``kline`` event → :class:`KlineUpdate`."""
    symbol = _symbol(event.get("s"))
    k = _require(event, "k")
    if not isinstance(k, dict):
        raise FrameError("bad_kline", "k is not an object")
    inner_symbol = k.get("s", symbol)
    if inner_symbol != symbol:
        raise FrameError("bad_kline", f"k.s={inner_symbol!r} differs from s={symbol!r}")
    closed = _require(k, "x")
    if closed.__class__ is not bool:
        raise FrameError("bad_kline", f"k.x={closed!r} is not a boolean")
    interval = _require(k, "i")
    if interval.__class__ is not str or not interval:
        raise FrameError("bad_kline", f"k.i={interval!r} is not an interval")
    taker_quote = k.get("Q")
    open_time = _time(_require(k, "t"), "k.t")
    close_time = _time(_require(k, "T"), "k.T")
    if close_time < open_time:
        raise FrameError("bad_kline", f"k.T={close_time} is before k.t={open_time}")
    kline = Kline(
        symbol=symbol,  # type: ignore[arg-type]
        interval=interval,
        open_time_ms=open_time,  # type: ignore[arg-type]
        close_time_ms=close_time,  # type: ignore[arg-type]
        open=_price(_require(k, "o"), "k.o"),
        high=_price(_require(k, "h"), "k.h"),
        low=_price(_require(k, "l"), "k.l"),
        close=_price(_require(k, "c"), "k.c"),
        base_volume=_volume(_require(k, "v"), "k.v"),
        quote_volume=_volume(_require(k, "q"), "k.q"),
        trade_count=_int(_require(k, "n"), "k.n"),
        closed=closed,
        taker_buy_quote_volume=None if taker_quote is None else _volume(taker_quote, "k.Q"),
    )
    return KlineUpdate(
        kline=kline,
        event_time_ms=_time(_require(event, "E"), "E"),  # type: ignore[arg-type]
        received_ms=received_ms,  # type: ignore[arg-type]
    )


def _mark_prices(items: list[Any], received_ms: int) -> Parsed:
    """A ``markPriceUpdate`` array, column-wise.

    The common, well-formed entry (string prices, integer times) takes an inlined fast path;
    anything unusual goes through :func:`parse_mark_price`, which either accepts it (old
    frames, empty ``r``) or raises the precise :class:`FrameError`.
    """
    symbols: list[Any] = []
    events: list[Any] = []
    marks: list[float] = []
    indexes: list[float | None] = []
    fundings: list[float | None] = []
    next_times: list[Any] = []
    errors: list[FrameError] = []
    inf = math.inf
    index: float | None
    funding: float | None
    for item in items:
        try:
            if item.__class__ is not dict or item.get("e") != "markPriceUpdate":
                raise _SlowPath
            sym = item["s"]
            evt = item["E"]
            pv = item["p"]
            iv = item["i"]
            rv = item["r"]
            nft = item["T"]
            if not (
                sym.__class__ is str
                and evt.__class__ is int
                and nft.__class__ is int
                and pv.__class__ is str
                and iv.__class__ is str
                and rv.__class__ is str
                and sym
                and evt > 0
                and nft > 0
            ):
                raise _SlowPath
            if "_" in pv or "_" in iv or "_" in rv:
                raise _SlowPath  # float() would take "1_0"; the strict parser refuses it
            mark = float(pv)
            index = float(iv)
            funding = float(rv)
            if not (0.0 < mark < inf and 0.0 < index < inf and -inf < funding < inf):
                raise _SlowPath
        except (_SlowPath, KeyError, ValueError):
            try:
                if item.__class__ is not dict:
                    raise FrameError("bad_entry", f"array entry is a {type(item).__name__}")
                if item.get("e") != "markPriceUpdate":
                    raise FrameError("unexpected_event", f"{item.get('e')!r} in a markPrice array")
                one = parse_mark_price(item)
            except FrameError as exc:
                errors.append(exc)
                continue
            sym, evt, mark = one.symbol, one.event_time_ms, one.mark_price
            index, funding, nft = one.index_price, one.funding_rate, one.next_funding_time_ms
        symbols.append(sym)
        events.append(evt)
        marks.append(mark)
        indexes.append(index)
        fundings.append(funding)
        next_times.append(nft)
    message = MarkPrices(
        symbols=tuple(symbols),
        event_times_ms=tuple(events),
        mark_prices=tuple(marks),
        index_prices=tuple(indexes),
        funding_rates=tuple(fundings),
        next_funding_times_ms=tuple(next_times),
        received_ms=received_ms,  # type: ignore[arg-type]
        rejected=len(errors),
    )
    return Parsed(message, tuple(errors))


class _SlowPath(Exception):  # noqa: N818 - control flow, not an error
    """Raised inside the fast path to hand an entry to the strict parser."""


def _tickers(items: list[Any], received_ms: int) -> Parsed:
    """A ``24hrTicker`` array."""
    good: list[Ticker24h] = []
    errors: list[FrameError] = []
    for item in items:
        try:
            if item.__class__ is not dict:
                raise FrameError("bad_entry", f"array entry is a {type(item).__name__}")
            if item.get("e") != "24hrTicker":
                raise FrameError("unexpected_event", f"{item.get('e')!r} in a ticker array")
            good.append(parse_ticker(item))
        except FrameError as exc:
            errors.append(exc)
    message = Tickers(items=tuple(good), received_ms=received_ms, rejected=len(errors))  # type: ignore[arg-type]
    return Parsed(message, tuple(errors))


def _parse_array(items: list[Any], received_ms: int, stream: str | None) -> Parsed:
    """An array of ``markPriceUpdate`` or ``24hrTicker`` events (one kind per frame).

    The kind comes from the stream name when there is an envelope, else from the first entry
    with a known event type.
    """
    kind: str | None
    if stream is not None:
        kind = "24hrTicker" if "ticker" in stream.lower() else "markPriceUpdate"
    else:
        kind = next(
            (
                item["e"]
                for item in items
                if isinstance(item, dict) and item.get("e") in ("markPriceUpdate", "24hrTicker")
            ),
            None,
        )
        if kind is None:
            what = "array holds no known event type" if items else "empty array, no stream name"
            raise FrameError("unknown_event", what)
    if kind == "markPriceUpdate":
        return _mark_prices(items, received_ms)
    return _tickers(items, received_ms)


def _parse_event(event: dict[str, Any], received_ms: int) -> Parsed:
    kind = event.get("e")
    if kind == "markPriceUpdate":
        return Parsed(MarkPrices.from_items((parse_mark_price(event),), received_ms))  # type: ignore[arg-type]
    if kind == "24hrTicker":
        return Parsed(Tickers(items=(parse_ticker(event),), received_ms=received_ms))  # type: ignore[arg-type]
    if kind == "kline":
        return Parsed(parse_kline_event(event, received_ms))
    if "e" not in event:
        return Parsed(_parse_reply(event))
    raise FrameError("unknown_event", f"event type {kind!r} is not handled")


def _parse_reply(obj: dict[str, Any]) -> StreamReply:
    request_id = obj.get("id")
    if request_id is not None and request_id.__class__ is not int:
        request_id = None
    error = obj.get("error")
    if isinstance(error, dict) or ("code" in obj and "result" not in obj):
        # Both forms are seen: {"code","msg","id"} (docs) and {"error":{"code","msg"},"id"}.
        source = error if isinstance(error, dict) else obj
        code = source.get("code")
        msg = source.get("msg")
        return StreamReply(
            request_id=request_id,
            error_code=code if code.__class__ is int else None,
            error_msg=msg if isinstance(msg, str) else None,
        )
    if "result" in obj:
        result = obj["result"]
        if result is None or isinstance(result, bool):
            return StreamReply(request_id=request_id)
        if isinstance(result, list) and all(isinstance(x, str) for x in result):
            return StreamReply(request_id=request_id, result=tuple(result))
        raise FrameError("bad_reply", f"result={result!r} is not a list of stream names")
    raise FrameError("unknown_shape", f"object with keys {sorted(obj)[:8]} is not an event")


def parse_frame(raw: bytes | str, received_ms: int) -> Parsed:
    """Parse one WebSocket text frame.

    Args:
        raw: the frame exactly as received.
        received_ms: local wall-clock receipt time (epoch ms).

    Raises:
        FrameError: when the frame is not JSON or has no known shape; ``reason`` says why.
    """
    fast: MarkPrices | Tickers | None = _fast_mark_prices(raw, received_ms)
    if fast is None:
        fast = _fast_tickers(raw, received_ms)
    if fast is not None:
        return Parsed(fast)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError("bad_json", f"{exc} in {_preview(raw)}") from None
    stream: str | None = None
    if obj.__class__ is dict and "stream" in obj and "data" in obj:
        stream = obj["stream"]
        if stream.__class__ is not str:
            raise FrameError("bad_envelope", f"stream={stream!r} is not a stream name")
        obj = obj["data"]
    if obj.__class__ is list:
        return _parse_array(obj, received_ms, stream)
    if obj.__class__ is dict:
        return _parse_event(obj, received_ms)
    raise FrameError("unknown_shape", f"a JSON {type(obj).__name__} is not a frame")


def _preview(raw: bytes | str, limit: int = 80) -> str:
    text = raw if isinstance(raw, str) else raw[:limit].decode("utf-8", "replace")
    return repr(text[:limit] + ("…" if len(text) > limit else ""))
