"""Binance USD-M JSON shapes: the exact keys, key order and JSON types the exchange sends.

Prices, quantities and rates are decimal **strings**; times, ids and counts are **ints**; the
kline ``x`` is a bool. Key orders follow real frames (see ``fixtures/binance``): markPrice is
``e,E,s,p,ap,P,i,r,T,st`` (2026 frames), not the docs' order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.derivatives import FundingRow, MarkState, OiRow
    from simulator.market import Agg, Candle
    from simulator.universe import Instrument

__all__ = [
    "error_body",
    "fmt",
    "funding_row",
    "kline_event",
    "kline_row",
    "mark_price_update",
    "mini_ticker_event",
    "oi_hist_row",
    "open_interest",
    "premium_index",
    "ticker_24hr",
    "ticker_event",
    "ticker_price",
]


def fmt(value: float, decimals: int) -> str:
    """``value`` as a fixed-point decimal string (Binance never uses exponents)."""
    return f"{value:.{decimals}f}"


def _mark_decimals(inst: Instrument) -> int:
    return max(8, inst.price_decimals)


def error_body(code: int, msg: str) -> dict[str, Any]:
    """``{"code": <negative int>, "msg": "..."}``."""
    return {"code": code, "msg": msg}


def mark_price_update(inst: Instrument, event_ms: int, st: MarkState) -> dict[str, Any]:
    """A ``markPriceUpdate`` event (``<symbol>@markPrice`` and the ``!markPrice@arr`` items)."""
    d = _mark_decimals(inst)
    mark = fmt(st.mark, d)
    return {
        "e": "markPriceUpdate",
        "E": event_ms,
        "s": inst.symbol,
        "p": mark,
        "ap": mark,
        "P": fmt(st.settle, d),
        "i": fmt(st.index, d),
        "r": fmt(st.funding, 8),
        "T": st.next_funding_ms,
        "st": 1,
    }


def _last_qty(inst: Instrument, agg: Agg) -> str:
    avg = agg.v / max(agg.n, 1)
    step = 10.0**-inst.qty_decimals
    return fmt(max(step, round(avg * 0.37 / step) * step), inst.qty_decimals)


def _change_pct(agg: Agg) -> str:
    return fmt((agg.c - agg.o) / agg.o * 100.0 if agg.o else 0.0, 3)


def ticker_event(inst: Instrument, event_ms: int, agg: Agg) -> dict[str, Any]:
    """A ``24hrTicker`` event (``!ticker@arr`` items, ``<symbol>@ticker``)."""
    d = inst.price_decimals
    return {
        "e": "24hrTicker",
        "E": event_ms,
        "s": inst.symbol,
        "p": fmt(agg.c - agg.o, d),
        "P": _change_pct(agg),
        "w": fmt(agg.q / agg.v if agg.v else agg.c, d),
        "c": fmt(agg.c, d),
        "Q": _last_qty(inst, agg),
        "o": fmt(agg.o, d),
        "h": fmt(agg.h, d),
        "l": fmt(agg.l, d),
        "v": fmt(agg.v, inst.qty_decimals),
        "q": fmt(agg.q, inst.quote_decimals),
        "O": event_ms - 86_400_000,
        "C": event_ms,
        "F": agg.first_id,
        "L": agg.last_id,
        "n": agg.n,
    }


def mini_ticker_event(inst: Instrument, event_ms: int, agg: Agg) -> dict[str, Any]:
    """A ``24hrMiniTicker`` event (``!miniTicker@arr`` items, ``<symbol>@miniTicker``)."""
    d = inst.price_decimals
    return {
        "e": "24hrMiniTicker",
        "E": event_ms,
        "s": inst.symbol,
        "c": fmt(agg.c, d),
        "o": fmt(agg.o, d),
        "h": fmt(agg.h, d),
        "l": fmt(agg.l, d),
        "v": fmt(agg.v, inst.qty_decimals),
        "q": fmt(agg.q, inst.quote_decimals),
    }


def _candle_strings(inst: Instrument, agg: Agg) -> tuple[str, str, str, str, str, str]:
    if agg.raw is not None:
        return agg.raw
    d, qd, vd = inst.price_decimals, inst.quote_decimals, inst.qty_decimals
    return (fmt(agg.o, d), fmt(agg.h, d), fmt(agg.l, d), fmt(agg.c, d), fmt(agg.v, vd),
            fmt(agg.q, qd))  # fmt: skip


def kline_event(inst: Instrument, event_ms: int, candle: Candle) -> dict[str, Any]:
    """A ``kline`` event (``<symbol>@kline_<interval>``)."""
    agg = candle.agg
    o, h, low, c, v, q = _candle_strings(inst, agg)
    return {
        "e": "kline",
        "E": event_ms,
        "s": inst.symbol,
        "k": {
            "t": candle.open_ms,
            "T": candle.close_ms,
            "s": inst.symbol,
            "i": candle.interval,
            "f": agg.first_id,
            "L": agg.last_id,
            "o": o,
            "c": c,
            "h": h,
            "l": low,
            "v": v,
            "n": agg.n,
            "x": candle.closed,
            "q": q,
            "V": fmt(agg.taker_v, inst.qty_decimals),
            "Q": fmt(agg.taker_q, inst.quote_decimals),
            "B": "0",
        },
    }


def kline_row(inst: Instrument, candle: Candle) -> list[Any]:
    """A 12-element ``GET /fapi/v1/klines`` row: ints at 0, 6 and 8, strings elsewhere."""
    agg = candle.agg
    o, h, low, c, v, q = _candle_strings(inst, agg)
    return [
        candle.open_ms, o, h, low, c, v, candle.close_ms, q, agg.n,
        fmt(agg.taker_v, inst.qty_decimals), fmt(agg.taker_q, inst.quote_decimals), "0",
    ]  # fmt: skip


def open_interest(inst: Instrument, contracts: float, time_ms: int) -> dict[str, Any]:
    """``GET /fapi/v1/openInterest`` (real key order ``symbol, openInterest, time``)."""
    return {
        "symbol": inst.symbol,
        "openInterest": fmt(contracts, inst.qty_decimals),
        "time": time_ms,
    }


def premium_index(inst: Instrument, st: MarkState, time_ms: int) -> dict[str, Any]:
    """One ``GET /fapi/v1/premiumIndex`` object."""
    d = _mark_decimals(inst)
    return {
        "symbol": inst.symbol,
        "markPrice": fmt(st.mark, d),
        "indexPrice": fmt(st.index, d),
        "estimatedSettlePrice": fmt(st.settle, d),
        "lastFundingRate": fmt(st.funding, 8),
        "interestRate": fmt(st.interest, 8),
        "nextFundingTime": st.next_funding_ms,
        "time": time_ms,
    }


def ticker_24hr(inst: Instrument, agg: Agg, time_ms: int) -> dict[str, Any]:
    """One ``GET /fapi/v1/ticker/24hr`` object (no bid/ask fields on USD-M)."""
    d = inst.price_decimals
    return {
        "symbol": inst.symbol,
        "priceChange": fmt(agg.c - agg.o, d),
        "priceChangePercent": _change_pct(agg),
        "weightedAvgPrice": fmt(agg.q / agg.v if agg.v else agg.c, d),
        "lastPrice": fmt(agg.c, d),
        "lastQty": _last_qty(inst, agg),
        "openPrice": fmt(agg.o, d),
        "highPrice": fmt(agg.h, d),
        "lowPrice": fmt(agg.l, d),
        "volume": fmt(agg.v, inst.qty_decimals),
        "quoteVolume": fmt(agg.q, inst.quote_decimals),
        "openTime": time_ms - 86_400_000,
        "closeTime": time_ms,
        "firstId": agg.first_id,
        "lastId": agg.last_id,
        "count": agg.n,
    }


def ticker_price(inst: Instrument, price: float, time_ms: int) -> dict[str, Any]:
    """One ``GET /fapi/v1/ticker/price`` object."""
    return {"symbol": inst.symbol, "price": fmt(price, inst.price_decimals), "time": time_ms}


def funding_row(inst: Instrument, row: FundingRow) -> dict[str, Any]:
    """One ``GET /fapi/v1/fundingRate`` row."""
    return {
        "symbol": inst.symbol,
        "fundingRate": fmt(row.rate, 8),
        "fundingTime": row.time_ms,
        "markPrice": fmt(row.mark, _mark_decimals(inst)),
    }


def oi_hist_row(inst: Instrument, row: OiRow) -> dict[str, Any]:
    """One ``GET /futures/data/openInterestHist`` row (``timestamp`` is an int, as sent)."""
    return {
        "symbol": inst.symbol,
        "sumOpenInterest": fmt(row.contracts, 8),
        "sumOpenInterestValue": fmt(row.value, 8),
        "timestamp": row.time_ms,
    }
