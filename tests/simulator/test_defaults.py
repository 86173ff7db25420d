"""The default configuration is Binance's documented numbers (spec/binance-usdm.md), and the
streams keep their cadences."""

from __future__ import annotations

import dataclasses

from simulator import Simulator, SimulatorConfig
from simulator.testing import fast_config
from tests.simulator.helpers import connect, fixture_lines, json_types, recv_json, recv_until


def test_the_defaults_are_the_documented_limits_and_cadences():
    c = SimulatorConfig()
    # §1.3 connection rules
    assert c.max_streams_per_connection == 1024
    assert c.max_messages_per_second == 10
    assert c.ping_interval == 180.0  # a ping every 3 minutes
    assert c.pong_timeout == 600.0  # disconnect without a pong within 10 minutes
    assert c.connection_lifetime == 86_400.0  # 24 hours
    # §3 REST: 2400 weight per minute, bans from 2 minutes to 3 days
    assert c.weight_limit == 2400
    assert c.ban_base_seconds == 120.0
    assert c.ban_max_seconds == 3 * 86_400.0
    # §1.5-1.7 stream cadences
    assert c.kline_period == 0.25  # <symbol>@kline_<interval>: 250 ms
    assert c.mark_price_period == 3.0  # <symbol>@markPrice and !markPrice@arr: 3000 ms
    assert c.mark_price_fast_period == 1.0  # the @1s variants: 1000 ms
    assert c.ticker_period == 1.0  # !ticker@arr and !miniTicker@arr: 1000 ms
    assert (c.host, c.mode, c.speed) == ("127.0.0.1", "live", 1.0)


def test_the_one_second_mark_price_stream_ticks_once_a_second_by_default():
    config = dataclasses.replace(SimulatorConfig(), symbols=5)
    assert config.mark_price_fast_period == 1.0
    with Simulator(config) as sim:
        ws = connect(sim.ws_url + "/market/ws/btcusdt@markPrice@1s")
        try:
            first, second = (recv_json(ws)["E"] for _ in range(2))
        finally:
            ws.close()
    # Event times on the simulator clock (speed 1). Generous: one late tick on a busy machine
    # shortens or stretches the gap, but it stays far from the 3 s and 0.25 s of other streams.
    assert 500 <= second - first <= 1500, (first, second)


def test_the_per_symbol_mark_price_stream_has_the_real_shape_and_the_slower_period():
    real = fixture_lines("ws_markPrice_samples.jsonl")[3]  # btcusdt@markPrice on /market
    assert real["stream"] == "btcusdt@markPrice"
    config = fast_config(symbols=5, mark_price_period=0.3, mark_price_fast_period=0.1)
    with Simulator(config) as sim:
        ws = connect(sim.ws_url + "/market/stream?streams=btcusdt@markPrice/btcusdt@markPrice@1s")
        try:
            frames: list = []
            recv_until(
                ws,
                lambda m: (
                    frames.append(m) or sum(f["stream"] == real["stream"] for f in frames) == 3
                ),
            )
        finally:
            ws.close()
    slow = [f["data"] for f in frames if f["stream"] == "btcusdt@markPrice"]
    fast = [f for f in frames if f["stream"] == "btcusdt@markPrice@1s"]
    for item in slow:
        assert list(item) == list(real["data"])
        assert json_types(item) == json_types(real["data"])
        assert item["s"] == "BTCUSDT"
    # Three slow frames span two 0.3 s periods; the 0.1 s stream ticks about six times meanwhile.
    assert slow[-1]["E"] - slow[0]["E"] >= 400
    assert len(fast) >= 3
