"""HTTP clients for the benchmarks, run in worker processes so they never share the daemon's GIL.

- :func:`load_run`: the load generator. Raw non-blocking sockets, HTTP/1.1 keep-alive, one
  request in flight per connection, a fixed duration after a warm-up, per-request latency
  (``perf_counter`` from the request's send to the last byte of its response), and the
  process's own CPU time so the reader can see what the client cost on a shared machine.
- :func:`ws_probe`: a minimal WebSocket subscriber stamping each frame with the kernel's
  receive time (``SO_TIMESTAMPNS``), i.e. when the push reached the machine;
- :func:`poll_freshness`: a tight polling loop on one keep-alive connection that notes the
  first instant each new ``lastUpdateTime`` (the frame's event time ``E``) becomes readable.
- :func:`enrich_http`: the original scanner's enrichment, one ``requests.Session`` GET per
  symbol (timeout 1 s, as in the original).

All functions are bounded in time and touch only 127.0.0.1.
"""

from __future__ import annotations

import array
import base64
import contextlib
import os
import resource
import selectors
import socket
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from urllib.parse import quote

import requests

from bench._cpu import pin
from bench._host import spawn_context
from bench._sim import event_time_of

__all__ = ["enrich_http", "load_run", "make_pool", "noop", "poll_freshness", "ws_probe"]

_HEAD_END = b"\r\n\r\n"
_CL = b"\r\ncontent-length:"
_LUT = b'"lastUpdateTime":'


def noop() -> int:
    """Warm a worker up (imports done, process spawned)."""
    return 0


