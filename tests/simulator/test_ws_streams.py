"""Stream routing (/market vs /public vs the bare root) and stream payload shapes."""

from __future__ import annotations

import json

import pytest
import requests
import websocket

from simulator import Simulator
from simulator.testing import fast_config
from supervisors.clock import FakeClock
from tests.simulator.helpers import (
    connect,
    fixture_lines,
    json_types,
    recv_json,
    recv_until,
    silent_for,
)


def test_market_combined_stream_wraps_every_symbol_in_the_real_mark_price_shape(binance_sim):
    real = fixture_lines("ws_markPrice_samples.jsonl")[3]  # 2026-08-08, on /market
    ws = connect(binance_sim.ws_url + "/market/stream?streams=!markPrice@arr")
    try:
        msg = recv_json(ws)
    finally:
        ws.close()
    assert list(msg) == ["stream", "data"]
    assert msg["stream"] == "!markPrice@arr"
    assert [item["s"] for item in msg["data"]] == binance_sim.market.symbols()
    for item in msg["data"]:
        assert list(item) == list(real["data"])
        assert json_types(item) == json_types(real["data"])
        assert item["p"] == item["ap"]
        assert item["T"] % 3_600_000 == 0


def test_market_raw_streams_in_the_path_deliver_bare_payloads(binance_sim):
    ws = connect(binance_sim.ws_url + "/market/ws/btcusdt@markPrice@1s/ethusdt@markPrice@1s")
    try:
        seen = {recv_json(ws)["s"] for _ in range(6)}
    finally:
        ws.close()
    assert seen == {"BTCUSDT", "ETHUSDT"}


@pytest.mark.parametrize(
    "path",
    [
        "/ws/!markPrice@arr@1s",
        "/stream?streams=!markPrice@arr@1s/btcusdt@kline_1m",
        "/public/stream?streams=!markPrice@arr@1s",
    ],
)
def test_bare_root_and_public_accept_the_connection_but_deliver_no_market_data(binance_sim, path):
    ws = connect(binance_sim.ws_url + path)
    try:
        assert ws.connected
        assert silent_for(ws, 0.5)  # five 0.1 s periods of !markPrice@arr@1s, none arrives
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        ws.settimeout(5)
        assert recv_json(ws)["id"] == 1  # the connection itself works
    finally:
        ws.close()


def test_unknown_paths_are_refused(binance_sim):
    with pytest.raises(websocket.WebSocketBadStatusException) as err:
        connect(binance_sim.ws_url + "/nope")
    assert err.value.status_code == 404


def test_ticker_array_items_have_the_real_ticker_shape(binance_sim):
    real = fixture_lines("ws_ticker_samples.jsonl")[1]["data"][0]
    ws = connect(binance_sim.ws_url + "/market/stream?streams=!ticker@arr")
    try:
        msg = recv_json(ws)
    finally:
        ws.close()
    assert msg["stream"] == "!ticker@arr"
    assert len(msg["data"]) == len(binance_sim.market.symbols())
    for item in msg["data"]:
        assert list(item) == list(real)
        assert json_types(item) == json_types(real)


def test_kline_updates_have_the_real_shape_and_grow_within_the_candle(binance_sim):
    real = fixture_lines("ws_kline_samples_misc.jsonl")[2]
    ws = connect(binance_sim.ws_url + "/market/stream?streams=btcusdt@kline_1h")
    try:
        frames = [recv_json(ws) for _ in range(6)]
    finally:
        ws.close()
    for f in frames:
        assert f["stream"] == "btcusdt@kline_1h"
        assert list(f["data"]) == list(real["data"])
        assert list(f["data"]["k"]) == list(real["data"]["k"])
        assert json_types(f["data"]["k"]) == {**json_types(real["data"]["k"])}
        assert f["data"]["k"]["x"] is False
    current = frames[-1]["data"]["k"]["t"]  # ignore frames of a candle that just closed
    volumes = [float(f["data"]["k"]["q"]) for f in frames if f["data"]["k"]["t"] == current]
    assert volumes == sorted(volumes)


