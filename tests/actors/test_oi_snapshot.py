"""The five-minute OI snapshot of every TRADING symbol (spec §2.1, issue #6 item 5).

Pure logic first (the plan, the sweep's bookkeeping, the load it reserves), then the poller on
a fake clock shared with the simulator: a snapshot at every :00/:05 of the exchange clock,
liquid symbols reused and not re-polled, the others polled one by one within the sweep, one
``OiSamples(source="snapshot")`` to the poster, a missing mark price omitted, a failed poll
omitted and counted, polled samples in the store's OI history and on the OI board.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any

import pytest
from pykka.messages import ProxyCall

from actors._oi_board import OiBoard
from actors._oi_snapshot import (
    DEFAULT_PERIOD_S,
    DEFAULT_SWEEP_S,
    SnapshotRun,
    snapshot_load_per_min,
    snapshot_poll_estimate,
)
from actors._payloads import chunk_samples, oi_ingest_body
from actors._price_board import PriceBoard
from actors._status import StatusBoard
from actors.oi_poller import OpenInterestPollerActor, poll_rate_per_min
from actors.rest_gateway import RestGatewayActor
from actors.store import StoreActor
from messages.control import Ping
from messages.delivery import LoadOiHistory
from messages.market import MarkPrice, MarkPrices
from messages.open_interest import (
    LiquidUniverse,
    OiAlert,
    OiSample,
    OiSamples,
    TradingUniverse,
    UniverseMember,
)
from messages.rest import GetRestGatewayStatus
from simulator import Simulator
from simulator.testing import fast_config
from supervisors.actor import SupervisedActor
from supervisors.clock import FakeClock, ServerTimeOffset
from supervisors.config import Config
from supervisors.root import start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

T0 = 1_773_900_000_000  # 06:00:00 UTC, on a five-minute slot
S = 1000


def sample(symbol: str, time_ms: int, oi: float = 100.0, mark: float | None = 2.0) -> OiSample:
    return OiSample(symbol=symbol, open_interest=oi, time_ms=time_ms, mark_price=mark)


# --- pure logic -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latest", "skip", "reused", "polled"),
    [
        # fresh realtime samples are reused, everything else is polled
        ({"A": sample("A", T0 - 5 * S), "B": sample("B", T0 - 20 * S)}, (), ["A", "B"],
         ["C", "D"]),
        # a liquid symbol whose realtime sample is too old is polled too
        ({"A": sample("A", T0 - 5 * S), "B": sample("B", T0 - 31 * S)}, (), ["A"],
         ["B", "C", "D"]),
        # no realtime sample at all: a full sweep
        ({}, (), [], ["A", "B", "C", "D"]),
        # known-invalid symbols are neither polled nor reused
        ({"A": sample("A", T0)}, ("C",), ["A"], ["B", "D"]),
    ],
)  # fmt: skip
def test_the_plan_reuses_fresh_realtime_samples_and_polls_the_rest(latest, skip, reused, polled):
    run = SnapshotRun.plan(
        slot_ms=T0,
        trading=["D", "C", "B", "A"],
        latest=latest,
        now_ms=T0,
        reuse_max_age_ms=30 * S,
        deadline_ms=T0 + 285 * S,
        skip=skip,
    )
    assert sorted(run.reused) == reused
    assert list(run.to_poll) == polled
    assert run.polls == len(polled)


def test_a_sweep_records_answers_failures_and_what_never_came():
    run = SnapshotRun(
        slot_ms=T0,
        reused={"A": sample("A", T0 - 3 * S)},
        to_poll=deque(["B", "C", "D", "E", "F"]),
        deadline_ms=T0 + 285 * S,
        polls=5,
    )
    assert [run.next_symbol() for _ in range(4)] == ["B", "C", "D", "E"]
    assert run.answered("B", sample("B", T0 + 1 * S, mark=None))
    assert run.failed_with("C", "server_error")
    assert not run.answered("C", sample("C", T0 + 2 * S))  # no longer awaited
    assert not run.answered("Z", sample("Z", T0 + 2 * S))  # never asked
    assert not run.done
    assert not run.expired(T0 + 284 * S)
    assert run.expired(T0 + 285 * S)
    result = run.finish(T0 + 285 * S)
    assert [s.symbol for s in result.items] == ["A", "B"]  # sorted, reused + polled
    assert result.items[1].mark_price is None  # missing stays missing
    assert (result.reused, result.polled) == (1, 1)
    assert result.failed == (
        ("C", "server_error"),
        ("D", "unanswered"),
        ("E", "unanswered"),
        ("F", "not sent"),
    )
    assert result.symbols == 6
    assert result.slot_ms == T0


def test_a_sweep_is_done_when_everything_was_answered():
    run = SnapshotRun(slot_ms=T0, reused={}, to_poll=deque(["B"]), deadline_ms=T0 + S, polls=1)
    assert run.next_symbol() == "B"
    assert run.next_symbol() is None
    run.answered("B", sample("B", T0))
    assert run.done
    assert run.finish(T0).failed == ()


@pytest.mark.parametrize(
    ("trading", "liquid", "sweep_s", "per_min"),
    [
        (540, 340, DEFAULT_SWEEP_S, 44.44),  # the real universe
        (650, 312, DEFAULT_SWEEP_S, 75.11),  # the benchmark's simulator
        (30, 30, DEFAULT_SWEEP_S, 0.0),  # everything liquid: nothing to poll
        (100, 0, 60.0, 100.0),
    ],
)
def test_the_snapshot_load_reserved_from_the_budget(trading, liquid, sweep_s, per_min):
    symbols = [f"S{i}" for i in range(trading)]
    polls = snapshot_poll_estimate(symbols, symbols[:liquid])
    assert polls == trading - liquid
    assert snapshot_load_per_min(polls, sweep_s) == pytest.approx(per_min, abs=0.01)
    assert DEFAULT_SWEEP_S < DEFAULT_PERIOD_S  # finished before the next slot


def test_the_realtime_rate_leaves_room_for_the_snapshot_within_the_target():
    snapshot = snapshot_load_per_min(200, DEFAULT_SWEEP_S)
    rate = poll_rate_per_min(2000, 2000, 10, snapshot)
    assert rate + snapshot + 10 == pytest.approx(2000)
    assert 60 * 340 / rate <= 10.5  # the freshness target still holds at 340 liquid symbols
    assert poll_rate_per_min(100, 2000, 10, 500) == 1  # never below one request a minute


# --- the poller on a fake clock, against the simulator ------------------------------------------


class Recorder(SupervisedActor):
    """Stands in for the poster: keeps every OiSamples and OiAlert it is told."""

    def __init__(self, *, context: Any = None) -> None:
        super().__init__(context=context)
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, OiSamples | OiAlert):
            self.got.append(message)
            return None
        if message == "got":
            return list(self.got)
        return super().on_receive(message)


SYMBOLS = 12
LIQUID = ("BCHUSDT", "BTCUSDT", "ETHUSDT")
INVALID = "NOPEUSDT"  # listed as TRADING but unknown to the exchange: its poll fails (-1121)
NO_MARK = ("XLMUSDT", "XRPUSDT")  # never on the price board
STEP_S = 5.0


@pytest.fixture
def clock():
    return FakeClock(start=T0 / 1000 - 30)  # 30 s before a five-minute slot


@pytest.fixture
def sim(clock):
    simulator = Simulator(fast_config(symbols=SYMBOLS), clock=clock).start()
    yield simulator
    simulator.stop()


class SnapshotTree:
    def __init__(self, sim: Simulator, clock: FakeClock, state_dir) -> None:
        self.sim, self.clock = sim, clock
        self.prices, self.status, self.oi = PriceBoard(), StatusBoard(), OiBoard()
        self.server_time = ServerTimeOffset(clock)
        config = Config().replace(state_dir=state_dir)
        self.listed = [i.symbol for i in sim.market.listed()]
        poller = OpenInterestPollerActor.spec(
            config,
            board=self.prices,
            status=self.status,
            server_time=self.server_time,
            oi_board=self.oi,
            max_req_per_min=1200,
            min_interval_s=6.0,
            deliver_period_s=STEP_S,
            persist_period_s=STEP_S,
            stale_after_s=60.0,
        )
        children = [
            StoreActor.spec(config, status=self.status),
            ChildSpec(name="poster", actor_class=Recorder),
            ChildSpec(
                name="rest-gateway",
                actor_class=RestGatewayActor,
                kwargs={
                    "base_url": sim.rest_url,
                    "status": self.status,
                    "server_time": self.server_time,
                    "exchange_info_to": (),
                },
            ),
            poller,
        ]
        self.handle = start_tree(
            Supervisor.spec("root", children=children, health_log_interval_s=None),
            clock=clock,
            server_time=self.server_time,
            wait_started_s=20,
        )
        assert self.handle.started
        self.fresh_marks()
        registry = self.handle.registry
        trading = tuple(sorted([*self.listed, INVALID]))
        registry.tell("oi-poller", TradingUniverse(symbols=trading, updated_ms=T0))
        members = tuple(
            UniverseMember(symbol=s, quote_volume_24h=5e6, entered_ms=None, last_seen_ms=T0)
            for s in LIQUID
        )
        registry.tell("oi-poller", LiquidUniverse(members=members, updated_ms=T0))
        self.quiesce()

    def ask(self, name: str, question: Any) -> Any:
        return self.handle.registry.ask(name, question, timeout=10)

    def fresh_marks(self) -> None:
        """The market feed's part: a fresh mark for every listed symbol but NO_MARK."""
        now_ms = self.clock.time_ms()
        items = [
            MarkPrice(symbol=s, event_time_ms=now_ms, mark_price=10.0 + i, funding_rate=1e-4)
            for i, s in enumerate(self.listed)
            if s not in NO_MARK
        ]
        self.prices.apply(MarkPrices.from_items(items, received_ms=now_ms), self.clock.monotonic())

    def quiesce(self) -> None:
        """Ticks delivered, requests sent and answered, answers handled (bounded)."""
        assert self.handle.timers.settle()
        self.ask("oi-poller", Ping())  # its ticks handled: its requests are at the gateway
        for _ in range(400):
            state = self.ask("rest-gateway", GetRestGatewayStatus())
            if state.queued == 0 and state.in_flight == 0:
                break
            threading.Event().wait(0.005)
        else:
            raise AssertionError(f"the gateway never went idle: {state}")
        self.ask("oi-poller", Ping())  # the answers the gateway told are handled

    def run_until(self, until_ms: int) -> None:
        while self.clock.time_ms() < until_ms:
            self.clock.advance(STEP_S)
            self.fresh_marks()
            self.quiesce()

    def snapshots(self) -> list[OiSamples]:
        return [m for m in self.ask("poster", "got") if getattr(m, "source", "") == "snapshot"]

    def stop(self) -> None:
        assert self.handle.shutdown("test over", timeout=30) == 0


