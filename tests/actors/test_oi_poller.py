"""The OI poller against the simulator: a small tree (price cache, store, poster with the backend
double, REST gateway, universe, poller, market feed) polls every liquid symbol evenly at the
computed interval, turns an ``oi_jump`` into one §4.4 alert, delivers realtime samples in chunks
of at most 100, keeps its baselines and alert state across a restart, and never invents a mark
price."""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from loguru import logger

from actors._feed_connection import FeedTimeouts
from actors._feed_logic import MARKET_STREAMS
from actors._handoff import Unconfirmed, alert_key
from actors._oi_rule import OiHistory, OiRuleConfig, TimeframeRule
from actors._oi_snapshot import DEFAULT_SWEEP_S, snapshot_load_per_min
from actors._status import StatusBoard
from actors._store import StateStore
from actors._weight_budget import oi_poll_interval
from actors.feed import FeedActor
from actors.oi_poller import POLL_CATCH_UP, OpenInterestPollerActor, poll_rate_per_min
from actors.poster import PosterActor
from actors.price_cache import PriceCacheActor
from actors.rest_gateway import RestGatewayActor
from actors.store import StoreActor
from actors.universe import UniverseActor
from messages.control import Ping, Tick
from messages.delivery import GetState
from messages.open_interest import OiAlert, OiSample
from messages.rest import GetRestGatewayStatus, RestResponse
from messages.types import Symbol, TimestampMs
from simulator import BackendDouble, Simulator, SimulatorConfig
from simulator.backend import OI_ALERTS, OI_INGEST
from supervisors.app import Boards
from supervisors.backoff import BackoffPolicy
from supervisors.config import Config
from supervisors.root import RootHandle, start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

pytestmark = pytest.mark.usefixtures("_stop_all")

OI = "/fapi/v1/openInterest"
FAST = BackoffPolicy(initial_s=0.05, max_s=0.2, jitter=0.0, reset_after_s=5.0)
# One short timeframe: lookback 31 s has the minimum tolerance (30 s), so a baseline exists
# after a second of polling; a 3 % threshold; a long cooldown; no contracts floor.
FAST_RULE = OiRuleConfig(
    timeframes=(TimeframeRule(label="5 min", threshold=0.03, lookback_s=31, cooldown_s=600),),
    min_delta_contracts=1.0,
)
OI_ALERT_REQUIRED = {
    "symbol", "direction", "baseline", "current", "pctChange", "absChange", "timestamp",
    "source", "timeframe",
}  # fmt: skip


def wait_until(predicate, timeout: float = 15.0, step: float = 0.05) -> bool:
    pause = threading.Event()
    for _ in range(int(timeout / step) + 1):
        if predicate():
            return True
        pause.wait(step)
    return bool(predicate())


@dataclass
class OiTree:
    handle: RootHandle
    boards: Boards

    def ask(self, name: str, question: Any, timeout: float = 5.0) -> Any:
        return self.handle.registry.ask(name, question, timeout=timeout)

    def counters(self, name: str) -> dict[str, float]:
        return dict(self.boards.status.counters().get(name, {}))

    def generation(self, name: str) -> int:
        try:
            return self.ask(name, Ping(), timeout=2).generation
        except Exception:  # the stopped incarnation, not yet replaced
            return 0

    def restart(self, name: str) -> None:
        before = self.generation(name)
        self.handle.registry.get(name).stop(timeout=5)
        assert wait_until(lambda: self.generation(name) > before)

    def stop(self) -> None:
        assert self.handle.shutdown("test over", timeout=30) == 0


