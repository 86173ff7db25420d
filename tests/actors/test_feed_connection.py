from __future__ import annotations

import base64
import hashlib
import queue
import re
import socket
import threading
from http import HTTPStatus

import orjson
import pytest
from websockets.sync.server import serve

from actors import _feed_connection
from actors._feed_connection import FeedConnection, FeedTimeouts, _ReadAhead
from actors._price_board import PriceBoard
from messages import KlineUpdate, KlineUpdates, MarkPrices
from messages.feed import FeedConnected, FeedData, FeedDisconnected
from supervisors.backoff import BackoffPolicy
from supervisors.clock import SystemClock

FRAME = orjson.dumps(
    {
        "stream": "!markPrice@arr@1s",
        "data": [
            {
                "e": "markPriceUpdate",
                "E": 1,
                "s": "BTCUSDT",
                "p": "1.5",
                "i": "1.4",
                "r": "0",
                "T": 9,
            }
        ],
    }
)


class TinyServer:
    """A loopback WebSocket server whose behaviour a test scripts per connection."""

    def __init__(self):
        self.script = queue.Queue()  # one callable(websocket) per connection
        self.refuse = threading.Event()
        self.server = serve(
            self._handle, "127.0.0.1", 0, process_request=self._process, close_timeout=0.5
        )
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _process(self, connection, request):
        if self.refuse.is_set():
            return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "slow down\n")
        return None

    def _handle(self, websocket):
        try:
            action = self.script.get(timeout=5)
        except queue.Empty:
            return
        action(websocket)

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def server():
    srv = TinyServer()
    yield srv
    srv.stop()


def _next(q, kind, timeout=5.0):
    for _ in range(100):
        item = q.get(timeout=timeout)
        if isinstance(item, kind):
            return item
    raise AssertionError(f"no {kind.__name__}")


def _connection(server, q, *, deliver=None, **kw):
    return FeedConnection(
        "test",
        f"ws://127.0.0.1:{server.port}/market/stream?streams=!markPrice@arr@1s",
        deliver or q.put,
        SystemClock(),
        backoff=BackoffPolicy(initial_s=0.01, max_s=0.05, jitter=0.0),
        **kw,
    )


def _hold_until_closed(websocket):
    for _ in websocket:
        pass


def test_frames_are_parsed_in_the_connection_thread_and_handed_over(server):
    def send_two(ws):
        ws.send(FRAME.decode())
        ws.send("{not json")
        _hold_until_closed(ws)

    server.script.put(send_two)
    q = queue.Queue()
    conn = _connection(server, q).start()
    try:
        connected = _next(q, FeedConnected)
        assert connected.url.endswith("/market/stream?streams=!markPrice@arr@1s")
        good = _next(q, FeedData)
        assert isinstance(good.message, MarkPrices)
        assert good.message.symbols == ("BTCUSDT",)
        bad = _next(q, FeedData)
        assert bad.message is None
        assert bad.rejected == ("bad_json",)
    finally:
        assert conn.stop()
    assert _next(q, FeedDisconnected).retry_in_s is None


def test_with_a_board_a_mark_frame_is_on_the_board_before_the_actor_is_told(server):
    server.script.put(lambda ws: (ws.send(FRAME.decode()), _hold_until_closed(ws)))
    board = PriceBoard()
    seen_on_board = []

    def deliver(message):
        if isinstance(message, FeedData) and isinstance(message.message, MarkPrices):
            seen_on_board.append(board.get("BTCUSDT"))
            # the cache actor's copy of the same frame is recognised, not applied twice
            assert board.apply(message.message, received_mono=0.0) == 0
        q.put(message)

    q = queue.Queue()
    conn = _connection(server, q, deliver=deliver, board=board).start()
    try:
        data = _next(q, FeedData)
    finally:
        assert conn.stop()
    (record,) = seen_on_board
    assert record is not None
    assert (record.mark_price, record.index_price, record.event_time_ms) == (1.5, 1.4, 1)
    assert record.received_mono == data.received_mono
    assert board.stats.frames == 1
    assert board.stats.updates == 1


