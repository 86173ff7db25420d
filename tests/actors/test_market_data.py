"""The market-data path against the simulator: each failure mode of reliability §3 that the
feed, cache and API must detect, report honestly and recover from."""

from __future__ import annotations

import threading

import pytest

from messages import MarkPrices
from simulator import Simulator, SimulatorConfig

from .market_tree import start_market_tree

pytestmark = pytest.mark.usefixtures("_stop_all")


@pytest.fixture
def sim(fixtures_dir):
    config = SimulatorConfig(
        symbols=40, mark_price_fast_period=0.1, mark_price_period=0.3, ticker_period=0.5, seed=7
    )
    simulator = Simulator(config).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def tree(sim):
    market = start_market_tree(sim.ws_url + "/market")
    assert market.boards.prices.wait_for_update(0, timeout=10)
    yield market
    market.stop()


def _feed_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("Feed-")]


def test_the_cache_fills_from_the_real_stream_shapes_and_the_api_serves_it(sim, tree):
    assert tree.wait_until(lambda: len(tree.boards.prices) == 40)
    body = tree.get("/funding/btcusdt").json()
    assert body["symbol"] == "BTCUSDT"
    assert body["markPrice"] > 0
    assert body["indexPrice"] > 0
    assert "fundingRate" in body
    assert body["stale"] is False
    assert tree.wait_until(lambda: tree.health()[0] == 200)
    assert tree.health()[1]["status"] == "healthy"
    assert tree.health()[1]["symbolCount"] == 40


def test_a_feed_on_the_bare_root_gets_nothing_and_is_reported_unhealthy(sim):
    # reliability §3 items 1-2: subscribed, connected, and starved since 2026-04-23
    market = start_market_tree(sim.ws_url)
    try:
        assert market.wait_until(lambda: market.counters().get("feed_stalls_total", 0) >= 1)
        status, health = market.health()
        assert status == 503
        assert any("no data" in reason for reason in health["reasons"]), health
        assert len(market.boards.prices) == 0
    finally:
        market.stop()


def test_a_stalled_connection_is_detected_reported_and_replaced(sim, tree):
    # items 5, 9: connected but silent must escalate to a reconnect, visibly
    with sim.faults.stall():
        assert tree.wait_until(lambda: tree.counters().get("feed_stalls_total", 0) >= 1)
        assert tree.wait_until(lambda: tree.health()[0] == 503)
        assert any("feed-market" in r for r in tree.health()[1]["reasons"])
    frames = tree.boards.prices.stats.frames
    assert tree.boards.prices.wait_for_update(frames, timeout=10)
    assert tree.wait_until(lambda: tree.health()[0] == 200)


def test_values_go_stale_while_the_feed_is_down_and_fresh_again_after(sim):
    # item 19: the API says how old each value is and flags stale ones
    market = start_market_tree(sim.ws_url + "/market", stale_after_s=0.5, stall_after_s=5.0)
    try:
        assert market.boards.prices.wait_for_update(0, timeout=10)
        with sim.faults.stall():
            assert market.wait_until(lambda: market.get("/funding/BTCUSDT").json()["stale"])
            assert market.get("/funding/BTCUSDT").json()["ageSeconds"] > 0.5
        assert market.wait_until(lambda: not market.get("/funding/BTCUSDT").json()["stale"])
    finally:
        market.stop()


def test_event_time_that_stops_advancing_is_a_stall(sim, tree):
    # item 3: a server that keeps sending, but old data
    sim.faults.jump_clock(-3600)
    assert tree.wait_until(lambda: tree.counters().get("feed_stalls_total", 0) >= 1)


def test_dropped_connections_reconnect_and_every_symbol_updates_again(sim, tree):
    # items 4, 7: a fresh connection after a drop, and all channels deliver again
    assert tree.wait_until(lambda: len(tree.boards.prices) == 40)
    for _ in range(5):
        connects = tree.counters().get("feed_connects_total", 0)
        assert sim.faults.drop_connections() >= 1
        assert tree.wait_until(lambda c=connects: tree.counters().get("feed_connects_total", 0) > c)
    cutoff = max(r.received_mono for r in tree.boards.prices.records().values())
    assert tree.wait_until(
        lambda: all(r.received_mono > cutoff for r in tree.boards.prices.records().values())
    )
    assert len(_feed_threads()) <= 2


