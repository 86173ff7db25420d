"""Feed conversation: what a WebSocket connection thread tells its feed actor."""

from __future__ import annotations

from messages._base import Message, message
from messages.market import KlineUpdate, KlineUpdates, MarkPrices, StreamReply, Tickers
from messages.types import TimestampMs

__all__ = ["FeedConnected", "FeedData", "FeedDisconnected", "SetStreams", "StreamsWanted"]


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
    message: MarkPrices | Tickers | KlineUpdate | KlineUpdates | StreamReply | None
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


@message
class SetStreams(Message):
    """Tell a feed which streams to carry (kline shards are re-planned when listings change).

    The feed opens a connection for the new set and closes the old one once the new one
    delivers data, so a re-shard leaves no gap; an empty set makes the feed idle.
    """

    streams: tuple[str, ...]
    """Stream names (``btcusdt@kline_1h`` …); at most what one connection may carry."""


@message
class StreamsWanted(Message):
    """A feed that starts without streams asks its planner for them.

    The scanner plans the kline shards; a restarted shard asks, so it carries its streams again
    at once instead of at the planner's next periodic re-tell.
    """

    feed: str
    """The asking feed's registry name; the answer is a ``SetStreams`` told to it."""
