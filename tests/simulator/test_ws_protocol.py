"""The protocol core without I/O: URL routing, stream names, delivery rules, the Clock protocol."""

from __future__ import annotations

import pytest

from simulator import SimClock
from simulator.clock import AcceleratedClock
from simulator.ws_protocol import Route, delivers, is_valid_stream, parse_route
from supervisors.clock import Clock, FakeClock


@pytest.mark.parametrize(
    ("target", "route"),
    [
        (
            "/market/ws/btcusdt@markPrice/ethusdt@markPrice",
            Route("market", combined=False, streams=("btcusdt@markPrice", "ethusdt@markPrice")),
        ),
        (
            "/market/stream?streams=!markPrice@arr/btcusdt@kline_1m",
            Route("market", combined=True, streams=("!markPrice@arr", "btcusdt@kline_1m")),
        ),
        ("/public/ws", Route("public", combined=False, streams=())),
        ("/ws/btcusdt@depth", Route("root", combined=False, streams=("btcusdt@depth",))),
        (
            "/stream?streams=btcusdt@bookTicker",
            Route("root", combined=True, streams=("btcusdt@bookTicker",)),
        ),
        (
            "/market/ws/%E9%BE%99%E8%99%BEusdt@markPrice",
            Route("market", combined=False, streams=("龙虾usdt@markPrice",)),
        ),
        ("/private/ws", None),
        ("/", None),
    ],
)
def test_routes(target, route):
    assert parse_route(target) == route


def test_market_streams_are_delivered_only_under_market():
    for name in ("!markPrice@arr", "btcusdt@markPrice@1s", "btcusdt@kline_1h", "!ticker@arr"):
        assert delivers("market", name)
        assert not delivers("root", name)
        assert not delivers("public", name)
    for name in ("btcusdt@depth", "btcusdt@bookTicker", "btcusdt@depth5@100ms"):
        assert not delivers("market", name)
        assert delivers("root", name)
        assert delivers("public", name)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("!markPrice@arr@1s", True),
        ("nopeusdt@markPrice", True),
        ("btcusdt@kline_1m", True),
        ("not asdfads", False),
        ("btcusdt", False),
        ("!markPrice", False),
        ("@markPrice", False),
    ],
)
def test_stream_name_syntax(name, valid):
    assert is_valid_stream(name) is valid


def test_the_simulator_clocks_implement_the_project_clock_protocol():
    assert isinstance(AcceleratedClock(), Clock)
    assert isinstance(SimClock(FakeClock()), Clock)