def build_oi_tree(
    sim: Simulator,
    backend: BackendDouble,
    state_dir,
    *,
    poller: dict[str, Any] | None = None,
    universe: dict[str, Any] | None = None,
    with_poller: bool = True,
    with_feed: bool = True,
    mark_prices: bool = True,
    extra: tuple[ChildSpec, ...] = (),
) -> OiTree:
    boards = Boards()
    config = Config().replace(
        volspike_api_url=backend.url, volspike_api_key=backend.api_key, state_dir=state_dir
    )
    children = [
        ChildSpec(
            name="price-cache",
            actor_class=PriceCacheActor,
            kwargs={"board": boards.prices, "status": boards.status, "stale_after_s": 180.0},
        ),
        StoreActor.spec(config, status=boards.status),
        PosterActor.spec(config, status=boards.status, sweep_period_s=0.5),
        ChildSpec(
            name="rest-gateway",
            actor_class=RestGatewayActor,
            kwargs={
                "base_url": sim.rest_url,
                "status": boards.status,
                "server_time": boards.server_time,
                "exchange_info_to": ("universe",),
            },
            backoff=FAST,
        ),
        *extra,
        dataclasses.replace(
            UniverseActor.spec(
                config,
                status=boards.status,
                server_time=boards.server_time,
                evaluate_period_s=0.5,
                **(universe or {}),
            ),
            backoff=FAST,
        ),
    ]
    if with_poller:
        spec = OpenInterestPollerActor.spec(
            config,
            board=boards.prices,
            status=boards.status,
            server_time=boards.server_time,
            oi_board=boards.oi,
            **{
                "rule": FAST_RULE,
                "max_req_per_min": 1200,
                "min_interval_s": 1.0,
                "deliver_period_s": 1.0,
                "persist_period_s": 0.2,
                # the snapshot (tests/actors/test_oi_snapshot.py) fires on the wall clock's
                # :00/:05; here it would poll non-liquid symbols in the middle of a measurement
                "snapshot": False,
                **(poller or {}),
            },
        )
        children.append(dataclasses.replace(spec, backoff=FAST))
    if with_feed:
        routes = {"Tickers": ("universe",)}
        if mark_prices:
            routes["MarkPrices"] = ("price-cache",)
        children.append(
            ChildSpec(
                name="feed-market",
                actor_class=FeedActor,
                kwargs={
                    "base_url": sim.ws_url + "/market",
                    "streams": MARKET_STREAMS,
                    "routes": routes,
                    "status": boards.status,
                    "stall_after_s": 5.0,
                    "watch_period_s": 0.1,
                    "backoff": FAST,
                    "timeouts": FeedTimeouts(
                        connect_s=2.0, read_poll_s=0.05, ping_interval_s=1.0, pong_timeout_s=0.5
                    ),
                },
            )
        )
    handle = start_tree(
        Supervisor.spec("root", children=children, health_log_interval_s=None),
        server_time=boards.server_time,
        wait_started_s=20,
    )
    assert handle.started
    return OiTree(handle, boards)


@pytest.fixture
def sim(fixtures_dir):
    config = SimulatorConfig(
        symbols=30, seed=11, mark_price_fast_period=0.2, mark_price_period=0.5, ticker_period=0.5
    )
    simulator = Simulator(config).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def backend():
    double = BackendDouble(api_key="ingest-key").start()
    yield double
    double.stop()


def oi_requests(sim: Simulator, since_ms: int = 0) -> list[Any]:
    return [r for r in sim.rest.request_log if r.path == OI and r.time_ms >= since_ms]


def polling(tree: OiTree) -> tuple[str, ...]:
    return tree.ask("oi-poller", "symbols")


def test_every_liquid_symbol_is_polled_evenly_at_the_computed_interval(sim, backend, tmp_path):
    tree = build_oi_tree(sim, backend, tmp_path)
    try:
        assert wait_until(lambda: len(polling(tree)) > 0)
        universe = tree.ask("universe", "universe")
        symbols = polling(tree)
        assert symbols == tuple(m.symbol for m in universe.members)
        n = len(symbols)
        target = tree.boards.status.status("rest-gateway").target
        expected = oi_poll_interval(n, poll_rate_per_min(1200, target, 10), 1.0, 20.0)
        assert tree.ask("oi-poller", "interval") == pytest.approx(expected)
        assert expected == pytest.approx(60 * n / 1200)  # 1200/min is below 2000 - 10
        spacing_ms = expected / n * 1000

        start_ms = sim.clock.time_ms()
        assert wait_until(lambda: len(oi_requests(sim, start_ms)) >= 4 * n, timeout=20)
        log = oi_requests(sim, start_ms)
        assert all(r.status == 200 for r in log)
        assert not [r for r in sim.rest.request_log if r.status in (429, 418)]
        assert {r.params["symbol"] for r in log} == set(symbols)
        # paced: the median gap is the spacing, and no window of 10 spacings holds a burst
        times = [r.time_ms for r in log]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert statistics.median(gaps) == pytest.approx(spacing_ms, rel=0.3)
        for i in range(len(times)):
            window = [t for t in times[i:] if t < times[i] + 10 * spacing_ms]
            assert len(window) <= 15, f"burst of {len(window)} at {i}"
        # each symbol re-sampled once per interval
        per_symbol: dict[str, list[int]] = {}
        for r in log:
            per_symbol.setdefault(r.params["symbol"], []).append(r.time_ms)
        resample = [b - a for ts in per_symbol.values() for a, b in itertools.pairwise(ts)]
        assert statistics.median(resample) == pytest.approx(expected * 1000, rel=0.15)
        assert max(resample) < expected * 1000 * 1.6

        counters = tree.counters("oi-poller")
        assert counters["oi_interval_seconds"] == pytest.approx(expected)
        assert wait_until(lambda: tree.counters("oi-poller").get("oi_samples_total", 0) >= 2 * n)
        assert tree.counters("oi-poller")["oi_max_sample_age_seconds"] < 3 * expected
    finally:
        tree.stop()


