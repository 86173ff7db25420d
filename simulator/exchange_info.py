"""``GET /fapi/v1/exchangeInfo``: the listed universe, shaped like the real mainnet body.

Symbol entries are copied from the real 2024-10-20 exchangeInfo when the symbol is in it
(same keys, same order, real filters); other symbols get a copy of a real entry with their own
name, precisions and tick sizes. With ``extra_contracts`` the body also carries what a naive
filter trips over, as the real one does: a ``PENDING_TRADING`` entry with ``contractType:""``,
a current-quarter future, a USDC-quoted perpetual and a ``SETTLING`` (delisted) perpetual.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.market import Market
    from simulator.universe import Instrument

__all__ = ["ExchangeInfoBuilder"]

PERPETUAL_DELIVERY_MS = 4_133_404_800_000

_FALLBACK_ENTRY: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "pair": "BTCUSDT",
    "contractType": "PERPETUAL",
    "deliveryDate": PERPETUAL_DELIVERY_MS,
    "onboardDate": 1569398400000,
    "status": "TRADING",
    "maintMarginPercent": "2.5000",
    "requiredMarginPercent": "5.0000",
    "baseAsset": "BTC",
    "quoteAsset": "USDT",
    "marginAsset": "USDT",
    "pricePrecision": 2,
    "quantityPrecision": 3,
    "baseAssetPrecision": 8,
    "quotePrecision": 8,
    "underlyingType": "COIN",
    "underlyingSubType": ["PoW"],
    "triggerProtect": "0.0500",
    "liquidationFee": "0.012500",
    "marketTakeBound": "0.05",
    "maxMoveOrderLimit": 10000,
    "filters": [
        {"minPrice": "556.80", "maxPrice": "4529764", "filterType": "PRICE_FILTER",
         "tickSize": "0.10"},
        {"minQty": "0.001", "maxQty": "1000", "stepSize": "0.001", "filterType": "LOT_SIZE"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120",
         "stepSize": "0.001"},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
        {"notional": "100", "filterType": "MIN_NOTIONAL"},
        {"multiplierDown": "0.9500", "filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
         "multiplierDecimal": "4"},
    ],
    "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                   "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
    "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
}  # fmt: skip


def _step(decimals: int) -> str:
    return "1" if decimals <= 0 else "0." + "0" * (decimals - 1) + "1"


def _last_friday(year: int, month: int) -> dt.datetime:
    first_next = dt.datetime(year + month // 12, month % 12 + 1, 1, 8, tzinfo=dt.UTC)
    last = first_next - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - 4) % 7)


def _quarter_end(t_ms: int) -> dt.datetime:
    """The last Friday (08:00 UTC) of the first quarter-end month still ahead of ``t_ms``."""
    d = dt.datetime.fromtimestamp(t_ms / 1000, tz=dt.UTC)
    year, month = d.year, ((d.month - 1) // 3 + 1) * 3
    for _ in range(3):
        candidate = _last_friday(year, month)
        if candidate > d:
            return candidate
        month += 3
        if month > 12:
            month, year = month - 12, year + 1
    return d + dt.timedelta(days=90)


class ExchangeInfoBuilder:
    """Builds exchangeInfo bodies for a market (per-symbol entries are cached)."""

    def __init__(self, market: Market, weight_limit: int, *, extra_contracts: bool) -> None:
        self.market = market
        self.weight_limit = weight_limit
        self.extra_contracts = extra_contracts
        info = market.history.exchange_info
        self._template: dict[str, Any] = info if isinstance(info, dict) else {}
        raw_symbols = self._template.get("symbols", [])
        self._real: dict[str, dict[str, Any]] = {
            s["symbol"]: s for s in (raw_symbols if isinstance(raw_symbols, list) else [])
        }
        self._cache: dict[tuple[str, int | None], dict[str, Any]] = {}

    def _entry(self, inst: Instrument) -> dict[str, Any]:
        key = (inst.symbol, inst.listed_from)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        real = self._real.get(inst.symbol)
        if real is not None and real.get("contractType") == "PERPETUAL":
            entry = copy.deepcopy(real)
            entry["status"] = "TRADING"
        else:
            entry = copy.deepcopy(self._real.get("ETHUSDT") or _FALLBACK_ENTRY)
            entry.update(
                symbol=inst.symbol,
                pair=inst.symbol,
                baseAsset=inst.base_asset,
                onboardDate=inst.listed_from or inst.onboard_ms,
                pricePrecision=inst.price_decimals,
                quantityPrecision=inst.qty_decimals,
                underlyingSubType=[],
            )
            for f in entry.get("filters", []):
                if f.get("filterType") == "PRICE_FILTER":
                    f["tickSize"] = _step(inst.price_decimals)
                    f["minPrice"] = _step(inst.price_decimals)
                    f["maxPrice"] = "1000000"
                elif f.get("filterType") in ("LOT_SIZE", "MARKET_LOT_SIZE"):
                    f["stepSize"] = _step(inst.qty_decimals)
                    f["minQty"] = _step(inst.qty_decimals)
        self._cache[key] = entry
        return entry

    def _extras(self, t_ms: int, listed: set[str]) -> list[dict[str, Any]]:
        base = self._real.get("BTCUSDT") or _FALLBACK_ENTRY
        pending = self._real.get("BTCSTUSDT") or {
            **copy.deepcopy(base), "symbol": "BTCSTUSDT", "pair": "BTCSTUSDT", "baseAsset": "BTCST",
        }  # fmt: skip
        pending = {**copy.deepcopy(pending), "contractType": "", "status": "PENDING_TRADING"}
        q_end = _quarter_end(t_ms)
        name = f"BTCUSDT_{q_end:%y%m%d}"
        quarter = {
            **copy.deepcopy(base), "symbol": name, "pair": "BTCUSDT",
            "contractType": "CURRENT_QUARTER", "deliveryDate": int(q_end.timestamp() * 1000),
        }  # fmt: skip
        usdc = {
            **copy.deepcopy(base), "symbol": "BTCUSDC", "pair": "BTCUSDC", "quoteAsset": "USDC",
            "marginAsset": "USDC",
        }  # fmt: skip
        settling_src = next(
            (s for s in self._real.values()
             if s.get("status") == "SETTLING" and s["symbol"] not in listed),
            None,
        )  # fmt: skip
        settling = copy.deepcopy(settling_src) if settling_src else {
            **copy.deepcopy(base), "symbol": "WAVESUSDT", "pair": "WAVESUSDT", "baseAsset": "WAVES",
            "status": "SETTLING",
        }  # fmt: skip
        return [e for e in (pending, quarter, usdc, settling) if e["symbol"] not in listed]

    def build(self, t_ms: int) -> dict[str, Any]:
        """The exchangeInfo body at simulated time ``t_ms``."""
        listed = self.market.listed(t_ms)
        symbols = [self._entry(i) for i in listed]
        if self.extra_contracts:
            names = {i.symbol for i in listed}
            extras = self._extras(t_ms, names)
            # The real body mixes them in; keep BTCUSDT first, then the odd ones.
            symbols = symbols[:1] + extras + symbols[1:]
        t = self._template
        return {
            "timezone": t.get("timezone", "UTC"),
            "serverTime": t_ms,
            "futuresType": t.get("futuresType", "U_MARGINED"),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.weight_limit,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": t.get("exchangeFilters", []),
            "assets": t.get(
                "assets",
                [
                    {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
                    {"asset": "USDC", "marginAvailable": True, "autoAssetExchange": "-10000"},
                ],
            ),
            "symbols": symbols,
        }
