from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests

from actors._delivery_policy import (
    TELEGRAM_MAX_CHARS,
    ChatRateLimiter,
    RetryPolicy,
    TokenBucket,
    Verdict,
    classify_exception,
    classify_response,
    merge_texts,
    parse_retry_after,
    telegram_length,
    telegram_retry_after,
)
from messages.errors import CodecError, DeliveryError
from supervisors.backoff import BackoffPolicy

NOW = 1_764_943_200_000  # 2025-12-05T14:00:00Z


# --- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"), (201, "delivered"), (204, "delivered"),
        (400, "failed"), (401, "failed"), (403, "failed"), (404, "failed"), (409, "failed"),
        (413, "failed"), (422, "failed"),
        (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"),
        (504, "retry"),
        (100, "failed"), (301, "failed"), (302, "failed"),
    ],
)  # fmt: skip
def test_http_statuses_are_classified(status, outcome):
    verdict = classify_response(status, now_ms=NOW)
    assert (verdict.outcome, verdict.status) == (outcome, status)


def test_the_reason_carries_the_status_and_a_short_body():
    verdict = classify_response(400, now_ms=NOW, body=b'{"error":"Invalid alert data"}\n' * 20)
    assert verdict.reason.startswith('HTTP 400 {"error":"Invalid alert data"}')
    assert len(verdict.reason) <= len("HTTP 400 ") + 120


@pytest.mark.parametrize(
    "exc",
    [
        requests.ConnectionError("refused"),
        requests.ConnectTimeout("connect"),
        requests.ReadTimeout("read"),
        requests.exceptions.ChunkedEncodingError("cut"),
        ConnectionResetError(),
        TimeoutError(),
        OSError("network unreachable"),
        DeliveryError("later", retryable=True),
    ],
)
def test_network_failures_and_timeouts_are_retried(exc):
    assert classify_exception(exc).outcome == "retry"


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.InvalidURL("bad"),
        requests.exceptions.MissingSchema("no scheme"),
        requests.exceptions.InvalidHeader("bad header"),
        ValueError("x"),
        TypeError("x"),
        CodecError("old payload"),
        DeliveryError("never", retryable=False),
        RuntimeError("bug"),
    ],
)
def test_configuration_and_programming_errors_are_permanent(exc):
    verdict = classify_exception(exc)
    assert verdict.outcome == "failed"
    assert verdict.reason.startswith(type(exc).__name__)


