"""Replay mode plays the real 1h history: candles close exactly at the real values."""

from __future__ import annotations

import csv

import pytest
import requests

from simulator import Simulator
from simulator.testing import fast_config
from supervisors.clock import FakeClock
from tests.simulator.helpers import HISTORY_FIXTURES, connect, recv_until

KLINES = HISTORY_FIXTURES / "um_klines_1h_all-symbols_2026-03-12_2026-03-19.csv"
START = 1_773_342_000_000  # 2026-03-12 19:00 UTC, the first hour of the all-symbols window
HOUR = 3_600_000


@pytest.fixture(scope="module")
def real_rows() -> dict[str, list[list[str]]]:
    if not KLINES.exists():
        pytest.skip("history fixtures not available")
    rows: dict[str, list[list[str]]] = {}
    with KLINES.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            if row[0] in ("BTCUSDT", "ETHUSDT", "CFGUSDT", "HYPEUSDT"):
                rows.setdefault(row[0], []).append(row)
    return rows


def as_fixture_row(symbol: str, k: list) -> list[str]:
    """A REST kline row in the fixture's column layout."""
    return [symbol, str(k[0]), k[1], k[2], k[3], k[4], k[5], k[7], str(k[8]), str(k[6])]


def test_the_whole_replayed_week_matches_the_real_candles_exactly(real_rows):
    clock = FakeClock(START / 1000 + 168 * 3600)  # the end of the window
    config = fast_config(mode="replay", symbols=None)
    with Simulator(config, clock=clock) as sim:
        for symbol in ("BTCUSDT", "ETHUSDT", "HYPEUSDT"):
            rows = requests.get(
                sim.rest_url + "/fapi/v1/klines",
                timeout=5,
                params={
                    "symbol": symbol,
                    "interval": "1h",
                    "startTime": START,
                    "limit": 168,
                },
            ).json()
            assert [as_fixture_row(symbol, k) for k in rows] == real_rows[symbol]


def test_the_open_candle_accumulates_towards_the_real_volume(real_rows):
    real = real_rows["BTCUSDT"][30]
    open_ms = int(real[1])
    clock = FakeClock(open_ms / 1000)
    with Simulator(fast_config(mode="replay", symbols=10), clock=clock) as sim:
        seen = []
        for _ in range(6):
            clock.advance(600)
            k = requests.get(
                sim.rest_url + "/fapi/v1/klines",
                timeout=5,
                params={
                    "symbol": "BTCUSDT",
                    "interval": "1h",
                    "startTime": open_ms,
                    "limit": 1,
                },
            ).json()[0]
            seen.append(float(k[7]))
    assert seen == sorted(seen)
    assert seen[0] < float(real[7])
    assert f"{seen[-1]:.5f}" == real[7]


def test_the_stream_closes_the_hour_at_the_real_values(real_rows):
    real = real_rows["ETHUSDT"][5]
    open_ms = int(real[1])
    # 600x: the last five simulated minutes of the hour take half a real second.
    config = fast_config(
        mode="replay", symbols=5, speed=600.0, start_ms=open_ms + 55 * 60_000, kline_period=0.02
    )
    with Simulator(config) as sim:
        ws = connect(sim.ws_url + "/market/ws/ethusdt@kline_1h")
        try:
            frames = []
            closed = recv_until(ws, lambda m: frames.append(m) or m["k"]["x"], timeout=5)
        finally:
            ws.close()
    k = closed["k"]
    assert (k["t"], k["T"]) == (open_ms, open_ms + HOUR - 1)
    assert [k["o"], k["h"], k["l"], k["c"], k["v"], k["q"], k["n"]] == [*real[2:8], int(real[8])]
    growing = [float(f["k"]["q"]) for f in frames if f["k"]["t"] == open_ms]
    assert growing == sorted(growing)


def test_a_symbol_listed_inside_the_window_appears_at_its_first_real_hour(real_rows):
    first = int(real_rows["CFGUSDT"][0][1])
    clock = FakeClock(first / 1000 - 60)  # a minute before its first hour
    with Simulator(fast_config(mode="replay", symbols=None), clock=clock) as sim:
        assert not sim.market.is_listed("CFGUSDT")
        clock.advance(60)
        assert sim.market.is_listed("CFGUSDT")
        clock.advance(120)
        rows = requests.get(
            sim.rest_url + "/fapi/v1/klines",
            timeout=5,
            params={"symbol": "CFGUSDT", "interval": "1h"},
        ).json()
    assert [r[0] for r in rows] == [first]


OI_4H = HISTORY_FIXTURES / "um_openInterestHist_4h_60-symbols_2026-02-20_2026-03-20.csv"
FUNDING = HISTORY_FIXTURES / "um_fundingRate_60-symbols_2026-02-19_2026-03-20.csv"
FOUR_WEEKS = 1_771_527_600_000  # 2026-02-19 19:00 UTC, the 60-symbol klines' first hour
WINDOW_END = START + 168 * HOUR  # 2026-03-19 19:00 UTC, the end of both klines files


def csv_rows(path, symbols: tuple[str, ...]) -> dict[str, list[list[str]]]:
    """``symbol -> rows`` of a history CSV whose second column is the symbol."""
    if not path.exists():
        pytest.skip("history fixtures not available")
    out: dict[str, list[list[str]]] = {}
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            if row[1] in symbols:
                out.setdefault(row[1], []).append(row)
    return out


@pytest.mark.parametrize("symbol", ["BTCUSDT", "HYPEUSDT"])
def test_open_interest_history_is_the_real_4h_series(symbol):
    real = [r for r in csv_rows(OI_4H, (symbol,))[symbol] if int(r[0]) < WINDOW_END]
    clock = FakeClock(WINDOW_END / 1000)
    with Simulator(fast_config(mode="replay", symbols=None), clock=clock) as sim:
        rows = requests.get(
            sim.rest_url + "/futures/data/openInterestHist",
            timeout=5,
            params={"symbol": symbol, "period": "4h", "startTime": real[0][0], "limit": 500},
        ).json()
    assert [r["timestamp"] for r in rows] == [int(r[0]) for r in real]
    for got, want in zip(rows, real, strict=True):
        # The simulator adds a +-0.04 % wobble to open interest; the value uses its own mark.
        assert float(got["sumOpenInterest"]) == pytest.approx(float(want[2]), rel=5e-4)
        assert float(got["sumOpenInterestValue"]) == pytest.approx(float(want[3]), rel=5e-3)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "HYPEUSDT"])
def test_funding_history_is_the_real_settlements(symbol):
    real = [
        (int(r[0]), r[2])
        for r in csv_rows(FUNDING, (symbol,))[symbol]
        if FOUR_WEEKS <= int(r[0]) < WINDOW_END
    ]
    clock = FakeClock(WINDOW_END / 1000)
    with Simulator(fast_config(mode="replay", symbols=None), clock=clock) as sim:
        rows = requests.get(
            sim.rest_url + "/fapi/v1/fundingRate",
            timeout=5,
            params={"symbol": symbol, "startTime": FOUR_WEEKS, "limit": 1000},
        ).json()
    assert [(r["fundingTime"], r["fundingRate"]) for r in rows] == real
    assert len(real) >= 28 * 3  # at least every 8 h for four weeks