def test_an_oi_jump_alerts_once_with_the_exact_shape_and_a_restart_keeps_baselines(
    sim, backend, tmp_path
):
    tree = build_oi_tree(sim, backend, tmp_path)
    try:
        assert wait_until(lambda: "ETHUSDT" in polling(tree))
        n = len(polling(tree))
        # a baseline exists once every symbol was sampled twice
        assert wait_until(
            lambda: tree.ask("oi-poller", "stats").get("rule_accepted", 0) >= 3 * n, timeout=20
        )
        assert backend.received(OI_ALERTS) == []
        sim.scenarios.oi_jump("ETHUSDT", pct=0.08, over_minutes=0.02)

        def eth_alerts():
            return [r.body for r in backend.received(OI_ALERTS) if r.body["symbol"] == "ETHUSDT"]

        assert wait_until(lambda: len(eth_alerts()) >= 1, timeout=15), (
            tree.ask("oi-poller", "stats"),
            backend.rejected(OI_ALERTS),
        )
        body = eth_alerts()[0]
        assert set(body) >= OI_ALERT_REQUIRED
        assert None not in body.values()
        assert body["direction"] == "UP"
        assert body["timeframe"] == "5 min"
        assert body["source"] == "oi_realtime_poller"
        assert body["pctChange"] >= 0.03
        assert body["current"] > body["baseline"] > 0
        assert body["absChange"] == pytest.approx(body["current"] - body["baseline"])
        assert body["timestamp"].endswith("Z")
        assert "fundingRate" in body  # the board had a fresh funding rate
        assert "priceChange" in body  # both marks known

        # restart: baselines come from the history the incarnations share (not reloaded from
        # the store), the OUTSIDE state and the cooldown from the stored rule state — the same
        # excursion does not alert again
        loads = tree.counters("store").get("store_oi_history_loads_total", 0)
        assert loads >= 1  # the first incarnation loaded (an empty) history
        tree.restart("oi-poller")
        assert wait_until(
            lambda: tree.ask("oi-poller", "stats").get("rule_accepted", 0) >= 2 * n, timeout=20
        )
        stats = tree.ask("oi-poller", "stats")
        assert stats.get("rule_no_baseline", 0) == 0, stats  # no blind window
        assert tree.counters("store").get("store_oi_history_loads_total", 0) == loads
        assert len(eth_alerts()) == 1
        assert tree.ask("oi-poller", "symbols") == polling(tree)
        # the OI board (shared, outlives the restart) holds the jump: oiChange sees it
        history = tree.boards.oi.history("ETHUSDT")
        assert len(history) >= 3
        first_ms = history[0][0]
        change = tree.boards.oi.oi_change("ETHUSDT", first_ms, history[-1][0])
        assert change is not None
        assert change >= 0.03
    finally:
        tree.stop()
    # a new process (a new tree: nothing kept in memory) loads the baselines from the store
    tree = build_oi_tree(sim, backend, tmp_path)
    try:
        assert wait_until(
            lambda: tree.ask("oi-poller", "stats").get("rule_accepted", 0) >= n, timeout=20
        )
        assert tree.ask("oi-poller", "stats").get("rule_no_baseline", 0) == 0
        assert tree.counters("store")["store_oi_history_loads_total"] == 1
        assert len(eth_alerts()) == 1
    finally:
        tree.stop()


