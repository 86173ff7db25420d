from __future__ import annotations

from actors.feed import FeedActor
from supervisors.app import KLINE_YIELD_EVERY, Boards, build_tree
from supervisors.config import Config


def test_kline_shards_yield_the_gil_and_the_market_feed_writes_the_board():
    boards = Boards()
    spec = build_tree(Config(), boards)
    feeds = {c.name: c for c in spec.kwargs["children"] if issubclass(c.actor_class, FeedActor)}
    shards = [name for name in feeds if name.startswith("feed-klines-")]
    assert shards
    assert KLINE_YIELD_EVERY > 0
    for name in shards:
        assert feeds[name].kwargs["yield_every"] == KLINE_YIELD_EVERY
        assert "board" not in feeds[name].kwargs
    market = feeds["feed-market"].kwargs
    assert market["board"] is boards.prices
    assert market.get("yield_every", 0) == 0  # the price path never hands its frame away
