"""Routes of the localhost API: ``(method, target) -> Response``, reading the price board.

Compatible with the original's consumers (``GET /funding/{symbol}``, ``/funding/health``) and
fixing its bugs: lookups are case-insensitive, the batch form works, a missing value is omitted
rather than faked, and no input produces a 500.

==========================  =========================================================
``GET /funding/{symbol}``   one symbol; 404 if unknown, 400 if not a symbol
``GET /funding?symbols=A,B`` several (also ``/funding/batch?symbols=...``); all if no query
``GET /health``             200 when feeds are live and data fresh, else 503 with reasons
``GET /funding/health``     the same (the original's path)
``GET /metrics``            Prometheus text format
``GET /``                   the list of endpoints
==========================  =========================================================
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

import orjson

from actors._http_server import Response

if TYPE_CHECKING:
    from collections.abc import Callable

    from actors._price_board import PriceBoard, PriceRecord
    from supervisors.clock import Clock

__all__ = ["MAX_BATCH", "ApiRoutes", "entry_json"]

MAX_BATCH = 1000
_SYMBOL = re.compile(r"\w{1,40}")
_METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_INDEX = orjson.dumps(
    {
        "service": "volspike-actors",
        "endpoints": [
            "/funding/{symbol}",
            "/funding?symbols=A,B",
            "/funding/batch?symbols=A,B",
            "/funding",
            "/health",
            "/funding/health",
            "/metrics",
        ],
    }
)


def entry_json(
    symbol: str, record: PriceRecord, now_mono: float, stale_after_s: float
) -> dict[str, Any]:
    """One symbol's API object; values we do not have are omitted, never zero or null."""
    age = now_mono - record.received_mono
    age = max(age, 0.0)
    out: dict[str, Any] = {"symbol": symbol, "markPrice": record.mark_price}
    if record.index_price is not None:
        out["indexPrice"] = record.index_price
    if record.funding_rate is not None:
        out["fundingRate"] = record.funding_rate
    if record.next_funding_time_ms is not None:
        out["nextFundingTime"] = record.next_funding_time_ms
    out["lastUpdateTime"] = record.event_time_ms
    out["updatedAt"] = record.received_ms / 1000
    out["ageSeconds"] = round(age, 3)
    out["stale"] = age > stale_after_s
    return out


def _json(status: int, obj: Any) -> Response:
    return Response(status, orjson.dumps(obj))


def _not_found(symbol: str) -> Response:
    return _json(404, {"error": "symbol not found", "symbol": symbol})


def _bad_symbol(text: str) -> Response:
    return _json(400, {"error": "not a symbol", "symbol": text[:60]})


class ApiRoutes:
    """The API's request handler (called in the HTTP server thread).

    Args:
        board: the price board to read.
        clock: for ages.
        stale_after_s: values older than this are flagged ``stale``.
        health: returns ``(healthy, body)`` for ``/health``.
        metrics: returns the Prometheus text for ``/metrics``.
    """

    def __init__(
        self,
        board: PriceBoard,
        clock: Clock,
        stale_after_s: float,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        metrics: Callable[[], str],
    ) -> None:
        self._board = board
        self._clock = clock
        self._stale_after_s = stale_after_s
        self._health = health
        self._metrics = metrics
        self.requests = 0
        self.not_found = 0
        self.bad_requests = 0

    def __call__(self, method: str, target: str) -> Response:  # noqa: ARG002 - GET and HEAD route alike
        """Route one request (``method`` is GET or HEAD, ``target`` the raw ASCII target)."""
        self.requests += 1
        path, _, query = target.partition("?")
        if path.startswith("/funding/"):
            rest = path[9:]
            if rest == "health":
                return self._health_response()
            if rest == "batch":
                return self._batch(query, required=True)
            return self._one(rest)
        if path in ("/funding", "/funding/"):
            return self._batch(query, required=False)
        if path == "/health":
            return self._health_response()
        if path == "/metrics":
            return Response(200, self._metrics().encode(), _METRICS_TYPE)
        if path == "/":
            return Response(200, _INDEX)
        self.not_found += 1
        return _json(404, {"error": "no such endpoint", "path": unquote(path)[:100]})

    def _symbol(self, text: str) -> str | None:
        try:
            name = unquote(text, errors="strict")
        except UnicodeDecodeError:
            return None
        if not _SYMBOL.fullmatch(name):
            return None
        return name.upper()

    def _one(self, text: str) -> Response:
        symbol = self._symbol(text)
        if symbol is None:
            self.bad_requests += 1
            return _bad_symbol(unquote(text, errors="replace"))
        record = self._board.get(symbol)
        if record is None:
            self.not_found += 1
            return _not_found(symbol)
        return Response(
            200,
            orjson.dumps(entry_json(symbol, record, self._clock.monotonic(), self._stale_after_s)),
        )

    def _batch(self, query: str, *, required: bool) -> Response:  # noqa: C901 - one check per rule
        try:
            params = parse_qs(
                query, keep_blank_values=True, strict_parsing=bool(query), errors="strict"
            )
        except (ValueError, UnicodeDecodeError):
            self.bad_requests += 1
            return _json(400, {"error": "malformed query string"})
        unknown = sorted(set(params) - {"symbols"})
        if unknown:
            self.bad_requests += 1
            return _json(400, {"error": "unknown parameter", "parameters": unknown[:10]})
        values = params.get("symbols")
        now = self._clock.monotonic()
        stale = self._stale_after_s
        if values is None:
            if required:
                self.bad_requests += 1
                return _json(
                    400, {"error": "symbols parameter required, e.g. ?symbols=BTCUSDT,ETHUSDT"}
                )
            records = self._board.records()
            data = [entry_json(s, records[s], now, stale) for s in sorted(records)]
            return _json(200, {"data": data, "missing": [], "found": len(data), "total": len(data)})
        names = [n for value in values for n in value.split(",") if n.strip()]
        if not names:
            self.bad_requests += 1
            return _json(400, {"error": "symbols parameter is empty"})
        if len(names) > MAX_BATCH:
            self.bad_requests += 1
            return _json(400, {"error": f"at most {MAX_BATCH} symbols per request"})
        symbols = []
        for name in names:
            if not _SYMBOL.fullmatch(name.strip()):
                self.bad_requests += 1
                return _bad_symbol(name)
            symbols.append(name.strip().upper())
        found = []
        missing = []
        get = self._board.get
        for symbol in dict.fromkeys(symbols):
            record = get(symbol)
            if record is None:
                missing.append(symbol)
            else:
                found.append(entry_json(symbol, record, now, stale))
        return _json(
            200,
            {
                "data": found,
                "missing": missing,
                "found": len(found),
                "total": len(found) + len(missing),
            },
        )

    def _health_response(self) -> Response:
        healthy, body = self._health()
        return _json(200 if healthy else 503, body)