def test_samples_go_out_in_chunks_of_at_most_100_and_a_missing_mark_is_omitted(
    sim, backend, tmp_path
):
    # no MarkPrices route: the board stays empty, so no sample may carry a mark or a USD value
    tree = build_oi_tree(
        sim, backend, tmp_path, mark_prices=False, poller={"deliver_period_s": 6.0}
    )
    try:
        assert wait_until(lambda: len(backend.received(OI_INGEST)) >= 2, timeout=20)
        bodies = [r.body for r in backend.received(OI_INGEST)]
        assert all(b["source"] == "realtime" for b in bodies)
        assert all(0 < len(b["data"]) <= 100 for b in bodies)
        assert max(len(b["data"]) for b in bodies) == 100  # > 100 samples were split
        for body in bodies:
            for item in body["data"]:
                assert "markPrice" not in item
                assert "openInterestUsd" not in item
                assert item["openInterest"] > 0
                assert None not in item.values()
        assert tree.counters("oi-poller")["oi_samples_without_mark_total"] > 0
    finally:
        tree.stop()


def test_an_invalid_symbol_is_dropped_and_the_rest_keep_being_polled(sim, backend, tmp_path):
    tree = build_oi_tree(sim, backend, tmp_path, with_feed=False)
    try:
        from messages.open_interest import LiquidUniverse, UniverseMember

        members = tuple(
            UniverseMember(symbol=s, quote_volume_24h=5e6, entered_ms=None, last_seen_ms=0)
            for s in ("BTCUSDT", "ETHUSDT", "NOPEUSDT")
        )
        tree.handle.registry.tell("oi-poller", LiquidUniverse(members=members, updated_ms=0))
        assert wait_until(lambda: polling(tree) == ("BTCUSDT", "ETHUSDT"))
        assert tree.counters("oi-poller").get("oi_invalid_symbols_total", 0) >= 1 or wait_until(
            lambda: tree.counters("oi-poller").get("oi_invalid_symbols_total", 0) >= 1
        )
        start_ms = sim.clock.time_ms()
        assert wait_until(lambda: len(oi_requests(sim, start_ms)) >= 4)
        assert {r.params["symbol"] for r in oi_requests(sim, start_ms)} <= {"BTCUSDT", "ETHUSDT"}
    finally:
        tree.stop()


def test_the_specs_follow_the_config_and_the_worked_example_holds():
    config = Config()
    boards = Boards()
    spec = OpenInterestPollerActor.spec(config, board=boards.prices, status=boards.status)
    assert spec.name == "oi-poller"
    assert spec.kwargs["max_req_per_min"] == config.oi_max_req_per_min
    assert spec.kwargs["min_interval_s"] == config.oi_min_interval_sec
    assert spec.kwargs["max_interval_s"] == config.oi_max_interval_sec
    assert spec.kwargs["rule"] == OiRuleConfig.from_config(config)
    universe = UniverseActor.spec(config, status=boards.status)
    assert universe.name == "universe"
    assert universe.kwargs["rules"].enter_quote_24h == config.oi_liquid_enter_quote_24h
    # the poller's docstring: 340 liquid of 540 TRADING symbols, gateway target 2000/min,
    # 10/min reserved for other callers, the snapshot's 200 polls spread over 270 s
    snapshot = snapshot_load_per_min(540 - 340, DEFAULT_SWEEP_S)
    assert snapshot == pytest.approx(44.4, abs=0.05)
    rate = poll_rate_per_min(2000, 2000, 10, snapshot)
    assert rate == pytest.approx(1945.6, abs=0.05)
    interval = oi_poll_interval(340, rate, 5.0, 20.0)
    assert interval == pytest.approx(10.49, abs=0.01)
    assert interval <= 10.5
    assert rate + snapshot + 10 == pytest.approx(2000)  # the whole budget, no more
    assert interval / 340 * 1000 == pytest.approx(30.8, abs=0.1)  # ms between two requests
    assert poll_rate_per_min(2000, None, 10) == 2000  # before the gateway published a target
    assert poll_rate_per_min(2000, None, 10, snapshot) == pytest.approx(2000 - snapshot)
    assert poll_rate_per_min(2000, 2000, 50) == 1950  # without a snapshot load


