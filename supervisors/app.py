"""The application's supervision tree, built from the configuration.

Order matters: consumers start before producers and stop after them (the root stops in
reverse start order), so no message is sent to an actor that is not there yet:

    root (one_for_one)
    ├── price-cache     PriceCacheActor     writes the price board
    ├── store           StoreActor          persisted state (SQLite, $VOLSPIKE_STATE_DIR)
    ├── poster          PosterActor         durable outbox → backend PROD/DEV, Telegram, local
    ├── rest-gateway    RestGatewayActor    every REST call, one weight budget
    ├── http-api        HttpApiActor        serves the boards on FUNDING_API_HOST:PORT
    ├── volume-scanner  VolumeScannerActor  spike rule on live klines → poster
    ├── universe        UniverseActor       liquid universe (4M/2M hysteresis), TRADING list
    ├── oi-poller       OpenInterestPoller  realtime OI of the liquid universe, the 5-minute
    │                                       snapshot of every TRADING symbol; fills the OI board
    ├── feed-klines-N   FeedActor x 4       <sym>@kline_1h, ≤ 200 streams each, planned by
    │                                       the scanner from exchangeInfo
    └── feed-market     FeedActor           !markPrice@arr@1s + !ticker@arr → price-cache
                                            (mark prices also straight onto the board)

The boards (:class:`~actors._price_board.PriceBoard`, :class:`~actors._status.StatusBoard`,
:class:`~actors._oi_board.OiBoard`) and the Binance server-time offset are created here, once,
and shared by every incarnation of the actors that use them (pass ``boards.server_time`` to
``start_tree`` too, so aligned timers follow the exchange's clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actors._feed_logic import MARKET_STREAMS
from actors._oi_board import OiBoard
from actors._price_board import PriceBoard
from actors._status import StatusBoard
from actors._volume_rule import SpikeConfig
from actors._weight_budget import WeightBudget
from actors.feed import FeedActor
from actors.http_api import HttpApiActor
from actors.oi_poller import OpenInterestPollerActor
from actors.poster import PosterActor
from actors.price_cache import PriceCacheActor
from actors.rest_gateway import RestGatewayActor
from actors.store import StoreActor
from actors.universe import UniverseActor
from actors.volume_scanner import VolumeScannerActor
from supervisors.backoff import BackoffPolicy
from supervisors.clock import ServerTimeOffset, SystemClock
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from actors._sinks import Sink
    from supervisors.config import Config

__all__ = [
    "KLINE_CAPACITY",
    "KLINE_YIELD_EVERY",
    "ROOT",
    "Boards",
    "build_tree",
    "kline_shard_names",
]

ROOT = "root"
"""The root supervisor's name (and registry address)."""

KLINE_CAPACITY = 800
"""Kline streams the tree can carry (about 540 USDT perpetuals trade today)."""

KLINE_YIELD_EVERY = 1
"""Kline frames a shard's thread reads before it offers the GIL to waiting threads (see
:mod:`actors._feed_connection`: every frame measured best, and costs ~1 us when nobody waits)."""


def kline_shard_names(per_connection: int) -> tuple[str, ...]:
    """``feed-klines-0`` … enough shards of ``per_connection`` streams for the capacity."""
    return tuple(f"feed-klines-{i}" for i in range(math.ceil(KLINE_CAPACITY / per_connection)))


@dataclass(frozen=True, slots=True)
class Boards:
    """The shared, lock-free read models that outlive actor restarts."""

    prices: PriceBoard = field(default_factory=PriceBoard)
    status: StatusBoard = field(default_factory=StatusBoard)
    server_time: ServerTimeOffset = field(default_factory=lambda: ServerTimeOffset(SystemClock()))
    oi: OiBoard = field(default_factory=OiBoard)
    """Recent open interest per symbol (written by the OI poller), for ``oiChange``."""


