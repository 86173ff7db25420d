"""A feed that is told its streams (kline shards), against the simulator."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors._feed_connection import FeedTimeouts
from actors._status import StatusBoard
from actors.feed import FeedActor
from messages import KlineUpdate
from messages.feed import SetStreams, StreamsWanted
from simulator import Simulator, SimulatorConfig
from supervisors.actor import SupervisedActor
from supervisors.backoff import BackoffPolicy
from supervisors.root import start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

pytestmark = pytest.mark.usefixtures("_stop_all")


class Collector(SupervisedActor):
    def __init__(self, *, context=None, seen: dict[str, threading.Event]) -> None:
        super().__init__(context=context)
        self._seen = seen
        self.symbols: list[str] = []

    def on_receive(self, message: Any) -> Any:
        match message:
            case KlineUpdate():
                symbol = message.kline.symbol
                self.symbols.append(symbol)
                self._seen.setdefault(symbol, threading.Event()).set()
            case "symbols":
                return tuple(self.symbols)
            case "clear":
                self.symbols.clear()
            case _:
                return super().on_receive(message)
        return None


@pytest.fixture
def sim(fixtures_dir):
    with Simulator(SimulatorConfig(symbols=20, kline_period=0.05, seed=5)) as simulator:
        yield simulator


@pytest.fixture
def shard(sim):
    status = StatusBoard()
    seen: dict[str, threading.Event] = {"BTCUSDT": threading.Event(), "ETHUSDT": threading.Event()}
    children = [
        ChildSpec(name="collector", actor_class=Collector, kwargs={"seen": seen}),
        ChildSpec(
            name="feed-klines-0",
            actor_class=FeedActor,
            kwargs={
                "base_url": sim.ws_url + "/market",
                "streams": (),
                "routes": {"KlineUpdate": ("collector",)},
                "status": status,
                "stall_after_s": 5.0,
                "watch_period_s": 0.1,
                "backoff": BackoffPolicy(initial_s=0.05, max_s=0.2, jitter=0.0),
                "timeouts": FeedTimeouts(read_poll_s=0.05, ping_interval_s=5, pong_timeout_s=2),
            },
            progress_deadline_s=2.0,
        ),
    ]
    handle = start_tree(Supervisor.spec("root", children=children, health_log_interval_s=None))
    yield handle, status, seen
    assert handle.shutdown("test over", timeout=20) == 0


def test_an_idle_shard_has_no_connection_and_is_not_restarted_by_liveness(shard):
    handle, status, _ = shard
    pause = threading.Event()
    pause.wait(2.5)  # longer than the progress deadline: liveness would have fired by now
    assert handle.health().children[1].restarts == 0
    feed = status.status("feed-klines-0")
    assert (feed.connected, feed.streams, feed.stalled) == (False, 0, None)


def test_a_shard_carries_the_streams_it_is_told_and_switches_without_a_gap(shard):
    handle, status, seen = shard
    handle.registry.tell("feed-klines-0", SetStreams(streams=("btcusdt@kline_1h",)))
    assert seen["BTCUSDT"].wait(10)
    handle.registry.tell("feed-klines-0", SetStreams(streams=("ethusdt@kline_1h",)))
    assert seen["ETHUSDT"].wait(10)
    handle.registry.ask("collector", "clear", timeout=5)
    assert seen["ETHUSDT"].wait(5)
    # once the new connection delivered, the old one is closed: only ETH arrives from now on
    seen["ETHUSDT"].clear()
    assert seen["ETHUSDT"].wait(5)
    handle.registry.ask("collector", "clear", timeout=5)
    seen["ETHUSDT"].clear()
    assert seen["ETHUSDT"].wait(5)
    assert set(handle.registry.ask("collector", "symbols", timeout=5)) == {"ETHUSDT"}
    assert status.counters()["feed-klines-0"]["feed_rotations_total"] == 1


def test_an_empty_stream_set_makes_a_shard_idle_again(shard):
    handle, status, seen = shard
    handle.registry.tell("feed-klines-0", SetStreams(streams=("btcusdt@kline_1h",)))
    assert seen["BTCUSDT"].wait(10)
    handle.registry.tell("feed-klines-0", SetStreams(streams=()))
    pause = threading.Event()
    for _ in range(100):
        if status.status("feed-klines-0").streams == 0:
            break
        pause.wait(0.05)
    assert status.status("feed-klines-0").streams == 0
    assert status.status("feed-klines-0").connected is False


class Planner(SupervisedActor):
    """Answers ``StreamsWanted`` the way the volume scanner does."""

    def __init__(self, *, context=None, asked: list[str]) -> None:
        super().__init__(context=context)
        self._asked = asked

    def on_receive(self, message: Any) -> Any:
        match message:
            case StreamsWanted(feed=feed):
                self._asked.append(feed)
                self.registry.tell(feed, SetStreams(streams=("btcusdt@kline_1h",)))
            case _:
                return super().on_receive(message)
        return None


def test_a_shard_that_starts_idle_asks_its_planner_and_carries_the_answer(sim):
    """A restarted shard starts empty: it asks at once instead of waiting for a re-plan."""
    seen: dict[str, threading.Event] = {"BTCUSDT": threading.Event()}
    asked: list[str] = []
    children = [
        ChildSpec(name="collector", actor_class=Collector, kwargs={"seen": seen}),
        ChildSpec(name="planner", actor_class=Planner, kwargs={"asked": asked}),
        ChildSpec(
            name="feed-klines-0",
            actor_class=FeedActor,
            kwargs={
                "base_url": sim.ws_url + "/market",
                "streams": (),
                "routes": {"KlineUpdate": ("collector",), "KlineUpdates": ("collector",)},
                "status": StatusBoard(),
                "planner": "planner",
                "backoff": BackoffPolicy(initial_s=0.05, max_s=0.2, jitter=0.0),
            },
        ),
    ]
    handle = start_tree(Supervisor.spec("root", children=children, health_log_interval_s=None))
    try:
        assert seen["BTCUSDT"].wait(10)
        assert asked == ["feed-klines-0"]
    finally:
        assert handle.shutdown("test over", timeout=20) == 0