# --- Retry-After ------------------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_an_http_date_is_honoured():
    assert classify_response(429, now_ms=NOW, headers={"Retry-After": "17"}).retry_after_s == 17
    when = format_datetime(datetime.fromtimestamp(NOW / 1000 + 42, UTC), usegmt=True)
    verdict = classify_response(503, now_ms=NOW, headers={"retry-after": when})
    assert verdict == Verdict("retry", "HTTP 503", 503, 42.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0  # in the past
    for garbage in (None, "", "soon", "nan", "-inf"):
        assert parse_retry_after(garbage, NOW) in (None, 0.0)
    assert parse_retry_after("nan", NOW) is None


def test_telegrams_retry_after_is_read_from_the_body():
    body = b'{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 35",'
    body += b'"parameters":{"retry_after":35}}'
    verdict = classify_response(429, now_ms=NOW, body=body)
    assert (verdict.outcome, verdict.retry_after_s) == ("retry", 35.0)
    assert telegram_retry_after({"parameters": {"retry_after": 2.5}}) == 2.5
    junk = (
        None, b"not json", "[]", {"parameters": 3}, {"parameters": {"retry_after": "x"}},
        {"parameters": {"retry_after": True}}, {"parameters": {"retry_after": -1}},
    )  # fmt: skip
    for body in junk:
        assert telegram_retry_after(body) is None


def test_a_header_wins_over_the_body_and_a_4xx_never_gets_a_wait():
    verdict = classify_response(
        429, now_ms=NOW, headers={"Retry-After": "3"}, body={"parameters": {"retry_after": 99}}
    )
    assert verdict.retry_after_s == 3
    assert classify_response(400, now_ms=NOW, headers={"Retry-After": "3"}).retry_after_s is None


# --- backoff ----------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_never_exceeds_the_cap():
    policy = RetryPolicy()
    shape = policy.backoff
    for attempt, r in itertools.product(range(40), (0.0, 0.25, 0.5, 0.999)):
        base = min(shape.max_s, shape.initial_s * shape.multiplier ** min(attempt, 20))
        delay = policy.delay_s(attempt, r)
        assert base * (1 - shape.jitter) - 1e-9 <= delay <= min(shape.max_s, base * 1.2) + 1e-9
        assert delay <= 300.0
    assert policy.delay_s(0, 0.5) == 1.0
    assert policy.delay_s(3, 0.5) == 8.0
    assert policy.delay_s(1000, 0.999) == 300.0
    assert policy.next_attempt_ms(NOW, 2, 0.5) == NOW + 4_000


def test_a_server_wait_is_honoured_exactly_but_capped():
    policy = RetryPolicy(backoff=BackoffPolicy(initial_s=10, max_s=60), max_retry_after_s=600)
    assert policy.next_attempt_ms(NOW, 0, 0.5, retry_after_s=0.2) == NOW + 200
    assert policy.next_attempt_ms(NOW, 5, 0.5, retry_after_s=35) == NOW + 35_000
    assert policy.next_attempt_ms(NOW, 0, 0.5, retry_after_s=86_400) == NOW + 600_000


# --- Telegram rate limit ----------------------------------------------------------------------


def test_one_chat_gets_at_most_one_message_per_second_and_twenty_per_minute():
    limiter = ChatRateLimiter()
    granted = [t for t in range(0, 300_000, 100) if limiter.acquire("chat", NOW + t) == 0.0]
    assert all(b - a >= 1000 for a, b in itertools.pairwise(granted))
    for start in range(0, 300_000, 1000):
        assert sum(start <= t < start + 60_000 for t in granted) <= 20
    assert len(granted) >= 5 + 15 * 4  # the sustained rate is still used


def test_the_wait_says_when_to_ask_again_and_chats_are_independent():
    limiter = ChatRateLimiter()
    assert limiter.acquire("a", NOW) == 0.0
    assert limiter.acquire("a", NOW + 250) == pytest.approx(0.75)
    assert limiter.acquire("b", NOW + 250) == 0.0
    assert limiter.acquire("a", NOW + 1000) == 0.0


def test_a_429_pauses_only_that_chat_for_retry_after():
    limiter = ChatRateLimiter()
    limiter.pause("a", NOW, 35)
    assert limiter.acquire("a", NOW + 5_000) == 30.0
    assert limiter.acquire("b", NOW + 5_000) == 0.0
    limiter.pause("a", NOW, 1)  # a shorter pause never shortens a longer one
    assert limiter.acquire("a", NOW + 34_999) > 0
    assert limiter.acquire("a", NOW + 35_000) == 0.0


def test_a_bucket_refills_to_its_capacity_only():
    bucket = TokenBucket(capacity=2, refill_per_s=1.0)
    for t in (0, 0):
        assert bucket.wait_s(NOW + t) == 0.0
        bucket.take(NOW + t)
    assert bucket.wait_s(NOW) == 1.0
    assert bucket.wait_s(NOW + 3_600_000) == 0.0
    assert bucket.tokens == 2
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(capacity=0, refill_per_s=1)


# --- Telegram bursts --------------------------------------------------------------------------


def test_a_burst_is_merged_in_order_into_as_few_messages_as_fit():
    texts = [f"{i:03d} " + "x" * 296 for i in range(60)]  # 300 chars each
    merged = merge_texts(texts)
    assert len(merged) == 5  # 13 texts per message: 13*300 + 12*2 = 3924 <= 4096 < 4226
    assert [i for m in merged for i in m.sources] == list(range(60))
    assert "\n\n".join(m.text for m in merged) == "\n\n".join(texts)
    assert all(telegram_length(m.text) <= TELEGRAM_MAX_CHARS for m in merged)


def test_lengths_count_utf16_units_so_emoji_cannot_overflow_the_limit():
    texts = ["🚀" * 1500, "🚀" * 1500]  # 3000 units each
    merged = merge_texts(texts)
    assert [m.sources for m in merged] == [(0,), (1,)]
    assert telegram_length("🚀a") == 3


def test_a_text_longer_than_the_limit_is_truncated_not_split():
    merged = merge_texts(["a" * 5000, "short"], limit=100)
    assert [m.sources for m in merged] == [(0,), (1,)]
    assert merged[0].text == "a" * 99 + "…"
    assert merge_texts(["🚀" * 60], limit=100)[0].text == "🚀" * 49 + "…"
    assert merge_texts([]) == []
