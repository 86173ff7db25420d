"""Pure payload builders: messages → backend JSON bodies, idempotency keys, Telegram texts.

Everything here takes values and returns values (no I/O, no clock). The contract is spec §4:

- **Absent means omitted.** The backend's Zod schemas reject ``null`` (WEAK-32), and a ``0.0``
  stand-in is indistinguishable from a real value (WEAK-1), so an optional field that is
  ``None`` (or not finite) is left out of the body. A required field that is not finite raises
  :class:`ValueError`: such a payload can never be valid. The one ``null`` the contract has is
  ``enteredAt`` of the universe update (§2.2), which the original sends for members that did not
  just enter and the backend accepts.
- **Timestamps** are UTC ``%Y-%m-%dT%H:%M:%SZ`` (:func:`iso_utc`).
- **Floats keep full precision** (``orjson`` writes the shortest round-trip form).
- **OI samples** go out in chunks of at most :data:`OI_CHUNK_SIZE`; each chunk's ``timestamp``
  is the newest *exchange sample time* among its items, not the post time (WEAK-18), so a chunk
  retried an hour later still says when its data was measured, and ``totalSymbols`` is the
  chunk's size as in the original.

Idempotency keys are deterministic, so the same alert always gets the same key, before and after
a restart (they are sent as the :data:`IDEMPOTENCY_HEADER` header and are the outbox's unique
key)::

    volume:BTCUSDT:2025-12-05T14:00:00Z:SPIKE                 symbol, hour, alert type
    oi-alert:BTCUSDT:5min:UP:1764943210000                    symbol, timeframe, direction, ms
    oi-samples:realtime:1764943210000:2of4:3f2a…              source, newest sample ms, chunk, hash
    universe:1764943200000:9c1e…                              evaluation ms, hash of members

One volume key per symbol-hour-type means a second SPIKE for the same hour (WEAK-4) is a
duplicate by construction.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson

from messages import LiquidUniverse, Message, OiAlert, OiSamples, VolumeAlert

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ALERT_KINDS",
    "CONNECT_TIMEOUT_S",
    "ENDPOINTS",
    "IDEMPOTENCY_HEADER",
    "OI_CHUNK_SIZE",
    "PRIORITY",
    "SAMPLE_KIND",
    "TELEGRAM_TIMEOUT_S",
    "EmptyUniverseError",
    "Endpoint",
    "OutboxEntry",
    "PayloadKind",
    "backend_body",
    "backend_headers",
    "chunk_samples",
    "iso_utc",
    "json_bytes",
    "kind_of",
    "oi_alert_body",
    "oi_alert_text",
    "oi_ingest_body",
    "outbox_entries",
    "telegram_body",
    "telegram_path",
    "telegram_text",
    "universe_update_body",
    "volume_alert_body",
    "volume_alert_text",
]

PayloadKind = Literal["volume_alert", "oi_alert", "oi_samples", "universe"]
"""What an outbox row carries; decides the endpoint, the priority and the backlog rules."""

ALERT_KINDS: frozenset[str] = frozenset({"volume_alert", "oi_alert"})
"""Kinds that are never dropped from a backlog."""

SAMPLE_KIND: PayloadKind = "oi_samples"
"""The one kind whose backlog is bounded (newer batches supersede older ones)."""

PRIORITY: Mapping[str, int] = {"volume_alert": 0, "oi_alert": 0, "universe": 1, "oi_samples": 2}
"""Delivery order: lower first; alerts before the universe before samples."""

OI_CHUNK_SIZE = 100
"""At most this many samples per OI ingest request (spec §4.3)."""

TELEGRAM_TIMEOUT_S = 5.0
"""Read timeout of ``sendMessage`` (spec §4.9)."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The request header that carries the payload's idempotency key."""

CONNECT_TIMEOUT_S = 5.0
"""Connect timeout of every delivery request (the read timeouts are per endpoint)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A backend ingest endpoint."""

    path: str
    """Path below the base URL."""
    read_timeout_s: float
    """Read timeout (spec §4.9); pass ``(CONNECT_TIMEOUT_S, read_timeout_s)`` to requests."""


ENDPOINTS: Mapping[str, Endpoint] = {
    "volume_alert": Endpoint("/api/volume-alerts/ingest", 5.0),
    "oi_alert": Endpoint("/api/open-interest-alerts/ingest", 10.0),
    "oi_samples": Endpoint("/api/market/open-interest/ingest", 60.0),
    "universe": Endpoint("/api/market/open-interest/liquid-universe/update", 10.0),
}
"""Endpoint of each payload kind."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One deliverable unit, ready for the outbox (an alert, a sample chunk, a universe)."""

    kind: PayloadKind
    """Payload kind."""
    message: Message
    """The message to store (a sample chunk holds at most :data:`OI_CHUNK_SIZE` items)."""
    idempotency_key: str
    """Deterministic key (module docstring)."""
    batch: str | None = None
    """Sample chunks of one batch share this; the backlog bound drops whole batches."""


