"""Connection limits: streams per connection, incoming message rate, pong timeout, lifetime."""

from __future__ import annotations

import json

import pytest
import websocket

from simulator import Simulator
from simulator.testing import fast_config
from tests.simulator.helpers import connect, recv_until


def _closed_by_server(ws: websocket.WebSocket, max_frames: int = 500) -> bool:
    """Read (bounded) until the server closes the connection."""
    ws.settimeout(5)
    for _ in range(max_frames):
        try:
            opcode, _frame = ws.recv_data_frame(True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return True
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            ws.shutdown()
            return True
    return False


def test_the_stream_cap_rejects_subscriptions_and_urls_beyond_it():
    with Simulator(fast_config(symbols=5, max_streams_per_connection=3)) as sim:
        ws = connect(sim.ws_url + "/market/stream?streams=btcusdt@markPrice/ethusdt@markPrice")
        try:
            ws.send(
                json.dumps(
                    {"method": "SUBSCRIBE", "params": ["a@markPrice", "b@markPrice"], "id": 1}
                )
            )
            reply = recv_until(ws, lambda m: m.get("id") == 1)
            assert reply["error"] == {"code": 2, "msg": "Invalid request: too many parameters"}
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["a@markPrice"], "id": 2}))
            assert recv_until(ws, lambda m: m.get("id") == 2) == {"result": None, "id": 2}
        finally:
            ws.close()
        too_many = "/".join(f"s{i}usdt@markPrice" for i in range(4))
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            connect(sim.ws_url + "/market/stream?streams=" + too_many)
        assert err.value.status_code == 400


def test_more_than_the_allowed_messages_per_second_disconnects(binance_sim):
    ws = connect(binance_sim.ws_url + "/market/ws")
    try:
        for i in range(11):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        assert _closed_by_server(ws)
    finally:
        ws.close()
    assert binance_sim.ws.wait_for_closed(1, timeout=5)
    closed = binance_sim.ws.closed_connections[-1]
    assert (closed.server_reason, closed.code) == ("rate limit", 1008)


def test_ten_messages_per_second_are_fine(binance_sim):
    ws = connect(binance_sim.ws_url + "/market/ws")
    try:
        for i in range(10):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        assert recv_until(ws, lambda m: m.get("id") == 9)["result"] == []
    finally:
        ws.close()


def test_a_client_that_never_answers_pings_is_disconnected():
    config = fast_config(symbols=5, ping_interval=0.2, pong_timeout=0.4)
    with Simulator(config) as sim:
        ws = connect(sim.ws_url + "/market/ws")  # never reads, so never answers pings
        try:
            assert sim.ws.wait_for_closed(1, timeout=5)
        finally:
            ws.close()
        closed = sim.ws.closed_connections[0]
        assert closed.server_reason == "pong timeout"


def test_a_client_that_answers_pings_stays_connected():
    # Pings every 0.15 s keep the client's pongs under 10 incoming messages per second.
    config = fast_config(symbols=5, ping_interval=0.15, pong_timeout=0.4)
    with Simulator(config) as sim:
        ws = connect(sim.ws_url + "/market/ws/btcusdt@markPrice@1s")
        try:
            pings = 0
            for _ in range(300):  # websocket-client answers each ping while reading
                opcode, _frame = ws.recv_data_frame(True)
                pings += opcode == websocket.ABNF.OPCODE_PING
                if pings >= 8:  # 1.2 s, well past the 0.4 s pong timeout
                    break
            assert pings >= 8
            assert ws.connected
            assert sim.ws.closed_connections == []
        finally:
            ws.close()


def test_connections_are_closed_at_the_end_of_their_lifetime():
    with Simulator(fast_config(symbols=5, connection_lifetime=0.3)) as sim:
        ws = connect(sim.ws_url + "/market/ws/btcusdt@markPrice@1s")
        try:
            assert _closed_by_server(ws)
        finally:
            ws.close()
        assert sim.ws.wait_for_closed(1, timeout=5)
        closed = sim.ws.closed_connections[0]
        assert (closed.server_reason, closed.code) == ("lifetime", 1001)