def test_a_server_close_is_reported_and_the_thread_reconnects(server):
    server.script.put(lambda ws: ws.close())
    server.script.put(lambda ws: (ws.send(FRAME.decode()), _hold_until_closed(ws)))
    q = queue.Queue()
    conn = _connection(server, q).start()
    try:
        _next(q, FeedConnected)
        down = _next(q, FeedDisconnected)
        assert down.retry_in_s is not None
        _next(q, FeedConnected)
        assert isinstance(_next(q, FeedData).message, MarkPrices)
        assert conn.connects == 2
    finally:
        assert conn.stop()


def test_reconnect_on_request_drops_the_socket_and_names_the_reason(server):
    server.script.put(_hold_until_closed)
    server.script.put(_hold_until_closed)
    q = queue.Queue()
    conn = _connection(server, q).start()
    try:
        _next(q, FeedConnected)
        conn.reconnect("stalled: no data for 15.0 s")
        assert _next(q, FeedDisconnected).reason == "stalled: no data for 15.0 s"
        _next(q, FeedConnected)
    finally:
        assert conn.stop()


def test_a_handshake_refused_with_429_backs_off_long(server):
    server.refuse.set()
    q = queue.Queue()
    conn = _connection(server, q, timeouts=FeedTimeouts(refused_backoff_s=30.0)).start()
    try:
        down = _next(q, FeedDisconnected)
        assert down.reason == "handshake refused: HTTP 429"
        assert down.retry_in_s == 30.0
    finally:
        assert conn.stop()


def test_a_refused_port_is_retried_with_growing_delays():
    q = queue.Queue()
    conn = FeedConnection(
        "dead",
        "ws://127.0.0.1:9/market/stream?streams=x",
        q.put,
        SystemClock(),
        backoff=BackoffPolicy(initial_s=0.01, max_s=0.08, multiplier=2.0, jitter=0.0),
    ).start()
    try:
        delays = [_next(q, FeedDisconnected).retry_in_s for _ in range(4)]
        assert delays == [0.01, 0.02, 0.04, 0.08]
    finally:
        assert conn.stop()


