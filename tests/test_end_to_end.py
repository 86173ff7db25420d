"""The whole tree against the simulator and the backend double: a scripted volume spike
becomes exactly one SPIKE delivered to the backend, with the exact payload shape, within a
second of the crossing, and is stored in the local SQLite sink."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from simulator import BackendDouble, Simulator, SimulatorConfig
from simulator.backend import VOLUME_ALERTS
from supervisors.app import Boards, build_tree
from supervisors.config import Config
from supervisors.root import start_tree

pytestmark = pytest.mark.usefixtures("_stop_all")

SYMBOL = "ETHUSDT"
REQUIRED = {
    "symbol",
    "asset",
    "currentVolume",
    "previousVolume",
    "volumeRatio",
    "message",
    "timestamp",
    "hourTimestamp",
}


def _wait(predicate, timeout=20.0, step=0.05):
    pause = threading.Event()
    for _ in range(int(timeout / step)):
        if predicate():
            return True
        pause.wait(step)
    return bool(predicate())


@pytest.fixture
def world(fixtures_dir, tmp_path):
    sim = Simulator(
        SimulatorConfig(symbols=30, kline_period=0.1, mark_price_fast_period=0.2, seed=11)
    ).start()
    backend = BackendDouble(api_key="ingest-key").start()
    config = Config().replace(
        funding_api_port=0,
        health_log_interval_s=0.0,
        volspike_api_url=backend.url,
        volspike_api_key="ingest-key",
        state_dir=tmp_path,
    )
    boards = Boards()
    handle = start_tree(
        build_tree(config, boards, ws_base_url=sim.ws_url + "/market", rest_base_url=sim.rest_url),
        server_time=boards.server_time,
    )
    assert handle.started
    yield sim, backend, handle, tmp_path, boards
    assert handle.shutdown("test over", timeout=30) == 0
    backend.stop()
    sim.stop()


def test_a_scripted_spike_reaches_the_backend_once_within_a_second_with_the_exact_shape(world):
    sim, backend, handle, state_dir, boards = world
    ask = handle.registry.ask
    assert _wait(lambda: SYMBOL in ask("volume-scanner", "universe", timeout=5))
    assert _wait(lambda: SYMBOL not in ask("volume-scanner", "needs_backfill", timeout=5))
    shard = boards.status.status
    assert _wait(
        lambda: shard("feed-klines-0") is not None and shard("feed-klines-0").data_age_s is not None
    )
    called_at = time.time()
    spike = sim.scenarios.volume_spike(SYMBOL, ratio=8.0, by_minute=0.01, min_quote_volume=5e6)
    # The extra volume ramps linearly from at_ms to by_ms (simulated ms, 1:1 with real time);
    # the rule's thresholds are crossed part-way through the ramp.
    threshold = max(3 * spike.previous_quote_volume, 3e6)
    before = spike.target_quote_volume - spike.extra_quote_volume
    fraction = min(1.0, max(0.0, (threshold - before) / spike.extra_quote_volume))
    crossing_s = called_at + fraction * (spike.by_ms - spike.at_ms) / 1000

    def mine_received():
        return [r for r in backend.received(VOLUME_ALERTS) if r.body["symbol"] == SYMBOL]

    assert _wait(lambda: len(mine_received()) >= 1, timeout=15), (
        ask("volume-scanner", "counters", timeout=5),
        backend.rejected(VOLUME_ALERTS),
        sim.clock.time_ms() - time.time() * 1000,
    )
    mine = [r.body for r in mine_received()]
    assert len(mine) == 1
    payload = mine[0]
    assert set(payload) >= REQUIRED
    assert payload["alertType"] == "SPIKE"
    assert payload["isUpdate"] is False
    assert payload["volumeRatio"] >= 3
    assert payload["currentVolume"] >= 3e6
    assert payload["asset"] == "ETH"
    assert None not in payload.values()
    assert "VOLUME SPIKE!" in payload["message"]
    latency = mine_received()[0].at - crossing_s
    print(f"crossing -> backend: {latency * 1000:.0f} ms")
    assert latency < 1.0, f"alert arrived {latency:.2f} s after the crossing"

    # kept in the local SQLite sink too, queryable with sqlite3
    def stored():
        with sqlite3.connect(state_dir / "volspike.db") as db:
            return db.execute(
                "select alert_type from volume_alerts where symbol = ?", (SYMBOL,)
            ).fetchall()

    assert _wait(lambda: stored() == [("SPIKE",)])
