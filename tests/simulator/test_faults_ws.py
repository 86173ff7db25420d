"""Every WebSocket fault can be triggered and is observable from a real client."""

from __future__ import annotations

import json

import pytest
import requests
import websocket

from simulator import Simulator
from simulator.testing import fast_config
from supervisors.clock import FakeClock
from tests.simulator.helpers import connect, recv_json, silent_for

MARK = "/market/ws/btcusdt@markPrice@1s"


def drain(ws: websocket.WebSocket, frames: int = 200) -> None:
    """Read up to ``frames`` frames (raises when the connection breaks)."""
    for _ in range(frames):
        ws.recv()


def test_drop_connections_aborts_every_connection(binance_sim):
    clients = [connect(binance_sim.ws_url + MARK) for _ in range(3)]
    try:
        assert binance_sim.ws.wait_for_connections(3, timeout=5)
        assert binance_sim.faults.drop_connections() == 3
        for ws in clients:
            with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
                drain(ws)
        assert binance_sim.ws.wait_for_connections(0, timeout=5)
        assert {c.server_reason for c in binance_sim.ws.closed_connections} == {"dropped"}
    finally:
        for ws in clients:
            ws.close()


def test_graceful_drop_sends_a_going_away_close(binance_sim):
    ws = connect(binance_sim.ws_url + MARK)
    try:
        assert binance_sim.ws.wait_for_connections(1, timeout=5)
        binance_sim.faults.drop_connections(graceful=True)
        for _ in range(200):
            opcode, frame = ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        assert int.from_bytes(frame.data[:2], "big") == 1001
    finally:
        ws.close()


def test_stall_keeps_the_connection_open_but_silent_then_resumes(binance_sim):
    ws = connect(binance_sim.ws_url + MARK)
    try:
        recv_json(ws)
        with binance_sim.faults.stall() as stall:
            # Frames already in flight may still arrive; then five periods of silence.
            assert any(silent_for(ws, 0.25) for _ in range(10))
            assert silent_for(ws, 0.5)
            assert ws.connected
            assert binance_sim.ws.connection_count() == 1
        assert not stall.active
        ws.settimeout(5)
        assert recv_json(ws)["e"] == "markPriceUpdate"
    finally:
        ws.close()


def test_stopped_pings_mean_no_server_pings_and_no_pongs_for_client_pings():
    # Pings every 0.15 s: the client's pongs stay under 10 incoming messages per second.
    config = fast_config(
        symbols=5, ping_interval=0.15, pong_timeout=5.0, mark_price_fast_period=0.05
    )
    with Simulator(config) as sim:
        ws = connect(sim.ws_url + MARK)
        try:
            ws.settimeout(5)
            seen = {ws.recv_data_frame(True)[0] for _ in range(8)}
            assert websocket.ABNF.OPCODE_PING in seen
            with sim.faults.stop_pings():
                for _ in range(3):  # drain frames sent before the fault
                    ws.recv_data_frame(True)
                ws.ping(b"are you there")
                opcodes = [ws.recv_data_frame(True)[0] for _ in range(15)]  # ~1.5 s of data
                assert websocket.ABNF.OPCODE_PING not in opcodes
                assert websocket.ABNF.OPCODE_PONG not in opcodes
            ws.ping(b"now?")
            opcodes = [ws.recv_data_frame(True)[0] for _ in range(8)]
            assert websocket.ABNF.OPCODE_PONG in opcodes
        finally:
            ws.close()


@pytest.mark.parametrize("kind", ["truncated_json", "invalid_json", "empty"])
def test_malformed_text_frames_arrive_and_fail_to_parse(binance_sim, kind):
    ws = connect(binance_sim.ws_url + MARK)
    try:
        assert binance_sim.ws.wait_for_connections(1, timeout=5)
        with binance_sim.faults.malformed_frames(kind, count=1):
            for _ in range(50):
                text = ws.recv()
                try:
                    json.loads(text)
                except ValueError:
                    break
            else:
                pytest.fail("no malformed frame")
        assert recv_json(ws)["e"] == "markPriceUpdate"  # the stream goes on
    finally:
        ws.close()


