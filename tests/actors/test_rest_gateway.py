"""The REST gateway against the simulator over loopback: weights, budget, pauses, retries.

One simulator serves the module (its weight limit is 240, so the gateway's target is 200);
every test resets its weights, bans, faults and request log. Tests that depend on the minute
windows first step the simulator's clock to a chosen distance from a minute boundary, then
start the gateway, which learns the server time from ``/fapi/v1/time`` like in production (the
simulator runs days ahead of the local clock, so a gateway on local time would get it wrong).
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka
import pytest
import requests

from actors._rest_client import RestTimeouts
from actors._status import StatusBoard
from actors.rest_gateway import RestGatewayActor
from messages.control import Ping
from messages.errors import ExchangeError
from messages.rest import GetRestGatewayStatus, RestGatewayStatus, RestResponse, rest_request
from simulator import Simulator
from simulator.testing import fast_config
from supervisors.backoff import BackoffPolicy
from supervisors.clock import ServerTimeOffset, SystemClock
from supervisors.context import ChildContext
from supervisors.registry import NameRegistry
from supervisors.root import start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor
from supervisors.timers import TimerService

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from simulator import RequestRecord

pytestmark = pytest.mark.usefixtures("_stop_all")

LIMIT = 240
TARGET = 200  # 2000/2400 of LIMIT
GATEWAY = "rest-gateway"
FAST_RETRY = BackoffPolicy(initial_s=0.05, max_s=0.2, jitter=0.5)
OI = "/fapi/v1/openInterest"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    ahead_ms = 3 * 86_400_000 + 17_321  # the exchange's clock is not ours
    config = fast_config(
        symbols=20,
        weight_limit=LIMIT,
        ban_after_violations=1,
        ban_base_seconds=3.0,
        timeout_hold_seconds=2.0,
        start_ms=int(time.time() * 1000) + ahead_ms,
    )
    s = Simulator(config).start()
    yield s
    s.stop()


@dataclass
class Caller:
    """What a calling actor received; the test waits on it."""

    name: str
    cond: threading.Condition = field(default_factory=threading.Condition)
    responses: list[RestResponse] = field(default_factory=list)

    def add(self, response: RestResponse) -> None:
        with self.cond:
            self.responses.append(response)
            self.cond.notify_all()

    @property
    def count(self) -> int:
        with self.cond:
            return len(self.responses)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RestResponse]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.responses) >= count, timeout), (
                f"{self.name}: {len(self.responses)} of {count} responses"
            )
            return list(self.responses)

    def by_id(self) -> dict[str, RestResponse]:
        with self.cond:
            return {r.request_id: r for r in self.responses}


class CallerActor(pykka.ThreadingActor):
    """Stands in for the OI poller, the scanner …: hands every response to its :class:`Caller`."""

    use_daemon_thread = True

    def __init__(self, caller: Caller) -> None:
        super().__init__()
        self._caller = caller

    def on_receive(self, message: Any) -> None:
        self._caller.add(message)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> bool:
    """Re-check ``predicate`` until true; bounded in time and in count."""
    pause = threading.Event()
    for _ in range(int(timeout / step) + 1):
        if predicate():
            return True
        pause.wait(step)
    return predicate()


@dataclass
class Harness:
    sim: Simulator
    registry: NameRegistry = field(default_factory=NameRegistry)
    status: StatusBoard = field(default_factory=StatusBoard)
    clock: SystemClock = field(default_factory=SystemClock)
    ids: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.timers = TimerService(self.clock, registry=self.registry).start()
        self.offset = ServerTimeOffset(self.clock)

    def gateway_kwargs(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "base_url": self.sim.rest_url,
            "status": self.status,
            "server_time": self.offset,
            "retry": FAST_RETRY,
            "timeouts": RestTimeouts(connect_s=1.0, read_s=2.0),
            **kwargs,
        }

    def start_gateway(self, **kwargs: Any) -> pykka.ActorRef[Any]:
        context = ChildContext.standalone(
            GATEWAY, clock=self.clock, registry=self.registry, timers=self.timers
        )
        ref = RestGatewayActor.start(context=context, **self.gateway_kwargs(**kwargs))
        assert wait_until(self.ready), self.gateway_status()
        return ref

    def gateway_status(self) -> RestGatewayStatus | None:
        return self.status.status(GATEWAY)

    def ready(self) -> bool:
        st = self.gateway_status()
        return st is not None and st.time_synced and st.limit == LIMIT and st.in_flight == 0

    def caller(self, name: str) -> Caller:
        caller = Caller(name)
        self.registry.register(name, CallerActor.start(caller))
        return caller

    def send(
        self, caller: Caller, path: str = OI, request_id: str | None = None, **params: Any
    ) -> str:
        request_id = request_id or f"{caller.name}-{next(self.ids)}"
        if path == OI:
            params.setdefault("symbol", "BTCUSDT")
        request = rest_request(path, request_id=request_id, caller=caller.name, params=params)
        assert self.registry.tell(GATEWAY, request)
        return request_id

    def counters(self, name: str = GATEWAY) -> dict[str, float]:
        return dict(self.status.counters().get(name, {}))


@pytest.fixture
def harness(sim: Simulator) -> Iterator[Harness]:
    sim.faults.clear()
    sim.rest.limiter.reset()
    sim.rest.clear_log()
    h = Harness(sim)
    yield h
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
    h.timers.stop()


def to_minute_end(sim: Simulator, seconds: float) -> int:
    """Step the simulator's clock forward to ``seconds`` before a minute boundary; that boundary."""
    now = sim.clock.time_ms()
    target = now - now % 60_000 + 60_000 - round(seconds * 1000)
    if target <= now + 50:
        target += 60_000
    sim.faults.jump_clock((target - now) / 1000)
    return target + round(seconds * 1000)


