"""Feed conversation: what a WebSocket connection thread tells its feed actor."""

from __future__ import annotations

from messages._base import Message, message
from messages.market import KlineUpdate, MarkPrices, StreamReply, Tickers
from messages.types import TimestampMs

__all__ = ["FeedConnected", "FeedData", "FeedDisconnected"]


@message
class FeedConnected(Message):
    """The handshake succeeded; frames will follow."""

    connection_id: int
    """Which connection of the feed (rotation runs two side by side)."""
    url: str
    """The URL connected to."""
    at_ms: TimestampMs
    """When."""


@message
class FeedData(Message):
    """One received frame, parsed in the connection thread."""

    connection_id: int
    """Which connection it came from."""
    message: MarkPrices | Tickers | KlineUpdate | StreamReply | None
    """The parsed frame, or ``None`` when the whole frame was rejected."""
    rejected: tuple[str, ...] = ()
    """Reasons (``FrameError.reason``) for every rejected entry or frame."""
    received_mono: float = 0.0
    """Monotonic receipt time (stall detection, latency)."""
    detail: str | None = None
    """The first rejection's explanation, for a rate-limited log line."""


@message
class FeedDisconnected(Message):
    """The connection ended or could not be made; the thread retries after a delay."""

    connection_id: int
    """Which connection."""
    reason: str
    """What happened (``"connection refused"``, ``"handshake refused: 429"`` …)."""
    at_ms: TimestampMs
    """When."""
    retry_in_s: float | None
    """Seconds until the next attempt, or ``None`` when the thread is stopping."""
