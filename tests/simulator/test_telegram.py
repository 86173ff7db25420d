"""The Telegram double: Bot API envelopes, a wrong token, and 429 with retry_after."""

from __future__ import annotations

import requests


def send(double, token=None, method="GET", **params):
    url = f"{double.url}/bot{token or double.token}/sendMessage"
    if method == "GET":
        return requests.get(url, params=params, timeout=5)
    return requests.post(url, json=params, timeout=5)


def test_send_message_by_get_answers_with_the_bot_api_envelope(telegram_double):
    r = send(
        telegram_double,
        chat_id=123456789,
        text="HYPE hourly volume 12.50M (4.03x prev) - VOLUME SPIKE!",
    )
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True
    assert list(body["result"]) == ["message_id", "from", "chat", "date", "text"]
    assert body["result"]["chat"]["id"] == 123456789
    assert body["result"]["text"].startswith("HYPE")
    assert telegram_double.wait_for(1, timeout=5)[0].chat_id == "123456789"


def test_send_message_by_post_json(telegram_double):
    r = send(telegram_double, method="POST", chat_id=-1001234567890, text="hello")
    assert r.json()["result"]["chat"]["type"] == "supergroup"
    assert telegram_double.messages[0].params["chat_id"] == -1001234567890


def test_a_wrong_token_gets_401(telegram_double):
    r = send(telegram_double, token="999:nope", chat_id=1, text="x")
    assert (r.status_code, r.json()) == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert telegram_double.messages == []


def test_missing_fields_get_bad_request(telegram_double):
    assert send(telegram_double, text="x").json()["description"] == "Bad Request: chat_id is empty"
    assert (
        send(telegram_double, chat_id=1).json()["description"]
        == "Bad Request: message text is empty"
    )


def test_rate_limit_mode_answers_429_with_retry_after(telegram_double):
    with telegram_double.rate_limit(retry_after=7, count=2):
        answers = [send(telegram_double, chat_id=1, text=f"m{i}") for i in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    assert [m.text for m in telegram_double.messages] == ["m2"]
    assert telegram_double.rate_limited == 2
