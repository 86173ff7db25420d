"""The market model: deterministic per seed, sized on demand, real data or a synthetic fallback."""

from __future__ import annotations

import pytest
import requests
from loguru import logger

from simulator import AcceleratedClock, SimClock, Simulator
from simulator.testing import fast_config
from supervisors.clock import FakeClock

NOW = 1_773_900_030.0


def snapshot(sim: Simulator) -> tuple:
    klines = requests.get(
        sim.rest_url + "/fapi/v1/klines",
        timeout=5,
        params={"symbol": "DOGEUSDT", "interval": "5m", "limit": 30},
    ).json()
    marks = requests.get(sim.rest_url + "/fapi/v1/premiumIndex", timeout=5).json()
    oi = requests.get(
        sim.rest_url + "/fapi/v1/openInterest", params={"symbol": "DOGEUSDT"}, timeout=5
    ).json()
    return klines, marks, oi


def test_the_same_seed_gives_the_same_market_and_another_seed_another():
    def run(seed: int) -> tuple:
        with Simulator(fast_config(seed=seed), clock=FakeClock(NOW)) as sim:
            return snapshot(sim)

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a[0] != c[0]


def test_scenarios_are_deterministic_for_a_seed_too():
    hour = int(NOW) // 3600 * 3_600_000

    def run(seed: int, *, scripted: bool = True) -> tuple:
        clock = FakeClock(NOW)
        with Simulator(fast_config(seed=seed), clock=clock) as sim:
            if scripted:
                sim.scenarios.volume_spike(
                    "DOGEUSDT", at_ms=hour + 2 * 60_000, ratio=4, by_minute=10, price_change=0.02
                )
                sim.scenarios.oi_jump("DOGEUSDT", at_ms=hour + 60_000, pct=0.1, over_minutes=3)
            clock.advance(15 * 60)
            oi_hist = requests.get(
                sim.rest_url + "/futures/data/openInterestHist",
                params={"symbol": "DOGEUSDT", "period": "5m", "limit": 6},
                timeout=5,
            ).json()
            return (*snapshot(sim), oi_hist)

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a[0] != c[0]
    assert a[2] != c[2]
    plain = run(7, scripted=False)
    # The scenarios are part of what was compared: they changed the candles and the OI.
    assert a[0][-1] != plain[0][-1]
    assert float(a[2]["openInterest"]) == pytest.approx(float(plain[2]["openInterest"]) * 1.1)


def test_a_650_symbol_universe_is_padded_with_synthetic_names():
    with Simulator(fast_config(symbols=650), clock=FakeClock(NOW)) as sim:
        symbols = sim.market.symbols()
        assert len(symbols) == 650
        assert symbols[:2] == ["BTCUSDT", "ETHUSDT"]
        assert "SIM001USDT" in symbols
        assert "币安人生USDT" in symbols  # the manifest's non-ASCII names trade too
        info = requests.get(sim.rest_url + "/fapi/v1/exchangeInfo", timeout=5).json()
        assert (
            sum(
                s["status"] == "TRADING"
                and s["contractType"] == "PERPETUAL"
                and s["quoteAsset"] == "USDT"
                for s in info["symbols"]
            )
            == 650
        )
        r = requests.get(
            sim.rest_url + "/fapi/v1/ticker/price", params={"symbol": "币安人生USDT"}, timeout=5
        )
        assert r.status_code == 200


def test_prices_move_plausibly_between_ticks():
    clock = FakeClock(NOW)
    with Simulator(fast_config(symbols=30), clock=clock) as sim:
        first = {s: sim.derivatives.mark(s, clock.time_ms()) for s in sim.market.symbols()}
        clock.advance(60)
        later = {s: sim.derivatives.mark(s, clock.time_ms()) for s in sim.market.symbols()}
    moves = [abs(later[s].mark / first[s].mark - 1) for s in first]
    assert max(moves) < 0.05
    assert sum(m > 0 for m in moves) >= 25
    for st in later.values():
        assert abs(st.mark / st.index - 1) < 0.02
        assert abs(st.funding) <= 0.03
        assert st.next_funding_ms > clock.time_ms()


def test_missing_fixtures_fall_back_to_a_synthetic_universe_with_a_log_line(tmp_path):
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        with Simulator(
            fast_config(fixtures_dir=tmp_path, symbols=None), clock=FakeClock(NOW)
        ) as sim:
            assert sim.history.synthetic
            symbols = sim.market.symbols()
            rows = requests.get(
                sim.rest_url + "/fapi/v1/klines",
                timeout=5,
                params={"symbol": "BTCUSDT", "interval": "1h", "limit": 5},
            ).json()
    finally:
        logger.remove(sink)
    assert any("synthetic universe" in line for line in lines)
    assert len(symbols) == 20
    assert len(rows) == 5


def test_the_accelerated_clock_runs_faster_and_the_sim_clock_jumps():
    fast = AcceleratedClock(start=1000.0, speed=3600.0)
    assert fast.time() >= 1000.0
    import threading

    assert not fast.wait(360.0, threading.Event())  # 0.1 real seconds
    assert fast.time() >= 1360.0
    jumpy = SimClock(FakeClock(NOW))
    jumpy.jump(-30)
    assert jumpy.time() == pytest.approx(NOW - 30)
    assert jumpy.monotonic() == FakeClock(NOW).monotonic()
