from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors._payloads import (
    ENDPOINTS,
    IDEMPOTENCY_HEADER,
    OI_CHUNK_SIZE,
    EmptyUniverseError,
    backend_body,
    backend_headers,
    chunk_samples,
    iso_utc,
    json_bytes,
    kind_of,
    oi_alert_body,
    oi_alert_text,
    oi_ingest_body,
    outbox_entries,
    telegram_body,
    telegram_text,
    universe_update_body,
    volume_alert_body,
    volume_alert_text,
)
from messages import (
    LiquidUniverse,
    OiAlert,
    OiSample,
    OiSamples,
    Ping,
    Symbol,
    TimestampMs,
    UniverseMember,
    VolumeAlert,
)

HOUR = 1_764_943_200_000  # 2025-12-05T14:00:00Z

VOLUME_REQUIRED = {
    "symbol", "asset", "currentVolume", "previousVolume", "volumeRatio", "message", "timestamp",
    "detectionTime", "hourTimestamp", "isUpdate", "alertType",
}  # fmt: skip
VOLUME_OPTIONAL = {"price", "fundingRate", "candleDirection", "priceChange", "oiChange"}
OI_ALERT_REQUIRED = {
    "symbol", "direction", "baseline", "current", "pctChange", "absChange", "timestamp",
    "source", "timeframe",
}  # fmt: skip