def test_a_poll_tick_after_a_stall_makes_up_a_few_of_the_slots_it_skipped(sim, backend, tmp_path):
    # a 10-minute interval: the pacing timer itself stays out of the way of the test's ticks
    slow = {"min_interval_s": 600.0, "max_interval_s": 600.0}
    tree = build_oi_tree(sim, backend, tmp_path, poller=slow)
    try:
        assert wait_until(lambda: len(polling(tree)) > POLL_CATCH_UP + 2)
        assert tree.ask("oi-poller", "interval") == 600.0

        def sent() -> int:
            return int(tree.ask("oi-poller", "stats").get("oi_requests_total", 0))

        def tick(skipped: int) -> int:
            before = sent()
            now = TimestampMs(int(time.time() * 1000))
            tree.handle.registry.tell(
                "oi-poller", Tick(timer="oi-poll", scheduled_ms=now, fired_ms=now, skipped=skipped)
            )
            return sent() - before  # the ask is handled after the tick: its requests are out

        assert tick(0) == 1
        assert tick(2) == 3  # this slot and the two a stall skipped
        assert tick(50) == 1 + POLL_CATCH_UP  # a long stall is not made up in one burst
        assert wait_until(lambda: len(oi_requests(sim)) >= 5 + POLL_CATCH_UP)
        assert not [r for r in sim.rest.request_log if r.status in (429, 418)]
    finally:
        tree.stop()


def test_slow_answers_bound_the_requests_in_flight_and_recovery_is_not_a_burst(
    sim, backend, tmp_path
):
    tree = build_oi_tree(sim, backend, tmp_path, poller={"max_in_flight": 3})
    try:
        assert wait_until(lambda: len(polling(tree)) > 0)
        n = len(polling(tree))
        spacing_ms = tree.ask("oi-poller", "interval") / n * 1000
        with sim.faults.rest_slow(0.5, seconds=3.0, path=OI):
            worst = 0
            pause = threading.Event()
            for _ in range(50):  # 2.5 s of samples of the gateway's queue
                st = tree.ask("rest-gateway", GetRestGatewayStatus())
                worst = max(worst, st.queued + st.in_flight)
                pause.wait(0.05)
            assert worst <= 3
            assert tree.ask("oi-poller", "stats").get("oi_ticks_skipped_total", 0) > 0
        end_ms = sim.clock.time_ms()
        assert wait_until(lambda: len(oi_requests(sim, end_ms)) >= 2 * n, timeout=20)
        times = [r.time_ms for r in oi_requests(sim, end_ms)]
        for i in range(len(times)):
            window = [t for t in times[i:] if t < times[i] + 10 * spacing_ms]
            assert len(window) <= 15, f"burst of {len(window)} after the slowdown"
        assert all(r.status == 200 for r in oi_requests(sim, end_ms))
    finally:
        tree.stop()


def saved_eth_alert(now_ms: int) -> tuple[OiAlert, dict[str, Any]]:
    """An ETH OI alert the poster never confirmed, and the rule state saved with it."""
    alert = OiAlert(
        symbol=Symbol("ETHUSDT"), direction="UP", baseline=1e6, current=1.05e6, pct_change=0.05,
        abs_change=5e4, timestamp_ms=TimestampMs(now_ms - 60_000), timeframe="5 min",
    )  # fmt: skip
    waiting = Unconfirmed()
    waiting.add(alert, 0.0)
    state = {
        "outside": [["ETHUSDT", "5 min", "UP"]],
        "cooldowns": [["ETHUSDT", "UP", "5 min", now_ms - 60_000]],
        "unconfirmed": waiting.export(),
    }
    return alert, state


def start_without_gateway(
    backend: BackendDouble,
    tmp_path: Any,
    *,
    store: ChildSpec | None = None,
    boards: Boards | None = None,
    **poller_options: Any,
) -> OiTree:
    """Store, poster and poller only: the test tells the poller what it needs."""
    boards = boards or Boards()
    config = Config().replace(
        volspike_api_url=backend.url, volspike_api_key=backend.api_key, state_dir=tmp_path
    )
    poller = OpenInterestPollerActor.spec(
        config, board=boards.prices, status=boards.status, snapshot=False, deliver_period_s=0.1,
        **poller_options,
    )  # fmt: skip
    children = [
        store or StoreActor.spec(config, status=boards.status),
        PosterActor.spec(config, status=boards.status),
        poller,
    ]
    handle = start_tree(
        Supervisor.spec("root", children=children, health_log_interval_s=None),
        wait_started_s=20,
    )
    assert handle.started
    return OiTree(handle, boards)


