"""A small stand-in for the original system's data path, to measure it in the same run.

It follows ``../shared/spec/volspike-original.md`` §3 (the deployed "CORRECTLY_FIXED" daemon and
``funding_api_server.py``), over the same simulator stream:

- **writer** (``binance_funding_ws_daemon.py``): one WebSocket connection; every frame is
  ``json.loads``-ed, non-markPrice streams are ignored, each item updates
  ``funding_state[symbol]`` (``fundingRate, markPrice, indexPrice, nextFundingTime,
  updatedAt``), and after **every** message the full state is rewritten to
  ``.funding_state.json`` with ``indent=2`` through a temp file and an atomic rename;
- **reader** (the FastAPI server): ``GET /funding/{symbol}`` answers from an in-memory copy of
  the file that is re-read when it is older than 1 s (lazily, on a request);
  ``/funding/health`` re-reads the file on every call.

Differences, on purpose: the server is the standard library's threaded HTTP/1.1 server (with
``TCP_NODELAY`` and one write per response) instead of uvicorn, and each symbol's record also
keeps the frame's event time as ``lastUpdateTime`` so that the harness can tell which frame a
response reflects. Neither changes the freshness, which the 1 s reload dominates.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import websocket

__all__ = ["OriginalStandIn", "StateFileReader", "StateFileWriter"]

RELOAD_AFTER_S = 1.0
STALE_THRESHOLD_S = 180.0


class StateFileWriter:
    """The original daemon's message handler: update the state, rewrite the whole file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.funding_state: dict[str, dict[str, Any]] = {}
        self.connection_status: dict[str, Any] = {
            "connected": True,
            "last_connected_time": time.time(),
            "reconnect_attempts": 0,
            "messages_received": 0,
            "last_message_time": None,
        }
        self.lock = threading.Lock()
        self.writes = 0
        self._tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")

    def handle(self, raw: str | bytes) -> bool:
        """One WebSocket message; returns whether the state file was rewritten."""
        message = json.loads(raw)
        stream = message.get("stream", "") if isinstance(message, dict) else ""
        if "markPrice" not in stream:
            return False
        data = message.get("data")
        items = data if isinstance(data, list) else [data]
        now = time.time()
        updated = False
        with self.lock:
            for item in items:
                if not isinstance(item, dict) or "s" not in item:
                    continue
                entry = self.funding_state.setdefault(item["s"], {})
                if "r" in item:
                    entry["fundingRate"] = float(item["r"])
                if "p" in item:
                    entry["markPrice"] = float(item["p"])
                if "i" in item:
                    entry["indexPrice"] = float(item["i"])
                if "T" in item:
                    entry["nextFundingTime"] = int(item["T"])
                entry["updatedAt"] = now
                entry["lastUpdateTime"] = item.get("E")
                updated = True
            self.connection_status["messages_received"] += len(items)
            self.connection_status["last_message_time"] = now
            if updated:
                self._save(now)
        return updated

    def _save(self, now: float) -> None:
        document = {
            "funding_state": self.funding_state,
            "connection_status": self.connection_status,
            "updated_at": now,
            "daemon_pid": os.getpid(),
        }
        with self._tmp.open("w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
        self._tmp.replace(self.path)
        self.writes += 1


class StateFileReader:
    """The original API server's cache: the parsed file, re-read when older than 1 s."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] | None = None
        self._loaded = 0.0
        self._lock = threading.Lock()
        self.reloads = 0

    def _read(self) -> dict[str, Any]:
        with self.path.open(encoding="utf-8") as src:
            document: dict[str, Any] = json.load(src)
        return document

    def state(self) -> dict[str, Any]:
        """The cached document, re-read if older than :data:`RELOAD_AFTER_S`."""
        with self._lock:
            now = time.monotonic()
            if self._data is None or now - self._loaded > RELOAD_AFTER_S:
                with contextlib.suppress(OSError, ValueError):
                    self._data = self._read()
                    self._loaded = now
                    self.reloads += 1
            return self._data or {}

    def fresh(self) -> dict[str, Any]:
        """Read the file now (the original's health path does this on every call)."""
        try:
            return self._read()
        except (OSError, ValueError):
            return {}


def _handler_class(reader: StateFileReader) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            head = (
                f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode()
            self.wfile.write(head + payload)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/funding/health":
                self._health()
            elif path.startswith("/funding/"):
                self._symbol(path[len("/funding/") :])
            else:
                self._send(404, {"detail": "Not Found"})

        def _symbol(self, symbol: str) -> None:
            state = reader.state().get("funding_state", {})
            entry = state.get(symbol)
            if entry is None:
                self._send(404, {"detail": {"error": "Symbol not found", "symbol": symbol}})
                return
            age = time.time() - entry["updatedAt"]
            if age > STALE_THRESHOLD_S:
                self._send(503, {"detail": {"error": "Data stale", "symbol": symbol}})
                return
            self._send(
                200,
                {
                    "symbol": symbol,
                    "markPrice": entry["markPrice"],
                    "fundingRate": entry["fundingRate"],
                    "nextFundingTime": entry["nextFundingTime"],
                    "indexPrice": entry["indexPrice"],
                    "updatedAt": entry["updatedAt"],
                    "ageSeconds": age,
                    "lastUpdateTime": entry["lastUpdateTime"],
                },
            )

        def _health(self) -> None:
            document = reader.fresh()
            status = reader.fresh().get("connection_status", {})
            symbols = document.get("funding_state", {})
            now = time.time()
            ages = [now - e.get("updatedAt", 0) for e in symbols.values()]
            healthy = bool(status.get("connected")) and bool(symbols) and max(ages) < 180
            body = {
                "status": "healthy" if healthy else "unhealthy",
                "websocketConnected": bool(status.get("connected")),
                "symbolCount": len(symbols),
                "oldestDataAgeSeconds": max(ages) if ages else None,
                "newestDataAgeSeconds": min(ages) if ages else None,
            }
            self._send(200 if healthy else 503, body)

    return Handler


class OriginalStandIn:
    """Writer thread + HTTP server, run as a helper process by the tick-to-readable benchmark.

    Args:
        ws_url: the full stream URL (the same streams as the daemon's market feed).
        state_dir: where ``.funding_state.json`` lives.
        port: the HTTP port (0: any free port).
    """

    def __init__(self, *, ws_url: str, state_dir: str, port: int = 0) -> None:
        self.path = Path(state_dir) / ".funding_state.json"
        self.writer = StateFileWriter(self.path)
        self.reader = StateFileReader(self.path)
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(self.reader))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._server_thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name="orig-api"
        )
        self._server_thread.start()
        self._ws_url = ws_url
        self._writer_thread = threading.Thread(target=self._read_stream, name="orig-ws")
        self._writer_thread.start()

    def _read_stream(self) -> None:
        try:
            ws = websocket.create_connection(self._ws_url, timeout=5, suppress_origin=True)
        except Exception as exc:
            self.errors.append(f"connect: {exc!r}")
            return
        ws.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    raw = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                except (websocket.WebSocketException, OSError) as exc:
                    self.errors.append(f"recv: {exc!r}")
                    return
                if raw:
                    self.writer.handle(raw)
        finally:
            with contextlib.suppress(Exception):
                ws.close(timeout=1)

    def info(self) -> dict[str, Any]:
        """The HTTP port."""
        return {"port": self.port, "pid": os.getpid()}

    def wait_filled(self, symbols: int, timeout: float) -> int:
        """Wait (bounded) until the state file holds ``symbols`` symbols."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while time.monotonic() < deadline:
            with self.writer.lock:
                count = len(self.writer.funding_state)
            if count >= symbols and self.path.exists():
                return count
            pause.wait(0.05)
        with self.writer.lock:
            return len(self.writer.funding_state)

    def stats(self) -> dict[str, Any]:
        """Writes, reloads and errors so far."""
        return {
            "file_writes": self.writer.writes,
            "file_reloads": self.reader.reloads,
            "file_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "errors": list(self.errors),
        }

    def close(self) -> None:
        """Stop both threads."""
        self._stop.set()
        self._writer_thread.join(5.0)
        self.server.shutdown()
        self.server.server_close()
        self._server_thread.join(5.0)