def build_tree(  # noqa: PLR0913 - everything after boards is keyword-only
    config: Config,
    boards: Boards,
    *,
    ws_base_url: str | None = None,
    rest_base_url: str | None = None,
    extra_children: Sequence[ChildSpec] = (),
    extra_routes: Mapping[str, Sequence[str]] | None = None,
    extra_sinks: Sequence[Sink] = (),
) -> ChildSpec:
    """The root supervisor's spec for ``config``.

    Args:
        config: the effective configuration.
        boards: the shared boards (keep a reference to read the cache in-process).
        ws_base_url: overrides ``config.binance_ws_url`` (the simulator's URL).
        rest_base_url: overrides ``config.binance_rest_url``.
        extra_children: an embedding application's own actors; they start after the cache and
            before the feed, so they receive from the first frame.
        extra_routes: more consumers for the market feed's messages, by message type name
            (``{"MarkPrices": ("my-actor",)}``).
        extra_sinks: more delivery sinks for the poster (e.g. a ``CallbackSink``).
    """
    routes: dict[str, tuple[str, ...]] = {"MarkPrices": ("price-cache",), "Tickers": ("universe",)}
    for kind, names in (extra_routes or {}).items():
        routes[kind] = (*routes.get(kind, ()), *names)
    stall = config.feed_stall_after_s
    ws_base = ws_base_url or config.binance_ws_url
    per_connection = config.kline_streams_per_connection
    shards = kline_shard_names(per_connection)
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
            name="rest-gateway",
            actor_class=RestGatewayActor,
            kwargs={
                "base_url": rest_base_url or config.binance_rest_url,
                "status": boards.status,
                "server_time": boards.server_time,
                "budget": WeightBudget(limit=2400, target=config.rest_weight_target),
                "target_fraction": config.rest_weight_target / 2400,
                "exchange_info_to": ("volume-scanner", "universe"),
                # the OI poller keeps ~32 requests/s in flight at 340 symbols
                "max_in_flight": 8,
            },
            backoff=BackoffPolicy(initial_s=1.0, max_s=30.0),
        ),
        ChildSpec(
            name="http-api",
            actor_class=HttpApiActor,
            kwargs={
                "board": boards.prices,
                "status": boards.status,
                "host": config.funding_api_host,
                "port": config.funding_api_port,
                "feeds": ("feed-market", *shards),
                "supervisor": ROOT,
                "stale_after_s": config.stale_after_s,
            },
            backoff=BackoffPolicy(initial_s=1.0, max_s=30.0),
        ),
        ChildSpec(
            name="volume-scanner",
            actor_class=VolumeScannerActor,
            kwargs={
                "board": boards.prices,
                "status": boards.status,
                "shards": shards,
                "streams_per_connection": per_connection,
                "config": SpikeConfig(
                    multiple=config.volume_multiple, min_quote_volume=config.min_quote_vol
                ),
                "server_time": boards.server_time,
                "stale_after_s": config.stale_after_s,
                "oi_board": boards.oi,
            },
        ),
        UniverseActor.spec(
            config,
            status=boards.status,
            server_time=boards.server_time,
            post_to_backend=config.oi_universe_post,
            evaluate_period_s=config.oi_universe_evaluate_sec,
        ),
        OpenInterestPollerActor.spec(
            config,
            board=boards.prices,
            status=boards.status,
            server_time=boards.server_time,
            oi_board=boards.oi,
        ),
        *extra_children,
        *(
            ChildSpec(
                name=name,
                actor_class=FeedActor,
                kwargs={
                    "base_url": ws_base,
                    "streams": (),
                    "routes": {
                        "KlineUpdate": ("volume-scanner",),
                        "KlineUpdates": ("volume-scanner",),
                    },
                    "status": boards.status,
                    # a shard of quiet symbols may see no trade for a while
                    "stall_after_s": max(60.0, stall),
                    "rotate_after_s": config.feed_rotate_after_s,
                    "planner": "volume-scanner",
                    # a burst of 200 kline frames must not keep the price path and the HTTP
                    # API waiting for the GIL (see actors._feed_connection)
                    "yield_every": KLINE_YIELD_EVERY,
                },
                progress_deadline_s=max(120.0, 4 * stall),
            )
            for name in shards
        ),
        ChildSpec(
            name="feed-market",
            actor_class=FeedActor,
            kwargs={
                "base_url": ws_base,
                "streams": MARKET_STREAMS,
                "routes": routes,
                "status": boards.status,
                "stall_after_s": stall,
                "rotate_after_s": config.feed_rotate_after_s,
                # mark prices reach the board from the socket's thread (no actor hops)
                "board": boards.prices,
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