def test_a_restarted_poller_resends_the_oi_alerts_it_saved_unconfirmed_and_keeps_its_state(
    backend, tmp_path
):
    """An OI alert the poster never confirmed (lost with a crashed poster's inbox, or a kill -9
    before the outbox commit) was saved with the rule state: the next poller hands it over at
    once, the backend gets it exactly once, and the receipt is saved (no resend after that)."""
    now_ms = int(time.time() * 1000)
    alert, saved = saved_eth_alert(now_ms)
    rule_state = {k: v for k, v in saved.items() if k != "unconfirmed"}
    with StateStore(tmp_path) as store:
        store.kv_put("oi-rule", "state", saved, now_ms)

    def start() -> OiTree:
        return start_without_gateway(backend, tmp_path, resend_after_s=0.3)

    tree = start()
    try:
        backend.wait_for(OI_ALERTS, 1, timeout=15)
        assert wait_until(lambda: tree.ask("oi-poller", "unconfirmed") == ())
        assert wait_until(lambda: tree.counters("oi-poller").get("oi_alerts_confirmed_total") == 1)
        assert tree.counters("oi-poller")["oi_alerts_resent_total"] == 1
        assert tree.counters("oi-poller")["oi_alerts_unconfirmed"] == 0
    finally:
        tree.stop()
    tree = start()  # the receipt was saved: nothing is resent
    try:
        assert tree.ask("oi-poller", "unconfirmed") == ()
    finally:
        tree.stop()
    [received] = backend.received(OI_ALERTS)
    assert received.headers["idempotency-key"] == alert_key(alert)
    assert received.body["symbol"] == "ETHUSDT"
    with StateStore(tmp_path) as store:
        saved = store.kv_get("oi-rule", "state")
    assert saved == {**rule_state, "unconfirmed": []}  # the cooldown and side kept