def after(log: list[RequestRecord], record: RequestRecord) -> list[RequestRecord]:
    return log[log.index(record) + 1 :]


# --- normal operation ---------------------------------------------------------------------------


WEIGHTS = [
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 99}, 1),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 100}, 2),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 499}, 2),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 500}, 5),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000}, 5),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1500}, 10),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "5m"}, 5),
    ("/fapi/v1/openInterest", {"symbol": "ETHUSDT"}, 1),
    ("/fapi/v1/exchangeInfo", {}, 1),
    ("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, 1),
    ("/fapi/v1/premiumIndex", {}, 10),
    ("/fapi/v1/ticker/24hr", {"symbol": "BTCUSDT"}, 1),
    ("/fapi/v1/ticker/24hr", {}, 40),
    ("/fapi/v1/time", {}, 1),
    ("/fapi/v1/ping", {}, 1),
]


def test_gets_are_charged_the_weights_binance_charges(harness, sim):
    to_minute_end(sim, 50)
    harness.start_gateway()
    assert abs(harness.offset.now_ms() - sim.clock.time_ms()) < 50  # server time, days ahead
    start_used = sim.rest.limiter.used()
    scanner = harness.caller("scanner")
    for i, (path, params, _) in enumerate(WEIGHTS):
        harness.send(scanner, path, request_id=str(i), **params)
    scanner.wait_for(len(WEIGHTS))
    responses = scanner.by_id()

    log = sim.rest.request_log
    for i, (path, params, weight) in enumerate(WEIGHTS):
        response = responses[str(i)]
        assert response.ok, response
        assert (response.weight, response.attempts, response.status) == (weight, 1, 200)
        sent = {k: str(v) for k, v in params.items()}
        matching = [r for r in log if r.path == path and r.params == sent]
        assert [r.weight for r in matching][-1] == weight, path
    total = sum(w for *_, w in WEIGHTS)
    assert sim.rest.limiter.used() == start_used + total
    assert max(r.used_weight for r in responses.values()) == start_used + total
    assert harness.counters(f"{GATEWAY}/scanner") == {"rest_weight_used_total": total}
    assert responses["0"].json()[0][0] > 0  # kline rows
    assert len(responses["7"].json()["openInterest"]) > 0


def test_an_invalid_symbol_is_answered_as_an_exchange_error_without_retries(harness, sim):
    harness.start_gateway()
    poller = harness.caller("oi-poller")
    harness.send(poller, OI, request_id="nope", symbol="NOPEUSDT")
    (response,) = poller.wait_for(1)
    assert not response.ok
    assert (response.status, response.error_type, response.error_code) == (400, "exchange", -1121)
    assert response.error_message == "Invalid symbol."
    assert response.attempts == 1
    error = response.error()
    assert isinstance(error, ExchangeError)
    assert error.code == -1121
    assert len([r for r in sim.rest.request_log if r.params.get("symbol") == "NOPEUSDT"]) == 1