def _silent_peer(stop: threading.Event) -> tuple[int, threading.Thread]:
    """A peer that completes the WebSocket handshake, then never reads or answers again."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run():
        conn, _ = listener.accept()
        with conn, listener:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", request, re.IGNORECASE).group(1)
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            stop.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_a_missing_pong_ends_the_connection():
    stop = threading.Event()
    port, peer = _silent_peer(stop)
    q = queue.Queue()
    timeouts = FeedTimeouts(ping_interval_s=0.2, pong_timeout_s=0.1, read_poll_s=0.05)
    conn = FeedConnection(
        "silent", f"ws://127.0.0.1:{port}/market/ws/x", q.put, SystemClock(), timeouts=timeouts
    ).start()
    try:
        _next(q, FeedConnected)
        assert _next(q, FeedDisconnected).reason == "no pong within 0.1 s"
    finally:
        stop.set()
        assert conn.stop()
        peer.join(5)


def test_ping_interval_must_exceed_pong_timeout():
    with pytest.raises(ValueError, match="greater"):
        FeedTimeouts(ping_interval_s=5, pong_timeout_s=10)


def test_an_owner_that_is_gone_ends_the_thread_quietly(server):
    import pykka

    server.script.put(_hold_until_closed)
    delivered = threading.Event()

    def dead_owner(message):
        delivered.set()
        raise pykka.ActorDeadError("owner stopped")

    conn = _connection(server, queue.Queue())
    conn._deliver_to_owner = dead_owner
    conn.start()
    assert delivered.wait(5)
    assert conn.stop(timeout=5)


def _kline_frame(symbol: str, event_ms: int) -> str:
    return orjson.dumps(
        {
            "stream": f"{symbol.lower()}@kline_1h",
            "data": {
                "e": "kline",
                "E": event_ms,
                "s": symbol,
                "k": {
                    "t": 1626991200000,
                    "T": 1626994799999,
                    "s": symbol,
                    "i": "1h",
                    "o": "1.0",
                    "c": "1.1",
                    "h": "1.2",
                    "l": "0.9",
                    "v": "100",
                    "n": 5,
                    "x": False,
                    "q": "105.0",
                },
            },
        }
    ).decode()


def test_a_burst_of_kline_frames_is_handed_over_as_one_batch_in_order(server):
    """Frames already waiting on the socket are batched; the next other message flushes first."""
    sent = threading.Event()
    names = [f"S{i}USDT" for i in range(20)]

    def burst(ws):
        for i, name in enumerate(names):
            ws.send(_kline_frame(name, 1626992741000 + i))
        ws.send(FRAME.decode())
        sent.set()
        ws.send(_kline_frame("LASTUSDT", 1626992742000))
        _hold_until_closed(ws)

    def deliver(message):
        q.put(message)
        if isinstance(message, FeedConnected):  # read nothing until the burst is all here
            assert sent.wait(5)

    server.script.put(burst)
    q = queue.Queue()
    conn = FeedConnection(
        "test",
        f"ws://127.0.0.1:{server.port}/market/stream?streams=x",
        deliver,
        SystemClock(),
        backoff=BackoffPolicy(initial_s=0.01, max_s=0.05, jitter=0.0),
    ).start()
    try:
        batch = _next(q, FeedData)
        assert isinstance(batch.message, KlineUpdates)
        assert [k.kline.symbol for k in batch.message.items] == names
        assert [k.event_time_ms for k in batch.message.items] == sorted(
            k.event_time_ms for k in batch.message.items
        )
        mark = _next(q, FeedData)
        assert isinstance(mark.message, MarkPrices)
        last = _next(q, FeedData)  # alone on the socket: handed over as it is, not held
        assert isinstance(last.message, KlineUpdate)
        assert last.message.kline.symbol == "LASTUSDT"
    finally:
        assert conn.stop()


def test_the_read_ahead_serves_exact_sizes_from_few_big_reads():
    wire = bytes(range(256)) * 1000  # 256,000 bytes arriving in chunks of at most 70,000
    calls = []

    def raw(bufsize):
        start = sum(calls)
        chunk = wire[start : start + min(bufsize, 70_000)]
        calls.append(len(chunk))
        return chunk

    got: list[bytes] = []
    ahead = _ReadAhead(raw, 65536)
    sizes = [2, 1, 125, 7, 16384, 3, 40_000, 100_000]
    sizes.append(len(wire) - sum(sizes))
    for size in sizes:
        piece = b""
        for _ in range(100):  # the way websocket-client loops over short answers
            if len(piece) == size:
                break
            piece += ahead(size - len(piece))
        got.append(piece)
    assert b"".join(got) == wire
    assert [len(p) for p in got] == sizes
    assert ahead.buffered == 0
    assert len(calls) <= 5  # 256,000 bytes in reads of 64 KiB, not one read per request


def test_with_yield_every_the_thread_offers_the_gil_after_every_n_text_frames(server, monkeypatch):
    yields = []
    monkeypatch.setattr(_feed_connection, "_yield_gil", lambda: yields.append(1))
    names = [f"S{i}USDT" for i in range(7)]

    def burst(ws):
        for i, name in enumerate(names):
            ws.send(_kline_frame(name, 1626992741000 + i))
        ws.send(FRAME.decode())  # flushes the kline batch
        _hold_until_closed(ws)

    server.script.put(burst)
    q = queue.Queue()
    conn = _connection(server, q, yield_every=3).start()
    try:
        for _ in range(10):  # the klines (one batch or several), then the mark frame
            data = _next(q, FeedData)
            if isinstance(data.message, MarkPrices):
                break
        assert isinstance(data.message, MarkPrices)
        # 8 text frames: a yield after the 3rd and the 6th, none after the 7th or 8th
        assert len(yields) == 2
    finally:
        assert conn.stop()


def test_yield_every_must_not_be_negative(server):
    with pytest.raises(ValueError, match="yield_every"):
        _connection(server, queue.Queue(), yield_every=-1)