class ShyStore(StoreActor):
    """The store, except that it refuses to answer the OI rule state until ``gate`` is set
    (a store not there yet, or too slow for the poller's ask): the ask raises."""

    def __init__(self, *, gate: threading.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = gate

    def on_receive(self, message: Any) -> Any:
        if (
            isinstance(message, GetState)
            and message.namespace == "oi-rule"
            and not self._gate.is_set()
        ):
            raise TimeoutError("the OI rule state is not answered yet")
        return super().on_receive(message)


def oi_answer(symbol: str, open_interest: float, time_ms: int) -> RestResponse:
    """The gateway's answer to the poller's realtime ``openInterest`` request for ``symbol``."""
    body = {"symbol": symbol, "openInterest": str(open_interest), "time": time_ms}
    return RestResponse(
        request_id=f"oi:{symbol}", caller="oi-poller", path=OI, ok=True, status=200,
        body=orjson.dumps(body), weight=1, attempts=1, answered_ms=TimestampMs(time_ms),
    )  # fmt: skip


def test_a_rule_state_the_store_did_not_answer_at_start_is_read_on_a_deliver_tick_not_overwritten(
    backend, tmp_path
):
    """Until the saved rule state was read nothing is saved over it (not even the state of an
    alert raised meanwhile); the next ``oi-deliver`` tick after the store answers merges it,
    resends its unconfirmed alert once, and saves both alerts' sides and cooldowns."""
    now_ms = int(time.time() * 1000)
    eth, saved = saved_eth_alert(now_ms)
    with StateStore(tmp_path) as store:
        store.kv_put("oi-rule", "state", saved, now_ms)

    def stored() -> Any:
        tree.ask("oi-poller", Ping())  # every PutState it told is in the store's inbox
        tree.ask("store", Ping())  # and written
        with StateStore(tmp_path) as store:
            return store.kv_get("oi-rule", "state")

    def alerts_for(symbol: str) -> list[Any]:
        return [r for r in backend.received(OI_ALERTS) if r.body["symbol"] == symbol]

    gate = threading.Event()
    boards = Boards()
    shy = ChildSpec(
        name="store",
        actor_class=ShyStore,
        kwargs={"state_dir": tmp_path, "status": boards.status, "gate": gate},
    )
    # no gateway: the test tells the poller the answers
    tree = start_without_gateway(backend, tmp_path, store=shy, boards=boards, rule=FAST_RULE)
    handle = tree.handle
    try:
        # BTC jumps 5 % over the 31 s lookback before the state was read: a new alert
        t = int(time.time() * 1000)
        handle.registry.tell("oi-poller", oi_answer("BTCUSDT", 1_000_000.0, t - 31_000))
        handle.registry.tell("oi-poller", oi_answer("BTCUSDT", 1_050_000.0, t))
        [btc_key] = tree.ask("oi-poller", "unconfirmed")
        assert btc_key.startswith("oi-alert:BTCUSDT:5min:UP:")
        backend.wait_for(OI_ALERTS, 1, timeout=15)
        assert wait_until(lambda: tree.ask("oi-poller", "unconfirmed") == ())  # confirmed
        assert stored() == saved  # neither the BTC alert nor its receipt saved over it
        assert alerts_for("ETHUSDT") == []  # not read yet: nothing to resend

        gate.set()  # the store answers: the next deliver tick reads, merges, resends, saves
        assert wait_until(lambda: tree.counters("oi-poller").get("oi_alerts_confirmed_total") == 2)
        backend.wait_for(OI_ALERTS, 2, timeout=15)
        assert tree.ask("oi-poller", "unconfirmed") == ()
        merged = stored()
        counters = tree.counters("oi-poller")
    finally:
        tree.stop()
    assert counters["oi_alerts_total"] == 2  # BTC once, ETH resent once: nothing twice
    assert counters["oi_alerts_resent_total"] == 1
    [received] = alerts_for("ETHUSDT")
    assert received.headers["idempotency-key"] == alert_key(eth)
    assert len(alerts_for("BTCUSDT")) == 1
    assert merged == {
        "outside": [["BTCUSDT", "5 min", "UP"], ["ETHUSDT", "5 min", "UP"]],
        "cooldowns": [["BTCUSDT", "UP", "5 min", t], ["ETHUSDT", "UP", "5 min", now_ms - 60_000]],
        "unconfirmed": [],
    }


def test_a_history_never_given_back_or_kept_with_another_retention_is_loaded_from_the_store(
    tmp_path,
):
    """The keeper hands the OI history from an incarnation to the next. One that never gave it
    back (abandoned while hung: it still holds it) leaves the keeper empty, and its successor
    loads the history from the store instead of sharing lists with it; a kept history built for
    another retention is not used either. Each run here is a tree with the same poller spec,
    so the same keeper; the store, new each time, counts its history loads."""
    now_ms = int(time.time() * 1000)
    rows = [("BTCUSDT", now_ms - s * 1000, 1_000_000.0 + s, 50_000.0) for s in (30, 20, 10)]
    with StateStore(tmp_path) as store:
        store.append_oi_history(
            OiSample(symbol=Symbol(s), time_ms=TimestampMs(t), open_interest=oi, mark_price=m)
            for s, t, oi, m in rows
        )
    boards = Boards()
    config = Config().replace(state_dir=tmp_path)
    poller = OpenInterestPollerActor.spec(
        config, board=boards.prices, status=boards.status, snapshot=False
    )
    keeper = poller.kwargs["history_keeper"]
    retention_ms = OiRuleConfig.from_config(config).retention_ms

    def run() -> float:
        """Start a tree, let the poller load, stop it; the store's history loads."""
        status = StatusBoard()
        children = [StoreActor.spec(config, status=status), poller]
        handle = start_tree(
            Supervisor.spec("root", children=children, health_log_interval_s=None),
            wait_started_s=20,
        )
        assert handle.started  # the poller's on_start (its loading) has returned
        assert handle.shutdown("test over", timeout=30) == 0
        return status.counters().get("store", {}).get("store_oi_history_loads_total", 0)

    assert run() == 1  # the first incarnation: nothing kept, loaded from the store
    first = keeper.take()
    assert first is not None
    assert sorted(first.export_rows()) == sorted(rows)
    keeper.give_back(first)
    assert run() == 0  # control: given back at the end, taken at the start, not reloaded
    abandoned = keeper.take()
    assert abandoned is first  # the very history went on

    # an incarnation abandoned while hung still holds it: its successor loads its own
    assert run() == 1
    successor = keeper.take()
    assert successor is not None
    assert successor is not abandoned
    assert sorted(successor.export_rows()) == sorted(rows)

    # a history kept for another retention (another rule) is not gone on with
    other = OiHistory(retention_ms + 1)
    other.add("ETHUSDT", now_ms, 2_000_000.0, None)
    keeper.give_back(other)
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        assert run() == 1
    finally:
        logger.remove(sink)
    assert [line for line in lines if "OI history kept in memory is unusable" in line]
    reloaded = keeper.take()
    assert reloaded is not None
    assert reloaded is not other
    assert reloaded.retention_ms == retention_ms
    assert sorted(reloaded.export_rows()) == sorted(rows)
