"""Every REST fault can be triggered and is observable from a real client."""

from __future__ import annotations

import time

import pytest
import requests


def get(sim, path="/fapi/v1/time", timeout=5.0, session=None):
    return (session or requests).get(sim.rest_url + path, timeout=timeout)


def test_errors_for_n_requests_then_normal_answers(binance_sim):
    with binance_sim.faults.rest_errors(503, count=2) as fault:
        r1, r2, r3 = (get(binance_sim) for _ in range(3))
    assert [r.status_code for r in (r1, r2, r3)] == [503, 503, 200]
    assert r1.json() == {
        "code": -1001,
        "msg": "Internal error; unable to process your request. Please try again.",
    }
    assert "x-mbx-used-weight-1m" in r1.headers
    assert fault.hits == 2
    assert [e.status for e in binance_sim.rest.request_log] == [503, 503, 200]


def test_gateway_errors_are_html_like_the_real_edge(binance_sim):
    with binance_sim.faults.rest_errors(502, count=1):
        r = get(binance_sim)
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")


def test_errors_can_target_one_path(binance_sim):
    with binance_sim.faults.rest_errors(500, path="/fapi/v1/openInterest"):
        assert get(binance_sim, "/fapi/v1/openInterest?symbol=BTCUSDT").status_code == 500
        assert get(binance_sim).status_code == 200


def test_errors_for_a_period_end_by_themselves(binance_sim):
    fault = binance_sim.faults.rest_errors(500, seconds=0.2)
    assert get(binance_sim).status_code == 500
    assert fault.wait(timeout=5)
    assert get(binance_sim).status_code == 200


def test_slow_responses(binance_sim):
    with binance_sim.faults.rest_slow(0.3, count=1):
        t0 = time.monotonic()
        assert get(binance_sim).status_code == 200
        assert time.monotonic() - t0 >= 0.3
        assert get(binance_sim, timeout=0.2).status_code == 200  # count=1: used up
    with binance_sim.faults.rest_slow(1.0), pytest.raises(requests.ReadTimeout):
        get(binance_sim, timeout=0.2)


def test_connection_resets(binance_sim):
    with binance_sim.faults.rest_resets(count=1):
        with pytest.raises(requests.ConnectionError):
            get(binance_sim)
        assert get(binance_sim).status_code == 200
    assert binance_sim.rest.request_log[0].status == 0


def test_timeouts_hold_the_request_unanswered(binance_sim):
    with requests.Session() as session, binance_sim.faults.rest_timeouts(count=1, hold=2.0):
        t0 = time.monotonic()
        with pytest.raises(requests.ReadTimeout):
            get(binance_sim, timeout=0.3, session=session)
        assert time.monotonic() - t0 < 1.5
        assert get(binance_sim, session=session).status_code == 200


def test_stopping_the_simulator_releases_held_requests(binance_sim):
    binance_sim.faults.rest_timeouts(hold=30.0)
    with pytest.raises(requests.ReadTimeout):
        get(binance_sim, timeout=0.2)
    t0 = time.monotonic()
    binance_sim.stop()
    assert time.monotonic() - t0 < 5.0
