"""One WebSocket connection of a feed, owned by a helper thread that only hands messages over.

The thread connects, reads frames, parses them (so the actor thread never parses), and passes
every outcome to ``deliver`` — the owning actor's ``tell`` — as :mod:`messages.feed` messages.
It reconnects by itself with jittered exponential backoff, waits much longer after a handshake
refused with 429/418 (a reconnect storm is how IPs get banned), and never gives up until
:meth:`FeedConnection.stop` is called. Server pings are answered by websocket-client; the
thread also sends its own pings and treats a missing pong as a dead connection.

Deciding that an *open* connection is dead because it is silent is the actor's job (it sees
the data); it calls :meth:`FeedConnection.reconnect`.

Kline events are batched while more frames are already waiting on the socket: a shard
carrying 200 ``<sym>@kline_1h`` streams gets them in bursts, and one ``KlineUpdates`` of a
burst costs the actors (and the process's one GIL, which the price path shares) one hand-over
instead of one per stream. A batch is handed over as soon as the socket has nothing more
waiting, after :data:`KLINE_BATCH_MAX` events or :data:`KLINE_BATCH_HOLD_S` seconds, and
before any other message, so nothing is delayed behind a flood and the order is kept.

The socket is read ahead (:class:`_ReadAhead`, :data:`READ_AHEAD_BYTES` per system call):
websocket-client reads each frame with two or three exact-size ``recv`` calls, and every call
gives the GIL away and waits to take it back; a burst of small kline frames then costs a few
hundred switches. Read ahead, a burst costs a handful.

Read ahead, though, a kline shard's thread works through a whole burst without a system call
and so without ever giving the GIL up: the price path's thread and the HTTP API's thread,
woken by a mark-price frame or a request in the middle of a burst, waited up to the
interpreter's 5 ms switch interval for it. With ``yield_every`` (the kline shards use 1) the
thread offers the GIL to whoever waits for it after every so many text frames
(``os.sched_yield``, which releases the GIL around the system call and lets a waiting thread
of the same CPU run; when nobody waits it costs a system call, ~1 us). Measured on the 2-core
benchmark: tick-to-readable p99 7-10 -> 3.5-3.7 ms, the API's p99 at 8 clients 1.0-1.2 ->
0.7 ms (every 4 frames: 4.3 ms and 0.9-1.2 ms). A lower switch interval instead made the price
path's own thread lose the GIL in the middle of its frame.

With a ``board`` (the market feed), a mark-price frame is also written into the price board
right here, the moment it is parsed, before the actor is told: the price path then does not
wait for the feed actor's and the cache actor's threads to be scheduled in turn (the one place
this thread does more than hand over; see :mod:`actors._price_board`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import threading
import time
from typing import TYPE_CHECKING, Any

import pykka
import websocket
from loguru import logger

from messages.binance import parse_frame
from messages.errors import FrameError
from messages.feed import FeedConnected, FeedData, FeedDisconnected
from messages.market import KlineUpdate, KlineUpdates, MarkPrices
from supervisors.backoff import Backoff, BackoffPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    from actors._price_board import PriceBoard
    from supervisors.clock import Clock

__all__ = ["KLINE_BATCH_HOLD_S", "KLINE_BATCH_MAX", "FeedConnection", "FeedTimeouts"]

_ids = itertools.count(1)

KLINE_BATCH_MAX = 256
"""The most kline events handed over in one ``KlineUpdates``."""
KLINE_BATCH_HOLD_S = 0.02
"""The longest the first event of a batch waits for the socket to run dry."""
READ_AHEAD_BYTES = 65536
"""The most bytes one ``recv`` system call asks for."""


def _yield_gil() -> None:
    """Let a thread that waits for the GIL run (the GIL is released around the call)."""
    _sched_yield()


_sched_yield = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))


class _ReadAhead:
    """websocket-client's frame reader's ``recv``, served from big reads of the socket.

    The reader asks for exact sizes and loops over short answers, so handing it at most what
    it asked for, from a buffer filled ``size`` bytes at a time, is transparent to it.
    """

    __slots__ = ("_buf", "_pos", "_raw", "_size")

    def __init__(self, raw: Callable[[int], bytes], size: int) -> None:
        self._raw, self._size = raw, size
        self._buf = memoryview(b"")
        self._pos = 0

    def __call__(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buf):
            self._buf = memoryview(self._raw(max(bufsize, self._size)))
            self._pos = 0
        start = self._pos
        self._pos = min(start + bufsize, len(self._buf))
        return self._buf[start : self._pos].tobytes()

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not handed out yet."""
        return len(self._buf) - self._pos


class FeedTimeouts:
    """Timing knobs of a connection (seconds); defaults suit Binance."""

    def __init__(
        self,
        *,
        connect_s: float = 10.0,
        read_poll_s: float = 0.5,
        ping_interval_s: float = 30.0,
        pong_timeout_s: float = 10.0,
        refused_backoff_s: float = 60.0,
    ) -> None:
        if ping_interval_s <= pong_timeout_s:
            raise ValueError("ping_interval_s must be greater than pong_timeout_s")
        self.connect_s = connect_s
        self.read_poll_s = read_poll_s
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.refused_backoff_s = refused_backoff_s


