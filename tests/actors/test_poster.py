"""The poster end to end: durable outbox, backend PROD/DEV, Telegram, callbacks, local SQLite.

Real SQLite files under ``tmp_path``, the backend and Telegram doubles on 127.0.0.1, the real
supervision tree. Nothing sleeps to synchronise: tests wait on the doubles' records, on asks,
or on bounded polling loops.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka
import pytest

from actors._delivery_policy import RetryPolicy
from actors._handoff import alert_key
from actors._price_board import PriceBoard
from actors._sinks import BackendSink, CallbackSink, TelegramSink
from actors._status import StatusBoard
from actors._store import DB_NAME, StateStore
from actors._volume_rule import SpikeConfig
from actors.poster import PosterActor
from actors.store import StoreActor
from actors.volume_scanner import VolumeScannerActor
from messages import ActorName, OiAlert, OiSample, OiSamples, Symbol, TimestampMs, VolumeAlert
from messages.control import Ping
from messages.delivery import (
    AlertHandoff,
    DeliveryQuery,
    DeliveryReport,
    RequeueFailed,
    SinkStatus,
)
from messages.errors import DeliveryError
from messages.market import Kline, KlineUpdate, KlineUpdates, TradingSymbols
from messages.open_interest import LiquidUniverse, UniverseMember
from simulator import BackendDouble, TelegramDouble
from supervisors.backoff import BackoffPolicy
from supervisors.clock import ServerTimeOffset, SystemClock
from supervisors.root import RootHandle, start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from actors._sinks import Sink
    from simulator import Received

pytestmark = pytest.mark.usefixtures("_stop_all")

REPO = Path(__file__).resolve().parents[2]
KEY = "test-ingest-key"
TOKEN = "123456:TEST-token"
VOLUME = "/api/volume-alerts/ingest"
OI_INGEST = "/api/market/open-interest/ingest"
OI_ALERTS = "/api/open-interest-alerts/ingest"
UNIVERSE = "/api/market/open-interest/liquid-universe/update"
HOUR = 1_764_943_200_000  # 2025-12-05T14:00:00Z
FAST_RETRY = RetryPolicy(backoff=BackoffPolicy(initial_s=0.05, max_s=0.3, jitter=0.0))
WAIT = 10.0


# --- payloads ----------------------------------------------------------------------------------


def volume_alert(i: int = 0, **changes: Any) -> VolumeAlert:
    symbol = f"C{i}USDT"
    fields: dict[str, Any] = {
        "symbol": Symbol(symbol),
        "asset": f"C{i}",
        "current_volume": 5_200_000.0 + i,
        "previous_volume": 1_500_000.0,
        "volume_ratio": 3.47,
        "message": f"C{i} hourly volume 5.20M (3.47x prev) — VOLUME SPIKE!",
        "timestamp_ms": TimestampMs(HOUR + 600_000),
        "detection_time_ms": TimestampMs(HOUR + 600_123),
        "hour_timestamp_ms": TimestampMs(HOUR),
        "price": 1.25,
        "candle_direction": "bullish",
    }
    return VolumeAlert(**(fields | changes))


def oi_alert(i: int = 0) -> OiAlert:
    return OiAlert(
        symbol=Symbol(f"C{i}USDT"),
        direction="UP",
        baseline=1_000_000.0,
        current=1_040_000.0,
        pct_change=0.04,
        abs_change=40_000.0,
        timestamp_ms=TimestampMs(HOUR + 10_000 + i),
        timeframe="5 min",
        funding_rate=0.0000128,
    )


def oi_samples(n: int, *, created: int = HOUR, measured: int = HOUR) -> OiSamples:
    items = tuple(
        OiSample(
            symbol=Symbol(f"S{i:03d}USDT"),
            open_interest=1000.0 + i,
            time_ms=TimestampMs(measured + i),
            mark_price=None if i % 7 == 0 else 2.5,
        )
        for i in range(n)
    )
    return OiSamples(items=items, source="realtime", created_ms=TimestampMs(created))


def universe() -> LiquidUniverse:
    members = (
        UniverseMember(symbol=Symbol("BTCUSDT"), quote_volume_24h=9e9, entered_ms=None,
                       last_seen_ms=TimestampMs(HOUR)),
        UniverseMember(symbol=Symbol("ETHUSDT"), quote_volume_24h=5e9,
                       entered_ms=TimestampMs(HOUR - 3_600_000), last_seen_ms=TimestampMs(HOUR)),
    )  # fmt: skip
    return LiquidUniverse(members=members, updated_ms=TimestampMs(HOUR))


# --- helpers -----------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT, step: float = 0.01) -> bool:
    pause = threading.Event()
    for _ in range(int(timeout / step) + 1):
        if predicate():
            return True
        pause.wait(step)
    return bool(predicate())


def prod_sink(backend: BackendDouble, name: str = "prod", **kw: Any) -> BackendSink:
    return BackendSink(name=name, base_url=backend.url, api_key=backend.api_key, **kw)


def start_delivery(
    state_dir: Path,
    sinks: Sequence[Sink] = (),
    *,
    poster: type[PosterActor] = PosterActor,
    poster_backoff: BackoffPolicy = BackoffPolicy(initial_s=0.05, max_s=0.1, jitter=0.0),  # noqa: B008
    extra: Sequence[ChildSpec] = (),
    server_time: ServerTimeOffset | None = None,
    **kwargs: Any,
) -> RootHandle:
    """Store and poster (``kwargs`` are the poster's), then ``extra`` children (producers)."""
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("flush_timeout_s", 1.0)
    children = [
        ChildSpec(name="store", actor_class=StoreActor, kwargs={"state_dir": state_dir}),
        ChildSpec(
            name="poster",
            actor_class=poster,
            kwargs={"state_dir": state_dir, "sinks": tuple(sinks), **kwargs},
            backoff=poster_backoff,
            stop_timeout_s=5.0,
        ),
        *extra,
    ]
    handle = start_tree(
        Supervisor.spec("root", children=children, health_log_interval_s=None),
        server_time=server_time,
        wait_started_s=WAIT,
    )
    assert handle.started
    return handle


def tell(handle: RootHandle, *messages: Any) -> None:
    for message in messages:
        assert handle.registry.tell("poster", message)


def synced(handle: RootHandle) -> None:
    """Every message told so far has been handled (the inbox is FIFO)."""
    handle.registry.ask("poster", Ping(), timeout=WAIT)


def report(handle: RootHandle) -> DeliveryReport:
    answer = handle.registry.ask("poster", DeliveryQuery(), timeout=WAIT)
    assert isinstance(answer, DeliveryReport)
    return answer


def sink_status(handle: RootHandle, sink: str) -> SinkStatus:
    status = report(handle).sink(sink)
    assert status is not None, sink
    return status


def pending(handle: RootHandle, sink: str) -> int:
    return sink_status(handle, sink).pending


def stop(handle: RootHandle) -> None:
    assert handle.shutdown("test over", timeout=WAIT * 2) == 0


def keys(records: Iterable[Received]) -> list[str]:
    return [r.headers["idempotency-key"] for r in records]


def no_nulls(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nulls(v) for v in value)
    return True


def db_rows(state_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(state_dir / DB_NAME)) as conn:
        return conn.execute(sql).fetchall()


def generation(handle: RootHandle) -> int:
    try:
        pong = handle.registry.ask("poster", Ping(), timeout=1)
    except (pykka.ActorDeadError, pykka.Timeout):
        return 0
    return int(pong.generation)


@pytest.fixture
def backend():
    double = BackendDouble(KEY).start()
    yield double
    double.stop()


@pytest.fixture
def dev_backend():
    double = BackendDouble(KEY).start()
    yield double
    double.stop()


@pytest.fixture
def telegram():
    double = TelegramDouble(TOKEN).start()
    yield double
    double.stop()


# --- payload shapes ------------------------------------------------------------------------------


def test_alerts_and_oi_batches_arrive_with_the_exact_payload_shapes(tmp_path, backend):
    handle = start_delivery(tmp_path, [prod_sink(backend)])
    try:
        tell(handle, volume_alert(1, price=None, candle_direction=None), oi_alert(1))
        tell(handle, oi_samples(250), universe())
        [volume] = backend.wait_for(VOLUME, 1, timeout=WAIT)
        [oi] = backend.wait_for(OI_ALERTS, 1, timeout=WAIT)
        chunks = backend.wait_for(OI_INGEST, 3, timeout=WAIT)
        [members] = backend.wait_for(UNIVERSE, 1, timeout=WAIT)
    finally:
        stop(handle)

    assert volume.body == {
        "symbol": "C1USDT", "asset": "C1", "currentVolume": 5_200_001.0,
        "previousVolume": 1_500_000.0, "volumeRatio": 3.47,
        "message": "C1 hourly volume 5.20M (3.47x prev) — VOLUME SPIKE!",
        "timestamp": "2025-12-05T14:10:00Z", "detectionTime": "2025-12-05T14:10:00Z",
        "hourTimestamp": "2025-12-05T14:00:00Z", "isUpdate": False, "alertType": "SPIKE",
    }  # fmt: skip
    assert oi.body == {
        "symbol": "C1USDT", "direction": "UP", "baseline": 1_000_000.0, "current": 1_040_000.0,
        "pctChange": 0.04, "absChange": 40_000.0, "timestamp": "2025-12-05T14:00:10Z",
        "source": "oi_realtime_poller", "timeframe": "5 min", "fundingRate": 0.0000128,
    }  # fmt: skip
    assert [len(c.body["data"]) for c in chunks] == [100, 100, 50]
    assert {c.body["source"] for c in chunks} == {"realtime"}
    assert all(c.body["totalSymbols"] == len(c.body["data"]) for c in chunks)
    rows = [row for c in chunks for row in c.body["data"]]
    assert [r["symbol"] for r in rows] == [f"S{i:03d}USDT" for i in range(250)]
    assert "markPrice" not in rows[0]  # unknown: omitted, never null or 0
    assert rows[1] == {"symbol": "S001USDT", "openInterest": 1001.0,
                       "openInterestUsd": 2502.5, "markPrice": 2.5}  # fmt: skip
    assert members.body["symbols"][0] == {
        "symbol": "BTCUSDT",
        "quoteVolume24h": 9e9,
        "lastSeenAt": "2025-12-05T14:00:00Z",
    }
    every = [volume, oi, *chunks, members]
    assert all(no_nulls(r.body) for r in every)
    assert all(r.headers["content-type"] == "application/json" for r in every)
    assert len(set(keys(every))) == len(every)
    assert volume.headers["idempotency-key"] == "volume:C1USDT:2025-12-05T14:00:00Z:SPIKE"


def test_alerts_go_before_oi_samples(tmp_path, backend):
    down = backend.go_down()
    handle = start_delivery(tmp_path, [prod_sink(backend)])
    try:
        tell(handle, oi_samples(250), volume_alert(1), oi_alert(1))
        synced(handle)
        down.end()
        chunks = backend.wait_for(OI_INGEST, 3, timeout=WAIT)
        alerts = [*backend.received(VOLUME), *backend.received(OI_ALERTS)]
    finally:
        stop(handle)
    assert len(alerts) == 2
    assert max(a.at for a in alerts) <= min(c.at for c in chunks)


# --- outages, restarts, kill -9 ----------------------------------------------------------------


def test_a_backend_outage_ends_with_every_alert_delivered_exactly_once(tmp_path, backend):
    handle = start_delivery(tmp_path, [prod_sink(backend)])
    try:
        tell(handle, *(volume_alert(i) for i in range(3)))
        backend.wait_for(VOLUME, 3, timeout=WAIT)
        down = backend.go_down()
        tell(handle, *(volume_alert(i) for i in range(3, 10)), oi_alert(1))
        assert wait_until(lambda: sink_status(handle, "prod").consecutive_failures >= 3)
        down.end()
        backend.wait_for(VOLUME, 10, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "prod") == 0)
    finally:
        stop(handle)
    received = backend.received(VOLUME)
    assert sorted(r.body["symbol"] for r in received) == sorted(f"C{i}USDT" for i in range(10))
    assert len(set(keys(received))) == 10
    assert len(backend.received(OI_ALERTS)) == 1