def test_binary_frames_can_be_injected(binance_sim):
    ws = connect(binance_sim.ws_url + MARK)
    try:
        assert binance_sim.ws.wait_for_connections(1, timeout=5)
        assert binance_sim.faults.send_malformed("binary") == 1
        for _ in range(20):
            if ws.recv_data()[0] == websocket.ABNF.OPCODE_BINARY:
                break
        else:
            pytest.fail("no binary frame")
    finally:
        ws.close()


@pytest.mark.parametrize("kind", ["truncated_frame", "invalid_utf8"])
def test_protocol_level_breakage_kills_the_client_connection(binance_sim, kind):
    ws = connect(binance_sim.ws_url + MARK)
    try:
        assert binance_sim.ws.wait_for_connections(1, timeout=5)
        binance_sim.faults.send_malformed(kind)
        with pytest.raises((websocket.WebSocketException, ConnectionError, UnicodeDecodeError)):
            drain(ws)
    finally:
        ws.close()


@pytest.mark.parametrize("status", [429, 418])
def test_refused_handshakes_get_the_status_and_retry_after(binance_sim, status):
    with binance_sim.faults.refuse_handshakes(status, count=1) as refusal:
        with pytest.raises(websocket.WebSocketBadStatusException) as err:
            connect(binance_sim.ws_url + MARK)
        assert err.value.status_code == status
        assert "retry-after" in {k.lower() for k in err.value.resp_headers}
        assert refusal.hits == 1
    ws = connect(binance_sim.ws_url + MARK)  # count=1: the next handshake succeeds
    ws.close()
    assert binance_sim.ws.handshakes == (1, 1)


def test_a_418_handshake_ban_reads_the_simulator_clock_and_counts_down_to_its_end():
    clock = FakeClock(1_773_900_000.0)
    with Simulator(fast_config(symbols=5), clock=clock) as sim:
        now = clock.time_ms()
        sim.faults.jump_clock(-3600)  # the ban is on the simulator's (jumped) clock
        until = now - 3_600_000 + 120_000  # a 2-minute ban from the first refusal

        def refused() -> websocket.WebSocketBadStatusException:
            with pytest.raises(websocket.WebSocketBadStatusException) as err:
                connect(sim.ws_url + MARK)
            return err.value

        with sim.faults.refuse_handshakes(418):
            first = refused()
            clock.advance(30)
            second = refused()
    assert first.status_code == second.status_code == 418
    assert first.resp_body is not None
    assert json.loads(first.resp_body) == {
        "code": -1003,
        "msg": f"Way too many requests; IP(127.0.0.1) banned until {until}. "
        "Please use the websocket for live updates to avoid bans.",
    }
    assert second.resp_body == first.resp_body  # the same ban, not a new one per attempt
    assert (first.resp_headers["retry-after"], second.resp_headers["retry-after"]) == ("120", "90")


def test_refusal_for_a_period_ends_by_itself(binance_sim):
    refusal = binance_sim.faults.refuse_handshakes(429, seconds=0.2)
    with pytest.raises(websocket.WebSocketBadStatusException):
        connect(binance_sim.ws_url + MARK)
    assert refusal.hits == 1
    assert refusal.wait(timeout=5)
    connect(binance_sim.ws_url + MARK).close()


def test_slow_handshakes_delay_the_upgrade(binance_sim):
    import time

    with binance_sim.faults.slow_handshakes(0.3, count=1):
        t0 = time.monotonic()
        connect(binance_sim.ws_url + MARK).close()
        assert time.monotonic() - t0 >= 0.3


def test_jumping_the_server_clock_moves_server_time_and_event_times(binance_sim):
    before = requests.get(binance_sim.rest_url + "/fapi/v1/time", timeout=5).json()["serverTime"]
    binance_sim.faults.jump_clock(3600)
    after = requests.get(binance_sim.rest_url + "/fapi/v1/time", timeout=5).json()["serverTime"]
    assert 3_600_000 <= after - before < 3_660_000
    ws = connect(binance_sim.ws_url + MARK)
    try:
        assert recv_json(ws)["E"] >= before + 3_600_000
    finally:
        ws.close()
