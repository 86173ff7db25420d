"""The VolSpike backend double: §4 validation semantics, recording, and fault modes."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from simulator.backend import (
    OI_ALERTS,
    OI_INGEST,
    UNIVERSE,
    UNIVERSE_UPDATE,
    VOLUME_ALERTS,
    BackendDouble,
)

KEY = {"X-API-Key": "test-ingest-key"}
ALERT = {
    "symbol": "HYPEUSDT",
    "asset": "HYPE",
    "currentVolume": 12_500_000.5,
    "previousVolume": 3_100_000.0,
    "volumeRatio": 4.03,
    "price": 38.12,
    "fundingRate": 0.0001,
    "candleDirection": "bullish",
    "message": "HYPE hourly volume 12.50M (4.03x prev) - VOLUME SPIKE!",
    "timestamp": "2026-03-18T13:10:00Z",
    "detectionTime": "2026-03-18T13:10:00Z",
    "hourTimestamp": "2026-03-18T13:00:00Z",
    "isUpdate": False,
    "alertType": "SPIKE",
}


def post(double, path, body, headers=KEY, **kw):
    return requests.post(double.url + path, json=body, headers=headers, timeout=5, **kw)


def test_a_valid_volume_alert_is_accepted_and_recorded_with_its_headers(backend_double):
    r = post(
        backend_double,
        VOLUME_ALERTS,
        ALERT,
        headers={**KEY, "Idempotency-Key": "HYPEUSDT:2026-03-18T13:SPIKE"},
    )
    assert r.status_code == 200
    assert r.json()["success"] is True
    got = backend_double.wait_for(VOLUME_ALERTS, 1, timeout=5)
    assert got[0].body == ALERT
    assert got[0].headers["idempotency-key"] == "HYPEUSDT:2026-03-18T13:SPIKE"
    assert got[0].headers["x-api-key"] == "<redacted>"


def test_null_is_rejected_with_400_and_zod_details(backend_double):
    r = post(backend_double, VOLUME_ALERTS, {**ALERT, "fundingRate": None})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "Invalid alert data"
    assert body["details"][0]["path"] == ["fundingRate"]
    assert body["details"][0]["received"] == "null"
    assert backend_double.received(VOLUME_ALERTS) == []
    assert len(backend_double.rejected(VOLUME_ALERTS)) == 1


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"symbol": None}, "symbol"),
        ({"currentVolume": "12"}, "currentVolume"),
        ({"isUpdate": 1}, "isUpdate"),
        ({"candleDirection": "up"}, "candleDirection"),
        ({"alertType": "SPIKY"}, "alertType"),
        ({"timestamp": "2026-03-18 13:10:00"}, "timestamp"),
        ({"hourTimestamp": "2026-03-18T13:00:00+00:00"}, "hourTimestamp"),
    ],
)
def test_wrong_types_enums_and_datetimes_are_rejected(backend_double, change, path):
    r = post(backend_double, VOLUME_ALERTS, {**ALERT, **change})
    assert r.status_code == 400
    assert [d["path"] for d in r.json()["details"]] == [[path]]


def test_missing_required_fields_are_rejected_and_optional_ones_may_be_omitted(backend_double):
    minimal = {
        k: ALERT[k]
        for k in (
            "symbol",
            "asset",
            "currentVolume",
            "previousVolume",
            "volumeRatio",
            "message",
            "timestamp",
            "hourTimestamp",
        )
    }
    assert post(backend_double, VOLUME_ALERTS, minimal).status_code == 200
    r = post(backend_double, VOLUME_ALERTS, {k: v for k, v in minimal.items() if k != "message"})
    assert r.status_code == 400
    assert r.json()["details"][0]["message"] == "Required"


def test_unknown_keys_are_ignored(backend_double):
    assert (
        post(
            backend_double, VOLUME_ALERTS, {**ALERT, "alertId": "x", "extra": {"a": 1}}
        ).status_code
        == 200
    )


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
def test_a_missing_or_wrong_api_key_gets_401(backend_double, headers):
    for path in (VOLUME_ALERTS, OI_INGEST, OI_ALERTS, UNIVERSE_UPDATE):
        r = post(backend_double, path, ALERT, headers=headers)
        assert (r.status_code, r.json()) == (401, {"error": "Unauthorized"})
    assert backend_double.received() == []


def test_an_empty_api_key_is_the_misconfigured_backend_500():
    double = BackendDouble("").start()
    try:
        for headers in ({}, {"X-API-Key": ""}, KEY):
            r = post(double, VOLUME_ALERTS, ALERT, headers=headers)
            assert (r.status_code, r.json()) == (500, {"error": "Server configuration error"})
        assert requests.get(double.url + "/health", timeout=5).status_code == 200  # public
        assert double.received() == []
    finally:
        double.stop()


def test_open_interest_ingest_rules(backend_double):
    bad = post(backend_double, OI_INGEST, {"data": {"symbol": "BTCUSDT"}})
    assert (bad.status_code, bad.json()) == (400, {"error": "Invalid payload: data array required"})
    none = post(
        backend_double,
        OI_INGEST,
        {"data": [{"openInterest": 5}, {"symbol": "X", "openInterest": "5"}]},
    )
    assert (none.status_code, none.json()) == (400, {"error": "No valid data items"})
    body = {
        "data": [
            {
                "symbol": "BTCUSDT",
                "openInterest": 80_000.5,
                "openInterestUsd": 5.6e9,
                "markPrice": 70_000.0,
            },
            {
                "symbol": "eth-usdt",
                "openInterestUsd": 2_000_000.0,
                "markPrice": 2000.0,
            },  # derived: 1000
            {"openInterest": 1.0},  # no symbol: dropped
        ],
        "timestamp": "2026-03-19T06:00:00Z",
        "totalSymbols": 3,
        "source": "realtime",
        "unknown": True,
    }
    r = post(backend_double, OI_INGEST, body)
    assert r.json() == {"success": True, "inserted": 2, "cached": 2}
    assert backend_double.oi_rows[1]["symbol"] == "ETHUSDT"
    assert backend_double.oi_rows[1]["openInterest"] == 1000.0
    alias = post(
        backend_double,
        "/api/market/open-interest",
        {"data": [{"symbol": "SOLUSDT", "openInterest": 1}]},
    )
    assert alias.status_code == 200
    assert len(backend_double.wait_for(OI_INGEST, 2, timeout=5)) == 2
    snap = requests.get(
        backend_double.url + "/api/market/open-interest/snapshot",
        params={"symbol": "BTCUSDT", "ts": "2026-03-19T07:00:00Z"},
        headers=KEY,
        timeout=5,
    )
    assert snap.json()["found"] is True
    assert snap.json()["openInterest"] == 80_000.5


def test_open_interest_alert_rules(backend_double):
    alert = {
        "symbol": "MAVIAUSDT",
        "direction": "UP",
        "baseline": 1e6,
        "current": 1.04e6,
        "pctChange": 0.04,
        "absChange": 40_000.0,
        "timestamp": "2026-03-19T06:05:00Z",
        "source": "oi_realtime_poller",
        "timeframe": "5 min",
    }
    assert post(backend_double, OI_ALERTS, alert).status_code == 200
    missing = post(backend_double, OI_ALERTS, {**alert, "baseline": None})
    assert (missing.status_code, missing.json()) == (
        400,
        {"error": "Invalid payload: missing required fields"},
    )
    assert post(backend_double, OI_ALERTS, {**alert, "direction": "SIDEWAYS"}).status_code == 500
    assert len(backend_double.received(OI_ALERTS)) == 1


def test_liquid_universe_update_replaces_the_set_and_keeps_entered_at(backend_double):
    first = {
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "quoteVolume24h": 9e9,
                "enteredAt": "2026-03-19T06:00:00.000001Z",
                "lastSeenAt": "2026-03-19T06:00:00.000001Z",
            },
            {
                "symbol": "DOGEUSDT",
                "quoteVolume24h": 5e6,
                "enteredAt": None,
                "lastSeenAt": "2026-03-19T06:00:00.000001Z",
            },
        ],
        "updatedAt": "2026-03-19T06:00:00.000001Z",
    }
    assert post(backend_double, UNIVERSE_UPDATE, first).json()["totalSymbols"] == 2
    second = {
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "quoteVolume24h": 8e9,
                "enteredAt": None,
                "lastSeenAt": "2026-03-19T06:05:00.000001Z",
            }
        ],
        "updatedAt": "x",
    }
    assert post(backend_double, UNIVERSE_UPDATE, second).json() == {
        "success": True,
        "upserted": 1,
        "removed": 1,
        "totalSymbols": 1,
    }
    got = requests.get(backend_double.url + UNIVERSE, timeout=5).json()  # public: no key
    assert [s["symbol"] for s in got["symbols"]] == ["BTCUSDT"]
    assert got["symbols"][0]["enteredAt"] == "2026-03-19T06:00:00.000001Z"
    assert got["symbols"][0]["estimatedPollIntervalSec"] == 5
    assert (got["enterThreshold"], got["exitThreshold"]) == (4_000_000.0, 2_000_000.0)


def test_health_is_public(backend_double):
    r = requests.get(backend_double.url + "/health", timeout=5)
    assert r.json()["status"] == "ok"


def test_wait_for_times_out_cleanly(backend_double):
    with pytest.raises(TimeoutError):
        backend_double.wait_for(VOLUME_ALERTS, 1, timeout=0.05)


def test_500s_for_n_requests(backend_double):
    with backend_double.faults.errors(500, count=2):
        codes = [post(backend_double, VOLUME_ALERTS, ALERT).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert post(backend_double, OI_ALERTS, {}, headers=KEY).status_code == 400


def test_slow_responses(backend_double):
    with backend_double.faults.slow(0.3, count=1):
        t0 = time.monotonic()
        assert post(backend_double, VOLUME_ALERTS, ALERT).status_code == 200
        assert time.monotonic() - t0 >= 0.3


def test_down_refuses_connections_then_comes_back_on_the_same_port(backend_double):
    port = backend_double.port
    with requests.Session() as session:
        assert session.post(
            backend_double.url + VOLUME_ALERTS, json=ALERT, headers=KEY, timeout=5
        ).ok
        outage = backend_double.go_down(seconds=0.3)
        with pytest.raises(requests.ConnectionError):
            session.post(backend_double.url + VOLUME_ALERTS, json=ALERT, headers=KEY, timeout=5)
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            pass
        assert outage.wait(timeout=5)
        assert backend_double.wait_up(timeout=5)
        assert backend_double.port == port
        assert session.post(
            backend_double.url + VOLUME_ALERTS, json=ALERT, headers=KEY, timeout=5
        ).ok
    assert len(backend_double.received(VOLUME_ALERTS)) == 2


def test_down_until_told(backend_double):
    outage = backend_double.go_down()
    assert not backend_double.is_up
    outage.end()
    assert backend_double.is_up
    assert requests.get(backend_double.url + "/health", timeout=5).ok