KILLED_POSTER = """
import sys
import threading

from actors._delivery_policy import RetryPolicy
from actors._sinks import BackendSink
from actors.poster import PosterActor
from actors.store import StoreActor
from messages import Symbol, TimestampMs, VolumeAlert
from messages.control import Ping
from supervisors.backoff import BackoffPolicy
from supervisors.root import start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

state_dir, url, key, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
retry = RetryPolicy(backoff=BackoffPolicy(initial_s=0.05, max_s=0.3, jitter=0.0))
sink = BackendSink(name="prod", base_url=url, api_key=key)
children = [
    ChildSpec(name="store", actor_class=StoreActor, kwargs={"state_dir": state_dir}),
    ChildSpec(name="poster", actor_class=PosterActor,
              kwargs={"state_dir": state_dir, "sinks": (sink,), "retry": retry}),
]
handle = start_tree(Supervisor.spec("root", children=children, health_log_interval_s=None))
for i in range(count):
    handle.registry.tell("poster", VolumeAlert(
        symbol=Symbol(f"K{i}USDT"), asset=f"K{i}", current_volume=4e6, previous_volume=1e6,
        volume_ratio=4.0, message=f"K{i} spike", timestamp_ms=TimestampMs(1764943800000),
        detection_time_ms=TimestampMs(1764943800000), hour_timestamp_ms=TimestampMs(1764943200000),
    ))
handle.registry.ask("poster", Ping(), timeout=10)
print("enqueued", flush=True)
threading.Event().wait(60)
"""