def iso_utc(ms: int) -> str:
    """Format epoch milliseconds as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, seconds truncated)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _required(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{name} is not a finite number: {value!r}")
    return float(value)


def _put_optional(body: dict[str, Any], name: str, value: float | str | None) -> None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return
    body[name] = value


def volume_alert_body(alert: VolumeAlert) -> dict[str, Any]:
    """The ``POST /api/volume-alerts/ingest`` body (spec §4.2)."""
    body: dict[str, Any] = {
        "symbol": alert.symbol,
        "asset": alert.asset,
        "currentVolume": _required("currentVolume", alert.current_volume),
        "previousVolume": _required("previousVolume", alert.previous_volume),
        "volumeRatio": _required("volumeRatio", alert.volume_ratio),
        "message": alert.message,
        "timestamp": iso_utc(alert.timestamp_ms),
        "detectionTime": iso_utc(alert.detection_time_ms),
        "hourTimestamp": iso_utc(alert.hour_timestamp_ms),
        "isUpdate": alert.is_update,
        "alertType": alert.alert_type,
    }
    _put_optional(body, "price", alert.price)
    _put_optional(body, "fundingRate", alert.funding_rate)
    _put_optional(body, "candleDirection", alert.candle_direction)
    _put_optional(body, "priceChange", alert.price_change)
    _put_optional(body, "oiChange", alert.oi_change)
    return body


def oi_alert_body(alert: OiAlert) -> dict[str, Any]:
    """The ``POST /api/open-interest-alerts/ingest`` body (spec §4.4)."""
    body: dict[str, Any] = {
        "symbol": alert.symbol,
        "direction": alert.direction,
        "baseline": _required("baseline", alert.baseline),
        "current": _required("current", alert.current),
        "pctChange": _required("pctChange", alert.pct_change),
        "absChange": _required("absChange", alert.abs_change),
        "timestamp": iso_utc(alert.timestamp_ms),
        "source": alert.source,
        "timeframe": alert.timeframe,
    }
    _put_optional(body, "priceChange", alert.price_change)
    _put_optional(body, "fundingRate", alert.funding_rate)
    return body


def chunk_samples(samples: OiSamples, size: int = OI_CHUNK_SIZE) -> list[OiSamples]:
    """Split a batch into chunks of at most ``size`` items, in order (none for an empty batch)."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    items = samples.items
    return [
        OiSamples(items=items[i : i + size], source=samples.source, created_ms=samples.created_ms)
        for i in range(0, len(items), size)
    ]


def oi_ingest_body(chunk: OiSamples) -> dict[str, Any]:
    """The ``POST /api/market/open-interest/ingest`` body of one chunk (spec §4.3).

    Raises:
        ValueError: for an empty chunk or one larger than :data:`OI_CHUNK_SIZE`.
    """
    if not 0 < len(chunk.items) <= OI_CHUNK_SIZE:
        raise ValueError(f"an OI chunk holds 1 to {OI_CHUNK_SIZE} items, not {len(chunk.items)}")
    data = []
    for sample in chunk.items:
        item: dict[str, Any] = {
            "symbol": sample.symbol,
            "openInterest": _required("openInterest", sample.open_interest),
        }
        _put_optional(item, "openInterestUsd", sample.open_interest_usd)
        _put_optional(item, "markPrice", sample.mark_price)
        data.append(item)
    return {
        "data": data,
        "timestamp": iso_utc(max(s.time_ms for s in chunk.items)),
        "totalSymbols": len(data),
        "source": chunk.source,
    }


class EmptyUniverseError(ValueError):
    """An empty liquid universe must never be posted: the backend would delete its whole set."""


def universe_update_body(universe: LiquidUniverse) -> dict[str, Any]:
    """The ``POST …/liquid-universe/update`` body (spec §2.2, §4.5).

    ``enteredAt`` is omitted for members whose entry time is unknown (never ``null``).

    Raises:
        EmptyUniverseError: for an empty universe; the backend deletes every symbol missing from
            an update, so an empty one would wipe its set (WEAK-20).
    """
    if not universe.members:
        raise EmptyUniverseError(
            "refusing to send an empty liquid universe (it would wipe the backend's)"
        )
    symbols = []
    for m in universe.members:
        row: dict[str, Any] = {
            "symbol": m.symbol,
            "quoteVolume24h": _required("quoteVolume24h", m.quote_volume_24h),
        }
        if m.entered_ms is not None:  # omitted when unknown, never null
            row["enteredAt"] = iso_utc(m.entered_ms)
        row["lastSeenAt"] = iso_utc(m.last_seen_ms)
        symbols.append(row)
    return {"symbols": symbols, "updatedAt": iso_utc(universe.updated_ms)}


def kind_of(message: Message) -> PayloadKind:
    """The payload kind of a deliverable message.

    Raises:
        TypeError: for a message that is not delivered to sinks.
    """
    match message:
        case VolumeAlert():
            return "volume_alert"
        case OiAlert():
            return "oi_alert"
        case OiSamples():
            return "oi_samples"
        case LiquidUniverse():
            return "universe"
    raise TypeError(f"{type(message).__name__} is not a deliverable message")


