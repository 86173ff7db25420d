"""The pure half of the REST gateway: weights, headers, error bodies, pauses, rate limits."""

from __future__ import annotations

import pytest

from actors._rest_client import (
    RestTimeouts,
    banned_until_ms,
    endpoint_weight,
    error_body,
    pause_until_ms,
    request_weight_limit,
    retry_after_s,
    used_weight,
)

NOW = 1_773_900_012_345  # 12.345 s into a minute


@pytest.mark.parametrize(
    ("path", "params", "weight"),
    [
        ("/fapi/v1/klines", {"limit": "1"}, 1),
        ("/fapi/v1/klines", {"limit": "99"}, 1),
        ("/fapi/v1/klines", {"limit": "100"}, 2),
        ("/fapi/v1/klines", {"limit": "499"}, 2),
        ("/fapi/v1/klines", {"limit": "500"}, 5),
        ("/fapi/v1/klines", {"limit": "1000"}, 5),
        ("/fapi/v1/klines", {"limit": "1001"}, 10),
        ("/fapi/v1/klines", {"limit": "1500"}, 10),
        ("/fapi/v1/klines", {}, 5),
        ("/fapi/v1/klines", {"limit": "abc"}, 5),
        ("/fapi/v1/markPriceKlines", {"limit": "30"}, 1),
        ("/fapi/v1/openInterest", {"symbol": "BTCUSDT"}, 1),
        ("/fapi/v1/exchangeInfo", {}, 1),
        ("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, 1),
        ("/fapi/v1/premiumIndex", {}, 10),
        ("/fapi/v1/ticker/24hr", {"symbol": "BTCUSDT"}, 1),
        ("/fapi/v1/ticker/24hr", {}, 40),
        ("/fapi/v1/time", {}, 1),
        ("/fapi/v1/ping", {}, 1),
        ("/fapi/v1/depth", {"limit": "1000"}, 20),
        ("/futures/data/openInterestHist", {"symbol": "BTCUSDT", "period": "5m"}, 0),
    ],
)
def test_endpoint_weights_follow_the_binance_tables(path, params, weight):
    assert endpoint_weight(path, params) == weight


def test_an_unknown_endpoint_has_no_weight():
    assert endpoint_weight("/fapi/v1/order", {}) is None


def test_the_used_weight_header_is_read_case_insensitively():
    assert used_weight({"X-MBX-USED-WEIGHT-1m": "17"}) == 17
    assert used_weight({"x-mbx-used-weight-1M": "18"}) == 18
    assert used_weight({"X-MBX-USED-WEIGHT-1M": " 19 "}) == 19
    assert used_weight({"Content-Type": "application/json"}) is None
    assert used_weight({"x-mbx-used-weight-1m": "lots"}) is None


def test_retry_after_is_seconds_and_anything_else_is_ignored():
    assert retry_after_s({"Retry-After": "3"}) == 3.0
    assert retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after_s({"Retry-After": "-1"}) is None
    assert retry_after_s({}) is None


def test_binance_error_bodies_are_parsed_and_other_bodies_are_not():
    assert error_body(b'{"code":-1121,"msg":"Invalid symbol."}') == (-1121, "Invalid symbol.")
    assert error_body(b"<html>502 Bad Gateway</html>") is None
    assert error_body(b'{"code":"x","msg":"y"}') is None
    assert error_body(b'{"code":true,"msg":"y"}') is None
    assert error_body(b"[1,2]") is None
    assert error_body(b"") is None
    assert error_body(None) is None


def test_the_ban_end_is_read_from_both_real_message_forms():
    weight = "Way too much request weight used; IP banned until 1660090423228. Please use ..."
    requests_ = "Way too many requests; IP(***) banned until 1615183669840. Please use ..."
    assert banned_until_ms(weight) == 1660090423228
    assert banned_until_ms(requests_) == 1615183669840
    assert banned_until_ms("Too many requests; current limit is 2400") is None


def test_a_429_pauses_for_retry_after_or_else_until_the_next_minute():
    assert pause_until_ms(429, 3.0, "Too many requests", NOW) == NOW + 3000
    next_minute = NOW - NOW % 60_000 + 60_000
    assert pause_until_ms(429, None, "Too many requests", NOW) == next_minute


def test_a_418_freezes_until_the_later_of_retry_after_and_the_body_else_two_minutes():
    body_until = NOW + 90_000
    msg = f"Way too much request weight used; IP banned until {body_until}. Please ..."
    assert pause_until_ms(418, 30.0, msg, NOW) == body_until
    assert pause_until_ms(418, 120.0, msg, NOW) == NOW + 120_000
    assert pause_until_ms(418, None, msg, NOW) == body_until
    assert pause_until_ms(418, None, "banned", NOW) == NOW + 120_000


def test_the_request_weight_limit_is_read_from_exchange_info_rate_limits():
    weight = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1}
    orders = {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}
    info = {
        "rateLimits": [orders, {**weight, "intervalNum": 5, "limit": 9}, {**weight, "limit": 4800}]
    }
    assert request_weight_limit(info) == 4800
    assert request_weight_limit({"rateLimits": []}) is None
    assert request_weight_limit([]) is None
    odd = {"rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "limit": "x"}]}
    assert request_weight_limit(odd) is None


def test_timeouts_must_be_positive():
    with pytest.raises(ValueError):
        RestTimeouts(connect_s=0)