def test_a_poster_killed_with_sigkill_during_an_outage_delivers_everything_after_restart(
    tmp_path, backend
):
    down = backend.go_down()
    script = tmp_path / "killed_poster.py"
    script.write_text(textwrap.dedent(KILLED_POSTER))
    state_dir = tmp_path / "state"
    with (tmp_path / "child.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(state_dir), backend.url, KEY, "6"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout is not None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ)
                assert selector.select(timeout=30), (tmp_path / "child.log").read_text()
            assert proc.stdout.readline().strip() == b"enqueued"
            # It keeps failing against the dead backend; then it dies without any cleanup.
            assert wait_until(
                lambda: db_rows(state_dir, "select max(attempts) from deliveries")[0][0], 10
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
            proc.stdout.close()

    assert db_rows(state_dir, "select count(*) from deliveries where status = 'pending'") == [(6,)]
    down.end()
    handle = start_delivery(state_dir, [prod_sink(backend)])
    try:
        backend.wait_for(VOLUME, 6, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "prod") == 0)
        assert pending(handle, "local") == 0
    finally:
        stop(handle)
    received = backend.received(VOLUME)
    assert len(received) == 6
    assert len(set(keys(received))) == 6
    local = db_rows(state_dir, "select symbol from volume_alerts order by symbol")
    assert local == [(f"K{i}USDT",) for i in range(6)]


class Boom:
    """Not a message: makes :class:`CrashablePoster` raise."""


class CrashablePoster(PosterActor):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Boom):
            raise RuntimeError("injected crash")  # noqa: TRY004 - a crash, not a type check
        return super().on_receive(message)