def test_a_closed_candle_is_sent_once_with_x_true_at_the_boundary():
    # 60 s of simulated time per real second: a 1m candle closes every second.
    config = fast_config(symbols=5, speed=60.0, start_ms=1_773_900_030_000)
    with Simulator(config) as sim:
        ws = connect(sim.ws_url + "/market/ws/ethusdt@kline_1m")
        try:
            closed = recv_until(ws, lambda m: m["k"]["x"], timeout=5)
            after = recv_json(ws)
        finally:
            ws.close()
    assert closed["k"]["t"] == 1_773_900_000_000
    assert closed["k"]["T"] == 1_773_900_059_999
    assert after["k"]["t"] == 1_773_900_060_000
    assert after["k"]["x"] is False


def test_stream_values_agree_with_rest_at_the_same_instant():
    with Simulator(fast_config(symbols=5), clock=FakeClock(1_773_900_030.0)) as sim:
        ws = connect(sim.ws_url + "/market/ws/btcusdt@markPrice@1s")
        try:
            frame = recv_json(ws)
        finally:
            ws.close()
        rest = requests.get(
            sim.rest_url + "/fapi/v1/premiumIndex", params={"symbol": "BTCUSDT"}, timeout=5
        ).json()
    assert (frame["p"], frame["i"], frame["r"], frame["T"]) == (
        rest["markPrice"],
        rest["indexPrice"],
        rest["lastFundingRate"],
        rest["nextFundingTime"],
    )


H = 1_773_900_000_000  # 2026-03-19 06:00 UTC, a whole hour
MIN = 60_000


def test_a_new_subscriber_starts_with_the_current_candle_not_the_ones_closed_while_idle():
    clock = FakeClock(H / 1000 + 30)
    with Simulator(fast_config(symbols=5), clock=clock) as sim:
        ws = connect(sim.ws_url + "/market/ws/ethusdt@kline_1m")
        try:
            k = recv_json(ws)["k"]
            assert (k["t"], k["x"]) == (H, False)
        finally:
            ws.close()
        assert sim.ws.wait_for_closed(1, timeout=5)
        assert sim.publisher.wait_for_ticks(2, timeout=5)  # a round saw nobody subscribed
        clock.advance(5 * 60)  # five candles close with nobody listening
        ws = connect(sim.ws_url + "/market/ws/ethusdt@kline_1m")
        try:
            first = [recv_json(ws)["k"] for _ in range(3)]
        finally:
            ws.close()
    assert [(k["t"], k["x"]) for k in first] == [(H + 5 * MIN, False)] * 3


def test_a_forward_clock_jump_sends_one_closed_candle_then_the_current_one():
    clock = FakeClock(H / 1000 + 30)
    with Simulator(fast_config(symbols=5), clock=clock) as sim:
        ws = connect(sim.ws_url + "/market/ws/ethusdt@kline_1m")
        try:
            assert recv_json(ws)["k"]["t"] == H
            clock.advance(5 * 60)  # the candle open at H closes; four more pass unseen
            frames: list = []
            recv_until(ws, lambda m: frames.append(m["k"]) or m["k"]["t"] == H + 5 * MIN)
        finally:
            ws.close()
    closed = [(k["t"], k["T"]) for k in frames if k["x"]]
    assert closed == [(H, H + MIN - 1)]
    assert frames[-2]["x"] is True  # the closed candle comes right before the current one
    assert {k["t"] for k in frames} == {H, H + 5 * MIN}


def test_a_backward_clock_jump_moves_server_time_back_and_closes_no_candle():
    clock = FakeClock(H / 1000 + 30)
    with Simulator(fast_config(symbols=5), clock=clock) as sim:
        ws = connect(sim.ws_url + "/market/ws/ethusdt@kline_1m")
        try:
            assert recv_json(ws)["k"]["t"] == H
            sim.faults.jump_clock(-10 * 60)
            frames: list = []
            recv_until(ws, lambda m: frames.append(m["k"]) or m["k"]["t"] == H - 10 * MIN)
            after = [recv_json(ws)["k"] for _ in range(3)]
        finally:
            ws.close()
        server_time = requests.get(sim.rest_url + "/fapi/v1/time", timeout=5).json()
    assert server_time == {"serverTime": H + 30_000 - 10 * MIN}
    assert not any(k["x"] for k in frames + after)
    assert {k["t"] for k in after} == {H - 10 * MIN}
