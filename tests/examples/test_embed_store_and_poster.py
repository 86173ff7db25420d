from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embed_store_and_poster.py"

pytestmark = pytest.mark.usefixtures("_stop_all")


def test_the_store_and_poster_example_delivers_an_alert_once_to_each_sink(tmp_path):
    spec = importlib.util.spec_from_file_location("embed_store_and_poster", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    now_ms = int(time.time() * 1000)  # both runs in the same symbol-hour
    result = module.main(str(tmp_path), timeout=10, now_ms=now_ms)

    # told twice, delivered once (the second is the same symbol-hour: a duplicate); the
    # tree has stopped, so nothing more can arrive
    assert result["delivered_to_my_sink"] == [("ETHUSDT", "SPIKE")]
    [(key, _, _), _] = result["outbox"]
    assert key.startswith("volume:ETHUSDT:") and key.endswith(":SPIKE")
    assert result["outbox"] == [(key, "local", "delivered"), (key, "my-app", "delivered")]

    # a second run on the same state directory: the outbox remembers the key
    again = module.main(str(tmp_path), timeout=10, now_ms=now_ms)
    assert again["delivered_to_my_sink"] == []
    assert again["outbox"] == result["outbox"]
    assert again["stored_locally"] == [("ETHUSDT", "SPIKE")]
    assert result["stored_locally"] == [("ETHUSDT", "SPIKE")]
