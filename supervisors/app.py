"""The application's supervision tree, built from the configuration.

Order matters: consumers start before producers and stop after them (the root stops in
reverse start order), so no message is sent to an actor that is not there yet:

    root (one_for_one)
    ├── price-cache   PriceCacheActor   writes the price board
    ├── store         StoreActor        persisted state (SQLite, $VOLSPIKE_STATE_DIR)
    ├── poster        PosterActor       durable outbox → backend PROD/DEV, Telegram, local SQLite
    ├── http-api      HttpApiActor      serves the boards on FUNDING_API_HOST:PORT
    └── feed-market   FeedActor         !markPrice@arr@1s + !ticker@arr → price-cache

The boards (:class:`~actors._price_board.PriceBoard`, :class:`~actors._status.StatusBoard`) are
created here, once, and shared by every incarnation of the actors that use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actors._feed_logic import MARKET_STREAMS
from actors._price_board import PriceBoard
from actors._status import StatusBoard
from actors.feed import FeedActor
from actors.http_api import HttpApiActor
from actors.poster import PosterActor
from actors.price_cache import PriceCacheActor
from actors.store import StoreActor
from supervisors.backoff import BackoffPolicy
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from actors._sinks import Sink
    from supervisors.config import Config

__all__ = ["ROOT", "Boards", "build_tree"]

ROOT = "root"
"""The root supervisor's name (and registry address)."""


@dataclass(frozen=True, slots=True)
class Boards:
    """The shared, lock-free read models that outlive actor restarts."""

    prices: PriceBoard = field(default_factory=PriceBoard)
    status: StatusBoard = field(default_factory=StatusBoard)


def build_tree(  # noqa: PLR0913 - everything after boards is keyword-only
    config: Config,
    boards: Boards,
    *,
    ws_base_url: str | None = None,
    extra_children: Sequence[ChildSpec] = (),
    extra_routes: Mapping[str, Sequence[str]] | None = None,
    extra_sinks: Sequence[Sink] = (),
) -> ChildSpec:
    """The root supervisor's spec for ``config``.

    Args:
        config: the effective configuration.
        boards: the shared boards (keep a reference to read the cache in-process).
        ws_base_url: overrides ``config.binance_ws_url`` (the simulator's URL).
        extra_children: an embedding application's own actors; they start after the cache and
            before the feed, so they receive from the first frame.
        extra_routes: more consumers for the market feed's messages, by message type name
            (``{"MarkPrices": ("my-actor",)}``).
        extra_sinks: more delivery sinks for the poster (e.g. a ``CallbackSink``).
    """
    routes: dict[str, tuple[str, ...]] = {"MarkPrices": ("price-cache",), "Tickers": ()}
    for kind, names in (extra_routes or {}).items():
        routes[kind] = (*routes.get(kind, ()), *names)
    stall = config.feed_stall_after_s
    children = [
        ChildSpec(
            name="price-cache",
            actor_class=PriceCacheActor,
            kwargs={
                "board": boards.prices,
                "status": boards.status,
                "stale_after_s": config.stale_after_s,
                "evict_after_s": config.evict_after_s,
            },
        ),
        StoreActor.spec(config, status=boards.status),
        PosterActor.spec(config, status=boards.status, extra_sinks=extra_sinks),
        ChildSpec(
            name="http-api",
            actor_class=HttpApiActor,
            kwargs={
                "board": boards.prices,
                "status": boards.status,
                "host": config.funding_api_host,
                "port": config.funding_api_port,
                "feeds": ("feed-market",),
                "supervisor": ROOT,
                "stale_after_s": config.stale_after_s,
            },
            backoff=BackoffPolicy(initial_s=1.0, max_s=30.0),
        ),
        *extra_children,
        ChildSpec(
            name="feed-market",
            actor_class=FeedActor,
            kwargs={
                "base_url": ws_base_url or config.binance_ws_url,
                "streams": MARKET_STREAMS,
                "routes": routes,
                "status": boards.status,
                "stall_after_s": stall,
                "rotate_after_s": config.feed_rotate_after_s,
            },
            # The feed reconnects by itself; a feed that gets no data at all for this long
            # (DNS gone, every handshake refused) is restarted from scratch by its supervisor.
            progress_deadline_s=max(60.0, 4 * stall),
        ),
    ]
    return Supervisor.spec(
        ROOT,
        children=children,
        strategy="one_for_one",
        max_restarts=10,
        within_s=60.0,
        health_log_interval_s=config.health_log_interval_s or None,
    )
