"""Scripted events appear in the data at the scripted (simulated) time."""

from __future__ import annotations

import pytest
import requests

from simulator import Simulator
from simulator.testing import fast_config
from supervisors.clock import FakeClock
from tests.simulator.helpers import connect, recv_until

HOUR = 3_600_000
MINUTE = 60_000
H = 1_773_900_000_000  # 2026-03-19 06:00:00 UTC


def rest(sim, path, **params):
    return requests.get(sim.rest_url + path, params=params, timeout=5)


def hour_quote_volume(sim, symbol, open_ms):
    rows = rest(
        sim, "/fapi/v1/klines", symbol=symbol, interval="1h", startTime=open_ms, limit=1
    ).json()
    assert rows[0][0] == open_ms
    return float(rows[0][7])


def test_a_volume_spike_reaches_the_ratio_by_the_scripted_minute():
    clock = FakeClock(H / 1000 + 2 * 60)
    with Simulator(fast_config(symbols=20), clock=clock) as sim:
        prev = hour_quote_volume(sim, "LINKUSDT", H - HOUR)
        spike = sim.scenarios.volume_spike(
            "LINKUSDT", at_ms=H + 5 * MINUTE, ratio=4.0, by_minute=10
        )
        assert spike.previous_quote_volume == pytest.approx(prev, rel=1e-9)
        clock.advance(2 * 60)  # 06:04: before the spike
        assert hour_quote_volume(sim, "LINKUSDT", H) < 4.0 * prev * 0.5
        clock.advance(6 * 60)  # 06:10: the scripted minute
        assert hour_quote_volume(sim, "LINKUSDT", H) == pytest.approx(4.0 * prev, rel=1e-6)
        five_min = rest(
            sim,
            "/fapi/v1/klines",
            symbol="LINKUSDT",
            interval="5m",
            startTime=H + 5 * MINUTE,
            limit=1,
        )
        assert float(five_min.json()[0][7]) > 2.5 * prev  # the extra volume sits in 06:05-06:10
        clock.advance(50 * 60)  # 07:00: the hour closed above the ratio
        assert hour_quote_volume(sim, "LINKUSDT", H) > 4.0 * prev


def test_a_volume_spike_shows_in_the_kline_stream_at_the_scripted_time():
    # 600x: one real second is ten simulated minutes.
    config = fast_config(symbols=10, speed=600.0, start_ms=H + MINUTE, kline_period=0.02)
    with Simulator(config) as sim:
        prev = hour_quote_volume(sim, "XRPUSDT", H - HOUR)
        at, by = H + 5 * MINUTE, H + 8 * MINUTE
        sim.scenarios.volume_spike("XRPUSDT", at_ms=at, ratio=5.0, by_minute=8, price_change=0.03)
        ws = connect(sim.ws_url + "/market/ws/xrpusdt@kline_1h")
        try:
            frames = []
            recv_until(ws, lambda m: frames.append(m) or m["E"] >= H + 9 * MINUTE, timeout=5)
        finally:
            ws.close()
    before = [float(f["k"]["q"]) for f in frames if f["E"] < at]
    after = [float(f["k"]["q"]) for f in frames if f["E"] >= by]
    assert before and after
    assert max(before) < 5.0 * prev * 0.5
    assert min(after) >= 5.0 * prev * 0.999
    assert float(frames[-1]["k"]["c"]) > float(frames[-1]["k"]["o"])  # the scripted +3 %


def test_an_oi_jump_ramps_open_interest_by_the_scripted_percentage():
    clock = FakeClock(H / 1000)
    with Simulator(fast_config(symbols=20), clock=clock) as sim:
        at = H + MINUTE
        times = [at - 1000, at + 150_000, at + 300_000, at + 600_000]
        base = [sim.derivatives.open_interest("ETHUSDT", t) for t in times]
        sim.scenarios.oi_jump("ETHUSDT", at_ms=at, pct=0.06, over_minutes=5)
        seen = []
        for t in times:
            clock.set_time(t / 1000)
            body = rest(sim, "/fapi/v1/openInterest", symbol="ETHUSDT").json()
            assert body["time"] == t
            seen.append(float(body["openInterest"]))
    ratios = [s / b for s, b in zip(seen, base, strict=True)]
    assert ratios == pytest.approx([1.0, 1.03, 1.06, 1.06], abs=1e-4)


def test_listing_and_delisting_change_exchange_info_streams_and_rest():
    clock = FakeClock(H / 1000)
    with Simulator(fast_config(symbols=10), clock=clock) as sim:
        sim.scenarios.list_symbol("NEWCOINUSDT", at_ms=H + MINUTE, template="BTCUSDT")
        sim.scenarios.delist("ETHUSDT", at_ms=H + MINUTE)

        def listed() -> set[str]:
            info = rest(sim, "/fapi/v1/exchangeInfo").json()
            return {
                s["symbol"]
                for s in info["symbols"]
                if s["status"] == "TRADING" and s["contractType"] == "PERPETUAL"
            }

        assert "NEWCOINUSDT" not in listed()
        assert "ETHUSDT" in listed()
        assert (
            rest(sim, "/fapi/v1/klines", symbol="NEWCOINUSDT", interval="1m").json()["code"]
            == -1121
        )
        ws = connect(sim.ws_url + "/market/ws/!markPrice@arr@1s")
        try:
            names = {i["s"] for i in recv_until(ws, lambda m: isinstance(m, list))}
            assert "ETHUSDT" in names
            assert "NEWCOINUSDT" not in names
            clock.advance(60)
            names = {i["s"] for i in recv_until(ws, lambda m: m[0]["E"] >= H + MINUTE)}
        finally:
            ws.close()
        assert "NEWCOINUSDT" in names
        assert "ETHUSDT" not in names
        assert "NEWCOINUSDT" in listed()
        assert "ETHUSDT" not in listed()
        assert rest(sim, "/fapi/v1/openInterest", symbol="ETHUSDT").json() == {
            "code": -1121,
            "msg": "Invalid symbol.",
        }
        clock.advance(150)
        rows = rest(sim, "/fapi/v1/klines", symbol="NEWCOINUSDT", interval="1m").json()
        assert [r[0] for r in rows] == [
            H + MINUTE,
            H + 2 * MINUTE,
            H + 3 * MINUTE,
        ]  # nothing before listing


def test_scenarios_load_from_json_with_relative_times():
    clock = FakeClock(H / 1000)
    with Simulator(fast_config(symbols=10), clock=clock) as sim:
        events = sim.scenarios.load(
            [
                {
                    "type": "volume_spike",
                    "symbol": "BTCUSDT",
                    "at": "+5m",
                    "ratio": 3.0,
                    "by_minute": 15,
                },
                {
                    "type": "oi_jump",
                    "symbol": "BTCUSDT",
                    "at": "+1h",
                    "pct": -0.1,
                    "over_minutes": 10,
                },
                {"type": "list", "symbol": "LATEUSDT", "at": "+2h"},
                {"type": "delist", "symbol": "LINKUSDT", "at": H + 3 * HOUR},
            ]
        )
        assert [type(e).__name__ for e in events] == [
            "VolumeSpike",
            "OiJump",
            "Listing",
            "Delisting",
        ]
        assert events[0].at_ms == H + 5 * MINUTE
        assert events[2].at_ms == H + 2 * HOUR
        assert not sim.market.is_listed("LATEUSDT")
        assert sim.market.is_listed("LATEUSDT", H + 2 * HOUR)