def test_a_crashed_poster_is_restarted_and_its_pending_deliveries_resume(tmp_path, backend):
    down = backend.go_down()
    handle = start_delivery(tmp_path, [prod_sink(backend)], poster=CrashablePoster)
    try:
        tell(handle, *(volume_alert(i) for i in range(4)))
        assert wait_until(lambda: sink_status(handle, "prod").consecutive_failures >= 1)
        tell(handle, Boom())
        assert wait_until(lambda: generation(handle) == 2)
        tell(handle, volume_alert(4))
        down.end()
        backend.wait_for(VOLUME, 5, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "prod") == 0)
    finally:
        stop(handle)
    received = backend.received(VOLUME)
    assert len(received) == 5
    assert len(set(keys(received))) == 5


def test_stop_flushes_what_is_due_and_keeps_the_rest_for_the_next_start(tmp_path, backend):
    slow = backend.faults.slow(0.1)
    handle = start_delivery(tmp_path, [prod_sink(backend)], batch_size=2, flush_timeout_s=3.0)
    tell(handle, *(volume_alert(i) for i in range(5)))
    stop(handle)  # stop is queued behind the alerts: the flush delivers them all
    slow.end()
    assert len(backend.received(VOLUME)) == 5

    down = backend.go_down()
    handle = start_delivery(tmp_path, [prod_sink(backend)])
    tell(handle, *(volume_alert(i) for i in range(5, 8)))
    synced(handle)
    started = time.monotonic()
    stop(handle)
    assert time.monotonic() - started < 3.0
    kept = "select count(*) from deliveries where sink = 'prod' and status = 'pending'"
    assert db_rows(tmp_path, kept) == [(3,)]

    down.end()
    handle = start_delivery(tmp_path, [prod_sink(backend)])
    try:
        backend.wait_for(VOLUME, 8, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "prod") == 0)
    finally:
        stop(handle)
    assert len(set(keys(backend.received(VOLUME)))) == 8


def test_a_repeated_alert_is_delivered_once_even_across_restarts(tmp_path, backend):
    handle = start_delivery(tmp_path, [prod_sink(backend)])
    try:
        tell(handle, volume_alert(1), volume_alert(1), volume_alert(1, message="again"))
        backend.wait_for(VOLUME, 1, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "prod") == 0)
    finally:
        stop(handle)
    handle = start_delivery(tmp_path, [prod_sink(backend)])
    try:
        tell(handle, volume_alert(1), volume_alert(2))
        backend.wait_for(VOLUME, 2, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "prod") == 0)
    finally:
        stop(handle)
    assert [r.body["symbol"] for r in backend.received(VOLUME)] == ["C1USDT", "C2USDT"]


# --- alerts handed over with a receipt (actors._handoff) ------------------------------------------

SCANNER = "volume-scanner"
EXCHANGE_NOW = HOUR + 10 * 60_000
"""The scanner's exchange clock starts ten minutes into HOUR: far from either timer tick."""


class GatedCrashPoster(CrashablePoster):
    """Holds :class:`Boom` until ``gate`` opens, so handoffs queue up behind the crash."""

    def __init__(self, *, gate: threading.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = gate

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Boom):
            assert self._gate.wait(WAIT)
        return super().on_receive(message)


class ForgetfulPoster(PosterActor):
    """Commits and delivers, but its receipts never arrive (as if it died after each commit)."""

    def _confirm(self, handoff: AlertHandoff, keys: tuple[str, ...]) -> None:
        del handoff, keys


