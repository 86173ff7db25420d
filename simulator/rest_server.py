"""The Binance USD-M REST simulator (``/fapi/v1/...``), with weights, 429/418 and a request log.

Every response carries ``X-MBX-USED-WEIGHT-1m``; weights follow ``spec/binance-usdm.md`` §2
(klines by ``limit``, premiumIndex 1/10, ticker/24hr 1/40, ...). Errors are Binance bodies
(``{"code": -1121, "msg": "Invalid symbol."}`` with HTTP 400, ...). Every request is logged
(:attr:`BinanceRest.request_log`) for assertions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator import payloads
from simulator.derivatives import OI_PERIODS
from simulator.httpbase import HttpRequest, HttpResponse, HttpService, json_response
from simulator.intervals import is_interval
from simulator.weights import WeightLimiter, klines_weight

if TYPE_CHECKING:
    from collections.abc import Callable

    from simulator.config import SimulatorConfig
    from simulator.derivatives import Derivatives
    from simulator.exchange_info import ExchangeInfoBuilder
    from simulator.market import Market
    from simulator.universe import Instrument
    from supervisors.clock import Clock

__all__ = ["ApiError", "BinanceRest", "RequestRecord"]

_TOO_MANY = (
    "Too many requests; current limit of IP({ip}) is {limit} requests per minute. "
    "Please use the websocket for live updates to avoid polling the API."
)
_BANNED = (
    "Way too much request weight used; IP banned until {until}. "
    "Please use the websocket for live updates to avoid bans."
)
_FAULT_BODIES: dict[int, tuple[int, str]] = {
    500: (-1000, "An unknown error occured while processing the request."),
    503: (-1001, "Internal error; unable to process your request. Please try again."),
    408: (
        -1007,
        (
            "Timeout waiting for response from backend server. Send status unknown; "
            "execution status unknown."
        ),
    ),
}


class ApiError(Exception):
    """A Binance error answer."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One logged REST request."""

    time_ms: int
    """Simulated time of the request."""
    method: str
    path: str
    params: dict[str, str]
    status: int
    """HTTP status sent (0: dropped by a reset/timeout fault)."""
    weight: int
    """Weight charged (0 when rejected)."""
    used_weight: int
    """``X-MBX-USED-WEIGHT-1m`` after the request."""
    ip: str


def _mandatory(name: str) -> ApiError:
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _int_param(q: dict[str, str], name: str) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise ApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def _limit(q: dict[str, str], default: int, maximum: int) -> int:
    raw = q.get("limit")
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
    return int(raw)


def _safe_limit(q: dict[str, str], default: int) -> int:
    raw = q.get("limit", "")
    return int(raw) if raw.isdigit() else default


def _fixed(weight: int) -> Callable[[dict[str, str]], int]:
    return lambda _q: weight


def _with_symbol(one: int, many: int) -> Callable[[dict[str, str]], int]:
    return lambda q: one if q.get("symbol") else many


@dataclass(frozen=True, slots=True)
class _Route:
    weight: Callable[[dict[str, str]], int]
    handler: Callable[[dict[str, str], int], Any]


