"""WebSocket fault state and broken frames, consulted by :mod:`simulator.ws_server`.

:class:`WsFaultState` holds one :class:`~simulator.faulthandle.FaultHandle` per fault (set by
:class:`~simulator.faults.SimulatorFaults` from a test's thread, read in the server's event
loop). :func:`malformed` breaks a frame's *content* (it still travels as a valid WebSocket
message); :func:`broken_wire_bytes` breaks the *protocol* (bytes written straight to TCP).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.faulthandle import FaultHandle

__all__ = ["WsFaultState", "broken_wire_bytes", "malformed"]


@dataclass(slots=True)
class WsFaultState:
    """Faults the WebSocket server consults (each a live handle, or ``None``)."""

    stall: FaultHandle | None = None
    no_server_pings: FaultHandle | None = None
    no_pong_replies: FaultHandle | None = None
    refuse: FaultHandle | None = None
    refuse_status: int = 429
    ban_until_ms: int | None = None
    """End of the ban a 418 refusal reports (simulator clock); set by the first 418."""
    slow_handshake: FaultHandle | None = None
    handshake_delay: float = 0.0
    malformed: FaultHandle | None = None
    malformed_kind: str = "truncated_json"

    @staticmethod
    def on(handle: FaultHandle | None) -> bool:
        """Whether ``handle`` is set and active."""
        return handle is not None and handle.active


def malformed(kind: str, frame: str) -> str | bytes:
    """A broken version of ``frame`` that a normal send can still carry.

    Kinds: ``truncated_json`` (the first half of the frame), ``invalid_json`` (an HTML error
    page), ``binary`` (a binary frame of garbage), ``empty`` (an empty text frame).
    """
    if kind == "invalid_json":
        return "<html><body>502 Bad Gateway</body></html>"
    if kind == "binary":
        return b"\x00\xff\xfe garbage \x01"
    if kind == "empty":
        return ""
    return frame[: max(1, len(frame) // 2)]


def broken_wire_bytes(kind: str) -> bytes | None:
    """Raw bytes that break the WebSocket protocol, or ``None`` for an in-band ``kind``.

    ``truncated_frame``: a text-frame header announcing 4096 bytes followed by far fewer (the
    server then closes TCP); ``invalid_utf8``: a complete text frame whose payload is not UTF-8.
    """
    if kind == "truncated_frame":
        payload = b'{"stream":"!markPrice@arr","data":[{"e":"markPriceUpdate","E":17'
        return bytes([0x81, 126]) + struct.pack("!H", 4096) + payload
    if kind == "invalid_utf8":
        body = b'{"e":"\xff\xfe"}'
        return bytes([0x81, len(body)]) + body
    return None
