from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import run
from supervisors.config import LEGACY_ENV, Config
from tests.supervisors.probes import Journal, Script, probe, root

ROOT = Path(__file__).resolve().parent.parent

API_KEY = "very-secret-key"
DEV_KEY = "dev-secret-key"
BOT_TOKEN = "123456:bot-secret-token"
URL_PASSWORD = "s3cret"


def _clean_env(**settings: str) -> dict[str, str]:
    """The test's environment without any daemon setting a developer may have exported."""
    prefixes = ("VOLSPIKE_", "TELEGRAM_", "CHAT_ID", "BINANCE_", "FUNDING_API_", "OI_")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(prefixes) and name not in LEGACY_ENV
    }
    return env | settings


OFFLINE = [
    "--set",
    "funding_api_port=0",
    "--set",
    "binance_ws_url=ws://127.0.0.1:9/market",
    "--set",
    "binance_rest_url=http://127.0.0.1:9",
]
"""Flags that keep the daemon off the internet: the exchange refuses connections."""


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


def test_help_lists_every_flag_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as exited:
        run.main(["--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag in ("--config FILE", "--set NAME=VALUE", "--print-config", "--log-json", "--simulate"):
        assert flag in out
    assert "Exit codes: 0 clean stop, 1 start failure or supervisor gave up, 2 bad config." in out


def test_a_malformed_set_flag_exits_2(capsys):
    assert run.main(["--set", "novalue"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_a_config_file_is_read_and_the_command_line_beats_the_environment_which_beats_it(
    capsys, monkeypatch, tmp_path
):
    toml = tmp_path / "volspike.toml"
    toml.write_text('funding_api_port = 7000\nstale_after_s = 30\nlog_level = "debug"\n')
    monkeypatch.setenv("VOLSPIKE_STALE_AFTER_S", "45")
    monkeypatch.setenv("VOLSPIKE_LOG_LEVEL", "warning")
    argv = ["--config", str(toml), "--set", "log_level=error", "--print-config"]
    assert run.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert "funding_api_port             = 7000  # toml" in out
    assert "stale_after_s                = 45.0  # env" in out
    assert "log_level                    = ERROR  # cli" in out


def test_a_config_file_that_cannot_be_read_exits_2_naming_it(capsys, tmp_path):
    missing = tmp_path / "nope.toml"
    assert run.main(["--config", str(missing), "--print-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"volspike-actors: configuration error: --config: cannot read {missing}")


def test_the_banner_says_live_binance_and_the_local_sink_with_the_default_endpoints(
    log_stream, tmp_path
):
    run._banner(Config().replace(state_dir=tmp_path))
    text = log_stream.text
    assert "mode: live Binance" in text
    assert "REST https://fapi.binance.com | WebSocket wss://fstream.binance.com/market" in text
    assert f"sinks: local SQLite {tmp_path / 'volspike.db'} (no backend configured)" in text
    assert "HTTP API: http://127.0.0.1:8888" in text


def test_run_returns_exit_code_1_when_the_root_supervisor_gives_up(
    monkeypatch, log_stream, tmp_path
):
    # In-process: the real tree cannot be made to give up from outside in a few seconds
    # (its children back off exponentially), so a tree whose only child never starts
    # stands in for it; what is tested is run.run's handling of a tree that ends by itself.
    journal = Journal()
    doomed = probe("doomed", journal, Script(fail_starts=100))
    monkeypatch.setattr(
        run, "build_tree", lambda _config, _boards: root([doomed], max_restarts=2, within_s=60)
    )
    stop = threading.Event()  # nobody asks the daemon to stop ...
    bound = threading.Timer(20.0, stop.set)  # ... unless the tree never ends (then: code 0)
    bound.start()
    try:
        code = run.run(Config().replace(state_dir=tmp_path, funding_api_port=0), stop)
    finally:
        bound.cancel()
        bound.join()
    assert code == 1
    assert len(journal.events("start", "doomed")) == 3  # the first start and two restarts
    assert "the supervision tree ended by itself (exit code 1)" in log_stream.text


def _read_lines(stream, lines: queue.Queue) -> None:
    """Drain ``stream`` into ``lines`` (``None`` at the end) and close it (a reader thread)."""
    with stream:
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


def _rest_of(lines: queue.Queue, timeout: float = 20.0) -> list[str]:
    """Every line up to the end of the stream (the process has exited or is exiting)."""
    seen = []
    for _ in range(5000):
        line = lines.get(timeout=timeout)
        if line is None:
            return seen
        seen.append(line)
    raise AssertionError(f"the stream did not end:\n{''.join(seen[-50:])}")


def _start_daemon(
    args: list[str], env: dict[str, str], *, stdout: bool = False
) -> tuple[subprocess.Popen, queue.Queue, queue.Queue | None]:
    """``python run.py ARGS``; its stderr (and stdout, if asked) drained into queues."""
    proc = subprocess.Popen(
        [sys.executable, "run.py", *args],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
        text=True,
    )
    err: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stderr, err), daemon=True).start()
    out: queue.Queue | None = None
    if stdout:
        out = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc.stdout, out), daemon=True).start()
    return proc, err, out


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


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
                "--set",
                "health_log_interval_s=0.5",
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
            assert any("mode: live, custom exchange endpoints" in line for line in seen)
            assert any("local SQLite" in line for line in seen)
            assert any("a young pass every 20000 allocations" in line for line in seen)
            # the health line of every actor of the real tree, every health_log_interval_s
            _wait_for_line(lines, "health root/price-cache state=running")
            _wait_for_line(lines, "health root/poster state=running")
            proc.send_signal(signal.SIGUSR1)  # logs every thread's stack, keeps running
            _wait_for_line(lines, "| CRITICAL | pykka | Current state of ")
            proc.send_signal(sig)
            _wait_for_line(lines, f"received {sig.name}, stopping")
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
        seen = _wait_for_line(lines, "SIMULATION: local exchange")
        assert any("mode: simulation" in line for line in seen)
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


def test_log_json_makes_every_output_line_a_json_object(tmp_path):
    env = _clean_env(VOLSPIKE_LOG_LEVEL="INFO")
    args = ["--log-json", "--state-dir", str(tmp_path), *OFFLINE]
    proc, err, out = _start_daemon(args, env, stdout=True)
    assert out is not None
    try:
        lines = _wait_for_line(err, "Ctrl-C or SIGTERM stops")
        proc.send_signal(signal.SIGTERM)
        lines += _rest_of(err) + _rest_of(out)
        assert proc.wait(timeout=20) == 0
    finally:
        _kill(proc)
    messages = []
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict), line
        messages.append(record["record"]["message"])
    assert "stopped cleanly" in messages
    assert any(m.startswith("sinks: local SQLite") for m in messages)


def test_the_banner_names_mode_endpoints_and_sinks_and_never_a_secret(tmp_path):
    env = _clean_env(
        VOLSPIKE_API_URL=f"http://ingest:{URL_PASSWORD}@127.0.0.1:9/",
        VOLSPIKE_API_KEY=API_KEY,
        VOLSPIKE_API_URL_DEV="http://127.0.0.1:9/dev",
        VOLSPIKE_API_KEY_DEV=DEV_KEY,
        TELEGRAM_TOKEN=BOT_TOKEN,
        CHAT_ID="-10042",
        TELEGRAM_API_URL="http://127.0.0.1:9",
        VOLSPIKE_LOG_LEVEL="INFO",
    )
    proc, err, _ = _start_daemon(["--state-dir", str(tmp_path), *OFFLINE], env)
    try:
        seen = _wait_for_line(err, "Ctrl-C or SIGTERM stops")
        proc.send_signal(signal.SIGTERM)
        rest = _rest_of(err)
        assert proc.wait(timeout=20) == 0
    finally:
        _kill(proc)
    banner = [line for line in seen if "| main |" in line]
    text = "".join(banner)
    assert "mode: live, custom exchange endpoints" in text
    assert "exchange: REST http://127.0.0.1:9 | WebSocket ws://127.0.0.1:9/market" in text
    assert "HTTP API: http://127.0.0.1, on any free port" in text  # funding_api_port=0
    [sinks] = [line for line in banner if "sinks: " in line]
    assert "backend PROD http://127.0.0.1:9;" in sinks
    assert "backend DEV http://127.0.0.1:9/dev;" in sinks
    assert "telegram chat -10042 via http://127.0.0.1:9;" in sinks
    assert f"local SQLite {tmp_path / 'volspike.db'}" in sinks
    assert URL_PASSWORD not in text
    everything = "".join(seen + rest)
    for secret in (API_KEY, DEV_KEY, BOT_TOKEN, URL_PASSWORD):
        assert secret not in everything
