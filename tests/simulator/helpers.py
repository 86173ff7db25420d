"""Helpers for the simulator tests: fixtures on disk, bounded WebSocket reads, JSON shapes."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
import websocket

from simulator.config import resolve_fixtures_dir

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

FIXTURES = resolve_fixtures_dir(None)
BINANCE_FIXTURES = FIXTURES / "binance"
HISTORY_FIXTURES = FIXTURES / "binance-history"


def fixture_path(name: str) -> Path:
    path = BINANCE_FIXTURES / name
    if not path.exists():
        pytest.skip(f"fixture {name} not available")
    return path


def fixture_lines(name: str) -> list[Any]:
    return [
        json.loads(line) for line in fixture_path(name).read_text().splitlines() if line.strip()
    ]


def connect(url: str, timeout: float = 5.0) -> websocket.WebSocket:
    return websocket.create_connection(url, timeout=timeout)


def recv_json(ws: websocket.WebSocket) -> Any:
    return json.loads(ws.recv())


def recv_until(
    ws: websocket.WebSocket,
    predicate: Callable[[Any], bool],
    *,
    max_frames: int = 500,
    timeout: float = 5.0,
) -> Any:
    """Read frames until one satisfies ``predicate`` (bounded in frames and time)."""
    deadline = time.monotonic() + timeout
    for _ in range(max_frames):
        ws.settimeout(max(0.01, deadline - time.monotonic()))
        msg = json.loads(ws.recv())
        if predicate(msg):
            return msg
        if time.monotonic() > deadline:
            break
    raise AssertionError("no matching frame")


def silent_for(ws: websocket.WebSocket, seconds: float) -> bool:
    """True if no data frame arrives within ``seconds`` (a blocking receive with a timeout)."""
    ws.settimeout(seconds)
    try:
        ws.recv()
    except websocket.WebSocketTimeoutException:
        return True
    return False


def json_types(value: Any) -> Any:
    """The JSON type skeleton of a value (for shape comparisons)."""
    if isinstance(value, dict):
        return {k: json_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_types(v) for v in value]
    return type(value).__name__
