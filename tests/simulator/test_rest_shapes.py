"""Every REST endpoint answers with the real fixtures' keys, key order and JSON types."""

from __future__ import annotations

import json

import pytest
import requests

from simulator import Simulator
from simulator.testing import fast_config
from supervisors.clock import FakeClock
from tests.simulator.helpers import HISTORY_FIXTURES, fixture_lines, fixture_path, json_types

NOW = 1_773_900_030.0  # 2026-03-19 06:00:30 UTC, inside the real history window


@pytest.fixture
def sim():
    s = Simulator(fast_config(symbols=60), clock=FakeClock(NOW)).start()
    yield s
    s.stop()


def get(sim: Simulator, path: str, **params):
    return requests.get(sim.rest_url + path, params=params, timeout=5)


def test_exchange_info_has_the_real_top_level_keys_in_order(sim):
    real = json.loads(fixture_path("rest_exchangeInfo_fragment_2021-07-22.json").read_text())
    body = get(sim, "/fapi/v1/exchangeInfo").json()
    assert list(body) == list(real)
    assert body["serverTime"] == int(NOW * 1000)
    assert body["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 2400,
    }


def test_exchange_info_symbol_entries_are_real_mainnet_entries(sim):
    path = HISTORY_FIXTURES / "um_exchangeInfo_2024-10-20.json"
    real = {s["symbol"]: s for s in json.loads(path.read_text())["symbols"]}
    body = get(sim, "/fapi/v1/exchangeInfo").json()
    entries = {s["symbol"]: s for s in body["symbols"]}
    assert list(entries["BTCUSDT"]) == list(real["BTCUSDT"])
    assert json_types(entries["BTCUSDT"]) == json_types(real["BTCUSDT"])
    for entry in body["symbols"]:
        assert list(entry) == list(real["BTCUSDT"]), entry["symbol"]


def test_exchange_info_lists_the_universe_plus_entries_a_naive_filter_trips_over(sim):
    body = get(sim, "/fapi/v1/exchangeInfo").json()
    keep = [
        s["symbol"]
        for s in body["symbols"]
        if s["contractType"] == "PERPETUAL"
        and s["quoteAsset"] == "USDT"
        and s["status"] == "TRADING"
    ]
    assert keep == sim.market.symbols()
    assert len(keep) == 60
    odd = [s for s in body["symbols"] if s["symbol"] not in keep]
    assert {(s["contractType"], s["status"]) for s in odd} >= {
        ("", "PENDING_TRADING"),
        ("CURRENT_QUARTER", "TRADING"),
        ("PERPETUAL", "SETTLING"),
    }
    assert any(s["quoteAsset"] == "USDC" for s in odd)


