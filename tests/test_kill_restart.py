"""The whole daemon as a process: an alert accepted into the outbox survives ``kill -9``.

``python run.py`` runs against the local simulator with the backend double down (connection
refused); a scripted volume spike becomes a SPIKE that is committed to the outbox but cannot be
delivered; the daemon is SIGKILLed; the backend comes up; a second ``run.py`` on the same state
directory delivers that SPIKE exactly once, and stops with exit code 0 on SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from simulator import testing as sim_testing
from simulator.backend import VOLUME_ALERTS
from simulator.testing import TEST_API_KEY, fast_config
from tests.test_run import _clean_env, _kill, _start_daemon, _wait_for_line

if TYPE_CHECKING:
    import queue
    import subprocess
    from pathlib import Path

    from simulator import BackendDouble, Simulator

binance_sim = sim_testing.binance_sim  # fixtures
backend_double = sim_testing.backend_double

SYMBOL = "ETHUSDT"
KEY_PREFIX = f"volume:{SYMBOL}:"


@pytest.fixture
def sim_config():
    return fast_config(symbols=30, kline_period=0.1, seed=11)


def _start(
    sim: Simulator, backend: BackendDouble, state_dir: Path
) -> tuple[subprocess.Popen, queue.Queue]:
    args = [
        "--state-dir",
        str(state_dir),
        "--set",
        "funding_api_port=0",
        "--set",
        "health_log_interval_s=0",
        "--set",
        f"volspike_api_url={backend.url}",
        "--set",
        f"binance_ws_url={sim.ws_url}/market",
        "--set",
        f"binance_rest_url={sim.rest_url}",
    ]
    env = _clean_env(VOLSPIKE_API_KEY=TEST_API_KEY, VOLSPIKE_LOG_LEVEL="INFO")
    proc, lines, _ = _start_daemon(args, env)
    return proc, lines


def _prod_deliveries(state_dir: Path) -> list[tuple[str, str, int]]:
    """(idempotency key, status, attempts) of every volume alert for the PROD backend."""
    uri = f"file:{state_dir / 'volspike.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        return db.execute(
            "select o.idempotency_key, d.status, d.attempts from outbox o"
            " join deliveries d on d.outbox_id = o.id"
            " where o.kind = 'volume_alert' and d.sink = 'prod'"
        ).fetchall()


def _local_spikes(state_dir: Path) -> list[tuple[str, str]]:
    uri = f"file:{state_dir / 'volspike.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        return db.execute(
            "select symbol, alert_type from volume_alerts where symbol = ?", (SYMBOL,)
        ).fetchall()


def test_a_pending_spike_survives_sigkill_and_is_delivered_once_after_restart(
    binance_sim, backend_double, tmp_path
):
    sim, backend = binance_sim, backend_double
    down = backend.go_down()  # connection refused until down.end()

    first, lines = _start(sim, backend, tmp_path)
    try:
        _wait_for_line(lines, "Ctrl-C or SIGTERM stops")
        sim.scenarios.volume_spike(SYMBOL, ratio=8.0, by_minute=0.01, min_quote_volume=5e6)
        _wait_for_line(lines, f"SPIKE {SYMBOL}")
        # outbox first, then the attempt: a failed attempt means the row is committed
        _wait_for_line(lines, ":SPIKE not delivered")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    finally:
        _kill(first)

    pending = [row for row in _prod_deliveries(tmp_path) if row[0].startswith(KEY_PREFIX)]
    assert len(pending) == 1, pending
    spike_key, status, attempts = pending[0]
    assert spike_key.endswith(":SPIKE")
    assert status == "pending"
    assert attempts >= 1
    assert backend.received(VOLUME_ALERTS) == []

    down.end()
    assert backend.wait_up(5)
    second, lines = _start(sim, backend, tmp_path)
    try:
        _wait_for_line(lines, "Ctrl-C or SIGTERM stops")
        backend.wait_for(VOLUME_ALERTS, 1, timeout=20)
        second.send_signal(signal.SIGTERM)
        _wait_for_line(lines, "stopped cleanly")
        assert second.wait(timeout=20) == 0
    finally:
        _kill(second)

    # the daemon is gone: nothing more can arrive
    received = backend.received(VOLUME_ALERTS)
    keys = Counter(r.headers.get("idempotency-key") for r in received)
    assert None not in keys
    assert all(n == 1 for n in keys.values()), keys
    spikes = [r for r in received if r.body["symbol"] == SYMBOL and r.body["alertType"] == "SPIKE"]
    assert len(spikes) == 1
    assert spikes[0].headers["idempotency-key"] == spike_key
    assert (spike_key, "delivered") in {(k, s) for k, s, _ in _prod_deliveries(tmp_path)}
    assert _local_spikes(tmp_path) == [(SYMBOL, "SPIKE")]