class FeedConnection:
    """A reconnecting WebSocket reader (one thread, named ``Feed-<name>-<id>``).

    Args:
        name: the feed's name, for the thread name and logs.
        url: the full stream URL.
        deliver: called (in this connection's thread) with each message for the actor.
        clock: wall and monotonic time.
        backoff: reconnect delays; the count resets after a connection that lived long enough.
        timeouts: connect, ping and pong timing.
        board: a price board to write mark-price frames into as soon as they are parsed.
        yield_every: offer the GIL to waiting threads after every so many text frames
            (``0``: never; see the module's documentation).
    """

    def __init__(  # noqa: PLR0913 - the optional ones are keyword-only
        self,
        name: str,
        url: str,
        deliver: Callable[[Any], None],
        clock: Clock,
        *,
        backoff: BackoffPolicy | None = None,
        timeouts: FeedTimeouts | None = None,
        board: PriceBoard | None = None,
        yield_every: int = 0,
    ) -> None:
        if yield_every < 0:
            raise ValueError(f"yield_every must be >= 0, not {yield_every}")
        self.name = name
        self._board = board
        self._yield_every = yield_every
        self._until_yield = yield_every
        self.url = url
        self.connection_id = next(_ids)
        self._deliver_to_owner = deliver
        self._clock = clock
        self._backoff = Backoff(
            backoff or BackoffPolicy(initial_s=0.5, max_s=60.0, reset_after_s=60.0)
        )
        self._timeouts = timeouts or FeedTimeouts()
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._lock = threading.Lock()
        self._reconnect_reason: str | None = None
        self.connects = 0
        self._klines: list[KlineUpdate] = []
        self._klines_mono = 0.0  # the first batched event's receipt, on the owner's clock
        self._klines_t0 = 0.0  # the same on the real monotonic clock (the hold limit)
        self._thread = threading.Thread(
            target=self._run, name=f"Feed-{name}-{self.connection_id}", daemon=True
        )

    def start(self) -> FeedConnection:
        """Start the thread (returns at once)."""
        self._thread.start()
        return self

    def reconnect(self, reason: str) -> None:
        """Drop the current socket (from any thread); the thread reconnects after its backoff."""
        with self._lock:
            self._reconnect_reason = reason
            ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.abort()

    def close(self) -> None:
        """Ask the thread to end (from any thread) without waiting for it."""
        self._stop.set()
        self.reconnect("stopping")

    def stop(self, timeout: float = 5.0) -> bool:
        """Close the socket and end the thread; ``True`` if it ended within ``timeout``."""
        self.close()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread.is_alive()

    # --- the thread ----------------------------------------------------------------------

    def _deliver(self, message: Any) -> None:
        """Hand a message to the owner; an owner that is gone ends this thread quietly."""
        try:
            self._deliver_to_owner(message)
        except pykka.ActorDeadError:
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            connected_at, reason, refused = self._session()
            if self._stop.is_set():
                self._deliver(self._down(reason, None))
                break
            delay = self._backoff.next_delay(
                now=self._clock.monotonic(), running_since=connected_at
            )
            if refused:
                delay = max(delay, self._timeouts.refused_backoff_s)
            self._deliver(self._down(reason, delay))
            if self._clock.wait(delay, self._stop):
                break

    def _down(self, reason: str, retry_in_s: float | None) -> FeedDisconnected:
        return FeedDisconnected(
            connection_id=self.connection_id,
            reason=reason,
            at_ms=self._clock.time_ms(),  # type: ignore[arg-type]
            retry_in_s=retry_in_s,
        )

    def _session(self) -> tuple[float | None, str, bool]:
        """Connect and read until the connection ends: (connected_at, reason, refused)."""
        try:
            ws = websocket.create_connection(
                self.url,
                timeout=self._timeouts.connect_s,
                enable_multithread=True,
                suppress_origin=True,
                # orjson rejects invalid UTF-8 anyway; the library's pure-Python check costs
                # ~19 ms per 110 KB mark-price frame and starves every other thread of the GIL.
                skip_utf8_validation=True,
            )
        except websocket.WebSocketBadStatusException as exc:
            status = getattr(exc, "status_code", None)
            return None, f"handshake refused: HTTP {status}", status in (418, 429)
        except (OSError, websocket.WebSocketException) as exc:
            return None, f"connect failed: {type(exc).__name__}: {exc}", False
        _read_ahead(ws)
        with self._lock:
            self._ws = ws
            self._reconnect_reason = None
        if self._stop.is_set():
            ws.abort()
        connected_at = self._clock.monotonic()
        self.connects += 1
        self._deliver(
            FeedConnected(
                connection_id=self.connection_id,
                url=self.url,
                at_ms=self._clock.time_ms(),  # type: ignore[arg-type]
            )
        )
        try:
            reason = self._read(ws)
        finally:
            with self._lock:
                self._ws = None
            with contextlib.suppress(Exception):
                ws.close(timeout=1)
        return connected_at, reason, False

    def _read(self, ws: websocket.WebSocket) -> str:
        """Read until the connection ends; returns why (batched klines are handed over)."""
        try:
            return self._read_loop(ws)
        finally:
            self._flush_klines()

    def _read_loop(self, ws: websocket.WebSocket) -> str:  # noqa: C901 - every exit named
        timeouts = self._timeouts
        ws.settimeout(timeouts.read_poll_s)
        monotonic = time.monotonic  # pings are real-time, whatever clock drives the rest
        next_ping = monotonic() + timeouts.ping_interval_s
        pong_due: float | None = None
        while True:
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                opcode, frame = None, None
            except (websocket.WebSocketException, OSError) as exc:
                return self._reconnect_reason or f"connection lost: {type(exc).__name__}: {exc}"
            now = monotonic()
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self._on_text(frame.data)
            elif opcode == websocket.ABNF.OPCODE_PONG:
                pong_due = None
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                return "closed by the server"
            if self._klines and (
                len(self._klines) >= KLINE_BATCH_MAX
                or now - self._klines_t0 >= KLINE_BATCH_HOLD_S
                or not _more_waiting(ws)
            ):
                self._flush_klines()
            if self._reconnect_reason is not None:
                return self._reconnect_reason
            if pong_due is not None and now > pong_due:
                return f"no pong within {timeouts.pong_timeout_s:g} s"
            if now >= next_ping:
                try:
                    ws.ping()
                except (websocket.WebSocketException, OSError) as exc:
                    return f"ping failed: {exc}"
                next_ping = now + timeouts.ping_interval_s
                if pong_due is None:
                    pong_due = now + timeouts.pong_timeout_s

    def _on_text(self, data: bytes) -> None:
        self._handle_text(data)
        if self._yield_every:
            self._until_yield -= 1
            if self._until_yield <= 0:
                self._until_yield = self._yield_every
                _yield_gil()

    def _handle_text(self, data: bytes) -> None:
        received_mono = self._clock.monotonic()
        try:
            parsed = parse_frame(data, self._clock.time_ms())
        except FrameError as exc:
            self._deliver(
                FeedData(
                    connection_id=self.connection_id,
                    message=None,
                    rejected=(exc.reason,),
                    received_mono=received_mono,
                    detail=exc.detail,
                )
            )
            return
        errors = parsed.errors
        message = parsed.message
        if type(message) is KlineUpdate and not errors:
            if not self._klines:
                self._klines_mono = received_mono
                self._klines_t0 = time.monotonic()
            self._klines.append(message)
            return
        self._flush_klines()
        if self._board is not None and message.__class__ is MarkPrices:
            self._apply_direct(message, received_mono)
        self._deliver(
            FeedData(
                connection_id=self.connection_id,
                message=message,
                rejected=tuple(e.reason for e in errors),
                received_mono=received_mono,
                detail=errors[0].detail if errors else None,
            )
        )

    def _apply_direct(self, prices: MarkPrices, received_mono: float) -> None:
        try:
            self._board.apply(prices, received_mono, direct=True)  # type: ignore[union-attr]
        except Exception:  # the cache actor applies the frame from the message anyway
            logger.opt(exception=True).error(
                "{}: direct write to the price board failed; the cache actor applies the frame",
                self.name,
            )

    def _flush_klines(self) -> None:
        """Hand the batched kline events over (one ``KlineUpdate`` alone stays as it is)."""
        items = self._klines
        if not items:
            return
        self._klines = []
        self._deliver(
            FeedData(
                connection_id=self.connection_id,
                message=items[0] if len(items) == 1 else KlineUpdates(items=tuple(items)),
                received_mono=self._klines_mono,
            )
        )

    def __repr__(self) -> str:
        return f"FeedConnection({self.name!r}, id={self.connection_id}, url={self.url!r})"


def _read_ahead(ws: websocket.WebSocket) -> None:
    """Serve ``ws``'s frame reader from big socket reads (a no-op if its internals differ)."""
    reader = getattr(ws, "frame_buffer", None)
    raw = getattr(reader, "recv", None)
    if raw is not None and not isinstance(raw, _ReadAhead):
        reader.recv = _ReadAhead(raw, READ_AHEAD_BYTES)  # type: ignore[union-attr]


def _more_waiting(ws: websocket.WebSocket) -> bool:
    """Whether another frame's bytes are already here (read ahead or on the socket)."""
    ahead = getattr(getattr(ws, "frame_buffer", None), "recv", None)
    if isinstance(ahead, _ReadAhead) and ahead.buffered > 0:
        return True
    sock = ws.sock
    if sock is None:
        return False
    pending = getattr(sock, "pending", None)  # ssl.SSLSocket: decrypted but unread bytes
    if pending is not None and pending() > 0:
        return True
    try:
        readable, _, _ = select.select((sock,), (), (), 0)
    except (OSError, ValueError):
        return False
    return bool(readable)
