"""The Binance market-stream protocol without I/O: URL routing, stream names, JSON requests.

- :func:`parse_route`: ``/market/ws/<s1>/<s2>``, ``/market/stream?streams=a/b``, the same under
  ``/public``, and the legacy root ``/ws/...`` / ``/stream?...``.
- :func:`delivers`: which streams a route pushes. ``/market`` pushes market streams (markPrice,
  kline, tickers, ...); ``/public`` and the bare root push only ``/public`` streams (depth,
  bookTicker), which this simulator does not generate - so market streams requested there
  arrive **never**, the silent starvation seen since 2026-04-23.
- :func:`handle_request`: ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` /
  ``SET_PROPERTY`` / ``GET_PROPERTY`` with the documented replies and error bodies. Errors are
  sent as ``{"error": {"code": c, "msg": m}, "id": <id or null>}`` (the wire form seen in
  client logs; the docs list only the inner object).

Two SUBSCRIBE errors are **assumptions**, not documented behaviour (spec §1.4 lists the texts,
not when Binance sends them for SUBSCRIBE):

- a SUBSCRIBE that would take the connection over ``max_streams`` gets code 2
  ``Invalid request: too many parameters`` - the documented text, but the docs do not say it is
  the answer to the stream cap;
- a malformed stream name (or a non-string parameter) gets code 2
  ``Invalid request: invalid stream`` - a text of our own; the docs list no such error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "METHODS",
    "Route",
    "SubscriptionState",
    "delivers",
    "handle_request",
    "is_valid_stream",
    "parse_route",
    "stream_family",
]

Prefix = Literal["market", "public", "root"]
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")

_PUBLIC_KINDS = re.compile(r"^(depth\d*(@\d+ms)?|bookTicker)$")
_SYMBOL_KINDS = re.compile(
    r"^(aggTrade|markPrice(@1s)?|kline_\w+|continuousKline_\w+|miniTicker|ticker|bookTicker"
    r"|forceOrder|depth\d*(@\d+ms)?|compositeIndex|assetIndex(@1s)?)$"
)
_ALL_MARKET = frozenset({
    "!markPrice@arr", "!markPrice@arr@1s", "!ticker@arr", "!miniTicker@arr", "!forceOrder@arr",
    "!contractInfo", "!assetIndex@arr", "!assetIndex@arr@1s",
})  # fmt: skip
_ALL_PUBLIC = frozenset({"!bookTicker"})


@dataclass(frozen=True, slots=True)
class Route:
    """Where a connection was opened."""

    prefix: Prefix
    combined: bool
    """``/stream`` (combined envelope) or ``/ws`` (raw payloads)."""
    streams: tuple[str, ...]


@dataclass(slots=True)
class SubscriptionState:
    """A connection's streams (in subscription order) and its ``combined`` property."""

    combined: bool
    streams: dict[str, None] = field(default_factory=dict)


def parse_route(target: str) -> Route | None:
    """The route of a WebSocket request target (path and query), or ``None`` for a 404."""
    parts = urlsplit(target)
    path = parts.path.rstrip("/") or "/"
    prefix: Prefix = "root"
    for name in ("market", "public"):
        if path == f"/{name}" or path.startswith(f"/{name}/"):
            prefix = "market" if name == "market" else "public"
            path = path[len(name) + 1 :] or "/"
            break
    if path == "/ws" or path.startswith("/ws/"):
        names = [unquote(s) for s in path[4:].split("/") if s]
        return Route(prefix, combined=False, streams=tuple(names))
    if path == "/stream":
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        raw = query.get("streams", "")
        return Route(prefix, combined=True, streams=tuple(s for s in raw.split("/") if s))
    return None


def is_valid_stream(name: str) -> bool:
    """Whether ``name`` is a syntactically valid stream name (unknown symbols are valid)."""
    if name.startswith("!"):
        return name in _ALL_MARKET or name in _ALL_PUBLIC
    symbol, sep, kind = name.partition("@")
    return bool(sep) and bool(symbol) and "/" not in symbol and bool(_SYMBOL_KINDS.match(kind))


