"""A market-data tree (cache, API, feed) against the simulator, with test-sized timings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests

from actors._feed_connection import FeedTimeouts
from actors._feed_logic import MARKET_STREAMS
from actors.feed import FeedActor
from actors.http_api import HttpApiActor
from actors.price_cache import PriceCacheActor
from supervisors.app import Boards
from supervisors.backoff import BackoffPolicy
from supervisors.root import RootHandle, start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

FAST_BACKOFF = BackoffPolicy(initial_s=0.05, max_s=0.2, jitter=0.0, reset_after_s=5.0)


@dataclass
class MarketTree:
    handle: RootHandle
    boards: Boards
    port: int

    def get(self, path: str) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def health(self) -> tuple[int, dict[str, Any]]:
        response = self.get("/health")
        return response.status_code, response.json()

    def counters(self, name: str = "feed-market") -> dict[str, float]:
        return dict(self.boards.status.counters().get(name, {}))

    def wait_until(self, predicate, timeout: float = 10.0, step: float = 0.05) -> bool:
        """Re-check ``predicate`` until true; bounded in time and count."""
        pause = threading.Event()
        for _ in range(int(timeout / step) + 1):
            if predicate():
                return True
            pause.wait(step)
        return bool(predicate())

    def stop(self) -> None:
        assert self.handle.shutdown("test over", timeout=20) == 0


def start_market_tree(ws_base_url: str, **feed: Any) -> MarketTree:
    boards = Boards()
    stall = feed.pop("stall_after_s", 1.0)
    stale = feed.pop("stale_after_s", 180.0)
    feed_kwargs = {
        "base_url": ws_base_url,
        "streams": MARKET_STREAMS,
        "routes": {"MarkPrices": ("price-cache",)},
        "status": boards.status,
        "stall_after_s": stall,
        "watch_period_s": 0.1,
        "backoff": FAST_BACKOFF,
        "timeouts": FeedTimeouts(
            connect_s=2.0,
            read_poll_s=0.05,
            ping_interval_s=0.5,
            pong_timeout_s=0.3,
            refused_backoff_s=feed.pop("refused_backoff_s", 0.3),
        ),
        **feed,
    }
    children = [
        ChildSpec(
            name="price-cache",
            actor_class=PriceCacheActor,
            kwargs={"board": boards.prices, "status": boards.status, "stale_after_s": stale},
            backoff=BackoffPolicy.immediate(),
        ),
        ChildSpec(
            name="http-api",
            actor_class=HttpApiActor,
            kwargs={
                "board": boards.prices,
                "status": boards.status,
                "port": 0,
                "feeds": ("feed-market",),
                "supervisor": "root",
                "stale_after_s": stale,
                "health_period_s": 0.1,
            },
        ),
        ChildSpec(name="feed-market", actor_class=FeedActor, kwargs=feed_kwargs),
    ]
    handle = start_tree(
        Supervisor.spec("root", children=children, health_log_interval_s=None), wait_started_s=20
    )
    assert handle.started
    port = handle.registry.ask("http-api", "port", timeout=5)
    return MarketTree(handle, boards, port)