def test_a_peer_that_stops_answering_pings_is_dropped_by_the_pong_timeout(sim, tree):
    # item 10
    with sim.faults.stop_pings(send=True, answer=True):
        assert tree.wait_until(lambda: tree.counters().get("feed_disconnects_total", 0) >= 1)
    connects = tree.counters()["feed_connects_total"]
    assert connects >= 1


def test_the_servers_lifetime_cut_is_survived(fixtures_dir):
    # item 3 (24 h disconnect), at test scale
    config = SimulatorConfig(
        symbols=10, mark_price_fast_period=0.1, connection_lifetime=0.6, seed=1
    )
    with Simulator(config) as simulator:
        market = start_market_tree(simulator.ws_url + "/market", stall_after_s=3.0)
        try:
            assert market.wait_until(lambda: market.counters().get("feed_connects_total", 0) >= 3)
            frames = market.boards.prices.stats.frames
            assert market.boards.prices.wait_for_update(frames, timeout=5)
        finally:
            market.stop()


def test_planned_rotation_replaces_the_connection_with_no_gap(sim):
    # item 21: open the new connection, wait for its data, then close the old one
    market = start_market_tree(sim.ws_url + "/market", rotate_after_s=0.8, rotation_grace_s=5.0)
    try:
        assert market.boards.prices.wait_for_update(0, timeout=10)
        worst = 0.0
        pause = threading.Event()
        for _ in range(60):  # 3 s of observation, at most
            ages = market.get("/funding/BTCUSDT").json()["ageSeconds"]
            worst = max(worst, ages)
            if market.counters().get("feed_rotations_total", 0) >= 2:
                break
            pause.wait(0.05)
        assert market.counters().get("feed_rotations_total", 0) >= 2
        assert worst < 0.5, f"freshness gap of {worst} s during rotation"
        assert market.counters().get("feed_stalls_total", 0) == 0
    finally:
        market.stop()


def test_no_false_stalls_while_data_flows(sim, tree):
    # item 13
    frames = tree.boards.prices.stats.frames
    assert tree.wait_until(lambda: tree.boards.prices.stats.frames >= frames + 20)
    assert tree.counters().get("feed_stalls_total", 0) == 0
    assert tree.counters().get("feed_disconnects_total", 0) == 0


def test_feed_status_reports_data_age_for_lag_monitoring(sim, tree):
    # item 14: lag = now - exchange event time, visible in /health
    assert tree.wait_until(lambda: "dataAgeSeconds" in tree.health()[1]["feeds"]["feed-market"])
    assert tree.health()[1]["feeds"]["feed-market"]["dataAgeSeconds"] < 1.0


def test_malformed_frames_are_counted_and_never_fatal(sim, tree):
    with sim.faults.malformed_frames("truncated_json", count=5):
        assert tree.wait_until(lambda: tree.counters().get("feed_rejected_total", 0) >= 5)
    frames = tree.boards.prices.stats.frames
    assert tree.boards.prices.wait_for_update(frames, timeout=5)
    assert tree.handle.health().children[2].restarts == 0


def test_a_refused_handshake_backs_off_long_instead_of_storming(sim):
    # item 16: 429 on the handshake must not become a reconnect storm
    with sim.faults.refuse_handshakes(429):
        market = start_market_tree(sim.ws_url + "/market", refused_backoff_s=0.5)
        try:
            assert market.wait_until(
                lambda: market.counters().get("feed_disconnects_total", 0) >= 1
            )
            pause = threading.Event()
            pause.wait(1.2)
            assert market.counters().get("feed_disconnects_total", 0) <= 3
        finally:
            market.stop()


def test_a_crash_of_the_cache_restarts_it_and_the_api_keeps_serving(sim, tree):
    assert tree.wait_until(lambda: len(tree.boards.prices) == 40)
    poison = MarkPrices(
        symbols=("BADUSDT",),
        event_times_ms=("not-a-time",),
        mark_prices=(1.0,),
        index_prices=(None,),
        funding_rates=(None,),
        next_funding_times_ms=(None,),
        received_ms=1,
    )
    tree.handle.registry.tell("price-cache", poison)
    assert tree.wait_until(lambda: tree.handle.health().children[0].restarts == 1)
    assert tree.get("/funding/BTCUSDT").status_code == 200
    frames = tree.boards.prices.stats.frames
    assert tree.boards.prices.wait_for_update(frames, timeout=5)
    assert tree.handle.health().children[0].state == "running"
