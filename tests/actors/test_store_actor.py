"""The StoreActor in a real tree on real SQLite files: persist by tell, load by ask."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

import pytest

from actors._store import DB_NAME
from actors.poster import PosterActor
from actors.store import StoreActor
from messages import OiSample, OiSamples, Symbol, TimestampMs, VolumeAlert
from messages.control import Ping
from messages.delivery import (
    DeleteState,
    GetState,
    GetStates,
    LoadOiHistory,
    OiHistoryReply,
    PutState,
    StateReply,
    StatesReply,
)
from supervisors.actor import SupervisedActor
from supervisors.config import Config
from supervisors.root import RootHandle, start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

if TYPE_CHECKING:
    from pathlib import Path

    from supervisors.context import ChildContext

pytestmark = pytest.mark.usefixtures("_stop_all")

WAIT = 10.0
NOW = 1_764_943_200_000


def start(children: list[ChildSpec]) -> RootHandle:
    handle = start_tree(
        Supervisor.spec("root", children=children, health_log_interval_s=None), wait_started_s=WAIT
    )
    assert handle.started
    return handle


def store_spec(state_dir: Path, **kwargs: Any) -> ChildSpec:
    return ChildSpec(
        name="store", actor_class=StoreActor, kwargs={"state_dir": state_dir, **kwargs}
    )


def ask(handle: RootHandle, message: Any) -> Any:
    return handle.registry.ask("store", message, timeout=WAIT)


def stop(handle: RootHandle) -> None:
    assert handle.shutdown("test over", timeout=WAIT) == 0


def sample(symbol: str, time_ms: int, oi: float = 1000.0) -> OiSample:
    return OiSample(
        symbol=Symbol(symbol), open_interest=oi, time_ms=TimestampMs(time_ms), mark_price=2.0
    )


def test_state_told_to_the_store_is_loaded_by_the_next_process_on_the_same_directory(tmp_path):
    handle = start([store_spec(tmp_path)])
    try:
        state = {"version": 1, "spikes": [["BTCUSDT", NOW, "SPIKE"]]}
        handle.registry.tell("store", PutState.of("volume", "detector", state))
        handle.registry.tell("store", PutState.of("volume", "other", [1, 2.5, None]))
        handle.registry.tell("store", PutState.of("volume", "gone", "x"))
        handle.registry.tell("store", DeleteState(namespace="volume", key="gone"))
        reply = ask(handle, GetState(namespace="volume", key="detector"))
    finally:
        stop(handle)
    assert isinstance(reply, StateReply)
    assert reply.value() == state

    handle = start([store_spec(tmp_path)])
    try:
        again = ask(handle, GetState(namespace="volume", key="detector"))
        missing = ask(handle, GetState(namespace="volume", key="gone"))
        everything = ask(handle, GetStates(namespace="volume"))
    finally:
        stop(handle)
    assert again.value() == state
    assert missing.json is None
    assert missing.value({}) == {}
    assert isinstance(everything, StatesReply)
    assert everything.values() == {"detector": state, "other": [1, 2.5, None]}


def test_oi_history_is_appended_loaded_in_order_and_pruned_by_age(tmp_path):
    handle = start([store_spec(tmp_path, oi_history_retention_s=3600.0, prune_period_s=0.05)])
    try:
        now = handle.timers.clock.time_ms()
        old = now - 2 * 3_600_000
        items = (sample("ETHUSDT", now - 60_000), sample("BTCUSDT", now - 5_000),
                 sample("BTCUSDT", now - 65_000), sample("BTCUSDT", old))  # fmt: skip
        handle.registry.tell(
            "store", OiSamples(items=items, source="realtime", created_ms=TimestampMs(now))
        )
        handle.registry.tell(  # a repeated (symbol, time) is ignored
            "store", OiSamples(items=items[:1], source="realtime", created_ms=TimestampMs(now))
        )
        recent = ask(handle, LoadOiHistory(since_ms=TimestampMs(now - 3_600_000)))
        assert isinstance(recent, OiHistoryReply)
        assert [(s.symbol, s.time_ms) for s in recent.samples] == [
            ("BTCUSDT", now - 65_000),
            ("BTCUSDT", now - 5_000),
            ("ETHUSDT", now - 60_000),
        ]
        pause = threading.Event()
        for _ in range(500):  # the prune timer runs every 50 ms
            if len(ask(handle, LoadOiHistory(since_ms=TimestampMs(0))).samples) == 3:
                break
            pause.wait(0.01)
        assert len(ask(handle, LoadOiHistory(since_ms=TimestampMs(0))).samples) == 3
    finally:
        stop(handle)


class Loader(SupervisedActor):
    """Loads its state from the store in ``on_start``, as the scanner and the OI poller do."""

    def __init__(self, *, context: ChildContext | None = None, loaded: list[Any]) -> None:
        super().__init__(context=context)
        self._loaded = loaded

    def on_start(self) -> None:
        reply = self.registry.ask("store", GetState(namespace="loader", key="state"), timeout=5)
        self._loaded.append(reply.value({"fresh": True}))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, dict):  # the test's stand-in for "my state changed"
            self.registry.tell("store", PutState.of("loader", "state", message))
            return None
        return super().on_receive(message)


def test_an_actor_started_after_the_store_loads_its_state_in_on_start(tmp_path):
    loaded: list[Any] = []
    loader = ChildSpec(name="loader", actor_class=Loader, kwargs={"loaded": loaded})
    children = [store_spec(tmp_path), loader]
    handle = start(children)
    try:
        handle.registry.tell("loader", {"cooldowns": [["BTCUSDT", "UP", "5 min", NOW]]})
        handle.registry.ask("loader", Ping(), timeout=WAIT)
        ask(handle, Ping())  # the store has handled the loader's PutState
    finally:
        stop(handle)
    handle = start(children)
    stop(handle)
    assert loaded == [{"fresh": True}, {"cooldowns": [["BTCUSDT", "UP", "5 min", NOW]]}]


def test_the_store_logs_where_the_database_is(tmp_path, log_stream):
    handle = start([store_spec(tmp_path)])
    stop(handle)
    assert log_stream.wait_for(f"state database {tmp_path / DB_NAME}")


def test_a_put_that_is_not_json_is_logged_and_ignored(tmp_path):
    handle = start([store_spec(tmp_path)])
    try:
        handle.registry.tell("store", PutState(namespace="x", key="k", json=b"{not json"))
        assert ask(handle, GetState(namespace="x", key="k")).json is None
        assert ask(handle, Ping()).generation == 1  # not a crash
    finally:
        stop(handle)


def test_the_store_and_the_poster_write_the_same_database_side_by_side(tmp_path):
    handle = start([store_spec(tmp_path),
                    ChildSpec(name="poster", actor_class=PosterActor,
                              kwargs={"state_dir": tmp_path})])  # fmt: skip
    try:
        for i in range(60):
            handle.registry.tell("store", PutState.of("bulk", f"k{i}", {"i": i}))
            handle.registry.tell(
                "store",
                OiSamples(items=(sample("BTCUSDT", NOW + i),), source="realtime",
                          created_ms=TimestampMs(NOW + i)),
            )  # fmt: skip
            handle.registry.tell(
                "poster",
                VolumeAlert(symbol=Symbol(f"X{i}USDT"), asset=f"X{i}", current_volume=4e6,
                            previous_volume=1e6, volume_ratio=4.0, message="spike",
                            timestamp_ms=TimestampMs(NOW), detection_time_ms=TimestampMs(NOW),
                            hour_timestamp_ms=TimestampMs(NOW)),
            )  # fmt: skip
        handle.registry.ask("poster", Ping(), timeout=WAIT)
        assert len(ask(handle, GetStates(namespace="bulk")).entries) == 60
        assert len(ask(handle, LoadOiHistory(since_ms=TimestampMs(0))).samples) == 60
    finally:
        stop(handle)
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as conn:
        assert conn.execute("select count(*) from volume_alerts").fetchone() == (60,)


def test_child_specs_are_built_from_the_configuration(tmp_path):
    config = Config().replace(
        state_dir=tmp_path,
        volspike_api_url="http://127.0.0.1:9/prod",
        volspike_api_key="k1",
        telegram_token="1:t",
        chat_id="42",
    )
    store = StoreActor.spec(config)
    poster = PosterActor.spec(config, flush_timeout_s=1.5)
    assert store.name == "store"
    assert store.kwargs["state_dir"] == tmp_path
    assert poster.name == "poster"
    assert [s.name for s in poster.kwargs["sinks"]] == ["prod", "telegram"]
    assert poster.stop_timeout_s > 1.5
    assert "k1" not in " ".join(s.describe() for s in poster.kwargs["sinks"])