class BinanceRest(HttpService):
    """``https://fapi.binance.com`` on loopback.

    Args:
        market: the market model.
        derivatives: mark/funding/OI views of the market.
        exchange_info: the exchangeInfo body builder.
        clock: the simulator's clock (weight windows, ``serverTime``).
        config: the simulator configuration.
    """

    def __init__(
        self,
        market: Market,
        derivatives: Derivatives,
        exchange_info: ExchangeInfoBuilder,
        clock: Clock,
        config: SimulatorConfig,
    ) -> None:
        super().__init__("rest", config.host, config.rest_port, config.timeout_hold_seconds)
        self.market = market
        self.derivatives = derivatives
        self.exchange_info = exchange_info
        self.clock = clock
        self.limiter = WeightLimiter(
            clock,
            config.weight_limit,
            ban_after_violations=config.ban_after_violations,
            ban_base_seconds=config.ban_base_seconds,
            ban_max_seconds=config.ban_max_seconds,
        )
        self._log: list[RequestRecord] = []
        self._log_cond = threading.Condition()
        self._routes: dict[str, _Route] = {
            "/fapi/v1/ping": _Route(_fixed(1), lambda _q, _now: {}),
            "/fapi/v1/time": _Route(_fixed(1), lambda _q, now: {"serverTime": now}),
            "/fapi/v1/exchangeInfo": _Route(_fixed(1), lambda _q, now: exchange_info.build(now)),
            "/fapi/v1/klines": _Route(lambda q: klines_weight(_safe_limit(q, 500)), self._klines),
            "/fapi/v1/openInterest": _Route(_fixed(1), self._open_interest),
            "/fapi/v1/premiumIndex": _Route(_with_symbol(1, 10), self._premium_index),
            "/fapi/v1/ticker/24hr": _Route(_with_symbol(1, 40), self._ticker_24hr),
            "/fapi/v1/ticker/price": _Route(_with_symbol(1, 2), self._ticker_price),
            # Weight 0: these share their own per-5-minute limits (not simulated).
            "/fapi/v1/fundingRate": _Route(_fixed(0), self._funding_rate),
            "/futures/data/openInterestHist": _Route(_fixed(0), self._oi_hist),
        }

    # -- log and weight -----------------------------------------------------------------

    @property
    def request_log(self) -> list[RequestRecord]:
        """A copy of every request so far, oldest first."""
        with self._log_cond:
            return list(self._log)

    def clear_log(self) -> None:
        """Forget the request log."""
        with self._log_cond:
            self._log.clear()

    def wait_for_requests(self, count: int, timeout: float, path: str | None = None) -> bool:
        """Block until ``count`` requests (to ``path``, if given) are in the log."""

        def enough() -> bool:
            return sum(1 for r in self._log if path is None or r.path == path) >= count

        with self._log_cond:
            return self._log_cond.wait_for(enough, timeout)

    def consume_weight(self, weight: int, ip: str = "127.0.0.1") -> int:
        """Charge ``weight`` to ``ip`` as another client on the same IP would.

        Returns:
            The IP's used weight in the current minute.
        """
        return self.limiter.consume(weight, ip)

    def _record(self, req: HttpRequest, status: int, weight: int, used: int) -> None:
        rec = RequestRecord(self.clock.time_ms(), req.method, req.path, dict(req.query), status,
                            weight, used, req.client_ip)  # fmt: skip
        with self._log_cond:
            self._log.append(rec)
            self._log_cond.notify_all()

    # -- HttpService hooks --------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Route, charge weight, answer."""
        route = self._routes.get(request.path)
        if route is None or request.method not in ("GET", "HEAD"):
            used = self.limiter.used(request.client_ip)
            body = payloads.error_body(
                -5000, f"Path {request.path}, Method {request.method} is invalid"
            )
            self._record(request, 404, 0, used)
            return json_response(404, body, [("X-MBX-USED-WEIGHT-1m", str(used))])
        weight = route.weight(request.query)
        decision = self.limiter.check(request.client_ip, weight)
        headers = [("X-MBX-USED-WEIGHT-1m", str(decision.used))]
        if decision.retry_after is not None:
            headers.append(("Retry-After", str(decision.retry_after)))
        if decision.status == 429:
            msg = _TOO_MANY.format(ip=request.client_ip, limit=self.limiter.limit)
            self._record(request, 429, 0, decision.used)
            return json_response(429, payloads.error_body(-1003, msg), headers)
        if decision.status == 418:
            msg = _BANNED.format(until=decision.banned_until_ms)
            self._record(request, 418, 0, decision.used)
            return json_response(418, payloads.error_body(-1003, msg), headers)
        try:
            body = route.handler(request.query, self.clock.time_ms())
            status = 200
        except ApiError as err:
            body, status = payloads.error_body(err.code, err.msg), err.status
        self._record(request, status, weight, decision.used)
        return json_response(status, body, headers)

    def fault_response(self, request: HttpRequest, status: int) -> HttpResponse:
        """Binance-looking 5xx bodies (HTML for gateway errors, JSON otherwise)."""
        used = self.limiter.used(request.client_ip)
        headers = [("X-MBX-USED-WEIGHT-1m", str(used))]
        self._record(request, status, 0, used)
        if status in (502, 504, 403):
            text = {502: "502 Bad Gateway", 504: "504 Gateway Time-out", 403: "403 Forbidden"}[
                status
            ]
            body = f"<html><head><title>{text}</title></head><body><h1>{text}</h1></body></html>"
            return HttpResponse(status, body.encode(), headers, "text/html")
        code, msg = _FAULT_BODIES.get(
            status, (-1000, "An unknown error occured while processing the request.")
        )
        return json_response(status, payloads.error_body(code, msg), headers)

    def on_dropped(self, request: HttpRequest, action: str) -> None:
        """Log requests dropped by reset/timeout faults with status 0."""
        del action
        self._record(request, 0, 0, self.limiter.used(request.client_ip))

    # -- endpoints ----------------------------------------------------------------------

    def _symbol(self, q: dict[str, str], now: int, *, required: bool = True) -> Instrument | None:
        name = q.get("symbol")
        if not name:
            if required:
                raise _mandatory("symbol")
            return None
        inst = self.market.instrument(name)
        if inst is None or not self.market.is_listed(name, now):
            raise ApiError(-1121, "Invalid symbol.")
        return inst

    def _klines(self, q: dict[str, str], now: int) -> Any:
        if not q.get("symbol"):
            raise _mandatory("symbol")
        interval = q.get("interval")
        if not interval:
            raise _mandatory("interval")
        if not is_interval(interval):
            raise ApiError(-1120, "Invalid interval.")
        inst = self._symbol(q, now)
        assert inst is not None
        limit = _limit(q, 500, 1500)
        start, end = _int_param(q, "startTime"), _int_param(q, "endTime")
        if start is not None and end is not None and start > end:
            raise ApiError(-1023, "Start time is greater than end time.")
        candles = self.market.klines(
            inst.symbol, interval, start_ms=start, end_ms=end, limit=limit, now_ms=now
        )
        return [payloads.kline_row(inst, c) for c in candles]

    def _open_interest(self, q: dict[str, str], now: int) -> Any:
        inst = self._symbol(q, now)
        assert inst is not None
        return payloads.open_interest(inst, self.derivatives.open_interest(inst.symbol, now), now)

    def _premium_index(self, q: dict[str, str], now: int) -> Any:
        inst = self._symbol(q, now, required=False)
        if inst is not None:
            return payloads.premium_index(inst, self.derivatives.mark(inst.symbol, now), now)
        return [
            payloads.premium_index(i, self.derivatives.mark(i.symbol, now), now)
            for i in self.market.listed(now)
        ]

    def _ticker(self, inst: Instrument, now: int) -> dict[str, Any] | None:
        agg = self.market.rolling_24h(inst.symbol, now)
        return None if agg is None else payloads.ticker_24hr(inst, agg, now)

    def _ticker_24hr(self, q: dict[str, str], now: int) -> Any:
        inst = self._symbol(q, now, required=False)
        if inst is not None:
            return self._ticker(inst, now)
        rows = (self._ticker(i, now) for i in self.market.listed(now))
        return [r for r in rows if r is not None]

    def _ticker_price(self, q: dict[str, str], now: int) -> Any:
        inst = self._symbol(q, now, required=False)
        if inst is not None:
            return payloads.ticker_price(inst, self.market.price(inst.symbol, now), now)
        return [
            payloads.ticker_price(i, self.market.price(i.symbol, now), now)
            for i in self.market.listed(now)
        ]

    def _funding_rate(self, q: dict[str, str], now: int) -> Any:
        limit = _limit(q, 100, 1000)
        start, end = _int_param(q, "startTime"), _int_param(q, "endTime")
        insts = (
            [self._symbol(q, now, required=False)] if q.get("symbol") else self.market.listed(now)
        )
        rows: list[dict[str, Any]] = []
        for inst in insts:
            assert inst is not None
            hist = self.derivatives.funding_history(
                inst.symbol, start if start is not None else 0, min(end or now, now), limit,
                newest=start is None,
            )  # fmt: skip
            rows.extend(payloads.funding_row(inst, r) for r in hist)
        rows.sort(key=lambda r: r["fundingTime"])
        return rows[:limit] if start is not None else rows[-limit:]

    def _oi_hist(self, q: dict[str, str], now: int) -> Any:
        inst = self._symbol(q, now)
        assert inst is not None
        period = q.get("period")
        if not period:
            raise _mandatory("period")
        if period not in OI_PERIODS:
            raise ApiError(-1130, "Data sent for parameter 'period' is not valid.")
        limit = _limit(q, 30, 500)
        start, end = _int_param(q, "startTime"), _int_param(q, "endTime")
        rows = self.derivatives.oi_history(inst.symbol, period, start, end, limit, now_ms=now)
        return [payloads.oi_hist_row(inst, r) for r in rows]
