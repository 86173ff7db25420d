"""A double of the VolSpike backend's ingest API (``spec/volspike-original.md`` §4).

Real validation semantics: ``X-API-Key`` checked first (401 ``{"error":"Unauthorized"}``);
volume alerts validated like the Zod schema (``null`` rejected with 400 ``{"error":"Invalid
alert data","details":[...]}``, unknown keys ignored); OI ingest, OI alerts and the liquid
universe follow the original handlers' rules. Every accepted payload is recorded with its
headers (e.g. an ``Idempotency-Key``); tests wait for them with :meth:`BackendDouble.wait_for`.
Faults: ``backend.faults.errors(500, count=2)``, ``backend.faults.slow(2.0)``,
``backend.go_down(seconds=1.0)`` (connection refused, then back on the same port).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from simulator.backend_schema import (
    normalize_symbol,
    validate_oi_alert,
    validate_oi_ingest,
    validate_universe_update,
    validate_volume_alert,
)
from simulator.httpbase import HttpRequest, HttpResponse, HttpService, json_response

__all__ = ["ROUTES", "BackendDouble", "Received"]

VOLUME_ALERTS = "/api/volume-alerts/ingest"
OI_INGEST = "/api/market/open-interest/ingest"
OI_INGEST_ALIAS = "/api/market/open-interest"
OI_ALERTS = "/api/open-interest-alerts/ingest"
UNIVERSE_UPDATE = "/api/market/open-interest/liquid-universe/update"
UNIVERSE = "/api/market/open-interest/liquid-universe"
OI_SNAPSHOT = "/api/market/open-interest/snapshot"
HEALTH = "/health"
ROUTES = (VOLUME_ALERTS, OI_INGEST, OI_ALERTS, UNIVERSE_UPDATE, UNIVERSE, OI_SNAPSHOT, HEALTH)
"""Canonical route names (the alias ``POST /api/market/open-interest`` records as OI_INGEST)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One request the double answered."""

    route: str
    """Canonical route (aliases folded)."""
    path: str
    method: str
    headers: dict[str, str]
    """Lower-cased header names (``x-api-key`` is redacted)."""
    body: Any
    status: int
    at: float
    """Real ``time.time()`` of arrival."""


def _iso_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_iso(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _poll_interval(n: int) -> int:
    if n <= 0:
        return 20
    return min(20, max(5, round(60 * n / 2000)))


class BackendDouble(HttpService):
    """The VolSpike backend on loopback.

    Args:
        api_key: the ingest secret (``ALERT_INGEST_API_KEY``); ``""`` reproduces the
            misconfigured backend (500 ``Server configuration error``).
        port: port to bind (0: any free port).
        enter_threshold: ``OI_LIQUID_ENTER_QUOTE_24H`` reported by the universe GET.
        exit_threshold: ``OI_LIQUID_EXIT_QUOTE_24H``.
    """

    def __init__(
        self,
        api_key: str = "test-ingest-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        enter_threshold: float = 4_000_000.0,
        exit_threshold: float = 2_000_000.0,
    ) -> None:
        super().__init__("backend", host, port, hold_seconds=30.0)
        self.api_key = api_key
        self.enter_threshold = enter_threshold
        self.exit_threshold = exit_threshold
        self._cond = threading.Condition()
        self._accepted: list[Received] = []
        self._rejected: list[Received] = []
        self._ids = 0
        self.oi_rows: list[dict[str, Any]] = []
        self.oi_cache: dict[str, float | None] = {}
        self.oi_cache_updated_ms: int | None = None
        self.universe: dict[str, dict[str, Any]] = {}

    # -- assertions ---------------------------------------------------------------------

    def received(self, route: str | None = None) -> list[Received]:
        """Accepted requests (to ``route``, if given), oldest first."""
        with self._cond:
            return [r for r in self._accepted if route is None or r.route == route]

    def payloads(self, route: str) -> list[Any]:
        """The JSON bodies accepted on ``route``."""
        return [r.body for r in self.received(route)]

    def rejected(self, route: str | None = None) -> list[Received]:
        """Rejected requests (400/401/500 from validation), oldest first."""
        with self._cond:
            return [r for r in self._rejected if route is None or r.route == route]

    def wait_for(self, route: str, count: int, timeout: float) -> list[Received]:
        """Block until ``count`` requests were accepted on ``route``.

        Returns:
            Those requests.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` real seconds.
        """
        with self._cond:
            ok = self._cond.wait_for(
                lambda: sum(1 for r in self._accepted if r.route == route) >= count, timeout
            )
            got = [r for r in self._accepted if r.route == route]
        if not ok:
            raise TimeoutError(f"{len(got)} of {count} payloads on {route} after {timeout}s")
        return got

    def reset(self) -> None:
        """Forget every record and all stored state."""
        with self._cond:
            self._accepted.clear()
            self._rejected.clear()
            self.oi_rows.clear()
            self.oi_cache.clear()
            self.universe.clear()

    # -- request handling ---------------------------------------------------------------

    def _record(self, route: str, req: HttpRequest, body: Any, status: int) -> None:
        headers = {k: ("<redacted>" if k == "x-api-key" else v) for k, v in req.headers.items()}
        rec = Received(route, req.path, req.method, headers, body, status, time.time())
        with self._cond:
            (self._accepted if status == 200 else self._rejected).append(rec)
            self._cond.notify_all()

    def _next_id(self) -> str:
        with self._cond:
            self._ids += 1
            return f"sim-{self._ids}"

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Route one request."""
        route, method = request.path, request.method
        if route == OI_INGEST_ALIAS and method == "POST":
            route = OI_INGEST
        public = {(HEALTH, "GET"), (UNIVERSE, "GET"), (OI_INGEST_ALIAS, "GET")}
        handlers = {
            (VOLUME_ALERTS, "POST"): self._volume_alert,
            (OI_INGEST, "POST"): self._oi_ingest,
            (OI_ALERTS, "POST"): self._oi_alert,
            (UNIVERSE_UPDATE, "POST"): self._universe_update,
            (OI_SNAPSHOT, "GET"): self._snapshot,
            (UNIVERSE, "GET"): self._universe_get,
            (OI_INGEST_ALIAS, "GET"): self._oi_get,
            (HEALTH, "GET"): self._health,
        }
        handler = handlers.get((route, method))
        if handler is None:
            return HttpResponse(404, b"404 Not Found", content_type="text/plain; charset=UTF-8")
        if (route, method) not in public:
            if not self.api_key:
                return json_response(500, {"error": "Server configuration error"})
            if request.headers.get("x-api-key") != self.api_key:
                self._record(route, request, None, 401)
                return json_response(401, {"error": "Unauthorized"})
        body: Any = None
        if method == "POST":
            try:
                body = json.loads(request.body or b"null", parse_constant=_reject_constant)
            except ValueError:
                self._record(route, request, None, 400)
                return json_response(400, {"error": "Invalid JSON"})
        status, answer = handler(request, body)
        if method == "POST":
            self._record(route, request, body, status)
        return json_response(status, answer)

    def fault_response(self, request: HttpRequest, status: int) -> HttpResponse:
        """The backend's generic error bodies."""
        if request.path == VOLUME_ALERTS and status == 500:
            return json_response(500, {"error": "Failed to process alert"})
        return json_response(status, {"error": "Internal server error"})

    # -- endpoints ----------------------------------------------------------------------

    def _volume_alert(self, _req: HttpRequest, body: Any) -> tuple[int, Any]:
        clean, issues = validate_volume_alert(body)
        if clean is None:
            return 400, {"error": "Invalid alert data", "details": issues}
        return 200, {"success": True, "alertId": self._next_id()}

    def _oi_ingest(self, _req: HttpRequest, body: Any) -> tuple[int, Any]:
        items, error = validate_oi_ingest(body)
        if items is None:
            return 400, {"error": error}
        ts = body.get("timestamp") or _iso_now()
        source = body.get("source") or "snapshot"
        with self._cond:
            for item in items:
                self.oi_rows.append({**item, "ts": ts, "source": source})
                self.oi_cache[item["symbol"]] = item["openInterestUsd"]
            self.oi_cache_updated_ms = int(time.time() * 1000)
            cached = len(self.oi_cache)
        return 200, {"success": True, "inserted": len(items), "cached": cached}

    def _oi_alert(self, _req: HttpRequest, body: Any) -> tuple[int, Any]:
        status, error = validate_oi_alert(body)
        if error is not None:
            return status, {"error": error}
        return 200, {"success": True, "id": self._next_id()}

    def _universe_update(self, _req: HttpRequest, body: Any) -> tuple[int, Any]:
        error = validate_universe_update(body)
        if error is not None:
            return 400, {"error": error}
        with self._cond:
            keep = {s["symbol"] for s in body["symbols"]}
            removed = [s for s in self.universe if s not in keep]
            for s in removed:
                del self.universe[s]
            for item in body["symbols"]:
                old = self.universe.get(item["symbol"], {})
                self.universe[item["symbol"]] = {
                    "symbol": item["symbol"],
                    "quoteVolume24h": item.get("quoteVolume24h"),
                    "enteredAt": old.get("enteredAt") or item.get("enteredAt") or _iso_now(),
                    "lastSeenAt": item.get("lastSeenAt") or _iso_now(),
                }
            total = len(self.universe)
        upserted = len(body["symbols"])
        return 200, {
            "success": True,
            "upserted": upserted,
            "removed": len(removed),
            "totalSymbols": total,
        }

    def _universe_get(self, _req: HttpRequest, _body: Any) -> tuple[int, Any]:
        with self._cond:
            rows = sorted(self.universe.values(), key=lambda r: -(r["quoteVolume24h"] or 0))
        interval = _poll_interval(len(rows))
        return 200, {
            "updatedAt": max((r["lastSeenAt"] for r in rows), default=None),
            "enterThreshold": self.enter_threshold,
            "exitThreshold": self.exit_threshold,
            "symbols": [{**r, "estimatedPollIntervalSec": interval} for r in rows],
            "totalSymbols": len(rows),
        }

    def _oi_get(self, _req: HttpRequest, _body: Any) -> tuple[int, Any]:
        with self._cond:
            data = {k: v for k, v in self.oi_cache.items() if v is not None}
            as_of = self.oi_cache_updated_ms
        if as_of is None:
            return 200, {"data": {}, "stale": True, "asOf": None, "dangerouslyStale": True}
        age = time.time() - as_of / 1000
        return 200, {"data": data, "stale": age > 300, "asOf": as_of, "dangerouslyStale": age > 390}

    def _snapshot(self, req: HttpRequest, _body: Any) -> tuple[int, Any]:
        symbol, ts = req.query.get("symbol"), req.query.get("ts")
        when = _parse_iso(ts) if ts else None
        if not symbol or when is None:
            return 400, {"error": "symbol and ts required"}
        norm = normalize_symbol(symbol)
        with self._cond:
            rows = [
                r
                for r in self.oi_rows
                if r["symbol"] == norm and (_parse_iso(r["ts"]) or 0) <= when
            ]
        if not rows:
            return 200, {"found": False, "symbol": norm, "requestedTs": ts}
        row = max(rows, key=lambda r: _parse_iso(r["ts"]) or 0)
        return 200, {"found": True, "symbol": norm, "openInterest": row["openInterest"],
                     "openInterestUsd": row["openInterestUsd"], "markPrice": row["markPrice"],
                     "ts": row["ts"], "source": row["source"]}  # fmt: skip

    def _health(self, _req: HttpRequest, _body: Any) -> tuple[int, Any]:
        return 200, {
            "status": "ok",
            "timestamp": _iso_now(),
            "version": "sim",
            "environment": "simulator",
        }


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")
