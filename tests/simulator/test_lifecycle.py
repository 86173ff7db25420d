"""Clean starts and stops (no leaked threads or ports) and the standalone command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from simulator import BackendDouble, Simulator, TelegramDouble
from simulator.testing import assert_released, fast_config, simulator_threads
from tests.simulator.helpers import connect

ROOT = Path(__file__).resolve().parents[2]


def _rebind(port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_stop_joins_every_thread_and_frees_every_port():
    before = set(threading.enumerate())
    sim = Simulator(fast_config(symbols=5)).start()
    backend = BackendDouble().start()
    telegram = TelegramDouble().start()
    ws = connect(sim.ws_url + "/market/ws/btcusdt@markPrice@1s")
    with requests.Session() as session:  # keep-alive connections must not block the stop
        assert session.get(sim.rest_url + "/fapi/v1/ping", timeout=5).ok
        assert session.get(backend.url + "/health", timeout=5).ok
        ports = [sim.ws.port, sim.rest.port, backend.port, telegram.port]
        assert len(simulator_threads()) >= 4
        sim.stop()
        backend.stop()
        telegram.stop()
    ws.close()
    assert simulator_threads() == []
    assert set(threading.enumerate()) <= before
    for port in ports:
        _rebind(port)


def test_stop_is_idempotent_and_works_without_start():
    sim = Simulator(fast_config(symbols=5))
    sim.stop()
    sim.start()
    sim.stop()
    sim.stop()
    assert not sim.running


def test_help_runs():
    out = subprocess.run(
        [sys.executable, "-m", "simulator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "--symbols" in out.stdout
    assert "--speed" in out.stdout


def test_standalone_prints_its_urls_serves_its_scenario_and_stops_on_ctrl_c(tmp_path):
    stderr_path = tmp_path / "simulator.log"
    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps(
            [
                {"type": "list", "symbol": "NEWCOINUSDT", "at": "+0s", "template": "BTCUSDT"},
                {"type": "delist", "symbol": "ETHUSDT", "at": "+0s"},
            ]
        )
    )
    stderr_file = stderr_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--symbols",
            "20",
            "--speed",
            "60",
            "--port-ws",
            "0",
            "--port-rest",
            "0",
            "--backend",
            "--telegram",
            "--scenario",
            str(scenario),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        # A pipe nobody drains can fill up and block the simulator's logging (and its exit).
        stderr=stderr_file,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        assert proc.stdout is not None
        for _ in range(20):  # bounded: the banner is a handful of lines
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        rest_url = next(x.split()[2] for x in lines if x.startswith("Binance REST"))
        ws_url = next(x.split()[2] for x in lines if x.startswith("Binance WS"))
        info = requests.get(rest_url + "/fapi/v1/exchangeInfo", timeout=5).json()
        assert info["symbols"][0]["symbol"] == "BTCUSDT"
        trading = {
            s["symbol"]
            for s in info["symbols"]
            if (s["status"], s["contractType"], s["quoteAsset"]) == ("TRADING", "PERPETUAL", "USDT")
        }
        assert "NEWCOINUSDT" in trading  # the scenario file's listing ...
        assert "ETHUSDT" not in trading  # ... and delisting
        gone = requests.get(
            rest_url + "/fapi/v1/openInterest", params={"symbol": "ETHUSDT"}, timeout=5
        )
        assert (gone.status_code, gone.json()["code"]) == (400, -1121)
        ws = connect(ws_url + "/market/stream?streams=!markPrice@arr@1s")
        try:
            assert ws.recv()
        finally:
            ws.close()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)  # drains stdout while it exits
        assert proc.returncode == 0, stderr_path.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        stderr_file.close()


def test_the_fixture_leak_check_sees_a_running_service_and_passes_once_it_stopped():
    double = BackendDouble().start()
    sim = Simulator(fast_config(symbols=5)).start()
    try:
        with requests.Session() as session:  # a keep-alive connection: its own server thread
            assert session.get(double.url + "/health", timeout=5).ok
            threads = [*double.threads(), *sim.threads()]
            names = {t.name for t in threads}
            assert {"sim-backend-http", "sim-backend-conn"} <= names
            assert {"sim-publisher", "sim-ws-loop", "sim-rest-http"} <= names
            with pytest.raises(AssertionError, match="left threads running"):
                assert_released(threads, [], what="running", timeout=0.05)
            with pytest.raises(AssertionError, match="left ports bound"):
                assert_released([], [double.port, sim.ws.port], what="running")
    finally:
        double.stop()
        sim.stop()
    assert_released(threads, [double.port, sim.ws.port, sim.rest.port], what="stopped")
    assert double.threads() == sim.threads() == []