def test_klines_rows_are_twelve_elements_typed_like_the_real_response(sim):
    real = json.loads(fixture_path("rest_klines_BTCUSDT_1m_limit3_2024-04-10.json").read_text())
    rows = get(sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m", limit=3).json()
    assert len(rows) == 3
    assert [json_types(r) for r in rows] == [json_types(r) for r in real]
    for row in rows:
        assert row[6] == row[0] + 60_000 - 1
        assert row[11] == "0"
    assert rows[-1][0] == (int(NOW * 1000) // 60_000) * 60_000  # the open candle is last


def test_klines_start_and_end_time_select_like_binance(sim):
    hour = 3_600_000
    now_h = int(NOW * 1000) // hour * hour
    rows = get(
        sim,
        "/fapi/v1/klines",
        symbol="ETHUSDT",
        interval="1h",
        startTime=now_h - 5 * hour + 1,
        limit=2,
    ).json()
    assert [r[0] for r in rows] == [now_h - 4 * hour, now_h - 3 * hour]
    rows = get(
        sim, "/fapi/v1/klines", symbol="ETHUSDT", interval="1h", endTime=now_h - hour, limit=2
    ).json()
    assert [r[0] for r in rows] == [now_h - 2 * hour, now_h - hour]
    default = get(sim, "/fapi/v1/klines", symbol="ETHUSDT", interval="1h").json()
    assert len(default) == 500


def test_open_interest_matches_the_real_key_order_and_types(sim):
    real = fixture_lines("rest_openInterest_samples.jsonl")[0]
    body = get(sim, "/fapi/v1/openInterest", symbol="BTCUSDT").json()
    assert list(body) == list(real)
    assert json_types(body) == json_types(real)
    assert float(body["openInterest"]) > 0


def test_premium_index_has_the_documented_fields(sim):
    one = get(sim, "/fapi/v1/premiumIndex", symbol="BTCUSDT").json()
    assert list(one) == [
        "symbol",
        "markPrice",
        "indexPrice",
        "estimatedSettlePrice",
        "lastFundingRate",
        "interestRate",
        "nextFundingTime",
        "time",
    ]
    # spec §2.5: nextFundingTime and time are ints, everything else a string
    ints = {"nextFundingTime", "time"}
    assert {k for k, v in one.items() if type(v) is int} == ints
    assert {k for k, v in one.items() if isinstance(v, str)} == set(one) - ints
    assert one["time"] == int(NOW * 1000)
    for key in ("markPrice", "indexPrice", "estimatedSettlePrice", "lastFundingRate"):
        float(one[key])  # decimal strings
    everything = get(sim, "/fapi/v1/premiumIndex").json()
    assert [r["symbol"] for r in everything] == sim.market.symbols()
    for row in everything:
        assert {k for k, v in row.items() if type(v) is int} == ints
        assert all(isinstance(row[k], str) for k in set(row) - ints)


def test_ticker_24hr_has_the_documented_fields_and_no_bid_ask(sim):
    real_ws = fixture_lines("ws_ticker_samples.jsonl")[0]["data"]
    body = get(sim, "/fapi/v1/ticker/24hr", symbol="BTCUSDT").json()
    assert list(body) == [
        "symbol",
        "priceChange",
        "priceChangePercent",
        "weightedAvgPrice",
        "lastPrice",
        "lastQty",
        "openPrice",
        "highPrice",
        "lowPrice",
        "volume",
        "quoteVolume",
        "openTime",
        "closeTime",
        "firstId",
        "lastId",
        "count",
    ]
    # spec §2.6: these five are ints, every other field a string (prices and volumes as
    # decimal strings, as Binance sends them)
    ints = {"openTime", "closeTime", "firstId", "lastId", "count"}
    assert {k for k, v in body.items() if type(v) is int} == ints
    assert {k for k, v in body.items() if isinstance(v, str)} == set(body) - ints
    for key in sorted(set(body) - ints - {"symbol"}):
        float(body[key])  # decimal strings
    assert len(body) == len(real_ws) - 2  # the stream adds e and E
    assert len(get(sim, "/fapi/v1/ticker/24hr").json()) == 60


def test_time_and_ping(sim):
    assert get(sim, "/fapi/v1/time").json() == {"serverTime": int(NOW * 1000)}
    assert get(sim, "/fapi/v1/ping").json() == {}


def test_error_bodies_match_the_documented_ones(sim):
    real = {
        e["http_status"]: e for e in json.loads(fixture_path("rest_error_bodies.json").read_text())
    }
    r = get(sim, "/fapi/v1/openInterest", symbol="NOPEUSDT")
    assert (r.status_code, r.text) == (400, real[400]["body"])
    r = get(sim, "/fapi/v1/klines", interval="1m")
    assert r.status_code == 400
    assert r.json() == {
        "code": -1102,
        "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    }
    assert get(sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="2m").json()["code"] == -1120
    assert (
        get(sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m", limit=1501).json()["code"]
        == -1130
    )
    assert get(sim, "/fapi/v1/klines", symbol="btcusdt", interval="1m").json()["code"] == -1121
    bad = get(sim, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m", startTime=5, endTime=4)
    assert bad.json()["code"] == -1023


def test_history_endpoints_return_typed_rows(sim):
    real = fixture_lines("rest_openInterestHist_rows.jsonl")[2]
    rows = get(sim, "/futures/data/openInterestHist", symbol="BTCUSDT", period="5m", limit=3).json()
    assert len(rows) == 3
    assert [list(r) for r in rows] == [list(real)] * 3
    assert all(isinstance(r["timestamp"], int) for r in rows)
    assert all(isinstance(r[k], str) for r in rows for k in set(r) - {"timestamp"})
    funding = get(sim, "/fapi/v1/fundingRate", symbol="BTCUSDT", limit=5).json()
    assert len(funding) == 5
    assert list(funding[0]) == ["symbol", "fundingRate", "fundingTime", "markPrice"]
    # spec §2.7: fundingTime is an int, the others strings
    assert all(type(r["fundingTime"]) is int for r in funding)
    assert all(isinstance(r[k], str) for r in funding for k in set(r) - {"fundingTime"})
    assert funding == sorted(funding, key=lambda r: r["fundingTime"])