def assert_no_null(value: Any, path: str = "body") -> None:
    if value is None:
        pytest.fail(f"null at {path}")
    if isinstance(value, float):
        assert math.isfinite(value), path
    if isinstance(value, dict):
        for key, item in value.items():
            assert_no_null(item, f"{path}.{key}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            assert_no_null(item, f"{path}[{index}]")


def volume(**changes: Any) -> VolumeAlert:
    fields: dict[str, Any] = {
        "symbol": Symbol("BTCUSDT"),
        "asset": "BTC",
        "current_volume": 5_200_000.0,
        "previous_volume": 1_500_000.0,
        "volume_ratio": 3.466666666666667,
        "message": "BTC hourly volume 5.20M (3.47x prev) — VOLUME SPIKE!",
        "timestamp_ms": TimestampMs(HOUR + 600_000),
        "detection_time_ms": TimestampMs(HOUR + 601_999),
        "hour_timestamp_ms": TimestampMs(HOUR),
    }
    return VolumeAlert(**(fields | changes))


def oi(**changes: Any) -> OiAlert:
    fields: dict[str, Any] = {
        "symbol": Symbol("ETHUSDT"),
        "direction": "DOWN",
        "baseline": 1_000_000.0,
        "current": 930_000.0,
        "pct_change": -0.07,
        "abs_change": -70_000.0,
        "timestamp_ms": TimestampMs(HOUR + 10_500),
        "timeframe": "15 min",
    }
    return OiAlert(**(fields | changes))


def batch(n: int, created_ms: int = HOUR, mark: float | None = 2.0) -> OiSamples:
    items = tuple(
        OiSample(
            symbol=Symbol(f"S{i:03d}USDT"),
            open_interest=100.0 + i,
            time_ms=TimestampMs(created_ms - 5_000 + i * 10),
            mark_price=mark,
        )
        for i in range(n)
    )
    return OiSamples(items=items, source="realtime", created_ms=TimestampMs(created_ms))


# --- volume alert -----------------------------------------------------------------------------


def test_a_full_volume_alert_has_exactly_the_contract_fields():
    alert = volume(
        alert_type="FULL_UPDATE", price=65_000.5, funding_rate=0.0001, candle_direction="bearish",
        price_change=-0.0123, oi_change=0.021,
    )  # fmt: skip
    assert volume_alert_body(alert) == {
        "symbol": "BTCUSDT",
        "asset": "BTC",
        "currentVolume": 5_200_000.0,
        "previousVolume": 1_500_000.0,
        "volumeRatio": 3.466666666666667,
        "message": alert.message,
        "timestamp": "2025-12-05T14:10:00Z",
        "detectionTime": "2025-12-05T14:10:01Z",
        "hourTimestamp": "2025-12-05T14:00:00Z",
        "isUpdate": True,
        "alertType": "FULL_UPDATE",
        "price": 65_000.5,
        "fundingRate": 0.0001,
        "candleDirection": "bearish",
        "priceChange": -0.0123,
        "oiChange": 0.021,
    }


def test_a_volume_alert_omits_unknown_optional_fields_instead_of_null_or_zero():
    body = volume_alert_body(volume())
    assert set(body) == VOLUME_REQUIRED
    assert body["isUpdate"] is False
    assert body["alertType"] == "SPIKE"
    assert b"null" not in json_bytes(body)


def test_a_non_finite_optional_is_omitted_and_a_non_finite_required_value_is_refused():
    assert "fundingRate" not in volume_alert_body(volume(funding_rate=math.nan))
    with pytest.raises(ValueError, match="volumeRatio"):
        volume_alert_body(volume(volume_ratio=math.inf))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
maybe = st.none() | finite


@settings(max_examples=60, deadline=None)
@given(
    price=maybe, funding=maybe, change=maybe, oi_change=maybe,
    direction=st.none() | st.sampled_from(["bullish", "bearish"]),
    kind=st.sampled_from(["SPIKE", "HALF_UPDATE", "FULL_UPDATE"]),
)  # fmt: skip
def test_every_volume_alert_body_has_the_required_fields_and_no_null(
    price, funding, change, oi_change, direction, kind
):
    alert = volume(
        price=price, funding_rate=funding, price_change=change, oi_change=oi_change,
        candle_direction=direction, alert_type=kind,
    )  # fmt: skip
    body = volume_alert_body(alert)
    assert_no_null(body)
    assert VOLUME_REQUIRED <= set(body) <= VOLUME_REQUIRED | VOLUME_OPTIONAL
    assert ("price" in body) == (price is not None)
    assert body["isUpdate"] == (kind != "SPIKE")
    assert orjson.loads(json_bytes(body)) == body  # floats survive at full precision


# --- OI alert ---------------------------------------------------------------------------------


def test_an_oi_alert_body_matches_the_contract_with_full_precision():
    body = oi_alert_body(oi(price_change=-0.012345678901234, funding_rate=0.0000128))
    assert body == {
        "symbol": "ETHUSDT",
        "direction": "DOWN",
        "baseline": 1_000_000.0,
        "current": 930_000.0,
        "pctChange": -0.07,
        "absChange": -70_000.0,
        "timestamp": "2025-12-05T14:00:10Z",
        "source": "oi_realtime_poller",
        "timeframe": "15 min",
        "priceChange": -0.012345678901234,
        "fundingRate": 0.0000128,
    }
    assert orjson.loads(json_bytes(body))["fundingRate"] == 0.0000128


def test_an_oi_alert_without_price_or_funding_omits_them():
    body = oi_alert_body(oi())
    assert set(body) == OI_ALERT_REQUIRED
    assert_no_null(body)


# --- OI samples -------------------------------------------------------------------------------


def test_250_samples_become_chunks_of_100_100_and_50_in_order():
    samples = batch(250)
    chunks = chunk_samples(samples)
    bodies = [oi_ingest_body(chunk) for chunk in chunks]
    assert [len(b["data"]) for b in bodies] == [100, 100, 50]
    assert [b["totalSymbols"] for b in bodies] == [100, 100, 50]
    assert [d["symbol"] for b in bodies for d in b["data"]] == [s.symbol for s in samples.items]
    assert {b["source"] for b in bodies} == {"realtime"}
    for body in bodies:
        assert_no_null(body)
    assert chunk_samples(batch(0)) == []


def test_a_chunk_is_stamped_with_its_newest_sample_time_not_the_post_time():
    chunks = chunk_samples(batch(250))
    newest = [max(s.time_ms for s in c.items) for c in chunks]
    assert [oi_ingest_body(c)["timestamp"] for c in chunks] == [iso_utc(t) for t in newest]
    assert oi_ingest_body(chunks[0])["timestamp"] == "2025-12-05T13:59:55Z"


def test_a_sample_with_a_known_mark_carries_usd_and_mark_and_an_unknown_one_omits_both():
    known = oi_ingest_body(batch(1, mark=2.5))["data"][0]
    assert known == {
        "symbol": "S000USDT",
        "openInterest": 100.0,
        "openInterestUsd": 250.0,
        "markPrice": 2.5,
    }
    assert oi_ingest_body(batch(1, mark=None))["data"][0] == {
        "symbol": "S000USDT",
        "openInterest": 100.0,
    }


def test_an_ingest_body_refuses_an_empty_or_oversized_chunk():
    with pytest.raises(ValueError, match="1 to 100"):
        oi_ingest_body(batch(OI_CHUNK_SIZE + 1))
    with pytest.raises(ValueError, match="1 to 100"):
        oi_ingest_body(batch(0))


# --- universe ---------------------------------------------------------------------------------


def test_the_universe_update_matches_the_contract_and_refuses_to_wipe_the_backend():
    members = (
        UniverseMember(
            symbol=Symbol("BTCUSDT"), quote_volume_24h=9e9, entered_ms=None, last_seen_ms=HOUR
        ),
        UniverseMember(
            symbol=Symbol("NEWUSDT"), quote_volume_24h=4.5e6, entered_ms=HOUR, last_seen_ms=HOUR
        ),
    )
    body = universe_update_body(LiquidUniverse(members=members, updated_ms=TimestampMs(HOUR)))
    assert body == {
        "symbols": [
            {"symbol": "BTCUSDT", "quoteVolume24h": 9e9, "lastSeenAt": "2025-12-05T14:00:00Z"},
            {"symbol": "NEWUSDT", "quoteVolume24h": 4.5e6, "enteredAt": "2025-12-05T14:00:00Z",
             "lastSeenAt": "2025-12-05T14:00:00Z"},
        ],
        "updatedAt": "2025-12-05T14:00:00Z",
    }  # fmt: skip
    with pytest.raises(EmptyUniverseError, match="empty"):
        universe_update_body(LiquidUniverse(members=(), updated_ms=TimestampMs(HOUR)))


# --- dispatch, endpoints, headers -------------------------------------------------------------


def test_each_message_maps_to_its_kind_body_and_endpoint():
    universe = LiquidUniverse(
        members=(UniverseMember(symbol=Symbol("X"), quote_volume_24h=1.0, entered_ms=None,
                                last_seen_ms=HOUR),),
        updated_ms=TimestampMs(HOUR),
    )  # fmt: skip
    cases = {
        "volume_alert": (volume(), "/api/volume-alerts/ingest", 5.0),
        "oi_alert": (oi(), "/api/open-interest-alerts/ingest", 10.0),
        "oi_samples": (batch(3), "/api/market/open-interest/ingest", 60.0),
        "universe": (universe, "/api/market/open-interest/liquid-universe/update", 10.0),
    }
    for kind, (message, path, timeout) in cases.items():
        assert kind_of(message) == kind
        assert (ENDPOINTS[kind].path, ENDPOINTS[kind].read_timeout_s) == (path, timeout)
        assert backend_body(message)
    for build in (kind_of, backend_body, outbox_entries):
        with pytest.raises(TypeError, match="Ping"):
            build(Ping())


def test_backend_headers_carry_the_key_the_content_type_and_the_idempotency_key():
    assert backend_headers("secret", "volume:k") == {
        "Content-Type": "application/json",
        "X-API-Key": "secret",
        IDEMPOTENCY_HEADER: "volume:k",
    }


# --- idempotency keys -------------------------------------------------------------------------


def key(message) -> str:
    (entry,) = outbox_entries(message)
    return entry.idempotency_key


def test_alert_keys_are_stable_and_readable():
    assert key(volume()) == "volume:BTCUSDT:2025-12-05T14:00:00Z:SPIKE"
    assert key(volume(price=1.0, timestamp_ms=TimestampMs(HOUR + 900_000))) == key(volume())
    assert key(oi()) == f"oi-alert:ETHUSDT:15min:DOWN:{HOUR + 10_500}"


def test_alert_keys_differ_by_symbol_hour_type_timeframe_direction_and_time():
    volume_keys = {
        key(volume()),
        key(volume(alert_type="HALF_UPDATE")),
        key(volume(alert_type="FULL_UPDATE")),
        key(volume(symbol=Symbol("ETHUSDT"))),
        key(volume(hour_timestamp_ms=TimestampMs(HOUR + 3_600_000))),
    }
    oi_keys = {
        key(oi()),
        key(oi(timeframe="5 min")),
        key(oi(direction="UP")),
        key(oi(timestamp_ms=TimestampMs(HOUR + 20_500))),
        key(oi(symbol=Symbol("BTCUSDT"))),
    }
    assert len(volume_keys) == 5
    assert len(oi_keys) == 5


def test_sample_chunk_keys_are_stable_distinct_and_share_a_batch():
    entries = outbox_entries(batch(250))
    again = outbox_entries(batch(250))
    assert [e.idempotency_key for e in entries] == [e.idempotency_key for e in again]
    assert len({e.idempotency_key for e in entries}) == 3
    assert {e.batch for e in entries} == {f"realtime:{HOUR}"}
    assert entries[1].idempotency_key.startswith(f"oi-samples:realtime:{HOUR - 5_000 + 1990}:2of3:")
    other = outbox_entries(batch(250, mark=3.0))  # same times, different content
    assert {e.idempotency_key for e in entries}.isdisjoint(e.idempotency_key for e in other)
    assert [len(e.message.items) for e in entries] == [100, 100, 50]


# --- Telegram ---------------------------------------------------------------------------------


def test_the_volume_text_starts_with_the_original_line_and_shows_only_known_details():
    text = volume_alert_text(volume(price=0.00001234, oi_change=0.021))
    lines = text.split("\n")
    assert lines[0] == volume().message
    assert lines[1] == "BTCUSDT · SPIKE · hour 2025-12-05T14:00:00Z"
    assert lines[2] == "price 0.00001234 · OI +2.10%"
    assert "funding" not in text
    assert volume_alert_text(volume()).count("\n") == 1


def test_the_oi_text_names_the_direction_window_and_change():
    text = oi_alert_text(oi(funding_rate=0.0001))
    assert text.split("\n") == [
        "OI DUMP [15 min] ETHUSDT -7.00%",
        "OI 1,000,000 → 930,000 contracts (-70,000)",
        "funding +0.0100%",
        "2025-12-05T14:00:10Z",
    ]
    assert telegram_text(oi(direction="UP")).startswith("OI SPIKE [15 min]")
    assert telegram_text(batch(1)) is None


def test_the_telegram_body_is_plain_text_for_the_chat():
    assert telegram_body("-100123", "hi") == {
        "chat_id": "-100123",
        "text": "hi",
        "disable_web_page_preview": True,
    }