def oi_log(sim: Simulator, since_ms: int, until_ms: int) -> list[Any]:
    return [
        r
        for r in sim.rest.request_log
        if r.path == "/fapi/v1/openInterest" and since_ms <= r.time_ms < until_ms
    ]


def check_requests(sim: Simulator, by_symbol: dict[str, OiSample], others, stats) -> None:
    """Liquid symbols reused, not re-polled; the others polled once each, within the sweep."""
    for symbol in LIQUID:
        assert by_symbol[symbol].time_ms <= T0
        assert T0 - by_symbol[symbol].time_ms <= 30 * S
    window = oi_log(sim, T0, T0 + 300 * S)
    snapshot_requests = [r for r in window if r.params["symbol"] not in LIQUID]
    assert sorted(r.params["symbol"] for r in snapshot_requests) == sorted([*others, INVALID])
    assert stats["oi_snapshot_requests_total"] == len(others) + 1
    times = [r.time_ms for r in snapshot_requests]
    assert min(times) >= T0
    assert max(times) <= T0 + DEFAULT_SWEEP_S * S
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 270 * S / 10 - STEP_S * S  # 27 s apart, to the clock's step
    assert not [r for r in sim.rest.request_log if r.status in (429, 418)]


def check_payload(snapshot: OiSamples, by_symbol: dict[str, OiSample], listed: int) -> None:
    """Missing mark prices are omitted, never 0 (I-5); fresh ones are attached."""
    for symbol, item in by_symbol.items():
        if symbol in NO_MARK:
            assert item.mark_price is None
        else:
            assert item.mark_price is not None
            assert item.mark_price > 0
    bodies = [oi_ingest_body(chunk) for chunk in chunk_samples(snapshot)]
    assert all(body["source"] == "snapshot" for body in bodies)
    rows = [row for body in bodies for row in body["data"]]
    for row in rows:
        assert None not in row.values()
        assert row.get("markPrice", 1) > 0
        assert row.get("openInterestUsd", 1) > 0
        if row["symbol"] in NO_MARK:
            assert "markPrice" not in row
            assert "openInterestUsd" not in row
    assert len(rows) == listed


