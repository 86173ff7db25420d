from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import run

ROOT = Path(__file__).resolve().parent.parent


def test_print_config_shows_the_effective_values_with_secrets_redacted(capsys, monkeypatch):
    monkeypatch.setenv("VOLSPIKE_API_URL", "http://backend.test")
    monkeypatch.setenv("VOLSPIKE_API_KEY", "very-secret-key")
    assert run.main(["--print-config", "--set", "funding_api_port=9001"]) == 0
    out = capsys.readouterr().out
    assert "funding_api_port             = 9001  # cli" in out
    assert "volspike_api_url             = http://backend.test  # env" in out
    assert "very-secret-key" not in out


def test_a_bad_setting_exits_2_with_one_line_naming_it(capsys):
    assert run.main(["--set", "funding_api_port=x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "volspike-actors: configuration error: --set funding_api_port: 'x' is not an integer"
    ]


def test_a_malformed_set_flag_exits_2(capsys):
    assert run.main(["--set", "novalue"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def _wait_for_line(lines: queue.Queue, needle: str, timeout: float = 20.0) -> list[str]:
    seen = []
    for _ in range(1000):
        line = lines.get(timeout=timeout)
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not in output:\n{''.join(seen)}")


def test_the_daemon_starts_says_what_it_runs_and_stops_cleanly_on_sigint_and_sigterm(tmp_path):
    for sig in (signal.SIGINT, signal.SIGTERM):
        env = {
            **os.environ,
            "VOLSPIKE_API_KEY": "",
            "VOLSPIKE_API_URL": "",
            "VOLSPIKE_GC_YOUNG_THRESHOLD": "20000",
            "VOLSPIKE_LOG_LEVEL": "INFO",
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "run.py",
                "--state-dir",
                str(tmp_path),
                "--set",
                "funding_api_port=0",
                "--set",
                "binance_ws_url=ws://127.0.0.1:9/market",
                "--set",
                "binance_rest_url=http://127.0.0.1:9",
            ],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc.stderr, lines), daemon=True).start()
        try:
            seen = _wait_for_line(lines, "Ctrl-C or SIGTERM stops")
            assert any("local SQLite" in line for line in seen)
            assert any("a young pass every 20000 allocations" in line for line in seen)
            proc.send_signal(sig)
            _wait_for_line(lines, "stopped cleanly")
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_simulate_shows_a_volume_spike_and_an_oi_alert_with_no_internet(tmp_path, fixtures_dir):
    proc = subprocess.Popen(
        [
            sys.executable,
            "run.py",
            "--simulate",
            "--simulate-delay",
            "2",
            "--state-dir",
            str(tmp_path),
            "--set",
            "funding_api_port=0",
        ],
        cwd=ROOT,
        env={**os.environ, "VOLSPIKE_API_KEY": "", "VOLSPIKE_API_URL": ""},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stderr, lines), daemon=True).start()
    try:
        _wait_for_line(lines, "SIMULATION: local exchange")
        _wait_for_line(lines, "SPIKE ETHUSDT", timeout=30)
        _wait_for_line(lines, "OI UP [5 min] BTCUSDT", timeout=60)
        proc.send_signal(signal.SIGINT)
        _wait_for_line(lines, "stopped cleanly")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    import sqlite3

    with sqlite3.connect(tmp_path / "volspike.db") as db:
        rows = db.execute("select symbol, alert_type from volume_alerts").fetchall()
        oi = db.execute("select symbol, direction from oi_alerts").fetchall()
    assert ("ETHUSDT", "SPIKE") in rows
    assert ("BTCUSDT", "UP") in oi
