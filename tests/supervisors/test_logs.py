from __future__ import annotations

import json
import logging
import sys
import threading

import pykka
import pytest
from loguru import logger

from supervisors.logs import redact, register_secret, setup_logging, teardown_logging
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
        teardown_logging()


def test_a_secret_inside_a_stdlib_record_is_redacted(log_stream):
    register_secret("urllib3-s3cret-key")
    logging.getLogger("urllib3").warning("Retrying %s with key %s", "POST", "urllib3-s3cret-key")
    try:
        raise ConnectionError("refused for urllib3-s3cret-key")
    except ConnectionError:
        logging.getLogger("websocket").exception("send failed")
    assert log_stream.wait_for("send failed")
    assert "urllib3-s3cret-key" not in log_stream.text
    assert "| WARNING | urllib3 | Retrying POST with key ***" in log_stream.text
    assert "ConnectionError: refused for ***" in log_stream.text


# A quote, a backslash, a tab and non-ASCII: JSON writes each of them escaped (or, with
# ensure_ascii, as \uXXXX), so a redactor that ran on the serialized line would miss it.
AWKWARD_SECRET = 'k"e\\y\tgr\u00fc\u00dfe-\u03bb-42'


def _strings(node):
    """Every string in a parsed JSON document, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def test_json_mode_redacts_a_secret_that_json_would_escape():
    assert json.dumps(AWKWARD_SECRET)[1:-1] != AWKWARD_SECRET  # the premise of the test
    register_secret(AWKWARD_SECRET)
    stream = LineWaiter()
    setup_logging(level="INFO", json=True, stream=stream)
    try:
        logger.bind(actor="poster", key=AWKWARD_SECRET).info("posting with {}", AWKWARD_SECRET)
        logging.getLogger("urllib3").warning("header X-API-Key=%s", AWKWARD_SECRET)
        try:
            raise ValueError(f"rejected {AWKWARD_SECRET}")
        except ValueError:
            logger.exception("delivery failed")
        assert stream.wait_for("delivery failed")
        lines = [line for line in stream.text.splitlines() if line.strip()]
        assert len(lines) == 3
        for line in lines:
            assert AWKWARD_SECRET not in line
            assert json.dumps(AWKWARD_SECRET, ensure_ascii=False)[1:-1] not in line
            assert json.dumps(AWKWARD_SECRET)[1:-1] not in line
            assert not any(AWKWARD_SECRET in text for text in _strings(json.loads(line)))
        first, second, third = (json.loads(line)["record"] for line in lines)
        assert first["message"] == "posting with ***"
        assert first["extra"]["key"] == "***"
        assert second["message"] == "header X-API-Key=***"
        assert second["extra"]["actor"] == "urllib3"
        assert third["exception"]["value"] == "rejected ***"
        assert "ValueError: rejected ***" in json.loads(lines[2])["text"]
    finally:
        teardown_logging()


THREAD_SECRET = "thread-s3cret-token"


@pytest.mark.parametrize("as_json", [False, True])
def test_an_exception_nobody_catches_in_a_thread_is_logged_redacted_not_printed_raw(
    monkeypatch, capfd, as_json
):
    # Start from Python's own hook (pytest installs one of its own for the session).
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    register_secret(THREAD_SECRET)
    stream = LineWaiter()
    setup_logging(level="INFO", json=as_json, stream=stream)
    try:

        def work():
            raise RuntimeError(f"lost the socket holding {THREAD_SECRET}")

        helper = threading.Thread(target=work, name="feed-reader")
        helper.start()
        helper.join(timeout=5)
        assert not helper.is_alive()
        assert stream.wait_for("uncaught RuntimeError in thread feed-reader")
        assert THREAD_SECRET not in stream.text
        assert "RuntimeError: lost the socket holding ***" in stream.text
        if as_json:
            (line,) = [line for line in stream.text.splitlines() if line.strip()]
            record = json.loads(line)["record"]
            assert record["level"]["name"] == "ERROR"
            assert record["extra"]["actor"] == "feed-reader"
            assert record["exception"]["value"] == "lost the socket holding ***"
        else:
            assert "| ERROR   | feed-reader | uncaught RuntimeError" in stream.text
        assert "lost the socket" not in capfd.readouterr().err  # nothing printed raw
    finally:
        teardown_logging()
    assert threading.excepthook is threading.__excepthook__  # put back


def test_an_uncaught_exception_in_the_main_thread_goes_through_loguru(monkeypatch, capfd):
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    register_secret(THREAD_SECRET)
    stream = LineWaiter()
    setup_logging(level="INFO", stream=stream)
    try:
        assert sys.excepthook is not sys.__excepthook__
        try:
            raise KeyError(THREAD_SECRET)
        except KeyError:
            sys.excepthook(*sys.exc_info())
        assert stream.wait_for("uncaught KeyError in the main thread")
        assert THREAD_SECRET not in stream.text
        assert "KeyError: '***'" in stream.text
        assert "KeyError" not in capfd.readouterr().err
    finally:
        teardown_logging()
    assert sys.excepthook is sys.__excepthook__


def test_a_hook_installed_before_is_still_called_and_put_back(monkeypatch):
    seen: list[str] = []
    done = threading.Event()

    def earlier_hook(args):
        seen.append(f"{args.exc_type.__name__} in {args.thread.name}")
        done.set()

    monkeypatch.setattr(threading, "excepthook", earlier_hook)
    stream = LineWaiter()
    setup_logging(level="INFO", stream=stream)
    try:
        helper = threading.Thread(target=lambda: 1 / 0, name="worker-9")
        helper.start()
        assert done.wait(5)
        helper.join(timeout=5)
        assert stream.wait_for("uncaught ZeroDivisionError in thread worker-9")
        assert seen == ["ZeroDivisionError in worker-9"]
    finally:
        teardown_logging()
    assert threading.excepthook is earlier_hook


def test_setting_up_twice_then_tearing_down_restores_the_original_hooks(monkeypatch):
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    setup_logging(level="INFO", stream=LineWaiter())
    setup_logging(level="INFO", stream=LineWaiter())
    teardown_logging()
    assert threading.excepthook is threading.__excepthook__
    assert sys.excepthook is sys.__excepthook__
    teardown_logging()  # a second teardown changes nothing
    assert threading.excepthook is threading.__excepthook__