def scanner_spec(status: StatusBoard, server_time: ServerTimeOffset) -> ChildSpec:
    """A real volume scanner, fed klines by the test (no gateway, no feeds)."""
    return ChildSpec(
        name=SCANNER,
        actor_class=VolumeScannerActor,
        kwargs={
            "board": PriceBoard(),
            "status": status,
            "shards": ("feed-klines-0",),  # not started: its SetStreams go nowhere
            "config": SpikeConfig(multiple=3.0, min_quote_volume=3_000_000.0),
            "server_time": server_time,
            "gateway": None,
            "backfill_period_s": 0.1,  # the tick that resends
            "resend_after_s": 0.3,
        },
    )


def exchange_clock() -> ServerTimeOffset:
    clock = SystemClock()
    return ServerTimeOffset(clock, offset_ms=EXCHANGE_NOW - clock.time_ms())


def candle(symbol: str, open_ms: int, quote_volume: float, *, closed: bool) -> Kline:
    return Kline(
        symbol=Symbol(symbol), interval="1h", open_time_ms=TimestampMs(open_ms),
        close_time_ms=TimestampMs(open_ms + 3_599_999), open=1.0, high=1.2, low=0.9, close=1.1,
        base_volume=quote_volume, quote_volume=quote_volume, trade_count=1000, closed=closed,
    )  # fmt: skip


def spike(handle: RootHandle, indices: Iterable[int]) -> list[str]:
    """Make ``C<i>USDT`` spike in HOUR (3.4 x its closed previous hour); returns the keys."""
    at = TimestampMs(EXCHANGE_NOW)
    symbols = [f"C{i}USDT" for i in indices]
    klines = [
        k
        for s in symbols
        for k in (
            candle(s, HOUR - 3_600_000, 1.5e6, closed=True),
            candle(s, HOUR, 5.1e6, closed=False),
        )
    ]
    updates = tuple(KlineUpdate(kline=k, event_time_ms=at, received_ms=at) for k in klines)
    assert handle.registry.tell(SCANNER, KlineUpdates(items=updates))
    return [f"volume:{s}:2025-12-05T14:00:00Z:SPIKE" for s in symbols]


def list_symbols(handle: RootHandle, count: int) -> None:
    symbols = tuple(Symbol(f"C{i}USDT") for i in range(count))
    assert handle.registry.tell(SCANNER, TradingSymbols(symbols=symbols, at_ms=TimestampMs(0)))


def scanner_counters(status: StatusBoard) -> dict[str, float]:
    return dict(status.counters().get(SCANNER, {}))


def unconfirmed(handle: RootHandle) -> tuple[str, ...]:
    return tuple(handle.registry.ask(SCANNER, "unconfirmed", timeout=WAIT))


def saved_unconfirmed(state_dir: Path) -> int:
    with StateStore(state_dir) as store:
        return len(store.kv_get("volume", "detector")["unconfirmed"])


def test_alerts_handed_over_while_the_poster_is_crashed_or_restarting_are_delivered_once(
    tmp_path, backend
):
    gate, status, server_time = threading.Event(), StatusBoard(), exchange_clock()
    handle = start_delivery(
        tmp_path,
        [prod_sink(backend)],
        poster=GatedCrashPoster,
        gate=gate,
        poster_backoff=BackoffPolicy(initial_s=2.0, max_s=2.0, jitter=0.0),  # a wide window
        extra=[scanner_spec(status, server_time)],
        server_time=server_time,
    )
    try:
        list_symbols(handle, 10)
        tell(handle, Boom())  # the poster holds it: what comes next waits in its inbox
        expected = spike(handle, range(5))
        handle.registry.ask(SCANNER, Ping(), timeout=WAIT)
        assert scanner_counters(status)["volume_alerts_sent_total"] == 5  # accepted ...
        gate.set()  # ... and dropped with the crashed incarnation's inbox
        assert wait_until(lambda: handle.registry.get("poster") is None)
        expected += spike(handle, range(5, 10))  # nobody there for two seconds: refused
        handle.registry.ask(SCANNER, Ping(), timeout=WAIT)
        assert scanner_counters(status)["volume_alerts_undelivered_total"] == 5
        backend.wait_for(VOLUME, 10, timeout=WAIT)
        assert wait_until(lambda: unconfirmed(handle) == ())
        assert wait_until(lambda: pending(handle, "prod") == 0)
        assert generation(handle) == 2
    finally:
        stop(handle)
    received = keys(backend.received(VOLUME))
    assert sorted(received) == sorted(expected)  # each exactly once
    counters = scanner_counters(status)
    assert counters["volume_alerts_resent_total"] >= 10
    assert counters["volume_alerts_confirmed_total"] == 10
    assert counters["volume_alerts_unconfirmed"] == 0
    assert saved_unconfirmed(tmp_path) == 0  # the receipts were saved too