def stream_family(name: str) -> Literal["market", "public"]:
    """Which URL family serves ``name``."""
    if name in _ALL_PUBLIC:
        return "public"
    kind = name.partition("@")[2]
    return "public" if _PUBLIC_KINDS.match(kind) else "market"


def delivers(prefix: Prefix, name: str, *, public_serves_market: bool = False) -> bool:
    """Whether a connection opened under ``prefix`` receives frames of stream ``name``."""
    family = stream_family(name)
    if prefix == "market":
        return family == "market"
    if family == "public":
        return True
    return prefix == "public" and public_serves_market


def _error(code: int, msg: str, req_id: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": req_id}


def _invalid_json(err: json.JSONDecodeError) -> dict[str, Any]:
    return _error(3, f"Invalid JSON: expected value at line {err.lineno} column {err.colno}", None)


def _parse(text: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Validate the request envelope: ``(request, None)`` or ``(None, error reply)``."""
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as err:
        return None, _invalid_json(err)
    if not isinstance(msg, dict):
        return None, _error(2, "Invalid request: expected a JSON object", None)
    raw_id = msg.get("id")
    req_id = raw_id if type(raw_id) is int and raw_id >= 0 else None
    if "method" not in msg:
        error = f"Invalid request: missing field method at line 1 column {len(text)}"
        return None, _error(2, error, req_id)
    method = msg["method"]
    if method not in METHODS:
        col = text.find(json.dumps(method)) + len(json.dumps(method))
        error = (
            f"Invalid request: unknown variant {method}, expected one of "
            f"{', '.join(METHODS)} at line 1 column {max(col, 1)}"
        )
        return None, _error(2, error, req_id)
    if req_id is None:
        return None, _error(2, "Invalid request: request ID must be an unsigned integer", None)
    if not isinstance(msg.get("params", []), list):
        return None, _error(2, "Invalid request: params must be an array", req_id)
    return msg, None


def _subscription(
    method: str, params: list[Any], state: SubscriptionState, req_id: int, max_streams: int
) -> dict[str, Any]:
    if not all(isinstance(p, str) and is_valid_stream(p) for p in params):
        return _error(2, "Invalid request: invalid stream", req_id)  # assumption: undocumented
    if method == "SUBSCRIBE":
        new = [p for p in params if p not in state.streams]
        if len(state.streams) + len(new) > max_streams:
            # Assumption: the documented text, used here for the (undocumented) cap answer.
            return _error(2, "Invalid request: too many parameters", req_id)
        for p in new:
            state.streams[p] = None
    else:
        for p in params:
            state.streams.pop(p, None)
    return {"result": None, "id": req_id}


def handle_request(text: str | bytes, state: SubscriptionState, max_streams: int) -> dict[str, Any]:
    """Apply one JSON request to ``state`` and return the reply object.

    Args:
        text: the frame received.
        state: the connection's subscriptions (mutated by SUBSCRIBE/UNSUBSCRIBE/SET_PROPERTY).
        max_streams: the per-connection stream cap.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    msg, error = _parse(text)
    if msg is None:
        assert error is not None
        return error
    method, req_id, params = msg["method"], msg["id"], msg.get("params", [])
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        return _subscription(method, params, state, req_id, max_streams)
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": list(state.streams), "id": req_id}
    return _property(method, params, state, req_id)


def _property(
    method: str, params: list[Any], state: SubscriptionState, req_id: int
) -> dict[str, Any]:
    expected = 2 if method == "SET_PROPERTY" else 1
    if len(params) > expected:
        return _error(2, "Invalid request: too many parameters", req_id)
    if not params or not isinstance(params[0], str):
        return _error(2, "Invalid request: property name must be a string", req_id)
    if params[0] != "combined":
        return _error(0, "Unknown property", req_id)
    if method == "GET_PROPERTY":
        return {"result": state.combined, "id": req_id}
    if len(params) < 2 or not isinstance(params[1], bool):
        return _error(1, "Invalid value type: expected Boolean", req_id)
    state.combined = params[1]
    return {"result": None, "id": req_id}
