from __future__ import annotations

import json
import logging

import pykka
import pytest
from loguru import logger

from supervisors.logs import redact, register_secret, setup_logging
from tests.conftest import LineWaiter

pytestmark = pytest.mark.usefixtures("_stop_all")


class _Exploding(pykka.ThreadingActor):
    def on_receive(self, message):
        raise RuntimeError(f"deliberate failure: {message}")


def test_a_failing_pykka_actor_is_logged_through_loguru(log_stream):
    ref = _Exploding.start()
    ref.tell("tell-failure")
    assert log_stream.wait_for("deliberate failure: tell-failure")
    assert "Unhandled exception in _Exploding" in log_stream.text
    assert "| ERROR   | pykka |" in log_stream.text


def test_stdlib_records_from_websocket_and_urllib3_reach_loguru(log_stream):
    logging.getLogger("websocket").warning("ping/pong timed out")
    logging.getLogger("urllib3").warning("Retrying connection")
    logging.getLogger("urllib3").debug("chatty connection detail")
    assert log_stream.wait_for("Retrying connection")
    assert "| WARNING | websocket | ping/pong timed out" in log_stream.text
    assert "chatty connection detail" not in log_stream.text


def test_registered_secrets_never_reach_a_sink_even_inside_tracebacks(log_stream):
    register_secret("s3cr3t-api-key")
    logger.info("posting with key s3cr3t-api-key")
    try:
        raise ValueError("bad key s3cr3t-api-key")
    except ValueError:
        logger.exception("delivery failed")
    assert log_stream.wait_for("delivery failed")
    assert "s3cr3t-api-key" not in log_stream.text
    assert "posting with key ***" in log_stream.text


def test_telegram_paths_and_api_key_headers_are_masked_without_registration():
    assert redact("GET /bot123456:AAbbCCddEEffGG_hh-ii/sendMessage") == "GET /bot***/sendMessage"
    assert redact("headers={'X-API-Key': 'abcdef'}") == "headers={'X-API-Key': '***'}"
    assert redact("nothing to hide") == "nothing to hide"


def test_short_values_are_not_registered_as_secrets():
    register_secret("ab")
    register_secret(None)
    assert redact("ab cd") == "ab cd"


def test_json_mode_writes_one_json_object_per_line():
    stream = LineWaiter()
    setup_logging(level="INFO", json=True, stream=stream)
    try:
        logger.bind(actor="feed-market").info("connected")
        logger.debug("hidden at INFO")
        assert stream.wait_for("connected")
        lines = [line for line in stream.text.splitlines() if line.strip()]
        assert len(lines) == 1
        record = json.loads(lines[0])
        assert record["record"]["message"] == "connected"
        assert record["record"]["extra"]["actor"] == "feed-market"
        assert record["record"]["level"]["name"] == "INFO"
    finally:
        logger.remove()
