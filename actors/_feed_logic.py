"""Pure logic of the WebSocket feeds: stream URLs, kline sharding, stall detection.

No sockets, no threads: values in, values out. :mod:`actors.feed` calls these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "MARKET_STREAMS",
    "StallWatch",
    "kline_stream",
    "reshard",
    "stream_url",
]

MARKET_STREAMS = ("!markPrice@arr@1s", "!ticker@arr")
"""The "market" feed: every perpetual's mark price each second, and the 24 h tickers."""


def kline_stream(symbol: str, interval: str = "1h") -> str:
    """``btcusdt@kline_1h``: stream names use lower-case symbols."""
    return f"{symbol.lower()}@kline_{interval}"


def stream_url(base: str, streams: Sequence[str]) -> str:
    """The combined-stream URL for ``streams`` under ``base``.

    ``base`` is the routed root, e.g. ``wss://fstream.binance.com/market``; the result is
    ``<base>/stream?streams=a/b``. Non-ASCII symbols are percent-encoded; ``!``, ``@`` and
    ``/`` are kept as Binance writes them.
    """
    if not streams:
        raise ValueError("a feed needs at least one stream")
    joined = "/".join(quote(s, safe="!@_") for s in streams)
    return f"{base.rstrip('/')}/stream?streams={joined}"


def reshard(
    current: Sequence[Sequence[str]], symbols: Iterable[str], per_connection: int
) -> tuple[tuple[str, ...], ...]:
    """Assign ``symbols`` to connections of at most ``per_connection`` streams each.

    Symbols that stay keep their connection (so a listing or delisting does not reconnect
    every shard); removed ones leave; new ones fill the emptiest shards first, then new
    shards; empty shards disappear. Deterministic: same inputs, same output.
    """
    if per_connection < 1:
        raise ValueError("per_connection must be at least 1")
    wanted = set(symbols)
    shards = [[s for s in shard if s in wanted] for shard in current]
    placed = {s for shard in shards for s in shard}
    # A shard may be over the cap if the cap was lowered: spill its tail into the new ones.
    spill = []
    for shard in shards:
        while len(shard) > per_connection:
            spill.append(shard.pop())
    newcomers = sorted((wanted - placed) | set(spill))
    shards = [shard for shard in shards if shard]
    for symbol in newcomers:
        roomiest = min(
            (shard for shard in shards if len(shard) < per_connection),
            key=len,
            default=None,
        )
        if roomiest is None:
            roomiest = []
            shards.append(roomiest)
        roomiest.append(symbol)
    return tuple(tuple(shard) for shard in shards)


@dataclass(slots=True)
class StallWatch:
    """Decides when a connection that is open is nonetheless dead.

    Two symptoms, both seen in production (reliability §3 items 1-3):

    - no frame at all for ``silence_s`` seconds (subscribed but starved, half-open TCP);
    - frames keep coming but the exchange event time ``E`` has not advanced for
      ``silence_s`` seconds (a server repeating its last value).

    Times are monotonic seconds supplied by the caller.
    """

    silence_s: float
    """How long without a (fresh) frame counts as a stall."""
    started_mono: float
    """When the connection opened."""
    last_frame_mono: float | None = None
    """Last frame of any kind."""
    last_advance_mono: float | None = None
    """Last time the newest event time moved forward."""
    newest_event_ms: int | None = None
    """Newest exchange event time seen."""

    def frame(self, now_mono: float, event_time_ms: int | None) -> None:
        """Record one received frame (``event_time_ms`` is ``None`` for replies)."""
        self.last_frame_mono = now_mono
        if event_time_ms is not None and (
            self.newest_event_ms is None or event_time_ms > self.newest_event_ms
        ):
            self.newest_event_ms = event_time_ms
            self.last_advance_mono = now_mono

    def stalled(self, now_mono: float) -> str | None:
        """Why the connection counts as stalled now, or ``None`` if it is healthy."""
        if self.last_frame_mono is None:
            waited = now_mono - self.started_mono
            if waited > self.silence_s:
                return f"no data for {waited:.1f} s since connecting"
            return None
        silent = now_mono - self.last_frame_mono
        if silent > self.silence_s:
            return f"no data for {silent:.1f} s"
        since_advance = now_mono - (self.last_advance_mono or self.started_mono)
        if since_advance > self.silence_s:
            return f"event time stuck at {self.newest_event_ms} for {since_advance:.1f} s"
        return None

    def data_age(self, now_mono: float) -> float:
        """Seconds since the event time last advanced (or since connecting)."""
        return now_mono - (self.last_advance_mono or self.started_mono)
