"""The feed actor: one logical WebSocket feed (the market feed, or one shard of klines).

Owns a :class:`~actors._feed_connection.FeedConnection` (a helper thread that connects, reads,
parses and ``tell``s this actor) and decides what the thread cannot see:

- **stalls**: a connection that is open but silent, or whose exchange event time does not
  advance, for ``stall_after_s`` is dropped and reconnected (connected-but-silent is a
  failure, not health);
- **planned rotation**: after ``rotate_after_s`` (default 23 h, before Binance's 24 h cut) a
  second connection is opened; when it delivers its first data the old one is closed, so
  freshness has no gap; a replacement that shows no data within ``rotation_grace_s`` is
  abandoned and tried again later;
- **re-planning**: ``SetStreams`` switches the feed to another set of streams the same way
  (new connection first, old one closed once the new one has data); an empty set makes the
  feed idle (no connection, healthy, reporting progress so liveness leaves it alone);
- **forwarding**: each parsed message goes to the actors named for its type in ``routes``,
  looked up in the registry at send time (so a restarted consumer is found);
- **counting**: frames, rejected entries by reason (logged at most every 10 s), reconnects,
  stalls and rotations, published on the status board for ``/health`` and ``/metrics``.

Progress (liveness) is reported only when the exchange event time advances, so a supervisor
with a progress deadline restarts a feed that cannot get data at all.

Accepts: ``FeedConnected``, ``FeedData``, ``FeedDisconnected`` (from its threads),
``SetStreams``, ``Tick(timer="feed-watch")``. Emits: ``MarkPrices``, ``Tickers`` and
``KlineUpdate`` to the consumers named in ``routes``.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from actors._feed_connection import FeedConnection, FeedTimeouts
from actors._feed_logic import StallWatch, stream_url
from actors._status import FeedStatus
from messages.control import Tick
from messages.feed import FeedConnected, FeedData, FeedDisconnected, SetStreams, StreamsWanted
from messages.market import KlineUpdate, KlineUpdates, MarkPrices, Tickers
from supervisors.actor import SupervisedActor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from actors._price_board import PriceBoard
    from actors._status import StatusBoard
    from messages._base import Message
    from supervisors.backoff import BackoffPolicy
    from supervisors.context import ChildContext

__all__ = ["FeedActor"]

_REJECT_LOG_EVERY_S = 10.0


def _event_time(message: Any) -> int | None:
    if isinstance(message, MarkPrices):
        return max(message.event_times_ms, default=None)
    if isinstance(message, Tickers):
        return max((t.event_time_ms for t in message.items), default=None)
    if isinstance(message, KlineUpdate):
        return message.event_time_ms
    if isinstance(message, KlineUpdates):
        return max((k.event_time_ms for k in message.items), default=None)
    return None


class FeedActor(SupervisedActor):
    """One WebSocket feed.

    Args:
        context: from the supervisor.
        base_url: the routed WebSocket root (``wss://fstream.binance.com/market``).
        streams: the stream names this feed carries.
        routes: message type name (``"MarkPrices"``) → names of the actors to tell.
        status: the status board to publish on.
        stall_after_s: silence (or a stuck event time) that counts as a stall.
        rotate_after_s: age at which a connection is replaced.
        rotation_grace_s: how long a replacement may take to deliver data.
        watch_period_s: how often stalls and rotation are checked.
        backoff: reconnect delays of the connection thread.
        timeouts: connect/ping timing of the connection thread.
        planner: who plans this feed's streams (told ``StreamsWanted`` when it starts idle).
        board: the price board its connections write mark prices into directly (the market
            feed; the ``MarkPrices`` are still routed, see :mod:`actors._price_board`).
        yield_every: its connections offer the GIL to waiting threads after every so many
            text frames (the kline shards; see :mod:`actors._feed_connection`).
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        base_url: str,
        streams: Sequence[str],
        routes: Mapping[str, Sequence[str]],
        status: StatusBoard,
        stall_after_s: float = 15.0,
        rotate_after_s: float = 23 * 3600.0,
        rotation_grace_s: float = 30.0,
        watch_period_s: float = 1.0,
        backoff: BackoffPolicy | None = None,
        timeouts: FeedTimeouts | None = None,
        planner: str | None = None,
        board: PriceBoard | None = None,
        yield_every: int = 0,
    ) -> None:
        super().__init__(context=context)
        self._planner = planner
        self._board = board
        self._yield_every = yield_every
        self._base_url = base_url
        self._streams = tuple(streams)
        self._url = stream_url(base_url, streams) if streams else None
        self._routes = {kind: tuple(names) for kind, names in routes.items()}
        self._status = status
        self._stall_after_s = stall_after_s
        self._rotate_after_s = rotate_after_s
        self._rotation_grace_s = rotation_grace_s
        self._watch_period_s = watch_period_s
        self._backoff = backoff
        self._timeouts = timeouts
        self._current: FeedConnection | None = None
        self._next: FeedConnection | None = None
        self._next_started = 0.0
        self._watches: dict[int, StallWatch] = {}
        self._connected_at: dict[int, float] = {}
        self._counts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._rejected_unlogged = 0
        self._last_reject_log = -_REJECT_LOG_EVERY_S
        self._last_detail: str | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        """Open the first connection and start the watch timer (actor thread)."""
        if self._url is not None:
            self._current = self._connect(self._url)
            self._log.info("feed started: {} stream(s) at {}", len(self._streams), self._url[:200])
        else:
            self._log.info("feed started idle (no streams yet)")
            if self._planner is not None:  # a restarted shard: ask instead of waiting
                self.registry.tell(self._planner, StreamsWanted(feed=self.name))
        if self.timers is not None:
            self.start_timer("feed-watch", period_s=self._watch_period_s)
        self._publish()

    def _connect(self, url: str) -> FeedConnection:
        return FeedConnection(
            self.name,
            url,
            self.actor_ref.tell,
            self.clock,
            backoff=self._backoff,
            timeouts=self._timeouts,
            board=self._board,
            yield_every=self._yield_every,
        ).start()

    def _close(self) -> None:
        for conn in (self._next, self._current):
            if conn is not None and not conn.stop(timeout=5.0):
                self._log.warning("connection thread {} did not end within 5 s", conn)
        self._next = self._current = None

    def redeliverable(self, message: Message) -> bool:
        """Frames are stale a moment later: never redelivered after a crash."""
        return not isinstance(message, FeedData)

    # --- messages ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Dispatch (actor thread)."""
        match message:
            case FeedData():
                self._handle_data(message)
            case FeedConnected():
                self._handle_connected(message)
            case FeedDisconnected():
                self._handle_disconnected(message)
            case SetStreams(streams=streams):
                self._handle_set_streams(streams)
            case Tick(timer="feed-watch"):
                self._handle_watch()
            case _:
                return super().on_receive(message)
        return None

    def _known(self, connection_id: int) -> bool:
        return any(
            c is not None and c.connection_id == connection_id for c in (self._current, self._next)
        )

    def _handle_connected(self, event: FeedConnected) -> None:
        if not self._known(event.connection_id):
            return
        now = self.clock.monotonic()
        self._watches[event.connection_id] = StallWatch(self._stall_after_s, now)
        self._connected_at[event.connection_id] = now
        self._counts["connects_total"] += 1
        self._log.info("connected (connection {})", event.connection_id)
        self._publish()

    def _handle_disconnected(self, event: FeedDisconnected) -> None:
        self._watches.pop(event.connection_id, None)
        self._connected_at.pop(event.connection_id, None)
        if not self._known(event.connection_id) or event.retry_in_s is None:
            return
        self._counts["disconnects_total"] += 1
        self._log.warning(
            "disconnected: {}; reconnecting in {:.1f} s", event.reason, event.retry_in_s
        )
        self._publish()

    def _handle_data(self, data: FeedData) -> None:
        cid = data.connection_id
        if not self._known(cid):
            return  # a late frame from a connection we already replaced
        message = data.message
        self._counts["frames_total"] += (
            len(message.items) if isinstance(message, KlineUpdates) else 1
        )
        if data.rejected:
            self._count_rejected(data)
        if message is None:
            return
        event_ms = _event_time(message)
        watch = self._watches.get(cid)
        advanced = False
        if watch is not None:
            before = watch.newest_event_ms
            watch.frame(data.received_mono, event_ms)
            advanced = watch.newest_event_ms != before
        if self._next is not None and cid == self._next.connection_id and event_ms is not None:
            self._promote()
        for name in self._routes.get(type(message).__name__, ()):
            self.registry.tell(name, message)
        if advanced:
            self.report_progress()

    def _count_rejected(self, data: FeedData) -> None:
        self._rejected.update(data.rejected)
        self._rejected_unlogged += len(data.rejected)
        self._last_detail = data.detail or self._last_detail
        now = self.clock.monotonic()
        if now - self._last_reject_log >= _REJECT_LOG_EVERY_S:
            self._log.warning(
                "rejected {} malformed entr(y/ies) since the last report ({}); e.g. {}",
                self._rejected_unlogged,
                ", ".join(f"{k}={v}" for k, v in sorted(self._rejected.items())),
                self._last_detail,
            )
            self._rejected_unlogged = 0
            self._last_reject_log = now

    def _handle_set_streams(self, streams: tuple[str, ...]) -> None:
        if streams == self._streams:
            return
        self._streams = streams
        if self._next is not None:
            self._next.close()
            self._next = None
        if not streams:
            self._log.info("no streams any more: going idle")
            if self._current is not None:
                self._current.close()
                self._current = None
            self._url = None
            self._publish()
            return
        self._url = stream_url(self._base_url, streams)
        if self._current is None:
            self._log.info("carrying {} stream(s) now", len(streams))
            self._current = self._connect(self._url)
        else:
            self._log.info(
                "switching to {} stream(s); the old connection stays until the new one has data",
                len(streams),
            )
            self._next = self._connect(self._url)
            self._next_started = self.clock.monotonic()
        self._publish()

    def _handle_watch(self) -> None:
        now = self.clock.monotonic()
        current = self._current
        if current is None and self._url is None:
            self.report_progress()  # idle on purpose: nothing to be late for
        if current is not None:
            watch = self._watches.get(current.connection_id)
            reason = watch.stalled(now) if watch is not None else None
            if reason is not None:
                self._counts["stalls_total"] += 1
                self._log.warning("stalled ({}); reconnecting", reason)
                self._watches.pop(current.connection_id, None)
                current.reconnect(f"stalled: {reason}")
            connected_at = self._connected_at.get(current.connection_id)
            wrong_streams = self._url is not None and current.url != self._url
            too_old = connected_at is not None and now - connected_at >= self._rotate_after_s
            if self._next is None and self._url is not None and (wrong_streams or too_old):
                self._log.info(
                    "{}: opening a new connection for {} stream(s)",
                    "re-planning" if wrong_streams else "rotating",
                    len(self._streams),
                )
                self._next = self._connect(self._url)
                self._next_started = now
        if self._next is not None and now - self._next_started > self._rotation_grace_s:
            self._log.warning(
                "rotation abandoned: the new connection showed no data in {:g} s",
                self._rotation_grace_s,
            )
            self._next.close()
            self._next = None
            self._counts["rotations_failed_total"] += 1
        self._publish()

    def _promote(self) -> None:
        old, self._current, self._next = self._current, self._next, None
        if old is not None:
            old.close()
            self._watches.pop(old.connection_id, None)
            self._connected_at.pop(old.connection_id, None)
        self._counts["rotations_total"] += 1
        self._log.info("rotated to connection {} with no gap", self._current.connection_id)  # type: ignore[union-attr]

    def _publish(self) -> None:
        now = self.clock.monotonic()
        current = self._current
        watch = self._watches.get(current.connection_id) if current is not None else None
        self._status.publish(
            self.name,
            FeedStatus(
                connected=watch is not None,
                data_age_s=watch.data_age(now)
                if watch is not None and watch.newest_event_ms
                else None,
                stalled=(
                    watch.stalled(now)
                    if watch is not None
                    else ("not connected" if self._url is not None else None)
                ),
                streams=len(self._streams),
                published_mono=now,
            ),
        )
        counters: dict[str, float] = {f"feed_{k}": v for k, v in self._counts.items()}
        counters["feed_rejected_total"] = sum(self._rejected.values())
        self._status.count(self.name, counters)
