"""JSON requests over the socket: documented replies and error bodies."""

from __future__ import annotations

import json

import pytest

from tests.simulator.helpers import connect, recv_until


@pytest.fixture
def ws(binance_sim):
    conn = connect(binance_sim.ws_url + "/market/ws")
    yield conn
    conn.close()


def ask(ws, payload) -> dict:
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))
    return recv_until(ws, lambda m: isinstance(m, dict) and ("id" in m or "error" in m))


def test_subscribe_list_and_unsubscribe_reply_as_documented(ws):
    assert ask(
        ws, {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@depth"], "id": 1}
    ) == {
        "result": None,
        "id": 1,
    }
    assert ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3}) == {
        "result": ["btcusdt@aggTrade", "btcusdt@depth"],
        "id": 3,
    }
    assert ask(ws, {"method": "UNSUBSCRIBE", "params": ["btcusdt@depth"], "id": 312}) == {
        "result": None,
        "id": 312,
    }
    assert ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 4}) == {
        "result": ["btcusdt@aggTrade"],
        "id": 4,
    }


def test_properties_reply_as_documented_and_switch_the_framing(ws):
    assert ask(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == {
        "result": False,
        "id": 2,
    }
    ask(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 7})
    raw = recv_until(ws, lambda m: m.get("e") == "markPriceUpdate")
    assert raw["s"] == "BTCUSDT"
    assert ask(ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}) == {
        "result": None,
        "id": 5,
    }
    wrapped = recv_until(ws, lambda m: "stream" in m)
    assert wrapped["stream"] == "btcusdt@markPrice@1s"
    assert wrapped["data"]["e"] == "markPriceUpdate"


def test_a_subscription_made_over_the_socket_starts_the_data(ws):
    ask(ws, {"method": "SUBSCRIBE", "params": ["!markPrice@arr@1s"], "id": 9})
    frame = recv_until(ws, lambda m: isinstance(m, list))
    assert {item["e"] for item in frame} == {"markPriceUpdate"}


@pytest.mark.parametrize(
    ("request_", "code", "msg"),
    [
        ("{not json", 3, "Invalid JSON: expected value at line 1 column 2"),
        ({"params": [], "id": 1}, 2, "Invalid request: missing field method at line 1 column 23"),
        (
            {"method": "SUBSCRIBE", "params": ["btcusdt@markPrice"], "id": "abc"},
            2,
            "Invalid request: request ID must be an unsigned integer",
        ),
        (
            {"method": "SUBSCRIBE", "params": ["btcusdt@markPrice"], "id": -1},
            2,
            "Invalid request: request ID must be an unsigned integer",
        ),
        (
            {"method": "SUBSCRIBE", "params": ["not asdfads"], "id": 1},
            2,
            "Invalid request: invalid stream",
        ),
        (
            {"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1},
            1,
            "Invalid value type: expected Boolean",
        ),
        ({"method": "SET_PROPERTY", "params": ["speed", True], "id": 1}, 0, "Unknown property"),
        (
            {"method": "GET_PROPERTY", "params": [5], "id": 1},
            2,
            "Invalid request: property name must be a string",
        ),
        (
            {"method": "GET_PROPERTY", "params": ["combined", "x"], "id": 1},
            2,
            "Invalid request: too many parameters",
        ),
    ],
)
def test_bad_requests_get_the_documented_errors(ws, request_, code, msg):
    reply = ask(ws, request_)
    assert reply["error"] == {"code": code, "msg": msg}


def test_unknown_methods_name_the_expected_variants(ws):
    reply = ask(ws, '{"method":"SUBSCRIBEX","id":1}')
    assert reply["error"]["code"] == 2
    assert reply["error"]["msg"] == (
        "Invalid request: unknown variant SUBSCRIBEX, expected one of SUBSCRIBE, UNSUBSCRIBE, "
        "LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY at line 1 column 22"
    )
    assert reply["id"] == 1


def test_stream_connections_start_with_combined_true(binance_sim):
    ws = connect(binance_sim.ws_url + "/market/stream")
    try:
        assert ask(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 1}) == {
            "result": True,
            "id": 1,
        }
    finally:
        ws.close()
