"""The Binance market-stream WebSocket server (``websockets`` asyncio, in its own thread).

Per connection it keeps the subscriptions (:mod:`simulator.ws_protocol`), answers JSON
requests, and enforces the documented limits: streams per connection, 10 incoming frames per
second (text, ping and pong all count; exceeding closes the connection), a server ping every
``ping_interval`` with a disconnect when no pong arrives within ``pong_timeout`` (any pong,
solicited or not, counts), and a maximum connection lifetime.

Stream frames are built elsewhere (:mod:`simulator.publisher`) and handed over with
:meth:`WsServer.publish` from any thread. Fault state (:class:`WsFaultState`) is read here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

from simulator.ws_faults import WsFaultState, broken_wire_bytes, malformed
from simulator.ws_protocol import Route, SubscriptionState, delivers, handle_request, parse_route

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from websockets.http11 import Request, Response

    from simulator.config import SimulatorConfig
    from supervisors.clock import Clock

__all__ = ["ClosedConnection", "WsServer"]

_COUNTED = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)


@dataclass(frozen=True, slots=True)
class ClosedConnection:
    """A finished connection (for assertions)."""

    conn_id: int
    path: str
    code: int | None
    reason: str
    server_reason: str | None
    """Why the server closed it (``rate limit``, ``pong timeout``, ``lifetime``, ``dropped``,
    ``slow consumer``, ``shutdown``), or ``None`` if the client did."""


@dataclass(eq=False, slots=True)
class _Conn:
    conn_id: int
    ws: ServerConnection
    route: Route
    state: SubscriptionState
    queue: asyncio.Queue[str | bytes] = field(default_factory=asyncio.Queue)
    incoming: deque[float] = field(default_factory=deque)
    ping_pending_since: float | None = None
    server_reason: str | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class WsServer:
    """``wss://fstream.binance.com`` on loopback.

    Args:
        config: limits, periods and the bind address.
        faults: the fault state shared with :class:`~simulator.faults.SimulatorFaults`.
        clock: the simulator clock (the "banned until" of a refused handshake).
    """

    def __init__(self, config: SimulatorConfig, faults: WsFaultState, clock: Clock) -> None:
        self.config = config
        self.faults = faults
        self.clock = clock
        self.port = config.ws_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._conns: dict[int, _Conn] = {}
        self._ids = itertools.count(1)
        self._active: frozenset[str] = frozenset()
        self._cond = threading.Condition()
        self._closed: list[ClosedConnection] = []
        self._accepted = 0
        self._refused = 0
        self._background: set[asyncio.Task[None]] = set()
        self.on_frame_sent: Callable[[tuple[str, ...], bytes], None] | None = None
        """Observer of every data frame at the instant it is written to its connection's
        socket (loop thread): ``(the streams the connection was opened with, payload)``. The
        benchmarks use it as the "exchange push" instant of one client's connection; it must
        be cheap and must not raise."""

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>`` (append ``/market/stream?streams=...``)."""
        return f"ws://{self.config.host}:{self.port}"

    def start(self) -> None:
        """Start the event loop thread and wait until the server listens."""
        self._thread = threading.Thread(target=self._run, name="sim-ws-loop")
        self._threads.append(self._thread)
        self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("WebSocket server did not start")
        if self._server is None:
            raise RuntimeError("WebSocket server failed to bind")
        logger.info("simulator ws: listening on {}", self.url)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        try:
            self._server = await serve(
                self._handler,
                self.config.host,
                self.port,
                process_request=self._process_request,
                ping_interval=None,
                ping_timeout=None,
                close_timeout=self.config.close_timeout,
                max_queue=64,
                compression=None,
            )
            self.port = self._server.sockets[0].getsockname()[1]
        finally:
            self._ready.set()
        await self._stopped.wait()
        for conn in list(self._conns.values()):
            conn.server_reason = conn.server_reason or "shutdown"
        self._server.close(close_connections=True)
        await self._server.wait_closed()

    def stop(self) -> None:
        """Close every connection and the listener, then join the loop thread."""
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(15.0)
            self._thread = None

    def threads(self) -> list[threading.Thread]:
        """The threads this server started that are still alive (none after :meth:`stop`)."""
        return [t for t in self._threads if t.is_alive()]

    # -- observation --------------------------------------------------------------------

    def active_streams(self) -> frozenset[str]:
        """Streams that some connection subscribed to on a route that delivers them."""
        return self._active

    def connection_count(self) -> int:
        """Open connections."""
        return len(self._conns)

    @property
    def closed_connections(self) -> list[ClosedConnection]:
        """Every finished connection, oldest first."""
        with self._cond:
            return list(self._closed)

    @property
    def handshakes(self) -> tuple[int, int]:
        """``(accepted, refused)`` handshake counts."""
        return self._accepted, self._refused

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        """Block until exactly ``count`` connections are open."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._conns) == count, timeout)

    def wait_for_closed(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` connections have finished."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._closed) >= count, timeout)

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _refresh_active(self) -> None:
        self._active = frozenset(
            s for c in self._conns.values() for s in c.state.streams if delivers(c.route.prefix, s)
        )

    # -- handshake and connection -------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        f = self.faults
        slow, refuse = f.slow_handshake, f.refuse
        if slow is not None and slow.consume():
            await asyncio.sleep(f.handshake_delay)
        if refuse is not None and refuse.consume():
            self._refused += 1
            return self._refusal(ws, f.refuse_status)
        route = parse_route(request.path)
        if route is None:
            return ws.respond(404, "Not Found")
        if len(route.streams) > self.config.max_streams_per_connection:
            return ws.respond(400, "Too many streams")
        return None

    def _refusal(self, ws: ServerConnection, status: int) -> Response:
        """The HTTP answer to a refused upgrade (spec §3: the REST limiter's bodies).

        418: ``Way too many requests; IP(<ip>) banned until <ms>. ...`` (the real fapi wording)
        with ``Retry-After`` = whole seconds to the ban's end, both on the simulator clock. The
        ban lasts ``ban_base_seconds`` (2 minutes) from the first 418 of a refusal fault;
        later refusals report the same end (so Retry-After counts down), and a new ban starts
        once simulated time has passed it. 429: ``Retry-After: 1`` and a short -1003 text - an
        assumption, the stream docs describe no handshake 429.
        """
        now = self.clock.time_ms()
        ip = ws.remote_address[0] if ws.remote_address else "127.0.0.1"
        if status == 418:
            until = self.faults.ban_until_ms
            if until is None or until <= now:
                until = now + round(self.config.ban_base_seconds * 1000)
                self.faults.ban_until_ms = until
            body = {
                "code": -1003,
                "msg": f"Way too many requests; IP({ip}) banned until {until}. "
                "Please use the websocket for live updates to avoid bans.",
            }
            retry_after = -(-(until - now) // 1000)
        else:
            body = {
                "code": -1003,
                "msg": "Too many requests; please use the websocket for live updates.",
            }
            retry_after = 1
        response = ws.respond(status, orjson.dumps(body).decode())
        response.headers["Retry-After"] = str(retry_after)
        return response

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        route = parse_route(ws.request.path)
        assert route is not None
        state = SubscriptionState(route.combined, dict.fromkeys(route.streams))
        conn = _Conn(next(self._ids), ws, route, state)
        self._accepted += 1
        self._install_hooks(conn)
        self._conns[conn.conn_id] = conn
        self._refresh_active()
        self._notify()
        conn.tasks = [
            asyncio.create_task(self._writer(conn)),
            asyncio.create_task(self._keepalive(conn)),
            asyncio.create_task(self._lifetime(conn)),
        ]
        try:
            async for message in ws:
                reply = handle_request(message, state, self.config.max_streams_per_connection)
                self._refresh_active()
                if not self.faults.on(self.faults.stall):
                    self._enqueue(conn, orjson.dumps(reply).decode())
        except ConnectionClosed:
            pass
        finally:
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            del self._conns[conn.conn_id]
            self._refresh_active()
            sent, rcvd = ws.protocol.close_sent, ws.protocol.close_rcvd
            frame = sent if conn.server_reason is not None and sent is not None else (rcvd or sent)
            with self._cond:
                self._closed.append(
                    ClosedConnection(
                        conn.conn_id,
                        ws.request.path,
                        frame.code if frame is not None else None,
                        frame.reason if frame is not None else "",
                        conn.server_reason,
                    )
                )
                self._cond.notify_all()

    def _install_hooks(self, conn: _Conn) -> None:
        protocol = conn.ws.protocol
        recv_frame, send_frame = protocol.recv_frame, protocol.send_frame
        faults, limit = self.faults, self.config.max_messages_per_second
        loop = asyncio.get_running_loop()

        def on_recv(frame: Any) -> None:
            if frame.opcode in _COUNTED:
                now = loop.time()
                conn.incoming.append(now)
                while conn.incoming and now - conn.incoming[0] > 1.0:
                    conn.incoming.popleft()
                if len(conn.incoming) > limit and conn.server_reason is None:
                    conn.server_reason = "rate limit"
                    self._spawn(self._close(conn, 1008, "Too many messages"))
            if frame.opcode is Opcode.PONG:
                conn.ping_pending_since = None
            recv_frame(frame)

        def on_send(frame: Any) -> None:
            if frame.opcode is Opcode.PONG and faults.on(faults.no_pong_replies):
                return
            send_frame(frame)
            observer = self.on_frame_sent
            if observer is not None and frame.opcode is Opcode.TEXT:
                observer(conn.route.streams, frame.data)

        setattr(protocol, "recv_frame", on_recv)  # noqa: B010 - instance-level hook
        setattr(protocol, "send_frame", on_send)  # noqa: B010

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the loop, keeping a reference until it finishes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close(self, conn: _Conn, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await conn.ws.close(code, reason)

    async def _writer(self, conn: _Conn) -> None:
        while True:
            item = await conn.queue.get()
            try:
                await conn.ws.send(item)
            except ConnectionClosed:
                return

    async def _keepalive(self, conn: _Conn) -> None:
        interval, timeout = self.config.ping_interval, self.config.pong_timeout
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + interval
        while True:
            now = loop.time()
            pending = conn.ping_pending_since
            if pending is not None and now - pending >= timeout:
                conn.server_reason = conn.server_reason or "pong timeout"
                await self._close(conn, 1008, "Pong timeout")
                return
            if now >= next_ping:
                next_ping = now + interval
                if not self.faults.on(self.faults.no_server_pings):
                    try:
                        await conn.ws.ping()
                    except ConnectionClosed:
                        return
                    if conn.ping_pending_since is None:
                        conn.ping_pending_since = now
            wake = (
                next_ping
                if conn.ping_pending_since is None
                else min(next_ping, conn.ping_pending_since + timeout)
            )
            await asyncio.sleep(max(0.005, wake - loop.time()))

    async def _lifetime(self, conn: _Conn) -> None:
        await asyncio.sleep(self.config.connection_lifetime)
        conn.server_reason = conn.server_reason or "lifetime"
        await self._close(conn, 1001, "Connection lifetime exceeded")

    # -- outgoing frames ----------------------------------------------------------------

    def _enqueue(self, conn: _Conn, frame: str | bytes) -> None:
        if conn.queue.qsize() >= self.config.send_queue_limit:
            if conn.server_reason is None:
                conn.server_reason = "slow consumer"
                self._spawn(self._close(conn, 1008, "Slow consumer"))
            return
        conn.queue.put_nowait(frame)

    def publish(self, frames: list[tuple[str, str]]) -> None:
        """Send each ``(stream, raw JSON payload)`` to every connection subscribed to it."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._dispatch, frames)

    def _dispatch(self, frames: list[tuple[str, str]]) -> None:
        f = self.faults
        if f.on(f.stall):
            return
        bad = f.malformed if f.on(f.malformed) else None
        for conn in list(self._conns.values()):
            subs = conn.state.streams
            if conn.server_reason is not None or not subs:
                continue
            for stream, raw in frames:
                if stream not in subs or not delivers(conn.route.prefix, stream):
                    continue
                frame = f'{{"stream":"{stream}","data":{raw}}}' if conn.state.combined else raw
                if bad is not None and bad.consume():
                    self._enqueue(conn, malformed(f.malformed_kind, frame))
                else:
                    self._enqueue(conn, frame)

    # -- fault actions (any thread) -----------------------------------------------------

    def _call(self, fn: Any) -> int:
        loop = self._loop
        if loop is None or loop.is_closed():
            return 0

        async def run() -> int:
            return int(fn())

        return asyncio.run_coroutine_threadsafe(run(), loop).result(10.0)

    def drop_all(self, *, graceful: bool = False) -> int:
        """Drop every connection: TCP abort (no close frame), or a 1001 close if ``graceful``."""

        def act() -> int:
            conns = list(self._conns.values())
            for c in conns:
                c.server_reason = "dropped"
                if graceful:
                    self._spawn(self._close(c, 1001, "Server restart"))
                else:
                    c.ws.transport.abort()
            return len(conns)

        return self._call(act)

    def send_raw(self, kind: str) -> int:
        """Send one malformed frame of ``kind`` to every connection (see ``SimulatorFaults``)."""

        def act() -> int:
            conns = list(self._conns.values())
            for c in conns:
                raw = broken_wire_bytes(kind)
                if raw is not None:
                    c.server_reason = "dropped"
                    c.ws.transport.write(raw)
                    if kind == "truncated_frame":
                        c.ws.transport.close()
                else:
                    self._enqueue(c, malformed(kind, '{"stream":"!markPrice@arr","data":[]}'))
            return len(conns)

        return self._call(act)
