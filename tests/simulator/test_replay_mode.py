"""Replay-mode knobs: a universe chosen by name, borrowed series that do not depend on the
replay's start, and an accelerated clock whose speed can change on the fly."""

from __future__ import annotations

import threading
import time

import pytest

from simulator import AcceleratedClock, Simulator, SimulatorConfig
from simulator.testing import fast_config
from supervisors.clock import FakeClock
from tests.simulator.helpers import HISTORY_FIXTURES

HOUR = 3_600_000
H12 = 1_773_662_400_000  # 2026-03-16 12:00 UTC, inside the real window
NAMES = ("ETHUSDT", "CFGUSDT", "币安人生USDT", "EDGEUSDT", "NOTLISTEDUSDT")

pytestmark = pytest.mark.skipif(
    not (HISTORY_FIXTURES / "um_klines_1h_all-symbols_2026-03-12_2026-03-19.csv").exists(),
    reason="history fixtures not available",
)


def test_symbol_names_pick_the_universe_in_order():
    sim = Simulator(fast_config(mode="replay", symbol_names=NAMES), clock=FakeClock(H12 / 1000))
    assert [i.symbol for i in sim.market.instruments()] == list(NAMES)
    assert sim.market.instrument("ETHUSDT").template is None
    for borrowed in ("币安人生USDT", "EDGEUSDT", "NOTLISTEDUSDT"):
        assert sim.market.instrument(borrowed).template is not None
    # CFG is listed at 13:00, in replay as in the full universe
    assert sim.market.symbols() == [s for s in NAMES if s != "CFGUSDT"]
    assert "CFGUSDT" in sim.market.symbols(H12 + HOUR)


@pytest.mark.parametrize("names", [(), ("BTCUSDT", "BTCUSDT"), ("BTCUSDT", "")])
def test_symbol_names_must_be_distinct_and_non_empty(names):
    with pytest.raises(ValueError, match="symbol_names"):
        SimulatorConfig(symbol_names=names)


def test_symbol_names_are_kept_as_a_tuple():
    assert SimulatorConfig(symbol_names=["BTCUSDT"]).symbol_names == ("BTCUSDT",)


def test_a_borrowed_series_replays_the_same_whatever_hour_the_replay_starts_at():
    def candles(start_ms: int) -> list[tuple[str | None, int, float, float]]:
        sim = Simulator(
            fast_config(mode="replay", symbol_names=NAMES, seed=29),
            clock=FakeClock(start_ms / 1000),
        )
        inst = sim.market.instrument("币安人生USDT")
        return [
            (inst.template, inst.phase_ms, sim.market.bar(inst, h).q, sim.market.bar(inst, h).c)
            for h in range(H12, H12 + 4 * HOUR, HOUR)
        ]

    assert candles(H12 - 2 * HOUR) == candles(H12) == candles(H12 + HOUR + 12_345)


def test_live_mode_still_anchors_borrowed_series_at_its_start():
    def phase(start_ms: int) -> int:
        sim = Simulator(fast_config(symbol_names=NAMES, seed=29), clock=FakeClock(start_ms / 1000))
        return sim.market.instrument("币安人生USDT").phase_ms

    assert phase(H12 + HOUR) == phase(H12) - HOUR


def test_set_speed_keeps_time_continuous():
    clock = AcceleratedClock(start=1000.0, speed=1.0)
    before, mono_before = clock.time(), clock.monotonic()
    clock.set_speed(3600.0)
    after, mono_after = clock.time(), clock.monotonic()
    assert 0 <= after - before < 60  # at most a few ms of real time, times 3600
    assert 0 <= mono_after - mono_before < 60
    assert clock.speed == 3600.0
    with pytest.raises(ValueError, match="speed"):
        clock.set_speed(0)


def test_a_waiter_follows_a_speed_change():
    clock = AcceleratedClock(start=1000.0, speed=1.0)
    stop = threading.Event()
    done = threading.Event()
    result: list[bool] = []

    def waiter() -> None:
        result.append(clock.wait(3600.0, stop))  # an hour at 1x
        done.set()

    thread = threading.Thread(target=waiter, name="test-waiter")
    started = time.monotonic()
    thread.start()
    clock.set_speed(360_000.0)  # the hour now takes 10 ms
    assert done.wait(5.0)
    thread.join(5.0)
    assert result == [False]
    assert time.monotonic() - started < 2.0
    assert clock.time() >= 1000.0 + 3600.0


def test_a_waiter_still_returns_early_when_its_event_is_set():
    clock = AcceleratedClock(start=1000.0, speed=1.0)
    stop = threading.Event()
    stop.set()
    assert clock.wait(3600.0, stop) is True


def test_the_simulator_changes_the_speed_of_its_own_clock_only():
    sim = Simulator(fast_config(mode="replay", symbols=3, speed=5.0, start_ms=H12))
    sim.set_speed(50.0)
    assert sim.clock.base.speed == 50.0
    given = Simulator(fast_config(mode="replay", symbols=3), clock=FakeClock(H12 / 1000))
    with pytest.raises(TypeError, match="accelerated clock"):
        given.set_speed(50.0)