def test_a_snapshot_every_five_minutes_on_the_clock_within_the_budget(sim, clock, tmp_path):
    tree = SnapshotTree(sim, clock, tmp_path)
    try:
        others = sorted(set(tree.listed) - set(LIQUID))
        assert tree.ask("oi-poller", "trading") == tuple(sorted([*tree.listed, INVALID]))
        # nothing before the slot
        tree.run_until(T0 - 5 * S)  # the clock moves in 5 s steps
        assert tree.snapshots() == []
        # the interval accounts for the snapshot's load: (12 + 1 - 3) polls over 270 s
        counters = tree.status.counters()["oi-poller"]
        assert counters["oi_snapshot_reserve_per_min"] == pytest.approx(60 * 10 / 270)

        # --- the first slot, 06:00:00 --------------------------------------------------------
        tree.run_until(T0 + 295 * S)
        [first] = tree.snapshots()
        assert first.source == "snapshot"
        assert first.created_ms == T0
        result = tree.ask("oi-poller", "snapshot")
        assert result.slot_ms == T0
        symbols = [s.symbol for s in first.items]
        assert symbols == sorted(tree.listed)  # every valid TRADING symbol, once, sorted
        assert INVALID not in symbols  # its poll failed: omitted ...
        assert result.failed == ((INVALID, "invalid symbol"),)  # ... and counted
        assert (result.reused, result.polled) == (len(LIQUID), len(others))
        stats = tree.ask("oi-poller", "stats")
        assert stats["oi_snapshot_last_failed"] == 1
        assert stats["oi_snapshot_failed_total"] == 1
        # finished well before the next slot
        assert 0 < stats["oi_snapshot_last_duration_seconds"] <= DEFAULT_SWEEP_S + 2 * STEP_S

        by_symbol = {x.symbol: x for x in first.items}
        check_requests(sim, by_symbol, others, stats)
        check_payload(first, by_symbol, len(tree.listed))

        # polled samples: in the store's OI history and on the OI board, like realtime ones
        history = tree.ask("store", LoadOiHistory(since_ms=T0 - 60 * S))
        stored = {s.symbol for s in history.samples}
        assert set(others) <= stored
        for symbol in others:
            assert tree.oi.latest(symbol) == (
                by_symbol[symbol].time_ms,
                by_symbol[symbol].open_interest,
            )

        # --- the next slot, 06:05:00: on the clock again; the invalid symbol is left out ----
        tree.run_until(T0 + 300 * S + 30 * S)
        assert len(tree.snapshots()) == 1  # still sweeping
        tree.run_until(T0 + 595 * S)
        first_again, second = tree.snapshots()
        assert first_again == first
        assert second.created_ms == T0 + 300 * S
        assert [s.symbol for s in second.items] == sorted(tree.listed)
        assert tree.ask("oi-poller", "snapshot").failed == ()
        window = oi_log(sim, T0 + 300 * S, T0 + 600 * S)
        assert sorted(r.params["symbol"] for r in window if r.params["symbol"] not in LIQUID) == (
            others
        )
        stats = tree.ask("oi-poller", "stats")
        assert stats["oi_snapshots_total"] == 2
        assert stats["oi_snapshot_failed_total"] == 1
        # a non-liquid symbol now has two samples five minutes apart: oiChange works for it
        symbol = others[0]
        assert tree.oi.oi_change(symbol, T0, clock.time_ms()) is not None
    finally:
        tree.stop()


