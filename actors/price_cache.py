"""The price cache actor: owns the :class:`~actors._price_board.PriceBoard`.

Accepts:
    ``MarkPrices`` (tell, from the market feed): applied to the board, latest value wins (the
    market feed's connection thread has usually written the same frame already, the moment it
    was parsed; the board recognises it and neither applies nor counts it twice).
    ``GetPrice`` / ``GetPrices`` (ask, with a timeout): answered with a ``PriceReply``.
    ``Tick(timer="evict")``: drops symbols not updated for ``evict_after_s`` (a delisting
    must not make health red forever).

Emits: nothing; readers that need speed (the HTTP API) read the board directly.

The board is created by the application tree and outlives this actor, so a restarted cache
keeps what its predecessor had and the API never goes blank. Its inbox coalesces waiting
frames (:class:`~actors._coalescing_inbox.CoalescingInbox`), so a slow cache never builds a
backlog: latest value wins, merges are counted (``price_frames_coalesced_total``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors._coalescing_inbox import CoalescingInbox
from messages.cache import GetPrice, GetPrices, PriceReply
from messages.control import Tick
from messages.market import MarkPrices
from messages.types import TimestampMs
from supervisors.actor import SupervisedActor

if TYPE_CHECKING:
    from actors._price_board import PriceBoard
    from actors._status import StatusBoard
    from messages._base import Message
    from supervisors.context import ChildContext

__all__ = ["PriceCacheActor"]


class PriceCacheActor(SupervisedActor):
    """Keeps the latest mark price, index, funding and times of every perpetual.

    Args:
        context: from the supervisor.
        board: the shared price board (written by this actor and the market feed's thread).
        status: where counters are published for ``/metrics``.
        stale_after_s: age beyond which a value is flagged stale in replies.
        evict_after_s: a symbol not updated this long is dropped.
        evict_period_s: how often to look for such symbols.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        board: PriceBoard,
        status: StatusBoard,
        stale_after_s: float = 180.0,
        evict_after_s: float = 3600.0,
        evict_period_s: float = 60.0,
    ) -> None:
        super().__init__(context=context)
        if stale_after_s <= 0 or evict_after_s <= 0 or evict_period_s <= 0:
            raise ValueError("stale_after_s, evict_after_s and evict_period_s must be positive")
        self._board = board
        self._status = status
        self._stale_after_s = stale_after_s
        self._evict_after_s = evict_after_s
        self._evict_period_s = evict_period_s

    @staticmethod
    def _create_actor_inbox() -> CoalescingInbox:
        return CoalescingInbox()

    def on_start(self) -> None:
        """Start the eviction timer (actor thread)."""
        if self.timers is not None:
            self.start_timer("evict", period_s=self._evict_period_s)
        self._publish()

    def on_receive(self, message: Any) -> Any:
        """Dispatch (actor thread)."""
        match message:
            case MarkPrices():
                self._handle_mark_prices(message)
            case GetPrice(symbol=symbol):
                return self._reply((symbol.upper(),))
            case GetPrices(symbols=symbols):
                return self._reply(None if symbols is None else tuple(s.upper() for s in symbols))
            case Tick(timer="evict"):
                self._handle_evict()
            case _:
                return super().on_receive(message)
        return None

    def redeliverable(self, message: Message) -> bool:
        """Mark prices are worthless a second later: never redelivered after a crash."""
        return not isinstance(message, MarkPrices)

    def _handle_mark_prices(self, prices: MarkPrices) -> None:
        clock = self.clock
        # The frame's receipt instant on the monotonic clock (ages must not jump with NTP).
        lag_s = max(0, clock.time_ms() - prices.received_ms) / 1000
        self._board.apply(prices, clock.monotonic() - lag_s)
        self.report_progress()
        self._publish()

    def _reply(self, symbols: tuple[str, ...] | None) -> PriceReply:
        found, missing = self._board.entries(
            symbols, now_mono=self.clock.monotonic(), stale_after_s=self._stale_after_s
        )
        return PriceReply(
            entries=found,
            missing=missing,  # type: ignore[arg-type]
            as_of_ms=TimestampMs(self.clock.time_ms()),
        )

    def _handle_evict(self) -> None:
        gone = self._board.evict(self.clock.monotonic() - self._evict_after_s)
        if gone:
            preview = ", ".join(gone[:10]) + (" …" if len(gone) > 10 else "")
            self._log.info(
                "evicted {} symbol(s) not updated for {:g} s: {}",
                len(gone),
                self._evict_after_s,
                preview,
            )
        self._publish()

    def _publish(self) -> None:
        stats = self._board.stats
        self._status.count(
            self.name,
            {
                "price_frames_total": stats.frames,
                "price_updates_total": stats.updates,
                "price_evicted_total": stats.evicted,
                "price_frames_coalesced_total": getattr(self.actor_inbox, "coalesced", 0),
                "cache_symbols": len(self._board),
            },
        )
