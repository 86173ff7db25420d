"""A small, fast HTTP/1.1 server for the localhost API: asyncio in one helper thread.

It serves ``GET`` and ``HEAD`` only, which is all the API needs, and does it with keep-alive
and pipelining, so a client that reuses its connection pays only for parsing and routing.
Request handling is a plain function ``(method, target) -> Response`` supplied by the owner,
called in the server's thread; it must be quick and must not block.

Malformed input never reaches the handler and never produces a 500:

- a request head over :data:`MAX_HEAD` bytes → ``431`` and close;
- a target over :data:`MAX_TARGET` bytes → ``414`` and close;
- an unparsable request line or header, or a request with a body → ``400`` and close;
- another method → ``405`` with ``Allow: GET, HEAD`` and close;
- more than ``max_connections`` open connections → ``503`` and close;
- a connection idle for ``idle_timeout_s`` is closed.

A handler that raises (a bug) produces ``500``, is logged, and the connection is closed; the
server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import TYPE_CHECKING, NamedTuple

from loguru import logger

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["HttpServer", "Response"]

MAX_HEAD = 8192
MAX_TARGET = 2048

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


class Response(NamedTuple):
    """What a handler returns."""

    status: int
    body: bytes
    content_type: bytes = b"application/json"
    extra_headers: bytes = b""
    """Pre-formatted header lines, each ending in ``\\r\\n``."""


def _error(status: int, message: str) -> Response:
    body = b'{"error":"' + message.encode() + b'"}'
    return Response(status, body)


def _encode(response: Response, *, head_only: bool, close: bool) -> bytes:
    reason = _REASONS.get(response.status, b"Unknown")
    body = response.body
    parts = [
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        % (response.status, reason, response.content_type, len(body)),
        response.extra_headers,
        b"Connection: close\r\n\r\n" if close else b"\r\n",
    ]
    if not head_only:
        parts.append(body)
    return b"".join(parts)


class _Connection(asyncio.Protocol):
    __slots__ = ("_buffer", "_server", "_transport", "last_active")

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self.last_active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.last_active = self._server.loop_time()
        if not self._server.admit(self):
            self._reply(_error(503, "too many connections"), head_only=False, close=True)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - asyncio API
        self._server.forget(self)
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _reply(self, response: Response, *, head_only: bool, close: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(_encode(response, head_only=head_only, close=close))
        if close:
            transport.close()
            self._transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = self._server.loop_time()
        buffer = self._buffer + data if self._buffer else data
        while self._transport is not None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._reply(_error(431, "request head too large"), head_only=False, close=True)
                self._buffer = buffer if self._transport is not None else b""
                return
            if end > MAX_HEAD:
                self._reply(_error(431, "request head too large"), head_only=False, close=True)
                return
            head = buffer[:end]
            buffer = buffer[end + 4 :]
            self._handle(head)
        self._buffer = b""

    def _handle(self, head: bytes) -> None:  # noqa: C901, PLR0912 - one branch per refusal
        line_end = head.find(b"\r\n")
        request_line = head if line_end < 0 else head[:line_end]
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._reply(_error(400, "malformed request line"), head_only=False, close=True)
            return
        method, target, version = parts
        if method not in (b"GET", b"HEAD"):
            response = _error(405, "only GET and HEAD are supported")
            response = response._replace(extra_headers=b"Allow: GET, HEAD\r\n")
            self._reply(response, head_only=False, close=True)
            return
        keep_alive = version == b"HTTP/1.1"
        if line_end >= 0:
            for raw in head[line_end + 2 :].split(b"\r\n"):
                name, sep, value = raw.partition(b":")
                if not sep or not name or name != name.strip():
                    self._reply(_error(400, "malformed header"), head_only=False, close=True)
                    return
                lowered = name.lower()
                if lowered == b"connection":
                    token = value.strip().lower()
                    if token == b"close":
                        keep_alive = False
                    elif token == b"keep-alive":
                        keep_alive = True
                elif lowered in (b"content-length", b"transfer-encoding") and value.strip() not in (
                    b"0",
                    b"",
                ):
                    self._reply(
                        _error(400, "request bodies are not accepted"), head_only=False, close=True
                    )
                    return
        if len(target) > MAX_TARGET:
            self._reply(_error(414, "request target too long"), head_only=False, close=True)
            return
        if not target.startswith(b"/"):
            self._reply(_error(400, "request target must be a path"), head_only=False, close=True)
            return
        try:
            text = target.decode("ascii")
        except UnicodeDecodeError:
            self._reply(
                _error(400, "request target must be ASCII (percent-encode it)"),
                head_only=False,
                close=True,
            )
            return
        try:
            response = self._server.handler(method.decode(), text)
        except Exception:
            logger.exception("HTTP handler failed on {} {}", method.decode(), text[:200])
            self._reply(_error(500, "internal error"), head_only=False, close=True)
            return
        self._reply(response, head_only=method == b"HEAD", close=not keep_alive)


class HttpServer:
    """The server and its thread. Start with :meth:`start`, stop with :meth:`stop`.

    Args:
        host: bind address.
        port: bind port (0 for any free port; read the real one from :attr:`port`).
        handler: ``(method, target) -> Response``, called in the server thread.
        max_connections: open connections beyond this get ``503``.
        idle_timeout_s: keep-alive connections idle this long are closed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: Callable[[str, str], Response],
        *,
        max_connections: int = 512,
        idle_timeout_s: float = 60.0,
    ) -> None:
        self.handler = handler
        self._max_connections = max_connections
        self._idle_timeout_s = idle_timeout_s
        self._connections: set[_Connection] = set()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        # Bind in the caller's thread so a busy port fails start() with a clear OSError.
        self._socket = socket.create_server((host, port), reuse_port=False, backlog=512)
        self._socket.setblocking(False)  # noqa: FBT003 - stdlib signature
        self.host = host
        self.port: int = self._socket.getsockname()[1]

    def loop_time(self) -> float:
        """The event loop's clock."""
        return self._loop.time()

    def admit(self, connection: _Connection) -> bool:
        """Register a new connection; ``False`` when over the limit."""
        if len(self._connections) >= self._max_connections:
            return False
        self._connections.add(connection)
        return True

    def forget(self, connection: _Connection) -> None:
        """Drop a closed connection."""
        self._connections.discard(connection)

    @property
    def connections(self) -> int:
        """Open connections right now."""
        return len(self._connections)

    def start(self) -> HttpServer:
        """Start serving in a daemon thread named ``HttpServer-<port>``."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"HttpServer-{self.port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("HTTP server did not start within 10 s")
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            loop.create_server(lambda: _Connection(self), sock=self._socket)
        )
        sweeper = loop.create_task(self._sweep_idle())
        ready.set()
        try:
            loop.run_forever()
        finally:
            sweeper.cancel()
            server.close()
            for connection in list(self._connections):
                connection.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(server.wait_closed())
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()
            self._stopped.set()

    async def _sweep_idle(self) -> None:
        interval = max(0.05, min(5.0, self._idle_timeout_s / 4))
        while True:
            await asyncio.sleep(interval)
            limit = self._loop.time() - self._idle_timeout_s
            for connection in [c for c in self._connections if c.last_active < limit]:
                connection.close()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop serving and close every connection; ``True`` if the thread ended in time."""
        if self._thread is None:
            self._socket.close()
            return True
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
        stopped = self._stopped.wait(timeout)
        self._thread.join(timeout)
        return stopped
