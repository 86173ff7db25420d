"""A small threaded HTTP/1.1 service with fault injection and a clean, leak-free shutdown.

The base of the Binance REST simulator and of the backend and Telegram doubles. It binds
127.0.0.1 (port 0: the OS picks one), keeps connections alive like a real server, and on
:meth:`HttpService.stop` closes the listener, shuts every open connection down and joins every
thread it started. :meth:`HttpService.go_down` closes the listening socket (clients get
"connection refused") and :meth:`HttpService.come_up` re-opens it on the same port.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import orjson
from loguru import logger

from simulator.faulthandle import FaultHandle
from simulator.httpfaults import HttpFaults

__all__ = ["HttpRequest", "HttpResponse", "HttpService", "json_response"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One parsed request."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    client_ip: str


@dataclass(slots=True)
class HttpResponse:
    """One response to write."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


def json_response(
    status: int, obj: Any, headers: list[tuple[str, str]] | None = None
) -> HttpResponse:
    """A JSON response (compact, like the real services)."""
    return HttpResponse(status, orjson.dumps(obj), list(headers or []))


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: HttpService) -> None:
        self.service = service
        self._conn_lock = threading.Lock()
        self._active: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._active.add(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread: name it after the service and record it, so
        # leak checks see it (the stdlib calls it "Thread-N (process_request_thread)").
        thread = threading.current_thread()
        thread.name = f"sim-{self.service.name}-conn"
        self.service._track(thread)  # noqa: SLF001 - the server belongs to the service
        super().process_request_thread(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._active.discard(request)
        super().shutdown_request(request)

    def close_active(self) -> None:
        with self._conn_lock:
            active = list(self._active)
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sim"
    sys_version = ""

    def version_string(self) -> str:
        """``Server: sim``."""
        return self.server_version

    timeout = 30.0
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet the stdlib's stderr access log."""

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(key, value)
        request = HttpRequest(
            self.command,
            parts.path,
            query,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            self.client_address[0],
        )
        self.server.service._serve(self, request)  # noqa: SLF001 - the handler belongs to it

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch  # noqa: N815 - stdlib names


class HttpService:
    """Base class: subclasses implement :meth:`handle` (and optionally the hooks).

    Args:
        name: short name for threads and logs (``rest``, ``backend``, ``telegram``).
        host: interface to bind.
        port: port to bind (0: any free port).
        hold_seconds: how long a "timeout" fault holds a request by default.
    """

    def __init__(
        self, name: str, host: str = "127.0.0.1", port: int = 0, hold_seconds: float = 30.0
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.hold_seconds = hold_seconds
        self.faults = HttpFaults(name)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._interrupt = threading.Event()
        self._up = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []
        self._threads: list[threading.Thread] = []
        """The threads this service started (dead ones are pruned as new ones come)."""
        self._threads_lock = threading.Lock()
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    @property
    def is_up(self) -> bool:
        """Whether the listening socket is open."""
        return self._up.is_set()

    def start(self) -> Self:
        """Bind and serve in a background thread."""
        with self._lock:
            if self._started:
                return self
            self._started = True
            self._open()
        logger.info("simulator {}: listening on {}", self.name, self.url)
        return self

    def _open(self) -> None:
        self._interrupt.clear()
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sim-{self.name}-http",
        )
        self._track(self._thread)
        self._thread.start()
        self._up.set()

    def _close(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._up.clear()
        self._interrupt.set()
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join()
        server.close_active()
        server.server_close()  # joins the handler threads

    def stop(self) -> None:
        """Stop serving, close every connection, join every thread (idempotent)."""
        self._stop.set()
        self._interrupt.set()
        with self._lock:
            timers, self._timers = self._timers, []
        for t in timers:
            t.cancel()
            if t is not threading.current_thread():
                t.join()
        with self._lock:
            self._close()
        self.faults.clear()

    def threads(self) -> list[threading.Thread]:
        """The threads this service started that are still alive (none after :meth:`stop`).

        The accept loop, one thread per open connection, and the :meth:`go_down` timer.
        """
        with self._threads_lock:
            return [t for t in self._threads if t.is_alive()]

    def _track(self, thread: threading.Thread) -> None:
        with self._threads_lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def go_down(self, seconds: float | None = None) -> FaultHandle:
        """Close the listening socket and every connection (clients get connection refused).

        Args:
            seconds: come back up on the same port after this many real seconds
                (``None``: stay down until the handle ends or :meth:`come_up`).
        """
        with self._lock:
            self._close()
            handle = FaultHandle(f"{self.name}: down", on_end=self.come_up)
            if seconds is not None:
                timer = threading.Timer(seconds, handle.end)
                timer.name = f"sim-{self.name}-up-timer"
                self._timers.append(timer)
                self._track(timer)
                timer.start()
        logger.info("simulator {}: down (port {})", self.name, self.port)
        return handle

    def come_up(self) -> None:
        """Re-open the listening socket on the same port (no-op if up or stopped)."""
        with self._lock:
            if self._stop.is_set() or self._server is not None:
                return
            self._open()
        logger.info("simulator {}: up again on {}", self.name, self.url)

    def wait_up(self, timeout: float) -> bool:
        """Block until the service is listening (or ``timeout`` real seconds pass)."""
        return self._up.wait(timeout)

    # -- request path -------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request (subclasses)."""
        raise NotImplementedError

    def fault_response(self, request: HttpRequest, status: int) -> HttpResponse:
        """The answer for an injected error status (subclasses shape the body)."""
        del request
        return json_response(status, {"error": "Internal server error"})

    def on_dropped(self, request: HttpRequest, action: str) -> None:
        """Called when a fault drops a request without an answer (``reset`` or ``timeout``)."""

    def _serve(self, handler: _Handler, request: HttpRequest) -> None:
        verdict = self.faults.verdict(request.path)
        if verdict.delay > 0 and self._interrupt.wait(verdict.delay):
            handler.close_connection = True
            return
        if verdict.action == "reset":
            self.on_dropped(request, "reset")
            _reset(handler)
            return
        if verdict.action == "timeout":
            self.on_dropped(request, "timeout")
            self._interrupt.wait(self.hold_seconds if verdict.hold is None else verdict.hold)
            handler.close_connection = True
            return
        try:
            if verdict.action == "status":
                response = self.fault_response(request, verdict.status)
            else:
                response = self.handle(request)
        except Exception:
            logger.exception("simulator {}: handler failed for {}", self.name, request.path)
            response = json_response(500, {"error": "Internal server error"})
        _write(handler, request, response)


def _write(handler: _Handler, request: HttpRequest, response: HttpResponse) -> None:
    try:
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(response.body)))
        for key, value in response.headers:
            handler.send_header(key, value)
        handler.end_headers()
        if request.method != "HEAD":
            handler.wfile.write(response.body)
    except OSError:
        handler.close_connection = True


def _reset(handler: _Handler) -> None:
    handler.close_connection = True
    sock = handler.connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