def test_the_gateways_own_exchange_info_goes_to_subscribers(harness, sim):
    universe = harness.caller("universe")
    harness.start_gateway(exchange_info_to=("universe",))
    (info,) = universe.wait_for(1)
    assert (info.ok, info.path, info.request_id, info.caller) == (
        True, "/fapi/v1/exchangeInfo", "exchangeInfo", GATEWAY,
    )  # fmt: skip
    assert info.json()["rateLimits"][0]["limit"] == LIMIT
    assert harness.gateway_status().target == TARGET


def test_an_endpoint_without_a_known_weight_is_refused_and_never_sent(harness, sim):
    harness.start_gateway()
    caller = harness.caller("caller")
    harness.send(caller, "/fapi/v1/order", request_id="order")
    (response,) = caller.wait_for(1)
    assert (response.ok, response.error_type, response.attempts) == (False, "invalid_request", 0)
    assert not [r for r in sim.rest.request_log if r.path == "/fapi/v1/order"]


# --- the budget ---------------------------------------------------------------------------------


def test_the_budget_follows_the_header_when_another_client_on_the_ip_spends_weight(harness, sim):
    to_minute_end(sim, 50)
    harness.start_gateway()
    poller = harness.caller("oi-poller")
    sim.rest.consume_weight(150)  # another program on the same IP
    harness.send(poller, request_id="first")
    (first,) = poller.wait_for(1)
    server_used = first.used_weight
    assert server_used is not None
    assert server_used >= 153
    st = harness.registry.ask(GATEWAY, GetRestGatewayStatus(), timeout=2)
    assert st.window_used == server_used
    assert st.headroom == TARGET - server_used

    sent_before = len(sim.rest.request_log)
    for _ in range(60):
        harness.send(poller)
    room = TARGET - server_used
    assert wait_until(lambda: poller.count == 1 + room)
    st = harness.registry.ask(GATEWAY, GetRestGatewayStatus(), timeout=2)
    assert (st.queued, st.in_flight, st.headroom) == (60 - room, 0, 0)
    assert len(sim.rest.request_log) - sent_before == room
    assert sim.rest.limiter.used() == TARGET
    assert all(r.status == 200 for r in sim.rest.request_log)
    assert harness.counters()["rest_waits_budget_total"] >= 1

    harness.registry.get(GATEWAY).stop(timeout=5)  # queued requests are answered, not lost
    responses = poller.wait_for(61)
    assert sum(r.error_type == "stopped" for r in responses) == 60 - room


def test_several_callers_above_the_target_rate_are_paced_and_never_get_a_429(harness, sim):
    boundary = to_minute_end(sim, 3.0)
    harness.start_gateway()
    callers = [harness.caller(f"caller-{i}") for i in range(3)]
    for _ in range(17):
        for caller in callers:
            harness.send(caller, OI)
            harness.send(caller, "/fapi/v1/klines", symbol="ETHUSDT", interval="1m", limit=500)
    ours = 3 * 17 * (1 + 5)
    assert ours > TARGET
    wait_until(lambda: callers[0].count >= 10)
    sim.rest.consume_weight(20)  # another REST user, within the margin (limit - target)
    responses = [r for c in callers for r in c.wait_for(34, timeout=20)]

    assert all(r.ok for r in responses), [r for r in responses if not r.ok][:3]
    log = sim.rest.request_log
    assert {r.status for r in log} == {200}
    assert max(r.used_weight for r in log) <= TARGET + 20  # + what the other client spent
    before = sum(r.weight for r in log if r.time_ms < boundary)
    later = sum(r.weight for r in log if r.time_ms >= boundary)
    assert before <= TARGET
    assert later > 0  # the rest waited for the next minute, in the queue
    assert max(r.waited_s for r in responses) > 0.5
    assert harness.counters()["rest_waits_budget_total"] >= 1
    assert harness.counters().get("rest_429_total", 0) == 0


def test_waiting_requests_expire_and_a_full_queue_drops_the_lowest_class(harness, sim):
    to_minute_end(sim, 50)
    harness.start_gateway(max_queued=2)
    caller = harness.caller("universe")
    sim.rest.consume_weight(TARGET)  # another client: nothing left for us this minute
    harness.send(caller, "/fapi/v1/ping", request_id="reveals-the-header")
    caller.wait_for(1)
    oi = functools.partial(rest_request, OI, caller="universe", params={"symbol": "BTCUSDT"})
    harness.registry.tell(GATEWAY, oi(request_id="low", priority="low"))
    harness.registry.tell(GATEWAY, oi(request_id="stale", expires_after_s=0.2))
    harness.registry.tell(GATEWAY, oi(request_id="high", priority="high"))
    responses = {r.request_id: r for r in caller.wait_for(3)}
    assert responses["low"].error_type == "queue_full"  # made room for the high one
    assert responses["stale"].error_type == "expired"
    assert 0.2 <= responses["stale"].waited_s < 2.0
    assert [r.path for r in sim.rest.request_log].count(OI) == 0
    harness.registry.get(GATEWAY).stop(timeout=5)
    assert caller.wait_for(4)[-1].error_type == "stopped"


