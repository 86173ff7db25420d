"""Validation of the VolSpike backend's ingest payloads (``spec/volspike-original.md`` §4).

``/api/volume-alerts/ingest`` uses a Zod schema: unknown keys are stripped, ``optional`` means
*omit* (``null`` is rejected), and failures are reported as Zod issues. The OI endpoints are
validated by hand in the original handlers; :func:`validate_oi_ingest` and
:func:`validate_oi_alert` reproduce their rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

__all__ = [
    "VOLUME_ALERT_FIELDS",
    "Field",
    "normalize_symbol",
    "validate_oi_alert",
    "validate_oi_ingest",
    "validate_universe_update",
    "validate_volume_alert",
]

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass(frozen=True, slots=True)
class Field:
    """One schema field: a JSON type (``string``/``number``/``boolean``/``datetime``) or an enum."""

    name: str
    kind: str
    required: bool = field(kw_only=True)
    options: tuple[str, ...] = field(default=(), kw_only=True)


VOLUME_ALERT_FIELDS: tuple[Field, ...] = (
    Field("symbol", "string", required=True),
    Field("asset", "string", required=True),
    Field("currentVolume", "number", required=True),
    Field("previousVolume", "number", required=True),
    Field("volumeRatio", "number", required=True),
    Field("price", "number", required=False),
    Field("fundingRate", "number", required=False),
    Field("candleDirection", "enum", required=False, options=("bullish", "bearish")),
    Field("message", "string", required=True),
    Field("timestamp", "datetime", required=True),
    Field("detectionTime", "datetime", required=False),
    Field("hourTimestamp", "datetime", required=True),
    Field("isUpdate", "boolean", required=False),
    Field("alertType", "enum", required=False, options=("SPIKE", "HALF_UPDATE", "FULL_UPDATE")),
    Field("priceChange", "number", required=False),
    Field("oiChange", "number", required=False),
)
"""The Zod schema of ``POST /api/volume-alerts/ingest`` (§4.2), in declaration order."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def is_number(value: Any) -> TypeGuard[int | float]:
    """A JSON number (booleans are not numbers)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _issue(spec: Field, value: Any, *, missing: bool) -> dict[str, Any] | None:
    expected = "string" if spec.kind in ("datetime", "enum") else spec.kind
    received = "undefined" if missing else _type_name(value)
    if received != expected:
        return {
            "code": "invalid_type",
            "expected": expected,
            "received": received,
            "path": [spec.name],
            "message": "Required" if missing else f"Expected {expected}, received {received}",
        }
    if spec.kind == "enum" and value not in spec.options:
        options = " | ".join(f"'{o}'" for o in spec.options)
        return {
            "received": value,
            "code": "invalid_enum_value",
            "options": list(spec.options),
            "path": [spec.name],
            "message": f"Invalid enum value. Expected {options}, received '{value}'",
        }
    if spec.kind == "datetime" and not _DATETIME.match(value):
        return {
            "code": "invalid_string",
            "validation": "datetime",
            "message": "Invalid datetime",
            "path": [spec.name],
        }
    return None


def validate_volume_alert(body: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Parse a volume alert like the backend's Zod schema.

    Returns:
        ``(clean, [])`` with unknown keys stripped and defaults applied, or ``(None, issues)``.
    """
    if not isinstance(body, dict):
        received = _type_name(body)
        return None, [{"code": "invalid_type", "expected": "object", "received": received,
                       "path": [], "message": f"Expected object, received {received}"}]  # fmt: skip
    issues: list[dict[str, Any]] = []
    clean: dict[str, Any] = {}
    for spec in VOLUME_ALERT_FIELDS:
        missing = spec.name not in body
        if missing and not spec.required:
            continue
        issue = _issue(spec, body.get(spec.name), missing=missing)
        if issue is not None:
            issues.append(issue)
        else:
            clean[spec.name] = body[spec.name]
    if issues:
        return None, issues
    clean.setdefault("detectionTime", clean["timestamp"])
    clean.setdefault("isUpdate", False)
    clean.setdefault("alertType", "SPIKE")
    return clean, []


def normalize_symbol(symbol: str) -> str:
    """The backend's OI symbol normalisation: ``-`` and ``_`` removed, upper-cased."""
    return symbol.replace("-", "").replace("_", "").upper()


def validate_oi_ingest(body: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Apply §4.3 (``data`` array required, items without ``symbol`` dropped).

    ``openInterest`` is derived from ``openInterestUsd / markPrice`` when it is not a number.

    Returns:
        ``(items, None)`` or ``(None, error message)``.
    """
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None, "Invalid payload: data array required"
    items: list[dict[str, Any]] = []
    for raw in data:
        if not isinstance(raw, dict) or not raw.get("symbol") or not isinstance(raw["symbol"], str):
            continue
        oi = raw.get("openInterest")
        usd, mark = raw.get("openInterestUsd"), raw.get("markPrice")
        if not is_number(oi):
            if is_number(usd) and is_number(mark) and mark > 0:
                oi = usd / mark
            else:
                continue
        items.append({
            "symbol": normalize_symbol(raw["symbol"]),
            "openInterest": oi,
            "openInterestUsd": usd if is_number(usd) else None,
            "markPrice": mark if is_number(mark) else None,
        })  # fmt: skip
    if not items:
        return None, "No valid data items"
    return items, None


def validate_oi_alert(body: Any) -> tuple[int, str | None]:
    """Apply §4.4.

    Returns:
        ``(200, None)``, ``(400, "Invalid payload: missing required fields")`` or
        ``(500, "Internal server error")`` (bad direction or timestamp, as in the original).
    """
    if not isinstance(body, dict):
        return 400, "Invalid payload: missing required fields"
    if not body.get("symbol") or not body.get("direction"):
        return 400, "Invalid payload: missing required fields"
    if not is_number(body.get("baseline")) or not is_number(body.get("current")):
        return 400, "Invalid payload: missing required fields"
    if body["direction"] not in ("UP", "DOWN"):
        return 500, "Internal server error"
    ts = body.get("timestamp")
    if ts is not None and (not isinstance(ts, str) or not _DATETIME.match(ts)):
        return 500, "Internal server error"
    return 200, None


def validate_universe_update(body: Any) -> str | None:
    """The liquid-universe update needs a ``symbols`` array of objects with a ``symbol``."""
    symbols = body.get("symbols") if isinstance(body, dict) else None
    if not isinstance(symbols, list) or not all(
        isinstance(s, dict) and isinstance(s.get("symbol"), str) for s in symbols
    ):
        return "Invalid payload: symbols array required"
    return None