def backend_body(message: Message) -> dict[str, Any]:
    """The backend body of a stored outbox message (a sample message must be one chunk)."""
    match message:
        case VolumeAlert():
            return volume_alert_body(message)
        case OiAlert():
            return oi_alert_body(message)
        case OiSamples():
            return oi_ingest_body(message)
        case LiquidUniverse():
            return universe_update_body(message)
    raise TypeError(f"{type(message).__name__} is not a deliverable message")


def json_bytes(body: Mapping[str, Any]) -> bytes:
    """Serialise a body (compact JSON, floats at full precision)."""
    return orjson.dumps(body)


def backend_headers(api_key: str, idempotency_key: str) -> dict[str, str]:
    """Headers of every backend ingest request (spec §4.1 plus the idempotency key)."""
    return {
        "Content-Type": "application/json",
        "X-API-Key": api_key,
        IDEMPOTENCY_HEADER: idempotency_key,
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value)).hexdigest()[:16]


def outbox_entries(message: Message) -> list[OutboxEntry]:
    """The outbox entries of a deliverable message: one, or one per sample chunk."""
    match message:
        case VolumeAlert(symbol=symbol, hour_timestamp_ms=hour, alert_type=alert_type):
            key = f"volume:{symbol}:{iso_utc(hour)}:{alert_type}"
            return [OutboxEntry("volume_alert", message, key)]
        case OiAlert(symbol=symbol, timeframe=tf, direction=direction, timestamp_ms=ts):
            key = f"oi-alert:{symbol}:{tf.replace(' ', '')}:{direction}:{ts}"
            return [OutboxEntry("oi_alert", message, key)]
        case OiSamples():
            return _sample_entries(message)
        case LiquidUniverse(members=members, updated_ms=updated):
            rows = [(m.symbol, m.quote_volume_24h, m.entered_ms, m.last_seen_ms) for m in members]
            return [OutboxEntry("universe", message, f"universe:{updated}:{_digest(rows)}")]
    raise TypeError(f"{type(message).__name__} is not a deliverable message")


def _sample_entries(samples: OiSamples) -> list[OutboxEntry]:
    chunks = chunk_samples(samples)
    batch = f"{samples.source}:{samples.created_ms}"
    entries = []
    for index, chunk in enumerate(chunks, start=1):
        rows = [(s.symbol, s.time_ms, s.open_interest, s.mark_price) for s in chunk.items]
        newest = max(s.time_ms for s in chunk.items)
        key = f"oi-samples:{chunk.source}:{newest}:{index}of{len(chunks)}:{_digest(rows)}"
        entries.append(OutboxEntry("oi_samples", chunk, key, batch))
    return entries


# --- Telegram ---------------------------------------------------------------------------------


def _price(value: float) -> str:
    text = f"{value:,.4f}" if abs(value) >= 1 else f"{value:.8f}"
    return text.rstrip("0").rstrip(".")


def _pct(value: float, places: int = 2) -> str:
    return f"{value * 100:+.{places}f}%"


def volume_alert_text(alert: VolumeAlert) -> str:
    """Plain-text Telegram message for a volume alert: the original line, then known details."""
    lines = [
        alert.message,
        f"{alert.symbol} · {alert.alert_type} · hour {iso_utc(alert.hour_timestamp_ms)}",
    ]
    details = []
    if alert.price is not None:
        details.append(f"price {_price(alert.price)}")
    if alert.price_change is not None:
        details.append(f"candle {_pct(alert.price_change)}")
    if alert.funding_rate is not None:
        details.append(f"funding {_pct(alert.funding_rate, 4)}")
    if alert.oi_change is not None:
        details.append(f"OI {_pct(alert.oi_change)}")
    if details:
        lines.append(" · ".join(details))
    return "\n".join(lines)


def oi_alert_text(alert: OiAlert) -> str:
    """Plain-text Telegram message for an open-interest alert."""
    label = "OI SPIKE" if alert.direction == "UP" else "OI DUMP"
    lines = [
        f"{label} [{alert.timeframe}] {alert.symbol} {_pct(alert.pct_change)}",
        f"OI {alert.baseline:,.0f} → {alert.current:,.0f} contracts ({alert.abs_change:+,.0f})",
    ]
    details = []
    if alert.price_change is not None:
        details.append(f"price {_pct(alert.price_change)}")
    if alert.funding_rate is not None:
        details.append(f"funding {_pct(alert.funding_rate, 4)}")
    if details:
        lines.append(" · ".join(details))
    lines.append(iso_utc(alert.timestamp_ms))
    return "\n".join(lines)


def telegram_text(message: Message) -> str | None:
    """The Telegram text of a message, or ``None`` for kinds Telegram does not get."""
    match message:
        case VolumeAlert():
            return volume_alert_text(message)
        case OiAlert():
            return oi_alert_text(message)
    return None


def telegram_path(token: str) -> str:
    """The ``sendMessage`` path below ``TELEGRAM_API_URL`` (holds the token: never log it)."""
    return f"/bot{token}/sendMessage"


def telegram_body(chat_id: str, text: str) -> dict[str, Any]:
    """The JSON body of ``sendMessage``: plain text (no parse mode, so nothing to escape)."""
    return {"chat_id": chat_id, "text": text, "disable_web_page_preview": True}