def test_exchange_info_jumps_the_queue_and_uses_the_reserve_when_the_minute_is_spent(harness, sim):
    to_minute_end(sim, 50)
    harness.start_gateway()
    caller = harness.caller("volume-scanner")
    sim.rest.consume_weight(TARGET)  # the minute is spent (another client, OI polling...)
    harness.send(caller, "/fapi/v1/ping", request_id="reveals-the-header")
    caller.wait_for(1)
    for n in range(3):
        harness.send(caller, request_id=f"oi-{n}")  # wait for the next minute
    harness.registry.tell(
        GATEWAY,
        rest_request(
            "/fapi/v1/exchangeInfo",
            request_id="exchangeInfo",
            caller="volume-scanner",
            priority="high",
        ),
    )
    (info,) = [r for r in caller.wait_for(2, timeout=5) if r.request_id == "exchangeInfo"]
    assert info.ok
    assert info.waited_s < 5  # not held back to the minute's end (~50 s away)
    assert [r.path for r in sim.rest.request_log].count(OI) == 0  # the rest still waits
    assert sim.rest.limiter.used() <= LIMIT
    harness.registry.get(GATEWAY).stop(timeout=5)
    assert all(r.error_type == "stopped" for r in caller.wait_for(5)[2:])


# --- 429 and 418 --------------------------------------------------------------------------------


def test_after_a_429_no_request_leaves_until_retry_after_has_passed(harness, sim):
    to_minute_end(sim, 2.5)
    harness.start_gateway()
    poller, scanner = harness.caller("oi-poller"), harness.caller("scanner")
    sim.rest.consume_weight(LIMIT - sim.rest.limiter.used())  # another client used it all
    harness.send(poller, request_id="trigger")
    assert wait_until(lambda: harness.counters().get("rest_429_total") == 1)
    for _ in range(3):
        harness.send(poller)
        harness.send(scanner, "/fapi/v1/premiumIndex", symbol="BTCUSDT")
    responses = poller.wait_for(4) + scanner.wait_for(3)

    assert all(r.ok for r in responses)
    log = sim.rest.request_log
    (limited,) = [r for r in log if r.status == 429]
    retry_after_s = math.ceil((60_000 - limited.time_ms % 60_000) / 1000)
    later = after(log, limited)
    assert len(later) == 7
    assert min(r.time_ms for r in later) >= limited.time_ms + retry_after_s * 1000
    trigger = poller.by_id()["trigger"]
    assert (trigger.attempts, trigger.waited_s >= retry_after_s) == (2, True)


def test_a_429_without_retry_after_pauses_until_the_next_minute(harness, sim):
    boundary = to_minute_end(sim, 2.0)
    harness.start_gateway()
    poller = harness.caller("oi-poller")
    sim.faults.rest_errors(429, count=1, path=OI)  # no Retry-After header
    harness.send(poller, request_id="trigger")
    assert wait_until(lambda: harness.counters().get("rest_429_total") == 1)
    harness.send(poller)
    assert all(r.ok for r in poller.wait_for(2))
    log = sim.rest.request_log
    (limited,) = [r for r in log if r.status == 429]
    assert min(r.time_ms for r in after(log, limited)) >= boundary


def test_after_a_418_every_request_waits_for_the_end_of_the_ban(harness, sim):
    to_minute_end(sim, 1.5)
    harness.start_gateway()
    poller, scanner = harness.caller("oi-poller"), harness.caller("scanner")
    # Another client on this IP ignores a 429 and gets the IP banned (3 s in this simulator).
    sim.rest.consume_weight(LIMIT - sim.rest.limiter.used())
    statuses = [
        requests.get(sim.rest_url + "/fapi/v1/ping", timeout=5).status_code for _ in range(3)
    ]
    assert statuses == [429, 429, 418]
    banned_until = sim.rest.limiter.banned_until()
    assert banned_until is not None

    harness.send(poller, request_id="trigger")
    assert wait_until(lambda: harness.counters().get("rest_418_total") == 1)
    st = harness.registry.ask(GATEWAY, GetRestGatewayStatus(), timeout=2)
    assert st.pause_reason == "banned"
    for _ in range(3):
        harness.send(poller)
        harness.send(scanner, "/fapi/v1/ticker/24hr", symbol="ETHUSDT")
    responses = poller.wait_for(4) + scanner.wait_for(3)

    assert all(r.ok for r in responses)
    log = sim.rest.request_log
    (ours,) = [r for r in log if r.status == 418 and r.path == OI]
    later = after(log, ours)
    assert len(later) == 7
    assert min(r.time_ms for r in later) >= banned_until
    assert [r.status for r in later] == [200] * 7