def test_a_stale_mark_price_is_not_attached_to_a_snapshot_sample(sim, clock, tmp_path):
    tree = SnapshotTree(sim, clock, tmp_path)
    try:
        # from now on the board is not refreshed: by the time the sweep reaches the later
        # symbols their marks are older than stale_after_s (60 s)
        tree.fresh_marks = lambda: None  # type: ignore[method-assign]
        tree.run_until(T0 + 295 * S)
        [snapshot] = tree.snapshots()
        polled_late = [
            s for s in snapshot.items if s.symbol not in LIQUID and s.time_ms - T0 > 60 * S + 30 * S
        ]
        assert polled_late
        assert all(s.mark_price is None for s in polled_late)
        stats = tree.ask("oi-poller", "stats")
        assert stats["oi_snapshot_last_without_mark"] >= len(polled_late)
    finally:
        tree.stop()


def test_a_poller_that_crashes_mid_sweep_posts_what_the_snapshot_has(sim, clock, tmp_path):
    tree = SnapshotTree(sim, clock, tmp_path)
    try:
        tree.run_until(T0 + 100 * S)  # a third of the sweep: some polled, most not yet
        assert tree.snapshots() == []
        polled_so_far = {
            r.params["symbol"]
            for r in oi_log(sim, T0, clock.time_ms())
            if r.params["symbol"] not in LIQUID
        }
        assert 0 < len(polled_so_far) < len(tree.listed) - len(LIQUID)

        def restarts() -> int:
            return next(c.restarts for c in tree.handle.health().children if c.name == "oi-poller")

        before = restarts()
        # the crash: pykka's own call message without its argument (TypeError in on_receive)
        tree.handle.registry.get("oi-poller").tell(
            ProxyCall(attr_path=("on_receive",), args=(), kwargs={})
        )
        for _ in range(400):
            if restarts() > before:
                break
            threading.Event().wait(0.005)
        assert restarts() == before + 1
        [partial] = tree.snapshots()
        assert partial.created_ms == T0
        symbols = {s.symbol for s in partial.items}
        assert symbols >= set(LIQUID)  # the reused realtime samples
        assert symbols - set(LIQUID) <= polled_so_far  # what was polled; nothing invented
        assert len(symbols) < len(tree.listed)  # the rest is missing, not zero
        assert all(s.open_interest > 0 for s in partial.items)
    finally:
        tree.stop()
