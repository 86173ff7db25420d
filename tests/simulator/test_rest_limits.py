"""Weights, the used-weight header, fixed calendar minutes, 429 then escalating 418 bans."""

from __future__ import annotations

import json
import re

import pytest
import requests

from simulator import Simulator
from simulator.testing import fast_config
from supervisors.clock import FakeClock
from tests.simulator.helpers import fixture_path

START = 1_773_900_000.0  # 06:00:00 UTC exactly: a minute boundary


@pytest.fixture
def clock():
    return FakeClock(START + 5)


@pytest.fixture
def sim(clock):
    s = Simulator(
        fast_config(symbols=30, weight_limit=100, ban_after_violations=2), clock=clock
    ).start()
    yield s
    s.stop()


def used(r: requests.Response) -> int:
    return int(r.headers["x-mbx-used-weight-1m"])


@pytest.mark.parametrize(
    ("params", "weight"),
    [
        ({"limit": 99}, 1),
        ({"limit": 100}, 2),
        ({"limit": 499}, 2),
        ({"limit": 500}, 5),
        ({"limit": 1000}, 5),
        ({"limit": 1500}, 10),
        ({}, 5),
    ],
)
def test_klines_weight_follows_the_limit(params, weight):
    with Simulator(fast_config(symbols=5), clock=FakeClock(START)) as sim:
        r = requests.get(
            sim.rest_url + "/fapi/v1/klines",
            params={"symbol": "BTCUSDT", "interval": "1m", **params},
            timeout=5,
        )
        assert r.status_code == 200
        assert used(r) == weight
        assert sim.rest.request_log[-1].weight == weight


def test_endpoint_weights_and_the_header_on_every_response():
    with Simulator(fast_config(symbols=5), clock=FakeClock(START)) as sim:
        expected = [
            ("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, 1),
            ("/fapi/v1/premiumIndex", {}, 10),
            ("/fapi/v1/ticker/24hr", {"symbol": "BTCUSDT"}, 1),
            ("/fapi/v1/ticker/24hr", {}, 40),
            ("/fapi/v1/openInterest", {"symbol": "BTCUSDT"}, 1),
            ("/fapi/v1/exchangeInfo", {}, 1),
            ("/fapi/v1/time", {}, 1),
            ("/fapi/v1/ping", {}, 1),
            ("/fapi/v1/openInterest", {"symbol": "NOPE"}, 1),  # errors cost weight too
        ]
        total = 0
        for path, params, weight in expected:
            r = requests.get(sim.rest_url + path, params=params, timeout=5)
            total += weight
            assert used(r) == total, path
        log = sim.rest.request_log
        assert [(e.path, e.weight, e.used_weight) for e in log][-1] == (
            "/fapi/v1/openInterest",
            1,
            total,
        )
        assert log[-1].status == 400
        assert log[0].params == {"symbol": "BTCUSDT"}
        assert log[0].time_ms == int(START * 1000)


def test_weight_windows_are_calendar_minutes_of_the_simulator_clock(sim, clock):
    url = sim.rest_url + "/fapi/v1/time"
    assert used(requests.get(url, timeout=5)) == 1
    clock.advance(50)  # 06:00:55, same minute
    assert used(requests.get(url, timeout=5)) == 2
    clock.advance(5)  # 06:01:00: a new window
    assert used(requests.get(url, timeout=5)) == 1


def test_another_client_on_the_same_ip_shares_the_budget(sim):
    assert sim.rest.consume_weight(60) == 60
    r = requests.get(sim.rest_url + "/fapi/v1/time", timeout=5)
    assert used(r) == 61


def test_429_with_retry_after_then_418_bans_that_escalate(sim, clock):
    real_429 = json.loads(fixture_path("rest_error_bodies.json").read_text())[0]["body"]
    url = sim.rest_url + "/fapi/v1/premiumIndex"
    sim.rest.consume_weight(95)
    assert requests.get(url, params={"symbol": "BTCUSDT"}, timeout=5).status_code == 200  # 96
    r = requests.get(url, timeout=5)  # weight 10: over the limit
    assert r.status_code == 429
    assert used(r) == 96
    assert r.headers["Retry-After"] == "55"  # 06:00:05 -> next minute
    body = r.json()
    assert body["code"] == -1003
    assert re.sub(r"IP\([^)]*\)", "IP()", body["msg"]).replace("100", "2400") == re.sub(
        r"IP\([^)]*\)", "IP()", json.loads(real_429)["msg"]
    )
    # Keep going during the pause: 429, 429, then a 2-minute ban.
    assert requests.get(url, timeout=5).status_code == 429
    assert requests.get(url, timeout=5).status_code == 429
    r = requests.get(url, timeout=5)
    assert r.status_code == 418
    now_ms = int((START + 5) * 1000)
    assert r.json() == {
        "code": -1003,
        "msg": f"Way too much request weight used; IP banned until {now_ms + 120_000}. "
        "Please use the websocket for live updates to avoid bans.",
    }
    assert r.headers["Retry-After"] == "120"
    clock.advance(60)  # a new minute does not lift a ban
    r = requests.get(sim.rest_url + "/fapi/v1/ping", timeout=5)
    assert (r.status_code, r.headers["Retry-After"]) == (418, "60")
    clock.advance(61)  # the ban is over
    assert requests.get(sim.rest_url + "/fapi/v1/ping", timeout=5).status_code == 200
    # A repeat offender: the second ban lasts twice as long.
    sim.rest.consume_weight(100)
    statuses = [requests.get(url, timeout=5).status_code for _ in range(4)]
    assert statuses == [429, 429, 429, 418]
    assert requests.get(url, timeout=5).headers["Retry-After"] == "240"
    assert [e.status for e in sim.rest.request_log].count(418) == 4


def test_bans_double_for_repeat_offenders_up_to_three_days():
    clock = FakeClock(START)
    config = fast_config(symbols=5, weight_limit=10, ban_after_violations=0)  # default ban lengths
    with Simulator(config, clock=clock) as sim:
        limiter = sim.rest.limiter
        lengths = []
        for _ in range(14):  # bounded: the 13th ban would be 5.7 days, capped; the 14th too
            limiter.consume(10)  # the minute's budget is gone
            assert limiter.check("127.0.0.1", 1).status == 429  # a pause opens ...
            ban = limiter.check("127.0.0.1", 1)  # ... and one more request is banned
            assert ban.status == 418
            assert ban.banned_until_ms is not None
            lengths.append(ban.banned_until_ms - clock.time_ms())
            clock.advance(lengths[-1] / 1000 - 1)
            r = requests.get(sim.rest_url + "/fapi/v1/ping", timeout=5)
            assert (r.status_code, r.headers["Retry-After"]) == (418, "1")
            clock.advance(1)
        assert requests.get(sim.rest_url + "/fapi/v1/ping", timeout=5).status_code == 200
    assert lengths == [min(120 * 2**i, 259_200) * 1000 for i in range(14)]
    assert lengths[0] == 120_000  # 2 minutes, the first ban
    assert lengths[-3] == 245_760_000 < lengths[-2] == lengths[-1] == 259_200_000  # 3 days