def make_pool(workers: int, cpus: tuple[int, ...] | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes on ``cpus`` (any when ``None``), started."""
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=spawn_context(), initializer=pin, initargs=(cpus,)
    )
    for future in [pool.submit(noop) for _ in range(workers)]:
        future.result(timeout=60)
    return pool


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _request(path: str) -> bytes:
    """A keep-alive GET; non-ASCII in ``path`` (real symbols such as ``龙虾USDT``) is %-encoded."""
    return f"GET {quote(path, safe='/?=&,')} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    at = lowered.find(_CL)
    if at < 0:
        return 0
    end = lowered.find(b"\r\n", at + 2)
    return int(lowered[at + len(_CL) : end if end > 0 else None].strip())


class _Conn:
    __slots__ = ("buf", "need", "sent_at", "sent_ns", "sock", "stamp")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.need = -1
        self.sent_at = 0.0
        self.sent_ns = 0
        self.stamp: int | None = None


def _connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def load_run(  # noqa: C901, PLR0912, PLR0915 - one tight event loop, kept in one place
    *,
    port: int,
    paths: list[str],
    connections: int,
    duration_s: float,
    warmup_s: float,
    start_at: float,
) -> dict[str, Any]:
    """Drive ``connections`` keep-alive connections for ``warmup_s + duration_s`` seconds.

    Requests cycle through ``paths``. Only requests completed inside the measured window (after
    the warm-up) are counted. Returns counts, latencies (seconds, as an ``array('d')`` in
    bytes: from just before the ``send`` to when this loop had the whole response), arrivals
    (the same requests, up to the kernel's receive time of the response's last segment,
    ``SO_TIMESTAMPNS``; empty where the kernel gives no timestamps), the measured window and
    the client's CPU seconds over it.
    """
    requests = [_request(p) for p in paths]
    n_req = len(requests)
    sel = selectors.DefaultSelector()
    conns = []
    stamped = True
    for _ in range(connections):
        sock = _connect(port)
        sock.setblocking(False)  # noqa: FBT003 - stdlib signature
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            stamped = False
        conn = _Conn(sock)
        conns.append(conn)
        sel.register(sock, selectors.EVENT_READ, conn)
    lat = array.array("d")
    arrival = array.array("d")
    wall_ns = time.time_ns
    ok = errors = non_200 = 0
    perf = time.perf_counter
    wait = start_at - time.monotonic()
    if wait > 0:
        time.sleep(min(wait, 10.0))
    begin = perf()
    measure_from = begin + warmup_s
    end = measure_from + duration_s
    cpu0: float | None = None
    i = 0
    for conn in conns:
        conn.sent_ns = wall_ns()
        conn.sent_at = perf()
        conn.sock.send(requests[i % n_req])
        i += 1
    closed = 0
    while closed < len(conns):
        now = perf()
        if cpu0 is None and now >= measure_from:
            cpu0 = _cpu()
        if now >= end:
            break
        events = sel.select(timeout=min(0.1, max(0.0, end - now)))
        for key, _ in events:
            conn = key.data
            try:
                if stamped:
                    chunk, conn.stamp = _recv_stamped(conn.sock)
                else:
                    chunk = conn.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                errors += 1
                sel.unregister(conn.sock)
                conn.sock.close()
                closed += 1
                continue
            buf = conn.buf + chunk if conn.buf else chunk
            if conn.need < 0:
                head_end = buf.find(_HEAD_END)
                if head_end < 0:
                    conn.buf = buf
                    continue
                conn.need = head_end + 4 + _content_length(buf[:head_end])
            if len(buf) < conn.need:
                conn.buf = buf
                continue
            done = perf()
            if done >= measure_from and done < end:
                lat.append(done - conn.sent_at)
                if conn.stamp is not None:
                    arrival.append((conn.stamp - conn.sent_ns) / 1e9)
                if buf[9:12] == b"200":
                    ok += 1
                else:
                    non_200 += 1
            conn.buf = b""
            conn.need = -1
            conn.sent_ns = wall_ns()
            conn.sent_at = perf()
            try:
                conn.sock.send(requests[i % n_req])
            except OSError:
                errors += 1
                sel.unregister(conn.sock)
                conn.sock.close()
                closed += 1
                continue
            i += 1
    cpu1 = _cpu()
    window = min(perf(), end) - measure_from
    for conn in conns:
        with contextlib.suppress(OSError, KeyError, ValueError):
            sel.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
    sel.close()
    return {
        "ok": ok,
        "non_200": non_200,
        "errors": errors,
        "latencies": lat.tobytes(),
        "arrivals": arrival.tobytes() if stamped and len(arrival) == len(lat) else b"",
        "window_s": window,
        "cpu_s": cpu1 - (cpu0 if cpu0 is not None else cpu1),
    }


def poll_freshness(  # noqa: C901, PLR0912, PLR0915 - one tight polling loop, kept in one place
    *, port: int, path: str, duration_s: float, start_at: float, pause_s: float = 0.0
) -> dict[str, Any]:
    """Poll ``path`` back to back for ``duration_s``; note when each new event time appears.

    Returns ``seen``: ``(E, monotonic receipt, wall receipt)`` of the first response showing
    each new ``lastUpdateTime``; ``polls``, ``errors``, and the median round trip (the
    detection resolution).
    """
    wait = start_at - time.monotonic()
    if wait > 0:
        time.sleep(min(wait, 10.0))
    request = _request(path)
    mono = time.monotonic
    wall = time.time
    deadline = mono() + duration_s
    seen: list[tuple[int, float, float]] = []
    rtts = array.array("d")
    polls = errors = 0
    last = -1
    sock: socket.socket | None = None
    while mono() < deadline:
        if sock is None:
            try:
                sock = _connect(port, timeout=1.0)
            except OSError:
                errors += 1
                time.sleep(0.001)
                continue
        t_send = mono()
        try:
            sock.sendall(request)
            buf = b""
            need = -1
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
                if need < 0:
                    head_end = buf.find(_HEAD_END)
                    if head_end < 0:
                        continue
                    need = head_end + 4 + _content_length(buf[:head_end])
                if len(buf) >= need:
                    break
        except OSError:
            errors += 1
            with contextlib.suppress(OSError):
                sock.close()
            sock = None
            continue
        t_recv = mono()
        polls += 1
        if polls % 16 == 0:
            rtts.append(t_recv - t_send)
        at = buf.find(_LUT)
        if at < 0:
            continue
        start = at + len(_LUT)
        while start < len(buf) and buf[start] == 32:  # json.dumps puts a space after ':'
            start += 1
        stop = start
        while stop < len(buf) and 48 <= buf[stop] <= 57:  # ASCII digits
            stop += 1
        if stop == start:
            continue
        event = int(buf[start:stop])
        if event > last:
            last = event
            seen.append((event, t_recv, wall()))
        if pause_s > 0:
            time.sleep(pause_s)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
    ordered = sorted(rtts)
    return {
        "seen": seen,
        "polls": polls,
        "errors": errors,
        "rtt_median_s": ordered[len(ordered) // 2] if ordered else None,
    }


_SO_TIMESTAMPNS = 35
"""Linux ``SO_TIMESTAMPNS`` (= ``SCM_TIMESTAMPNS``); Python's socket module does not name it."""
_TIMESPEC = struct.Struct("@qq")


def _recv_stamped(sock: socket.socket) -> tuple[bytes, int | None]:
    """One ``recvmsg``: the bytes and the kernel's receive time (ns since the epoch)."""
    data, ancillary, _, _ = sock.recvmsg(262144, socket.CMSG_SPACE(_TIMESPEC.size))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanos = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
            return data, seconds * 1_000_000_000 + nanos
    return data, None


def ws_probe(  # noqa: C901, PLR0912, PLR0915 - handshake and frame loop, kept in one place
    ws_url: str, path: str, duration_s: float, start_at: float
) -> dict[str, Any]:
    """An independent subscriber that notes when each mark-price frame reached the machine.

    A minimal WebSocket client on a raw socket with ``SO_TIMESTAMPNS``: the instant of a frame is
    the kernel's receive time of the segment holding its first byte, so it does not depend on
    when this process got the CPU. It validates and parses nothing; it only reads ``E``.
    Returns ``received``: ``(E, monotonic instant)`` per frame, and whether kernel timestamps
    were available (otherwise the receipt time in user space is used).
    """
    host, _, port = ws_url.removeprefix("ws://").partition(":")
    wait = start_at - time.monotonic()
    if wait > 0:
        time.sleep(min(wait, 10.0))
    sock = socket.create_connection((host, int(port)), timeout=5)
    received: list[tuple[int, float]] = []
    kernel = True
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while _HEAD_END not in head and len(head) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head[:80]!r}")
        buf = head.split(_HEAD_END, 1)[1]
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            kernel = False
        sock.settimeout(0.2)
        offset = time.time() - time.monotonic()
        frame_start: float | None = time.monotonic() if buf else None
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            try:
                data, stamp = _recv_stamped(sock)
            except TimeoutError:
                continue
            if not data:
                break
            now = time.monotonic()
            arrived = now if stamp is None else stamp / 1e9 - offset
            kernel = kernel and stamp is not None
            if not buf:
                frame_start = arrived
            buf += data
            while len(buf) >= 2:
                length = buf[1] & 0x7F
                header = 2
                if length == 126:
                    if len(buf) < 4:
                        break
                    length, header = int.from_bytes(buf[2:4], "big"), 4
                elif length == 127:
                    if len(buf) < 10:
                        break
                    length, header = int.from_bytes(buf[2:10], "big"), 10
                if len(buf) < header + length:
                    break
                opcode = buf[0] & 0x0F
                payload = buf[header : header + length]
                buf = buf[header + length :]
                if opcode == 1 and payload.startswith(b'{"stream":"!markPrice@arr@1s"'):
                    event = event_time_of(payload[:400].decode("ascii", "replace"))
                    if event is not None and frame_start is not None:
                        received.append((event, frame_start))
                elif opcode == 8:
                    deadline = 0.0
                frame_start = arrived  # the next frame's first byte came with this segment
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return {"received": received, "kernel_timestamps": kernel}


def enrich_http(port: int, symbols: list[str], reps: int) -> dict[str, Any]:
    """The original's enrichment: one GET ``/funding/{symbol}`` per symbol, keep-alive.

    Returns the duration of each full scan and how many answers were 200.
    """
    durations: list[float] = []
    ok = 0
    with requests.Session() as session:
        base = f"http://127.0.0.1:{port}/funding/"
        session.get(base + symbols[0], timeout=1.0)  # open the keep-alive connection
        for _ in range(reps):
            ok = 0
            t0 = time.perf_counter()
            for symbol in symbols:
                try:
                    response = session.get(base + symbol, timeout=1.0)
                except requests.RequestException:
                    continue
                if response.status_code == 200:
                    response.json()
                    ok += 1
            durations.append(time.perf_counter() - t0)
    return {"durations_s": durations, "ok": ok, "symbols": len(symbols)}