def test_a_restarted_scanner_resends_what_was_never_confirmed_and_nothing_arrives_twice(
    tmp_path, backend, log_stream
):
    status, server_time = StatusBoard(), exchange_clock()
    handle = start_delivery(
        tmp_path,
        [prod_sink(backend)],
        poster=ForgetfulPoster,
        extra=[scanner_spec(status, server_time)],
        server_time=server_time,
    )
    try:
        list_symbols(handle, 3)
        expected = spike(handle, range(3))
        backend.wait_for(VOLUME, 3, timeout=WAIT)
        # no receipt: resent every 0.3 s, and the outbox takes each resend as a duplicate
        assert wait_until(lambda: scanner_counters(status)["volume_alerts_resent_total"] >= 6)
        assert unconfirmed(handle) == tuple(expected)
    finally:
        stop(handle)
    assert log_stream.wait_for("3 alert(s) not yet confirmed by poster; resending")
    assert saved_unconfirmed(tmp_path) == 3  # what a kill -9 would have left too

    status = StatusBoard()
    handle = start_delivery(
        tmp_path, [prod_sink(backend)], extra=[scanner_spec(status, server_time)],
        server_time=server_time,
    )  # fmt: skip
    try:
        assert wait_until(lambda: unconfirmed(handle) == ())  # resent at start, confirmed
        assert pending(handle, "prod") == 0
    finally:
        stop(handle)
    assert log_stream.wait_for("3 alert(s) saved unconfirmed before a restart; resending")
    assert sorted(keys(backend.received(VOLUME))) == sorted(expected)
    assert scanner_counters(status)["volume_alerts_confirmed_total"] == 3
    assert saved_unconfirmed(tmp_path) == 0


def test_a_handoff_is_confirmed_for_new_repeated_and_unsendable_alerts_alike(tmp_path, backend):
    """A receipt names every alert handed over: a repeat and an alert no sink could ever take
    are the poster's business too (sending them again cannot help)."""
    receipts: list[Any] = []
    got = threading.Event()

    class Producer(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> None:
            receipts.append(message)
            got.set()

    producer = Producer.start()
    handle = start_delivery(tmp_path, [prod_sink(backend)])
    try:
        handle.registry.register("producer", producer)
        tell(handle, volume_alert(1))  # committed before: the handoff's copy is a repeat
        bad = volume_alert(2, volume_ratio=math.inf)  # refused: not a finite number
        alerts = (volume_alert(1), bad, oi_alert(3))
        tell(handle, AlertHandoff(reply_to=ActorName("producer"), alerts=alerts))
        assert got.wait(WAIT)
        backend.wait_for(OI_ALERTS, 1, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "prod") == 0)
    finally:
        stop(handle)
        producer.stop()
    [receipt] = receipts
    assert receipt.keys == tuple(alert_key(a) for a in alerts)
    assert len(backend.received(VOLUME)) == 1
    assert db_rows(tmp_path, "select count(*) from outbox") == [(2,)]  # the bad one: refused


# --- independence of sinks, failures -------------------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "slow"])
def test_a_dead_or_slow_dev_never_delays_prod(tmp_path, backend, dev_backend, fault):
    if fault == "down":
        handle_fault = dev_backend.go_down()
    else:
        handle_fault = dev_backend.faults.slow(2.0, count=1)
    sinks = [prod_sink(backend), prod_sink(dev_backend, "dev")]
    handle = start_delivery(tmp_path, sinks, flush_timeout_s=0.2)
    try:
        started = time.time()
        tell(handle, *(volume_alert(i) for i in range(5)), oi_alert(1))
        backend.wait_for(VOLUME, 5, timeout=1.5)
        backend.wait_for(OI_ALERTS, 1, timeout=1.5)
        assert max(r.at for r in backend.received()) - started < 1.5
        assert dev_backend.received() == []
        handle_fault.end()
        dev_backend.wait_for(VOLUME, 5, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "dev") == 0)
    finally:
        stop(handle)
    assert len(set(keys(dev_backend.received(VOLUME)))) == 5
    assert len(backend.received(VOLUME)) == 5