# --- retries and timeouts -----------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["errors", "resets"])
def test_5xx_and_connection_resets_are_retried_until_the_call_succeeds(harness, sim, fault):
    harness.start_gateway()
    poller = harness.caller("oi-poller")
    if fault == "errors":
        sim.faults.rest_errors(503, count=2, path=OI)
    else:
        sim.faults.rest_resets(count=2, path=OI)
    harness.send(poller, request_id="oi")
    (response,) = poller.wait_for(1)
    assert response.ok, response
    assert (response.attempts, response.weight) == (3, 3)
    expected = [503, 503, 200] if fault == "errors" else [0, 0, 200]
    assert [r.status for r in sim.rest.request_log if r.path == OI] == expected
    assert harness.counters()["rest_retries_total"] == 2


def test_retries_are_bounded_and_the_last_failure_is_answered(harness, sim):
    harness.start_gateway(max_attempts=2)
    poller = harness.caller("oi-poller")
    sim.faults.rest_errors(502, count=5, path=OI)
    harness.send(poller, request_id="oi")
    (response,) = poller.wait_for(1)
    assert (response.ok, response.status, response.error_type, response.attempts) == (
        False, 502, "http", 2,
    )  # fmt: skip
    assert len([r for r in sim.rest.request_log if r.path == OI]) == 2


def test_timeouts_are_bounded_then_retried_then_answered(harness, sim):
    harness.start_gateway(timeouts=RestTimeouts(connect_s=1.0, read_s=0.3))
    poller = harness.caller("oi-poller")
    sim.faults.rest_timeouts(count=2, path=OI, hold=1.0)
    started = time.monotonic()
    harness.send(poller, request_id="recovers")
    (response,) = poller.wait_for(1)
    assert (response.ok, response.attempts) == (True, 3)

    sim.faults.rest_timeouts(count=3, path=OI, hold=1.0)
    harness.send(poller, request_id="gives-up")
    response = poller.wait_for(2)[1]
    elapsed = time.monotonic() - started
    assert (response.ok, response.error_type, response.attempts) == (False, "timeout", 3)
    assert "ReadTimeout" in (response.error_message or "")
    assert elapsed < 5.0  # 5 attempts of 0.3 s each + short retry delays, nowhere near 2 x 30 s


# --- supervision --------------------------------------------------------------------------------


def test_a_crashed_gateway_is_restarted_and_later_requests_work(harness, sim, monkeypatch):
    original = RestGatewayActor._handle_request
    crashed = threading.Event()

    def crash_once(self, request):
        if request.request_id == "boom" and not crashed.is_set():
            crashed.set()
            raise RuntimeError("injected bug")
        original(self, request)

    monkeypatch.setattr(RestGatewayActor, "_handle_request", crash_once)
    spec = ChildSpec(
        name=GATEWAY,
        actor_class=RestGatewayActor,
        kwargs=harness.gateway_kwargs(),
        backoff=BackoffPolicy.immediate(),
    )
    handle = start_tree(
        Supervisor.spec("root", children=[spec], health_log_interval_s=None),
        registry=harness.registry,
        timers=harness.timers,
        wait_started_s=10,
    )
    try:
        assert handle.started
        poller = harness.caller("oi-poller")
        harness.send(poller, request_id="boom")
        assert crashed.wait(5)

        def generation() -> int:
            try:
                return harness.registry.ask(GATEWAY, Ping(), timeout=2).generation
            except pykka.ActorDeadError:  # the crashed incarnation, not yet unregistered
                return 0

        assert wait_until(lambda: generation() == 2)
        harness.send(poller, request_id="after")
        responses = {r.request_id: r for r in poller.wait_for(2)}
        assert responses["boom"].ok  # redelivered once to the new incarnation
        assert responses["after"].ok
    finally:
        assert handle.shutdown("test over", timeout=10) == 0