def test_4xx_are_kept_as_failed_and_reported_while_408_429_and_5xx_are_retried(
    tmp_path, backend, dev_backend
):
    dev_backend.api_key = "another-key"  # every DEV request: 401 Unauthorized
    backend.faults.errors(400, count=1, path=VOLUME)
    backend.faults.errors(429, count=1, path=OI_ALERTS)
    backend.faults.errors(408, count=1, path=OI_INGEST)
    backend.faults.errors(503, count=1, path=UNIVERSE)
    sinks = [prod_sink(backend), BackendSink(name="dev", base_url=dev_backend.url, api_key=KEY)]
    handle = start_delivery(tmp_path, sinks)
    try:
        tell(handle, volume_alert(1))
        assert wait_until(lambda: sink_status(handle, "prod").failed == 1)
        tell(handle, volume_alert(2), oi_alert(1), oi_samples(10), universe())
        backend.wait_for(VOLUME, 1, timeout=WAIT)
        backend.wait_for(OI_ALERTS, 1, timeout=WAIT)
        backend.wait_for(OI_INGEST, 1, timeout=WAIT)
        backend.wait_for(UNIVERSE, 1, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "prod") == 0 and pending(handle, "dev") == 0)
        final = report(handle)
    finally:
        stop(handle)

    assert [r.body["symbol"] for r in backend.received(VOLUME)] == ["C2USDT"]  # never retried
    refused = {(f.sink, f.idempotency_key): f for f in final.failed}
    first = refused["prod", "volume:C1USDT:2025-12-05T14:00:00Z:SPIKE"]
    assert first.attempts == 1
    assert (first.last_error or "").startswith("HTTP 400")
    assert sum(1 for f in final.failed if f.sink == "dev") == 5  # every payload, refused once
    assert all((f.last_error or "").startswith("HTTP 401") for f in final.failed if f.sink == "dev")
    assert len(dev_backend.rejected()) == 5  # each tried once, then kept
    retried = db_rows(
        tmp_path,
        "select o.kind, d.attempts, d.status from deliveries d join outbox o on o.id = d.outbox_id"
        " where d.sink = 'prod' and o.kind != 'volume_alert'",
    )
    assert sorted(retried) == [
        ("oi_alert", 1, "delivered"),
        ("oi_samples", 1, "delivered"),
        ("universe", 1, "delivered"),
    ]


def test_a_request_that_times_out_is_retried_and_delivered_once_the_slow_fault_clears(
    tmp_path, backend
):
    slow = backend.faults.slow(1.0, count=1, path=VOLUME)  # longer than the read timeout
    sink = prod_sink(backend, read_timeouts_s={"volume_alert": 0.2})
    handle = start_delivery(tmp_path, [sink])
    try:
        tell(handle, volume_alert(1))
        assert wait_until(lambda: pending(handle, "prod") == 0)
        assert sink_status(handle, "prod").delivered == 1
        [row] = db_rows(
            tmp_path, "select status, attempts, last_error from deliveries where sink = 'prod'"
        )
        # the timed-out request was still handled when its delay ended: the backend ignores
        # Idempotency-Key, so it recorded the payload twice, with the same key
        late = backend.wait_for(VOLUME, 2, timeout=WAIT)
    finally:
        stop(handle)
    assert not slow.active
    status, attempts, error = row
    assert (status, attempts) == ("delivered", 1)  # one timed-out attempt, then delivered
    assert error.startswith("ReadTimeout"), error
    assert "read timeout=0.2" in error
    assert keys(late) == ["volume:C1USDT:2025-12-05T14:00:00Z:SPIKE"] * 2


def test_dropped_sample_batches_are_published_and_logged_once_per_drop(
    tmp_path, backend, log_stream
):
    down = backend.go_down()
    status = StatusBoard()
    handle = start_delivery(tmp_path, [prod_sink(backend)], status=status, max_sample_batches=2)

    def batch(n: int, b: int) -> OiSamples:  # 150 samples: 2 chunks
        return oi_samples(n, created=HOUR + b * 10_000, measured=HOUR + b * 10_000)

    def dropped() -> float:
        return status.counters()["poster"]["delivery_prod_dropped_samples_total"]

    try:
        tell(handle, batch(150, 0), batch(150, 1))
        synced(handle)
        assert dropped() == 0  # within the bound: known to be none, not missing
        tell(handle, batch(150, 2))  # the first batch's two chunks go
        synced(handle)
        assert dropped() == 2
        tell(handle, batch(50, 3), volume_alert(1))  # the second batch goes; alerts never do
        synced(handle)
        assert dropped() == 4
        assert sink_status(handle, "prod").pending_alerts == 1
    finally:
        down.end()
        stop(handle)
    lines = [line for line in log_stream.text.splitlines() if "OI sample backlog" in line]
    assert len(lines) == 2, lines  # one line per drop, not per chunk or sample
    assert all("WARNING" in line and "prod=2" in line for line in lines)
    assert db_rows(tmp_path, "select value from counters") == [(4,)]


def test_failed_payloads_can_be_requeued_after_the_cause_is_fixed(tmp_path, backend):
    sink = prod_sink(backend)
    backend.api_key = "rotated"  # the sink's key is refused: 401
    handle = start_delivery(tmp_path, [sink])
    try:
        tell(handle, volume_alert(1))
        assert wait_until(lambda: sink_status(handle, "prod").failed == 1)
        backend.api_key = KEY
        assert handle.registry.ask("poster", RequeueFailed(sink="prod"), timeout=WAIT) == 1
        backend.wait_for(VOLUME, 1, timeout=WAIT)
    finally:
        stop(handle)


# --- Telegram, callbacks, local SQLite -----------------------------------------------------------


def test_telegram_honours_429_retry_after_and_merges_a_burst(tmp_path, telegram):
    telegram.rate_limit(retry_after=1, count=1)
    sink = TelegramSink(api_url=telegram.url, token=TOKEN, chat_id="-1001", linger_s=0.2)
    handle = start_delivery(tmp_path, [sink])
    try:
        tell(handle, *(volume_alert(i, alert_type="FULL_UPDATE") for i in range(12)))
        tell(handle, oi_samples(5))  # not for Telegram
        assert wait_until(lambda: telegram.rate_limited == 1, step=0.002)
        refused_at = time.time()
        [sent] = telegram.wait_for(1, timeout=WAIT)
        assert wait_until(lambda: pending(handle, "telegram") == 0)
        assert len(telegram.messages) == 1
    finally:
        stop(handle)
    assert sent.at - refused_at >= 0.98  # nothing was sent before retry_after ended
    assert str(sent.chat_id) == "-1001"
    assert all(f"C{i} hourly volume" in sent.text for i in range(12))
    assert TOKEN not in "".join(str(r) for r in db_rows(tmp_path, "select * from deliveries"))


def test_telegram_rate_limits_one_chat_to_one_message_per_second(tmp_path, telegram):
    sink = TelegramSink(api_url=telegram.url, token=TOKEN, chat_id="42", linger_s=0.0)
    handle = start_delivery(tmp_path, [sink], batch_size=1)  # one alert per message
    try:
        tell(handle, *(oi_alert(i) for i in range(3)))
        sent = telegram.wait_for(3, timeout=WAIT)
    finally:
        stop(handle)
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
    assert all(gap >= 0.9 for gap in gaps), gaps


def test_the_callback_sink_receives_every_message_and_may_ask_for_a_retry(tmp_path):
    received: list[Any] = []
    lock = threading.Condition()
    refusals = iter([DeliveryError("app busy", retryable=True)])

    def on_message(message: Any) -> None:
        with lock:
            error = next(refusals, None)
            if error is not None:
                raise error
            received.append(message)
            lock.notify_all()

    sink = CallbackSink(name="app", callback=on_message)
    handle = start_delivery(tmp_path, [sink])
    try:
        alert, samples = volume_alert(1), oi_samples(150)
        tell(handle, alert, oi_alert(1), samples, universe())
        with lock:
            assert lock.wait_for(lambda: len(received) == 5, timeout=WAIT)
    finally:
        stop(handle)
    assert received[0] == alert  # the retried one still comes first: alerts before the rest
    assert received[1] == oi_alert(1)
    assert received[2] == universe()
    assert [len(m.items) for m in received[3:]] == [100, 50]
    assert tuple(s for m in received[3:] for s in m.items) == samples.items


def test_with_no_backend_alerts_and_samples_land_in_the_local_sqlite_tables(tmp_path, log_stream):
    handle = start_delivery(tmp_path)
    try:
        tell(handle, volume_alert(1, price=None), oi_alert(1), oi_samples(150), universe())
        synced(handle)
    finally:
        stop(handle)
    assert log_stream.wait_for(str(tmp_path / DB_NAME))
    [volume] = db_rows(
        tmp_path,
        "select symbol, alert_type, is_update, volume_ratio, price, funding_rate, hour_timestamp,"
        " idempotency_key from volume_alerts",
    )
    assert volume == ("C1USDT", "SPIKE", 0, 3.47, None, None, "2025-12-05T14:00:00Z",
                      "volume:C1USDT:2025-12-05T14:00:00Z:SPIKE")  # fmt: skip
    [oi] = db_rows(tmp_path, "select symbol, timeframe, baseline_oi, funding_rate from oi_alerts")
    assert oi == ("C1USDT", "5 min", 1_000_000.0, 0.0000128)
    samples = db_rows(
        tmp_path, "select symbol, open_interest, mark_price, source from oi_samples order by symbol"
    )
    assert len(samples) == 150
    assert samples[0] == ("S000USDT", 1000.0, None, "realtime")
    assert samples[1] == ("S001USDT", 1001.0, 2.5, "realtime")
    status = db_rows(tmp_path, "select sink, status, count(*) from deliveries group by 1, 2")
    assert status == [("local", "delivered", 2)]  # the alerts; samples and universe: no outbox


def test_a_sink_describes_its_url_without_credentials():
    prod = BackendSink(name="prod", base_url="https://user:s3cret@api.example:8443/v1", api_key="k")
    assert prod.describe() == "prod backend https://api.example:8443/v1"
