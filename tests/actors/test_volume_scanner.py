"""The volume scanner as an actor, in a real supervision tree on a fake clock.

The tree: a real ``StoreActor`` on a SQLite file in ``tmp_path``, doubles registered under the
poster's, the REST gateway's and the kline shards' names, and the ``VolumeScannerActor`` as
``build_tree`` wires it. The poster double confirms every handoff (``AlertsCommitted``) unless a
test turns that off. The gateway double answers ``exchangeInfo`` and ``klines`` from a
scripted market, so the universe and the previous hours arrive the production way; the test
then tells the scanner ``KlineUpdate``s and moves the ``FakeClock`` over hh:30 and hh:00, where
the tree's aligned timers tick.

Synchronisation is by ``ask`` only: inboxes are FIFO, so an answered ask proves that everything
told before it was handled; ``TimerService.settle`` proves a due tick has been told.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from loguru import logger

from actors._candle_store import HOUR_MS
from actors._handoff import Unconfirmed, alert_key
from actors._oi_board import OiBoard
from actors._price_board import PriceBoard
from actors._status import StatusBoard
from actors._store import StateStore
from actors._volume_rule import STATE_VERSION, SpikeConfig
from actors.store import StoreActor
from actors.volume_scanner import VolumeScannerActor
from messages._base import Message
from messages.control import Ping
from messages.delivery import AlertHandoff, AlertsCommitted
from messages.feed import SetStreams, StreamsWanted
from messages.market import Kline, KlineUpdate, KlineUpdates, TradingSymbols
from messages.rest import RestRequest, RestResponse
from messages.types import Symbol, TimestampMs
from messages.volume import VolumeAlert
from supervisors.actor import SupervisedActor
from supervisors.backoff import BackoffPolicy
from supervisors.clock import FakeClock, ServerTimeOffset
from supervisors.root import RootHandle, start_tree
from supervisors.spec import ChildSpec
from supervisors.supervisor import Supervisor

if TYPE_CHECKING:
    from pathlib import Path

    from supervisors.context import ChildContext

pytestmark = pytest.mark.usefixtures("_stop_all")

WAIT = 10.0
MIN_MS = 60_000
H0 = 1_773_900_000_000 - HOUR_MS
"""Open time of the closed hour before the spike hour (2026-03-19 05:00 UTC)."""
H1 = H0 + HOUR_MS
"""Open time of the hour the spikes happen in (06:00)."""
H2 = H1 + HOUR_MS
"""The next hour (07:00): FULL_UPDATEs are due at its start."""
H3 = H2 + HOUR_MS

SCANNER = "volume-scanner"
POSTER = "poster"
GATEWAY = "rest-gateway"
SHARDS = ("feed-klines-0", "feed-klines-1")


# --- doubles -------------------------------------------------------------------------------


class Journal:
    """Every message the doubles were told, by double name; outlives trees and incarnations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._told: list[tuple[str, Message]] = []
        self.confirming = True
        """Whether the poster double answers handoffs (False: as if it lost them)."""

    def add(self, name: str, message: Message) -> None:
        with self._lock:
            self._told.append((name, message))

    def told(self, name: str) -> list[Message]:
        with self._lock:
            return [m for n, m in self._told if n == name]


class Capture(SupervisedActor):
    """Stands in for an actor the scanner tells things to; writes every message down."""

    def __init__(self, *, context: ChildContext | None = None, journal: Journal) -> None:
        super().__init__(context=context)
        self._journal = journal

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Message) and not isinstance(message, Ping):
            self._journal.add(self.name, message)
            self.answer(message)
            return None
        return super().on_receive(message)

    def answer(self, message: Message) -> None:
        del message


class FakePoster(Capture):
    """The poster double: writes handoffs down and confirms them like the real one."""

    def __init__(self, *, context: ChildContext | None = None, journal: Journal) -> None:
        super().__init__(context=context, journal=journal)
        self._confirming = journal

    def answer(self, message: Message) -> None:
        if isinstance(message, AlertHandoff) and self._confirming.confirming:
            keys = tuple(alert_key(a) for a in message.alerts)
            self.registry.tell(message.reply_to, AlertsCommitted(keys=keys))


class FakeMarket:
    """The exchange as the gateway double sees it: listed symbols and their 1h candles."""

    def __init__(self, server_time: ServerTimeOffset, symbols: tuple[str, ...] = ()) -> None:
        self.server_time = server_time
        self._lock = threading.Lock()
        self._symbols = set(symbols)
        self._candles: dict[str, dict[int, Kline]] = {}
        self.lost: set[str] = set()
        """Symbols whose next klines request is lost (a gateway that died with it queued)."""
        self.stopped: set[str] = set()
        """Symbols whose next klines request is answered "stopped" (a gateway restarting)."""

    def list(self, *symbols: str) -> None:
        with self._lock:
            self._symbols |= set(symbols)

    def delist(self, *symbols: str) -> None:
        with self._lock:
            self._symbols -= set(symbols)

    def put(self, kline: Kline) -> None:
        with self._lock:
            self._candles.setdefault(kline.symbol, {})[kline.open_time_ms] = kline

    def exchange_info(self) -> bytes:
        with self._lock:
            listed = sorted(self._symbols)
        entries = [
            {"symbol": s, "contractType": "PERPETUAL", "quoteAsset": "USDT", "status": "TRADING"}
            for s in listed
        ]
        return orjson.dumps({"symbols": entries})

    def klines(self, symbol: str, limit: int) -> bytes:
        """The latest ``limit`` candles, as Binance writes ``/fapi/v1/klines`` rows."""
        now = self.server_time.now_ms()
        with self._lock:
            candles = sorted(self._candles.get(symbol, {}).values(), key=lambda k: k.open_time_ms)
        rows = [binance_row(k) for k in candles if k.open_time_ms <= now]
        return orjson.dumps(rows[-limit:])


def binance_row(k: Kline) -> list[Any]:
    """A ``/fapi/v1/klines`` row: prices and volumes as strings, times and counts as ints."""
    prices = (k.open, k.high, k.low, k.close, k.base_volume)
    return [
        k.open_time_ms,
        *map(str, prices),
        k.close_time_ms,
        str(k.quote_volume),
        k.trade_count,
        *("0", "0", "0"),
    ]


class FakeGateway(Capture):
    """The REST gateway double: answers ``exchangeInfo`` and ``klines`` from the market."""

    def __init__(
        self, *, context: ChildContext | None = None, journal: Journal, market: FakeMarket
    ) -> None:
        super().__init__(context=context, journal=journal)
        self._market = market

    def answer(self, message: Message) -> None:
        if not isinstance(message, RestRequest):
            return
        params = {p.name: p.value for p in message.params}
        if message.path == "/fapi/v1/exchangeInfo":
            body = self._market.exchange_info()
        elif message.path == "/fapi/v1/klines":
            if params["symbol"] in self._market.lost:
                self._market.lost.discard(params["symbol"])
                return
            body = self._market.klines(params["symbol"], int(params["limit"]))
        else:
            raise AssertionError(f"the scanner asked for {message.path}")
        if params.get("symbol") in self._market.stopped:
            self._market.stopped.discard(params["symbol"])
            self.registry.tell(
                message.caller,
                RestResponse(
                    request_id=message.request_id,
                    caller=message.caller,
                    path=message.path,
                    ok=False,
                    error_type="stopped",
                    error_message="the REST gateway stopped; ask again",
                    answered_ms=TimestampMs(self._market.server_time.now_ms()),
                ),
            )
            return
        response = RestResponse(
            request_id=message.request_id,
            caller=message.caller,
            path=message.path,
            ok=True,
            status=200,
            body=body,
            weight=1,
            attempts=1,
            answered_ms=TimestampMs(self._market.server_time.now_ms()),
        )
        self.registry.tell(message.reply_to or message.caller, response)


# --- the tree ------------------------------------------------------------------------------


def kline(symbol: str, open_ms: int, qv: float, *, closed: bool = False) -> Kline:
    return Kline(
        symbol=Symbol(symbol),
        interval="1h",
        open_time_ms=TimestampMs(open_ms),
        close_time_ms=TimestampMs(open_ms + HOUR_MS - 1),
        open=1.0,
        high=1.2,
        low=0.9,
        close=1.1,
        base_volume=qv,
        quote_volume=qv,
        trade_count=int(qv // 1000),
        closed=closed,
    )


@dataclass
class ScannerTree:
    clock: FakeClock
    server_time: ServerTimeOffset
    market: FakeMarket
    state_dir: Path
    per_connection: int = 200
    store_first: bool = True
    """False: the store is started after the scanner (which cannot read its state at start)."""
    journal: Journal = field(default_factory=Journal)
    oi: OiBoard = field(default_factory=OiBoard)
    handle: RootHandle = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    # lifecycle

    def start(self) -> None:
        status = StatusBoard()
        scanner = ChildSpec(
            name=SCANNER,
            actor_class=VolumeScannerActor,
            kwargs={
                "board": PriceBoard(),
                "status": status,
                "shards": SHARDS,
                "streams_per_connection": self.per_connection,
                "config": SpikeConfig(multiple=3.0, min_quote_volume=3_000_000.0),
                "server_time": self.server_time,
                "backfill_period_s": 60.0,
                "oi_board": self.oi,
            },
            backoff=BackoffPolicy.immediate(),  # a restart must not wait for fake time
        )
        store = ChildSpec(
            name="store", actor_class=StoreActor, kwargs={"state_dir": self.state_dir}
        )
        children = [
            *([store] if self.store_first else []),
            ChildSpec(name=POSTER, actor_class=FakePoster, kwargs={"journal": self.journal}),
            ChildSpec(
                name=GATEWAY,
                actor_class=FakeGateway,
                kwargs={"journal": self.journal, "market": self.market},
            ),
            scanner,
            *([] if self.store_first else [store]),
            *(
                ChildSpec(name=name, actor_class=Capture, kwargs={"journal": self.journal})
                for name in SHARDS
            ),
        ]
        self.handle = start_tree(
            Supervisor.spec("root", children=children, health_log_interval_s=None),
            clock=self.clock,
            server_time=self.server_time,
            wait_started_s=WAIT,
        )
        assert self.handle.started
        self.sync()

    def stop(self) -> None:
        assert self.handle.shutdown("test over", timeout=WAIT * 2) == 0

    def restart_tree(self) -> None:
        """Stop the whole tree and start a new one on the same state directory (a new process)."""
        self.stop()
        self.start()

    def crash_scanner(self) -> None:
        """Make the scanner's handler raise; its supervisor starts a new incarnation."""
        before = self.generation()
        poison = KlineUpdate(
            kline=None,  # type: ignore[arg-type]
            event_time_ms=TimestampMs(0),
            received_ms=TimestampMs(0),
        )
        assert self.handle.registry.tell(SCANNER, poison)
        pause = threading.Event()
        for _ in range(200):  # bounded: 200 x 0.05 s
            if self.generation() > before:
                break
            pause.wait(0.05)
        assert self.generation() == before + 1
        self.sync()

    def generation(self) -> int:
        try:
            return self.ask(SCANNER, Ping(), timeout=1.0).generation
        except Exception:  # the crashed incarnation, not yet replaced
            return 0

    # talking to it

    def ask(self, name: str, question: Any, timeout: float = WAIT) -> Any:
        return self.handle.registry.ask(name, question, timeout=timeout)

    def sync(self) -> None:
        """Let request/answer chains between the scanner and the gateway double run out.

        Each round proves the gateway and the poster answered what the scanner told them before,
        then that the scanner handled those answers; three rounds cover exchangeInfo -> klines
        -> rows (and alerts -> receipts).
        """
        for _ in range(3):
            self.ask(GATEWAY, Ping())
            self.ask(POSTER, Ping())
            self.ask(SCANNER, Ping())

    def now_ms(self) -> int:
        """Binance server time."""
        return self.server_time.now_ms()

    def advance_to(self, exchange_ms: int) -> None:
        """Move the fake clock until the exchange says ``exchange_ms``; deliver what is due.

        Everything told before is handled first: the scanner reads the clock when it handles
        a message, not when it was told.
        """
        self.sync()
        delta_ms = exchange_ms - self.now_ms()
        assert delta_ms >= 0, "the fake clock cannot go back"
        self.clock.advance(delta_ms / 1000)
        assert self.handle.timers.settle(WAIT)
        self.sync()

    def trade(self, symbol: str, open_ms: int, qv: float, *, closed: bool = False) -> None:
        """One ``<sym>@kline_1h`` event, as the feed tells it, at the exchange's now."""
        k = kline(symbol, open_ms, qv, closed=closed)
        self.market.put(k)
        now = TimestampMs(self.now_ms())
        tell = KlineUpdate(kline=k, event_time_ms=now, received_ms=now)
        assert self.handle.registry.tell(SCANNER, tell)

    def tell(self, message: Any) -> None:
        assert self.handle.registry.tell(SCANNER, message)

    def alerts(self, symbol: str | None = None) -> list[tuple[str, str]]:
        """``(alert_type, symbol)`` of every alert the poster got, in order."""
        return [(a.alert_type, a.symbol) for a in self.raw_alerts(symbol)]

    def spikes(self) -> list[str]:
        """The symbols SPIKEs were sent for, in order."""
        return [s for t, s in self.alerts() if t == "SPIKE"]

    def raw_alerts(self, symbol: str | None = None) -> list[VolumeAlert]:
        """Every alert handed to the poster, in order (a resent one as often as it was sent)."""
        self.sync()
        self.ask(POSTER, Ping())  # it has written down what the scanner told it
        handoffs = self.journal.told(POSTER)
        assert all(isinstance(h, AlertHandoff) and h.reply_to == SCANNER for h in handoffs)
        seen = [a for h in handoffs for a in h.alerts]  # type: ignore[attr-defined]
        assert all(isinstance(a, VolumeAlert) for a in seen)
        return [a for a in seen if symbol is None or a.symbol == symbol]

    def requests(self, path: str = "/fapi/v1/klines") -> list[RestRequest]:
        self.sync()
        return [r for r in self.journal.told(GATEWAY) if r.path == path]

    def streams(self, shard: str) -> tuple[str, ...] | None:
        """The last stream set the scanner told ``shard`` (``None``: never told)."""
        self.sync()
        self.ask(shard, Ping())
        told = [m for m in self.journal.told(shard) if isinstance(m, SetStreams)]
        return told[-1].streams if told else None


@pytest.fixture
def make_tree(tmp_path):
    trees: list[ScannerTree] = []

    def make(
        symbols: dict[str, float],
        *,
        start_ms: int = H1 + 2 * MIN_MS,
        offset_ms: int = 0,
        per_connection: int = 200,
        store_first: bool = True,
    ) -> ScannerTree:
        """A started tree; ``symbols`` are listed with a closed ``H0`` candle of that volume."""
        clock = FakeClock(start=(start_ms - offset_ms) / 1000)
        server_time = ServerTimeOffset(clock, offset_ms=offset_ms)
        market = FakeMarket(server_time, tuple(symbols))
        for symbol, previous in symbols.items():
            market.put(kline(symbol, H0, previous, closed=True))
        tree = ScannerTree(clock, server_time, market, tmp_path, per_connection, store_first)
        trees.append(tree)
        return tree

    yield make
    for tree in trees:
        if not tree.handle.done:
            tree.handle.shutdown("test over", timeout=WAIT * 2)


def params(request: RestRequest) -> dict[str, str]:
    return {p.name: p.value for p in request.params}


def ready(tree: ScannerTree, *symbols: str) -> None:
    """The scanner knows exactly ``symbols`` and has every previous hour it needs."""
    assert tree.ask(SCANNER, "universe") == tuple(sorted(symbols))
    assert tree.ask(SCANNER, "needs_backfill") == ()


# --- 1. the rule, through the actor -----------------------------------------------------------


def test_a_crossing_alerts_once_per_hour_and_symbols_under_either_threshold_never(make_tree):
    tree = make_tree(
        {
            "XUSDT": 1_500_000.0,  # crosses: 5.1 M = 3.4 x
            "EDGEUSDT": 1_000_000.0,  # exactly 3.00 x and exactly 3 M: >= on both
            "RATIOUSDT": 1_500_000.0,  # 4.35 M but only 2.9 x
            "SMALLUSDT": 500_000.0,  # 4 x but only 2 M
        }
    )
    ready(tree, "XUSDT", "EDGEUSDT", "RATIOUSDT", "SMALLUSDT")

    tree.advance_to(H1 + 5 * MIN_MS)
    tree.trade("XUSDT", H1, 2_000_000.0)  # 1.33 x: nothing yet
    tree.trade("RATIOUSDT", H1, 4_350_000.0)
    tree.trade("SMALLUSDT", H1, 2_000_000.0)
    assert tree.alerts() == []

    tree.advance_to(H1 + 10 * MIN_MS)
    tree.trade("XUSDT", H1, 5_100_000.0)
    tree.trade("EDGEUSDT", H1, 3_000_000.0)
    assert tree.spikes() == ["XUSDT", "EDGEUSDT"]
    spike = tree.raw_alerts("XUSDT")[0]
    assert spike.current_volume == 5_100_000.0
    assert spike.previous_volume == 1_500_000.0
    assert spike.volume_ratio == pytest.approx(3.4)
    assert spike.hour_timestamp_ms == H1
    assert spike.detection_time_ms == H1 + 10 * MIN_MS
    assert spike.funding_rate is None  # the board is empty: unknown, never 0.0
    assert spike.oi_change is None  # no OI history either

    # more crossing updates in the same hour, single and batched, and the others growing
    # just under their thresholds: nothing more
    tree.trade("XUSDT", H1, 6_000_000.0)
    tree.advance_to(H1 + 40 * MIN_MS)  # past hh:30: HALF_UPDATEs, but no SPIKE
    now = TimestampMs(tree.now_ms())
    batch = tuple(
        KlineUpdate(kline=kline("XUSDT", H1, qv), event_time_ms=now, received_ms=now)
        for qv in (7_000_000.0, 9_000_000.0)
    )
    tree.tell(KlineUpdates(items=batch))
    tree.trade("EDGEUSDT", H1, 4_000_000.0)
    tree.trade("RATIOUSDT", H1, 4_490_000.0)  # 2.993 x
    tree.trade("SMALLUSDT", H1, 2_990_000.0)  # 5.98 x, 2.99 M
    assert tree.spikes() == ["XUSDT", "EDGEUSDT"]
    counters = tree.ask(SCANNER, "counters")
    assert counters["spikes"] == 2
    assert counters["ratio_hit_below_min"] == 1  # SMALL was evaluated, and refused for volume

    # the dedup is per symbol-hour: the next hour may spike again (against the closed H1)
    tree.advance_to(H2 + 1000)
    tree.trade("XUSDT", H1, 9_000_000.0, closed=True)
    tree.advance_to(H2 + 10 * MIN_MS)
    tree.trade("XUSDT", H2, 27_000_000.0)
    assert tree.spikes() == ["XUSDT", "EDGEUSDT", "XUSDT"]
    assert tree.raw_alerts("XUSDT")[-1].alert_type == "SPIKE"
    assert tree.raw_alerts("XUSDT")[-1].hour_timestamp_ms == H2
    tree.stop()


# --- 2. HALF_UPDATE at hh:30, FULL_UPDATE at hh:00, on the timers ----------------------------


def test_half_and_full_updates_follow_the_detection_minute_on_the_timer_ticks(make_tree):
    symbols = ("EARLYUSDT", "LATEUSDT", "LASTUSDT", "CLOSEUSDT", "SHUTUSDT")
    tree = make_tree(dict.fromkeys(symbols, 1_500_000.0), start_ms=H1 + MIN_MS)
    ready(tree, *symbols)

    tree.advance_to(H1 + 20 * MIN_MS)  # minute 20: HALF and FULL owed
    tree.trade("EARLYUSDT", H1, 5_000_000.0)
    tree.advance_to(H1 + 25 * MIN_MS)  # minute 25: FULL owed only
    tree.trade("LATEUSDT", H1, 5_000_000.0)
    tree.advance_to(H1 + 28 * MIN_MS)
    tree.trade("EARLYUSDT", H1, 7_000_000.0)  # updates report the volume at their time
    tree.trade("SHUTUSDT", H1, 2_000_000.0)  # below: it crosses only on its closed candle
    tree.advance_to(H1 + 30 * MIN_MS - 1)
    assert tree.alerts() == [("SPIKE", "EARLYUSDT"), ("SPIKE", "LATEUSDT")]

    tree.advance_to(H1 + 30 * MIN_MS)  # the half-hour tick; no kline event since :28
    assert tree.alerts()[2:] == [("HALF_UPDATE", "EARLYUSDT")]
    half = tree.raw_alerts("EARLYUSDT")[-1]
    assert half.current_volume == 7_000_000.0
    assert half.volume_ratio == pytest.approx(7 / 1.5)
    assert half.timestamp_ms == H1 + 30 * MIN_MS
    assert half.hour_timestamp_ms == H1

    tree.advance_to(H1 + 54 * MIN_MS + 30_000)  # minute 54: FULL owed
    tree.trade("LASTUSDT", H1, 5_000_000.0)
    tree.advance_to(H1 + 56 * MIN_MS)  # minute 56: nothing owed
    tree.trade("CLOSEUSDT", H1, 5_000_000.0)
    assert tree.alerts()[3:] == [("SPIKE", "LASTUSDT"), ("SPIKE", "CLOSEUSDT")]

    # EARLY's closing event comes just before the hour tick, so the tick sends its FULL;
    # the others' come after it, so their FULLs leave with their closing events
    tree.advance_to(H2 - 1)
    tree.trade("EARLYUSDT", H1, 8_000_000.0, closed=True)
    assert len(tree.alerts()) == 5
    tree.advance_to(H2)
    assert tree.alerts()[5:] == [("FULL_UPDATE", "EARLYUSDT")]
    tree.advance_to(H2 + 400)
    for symbol, final in (
        ("LATEUSDT", 6_000_000.0),
        ("LASTUSDT", 5_500_000.0),
        ("CLOSEUSDT", 5_200_000.0),
        ("SHUTUSDT", 4_800_000.0),  # 3.2 x on the closed candle: a closing spike
    ):
        tree.trade(symbol, H1, final, closed=True)
    assert tree.alerts()[6:] == [
        ("FULL_UPDATE", "LATEUSDT"),
        ("FULL_UPDATE", "LASTUSDT"),
        ("SPIKE", "SHUTUSDT"),
    ]
    full = tree.raw_alerts("EARLYUSDT")[-1]
    assert full.alert_type == "FULL_UPDATE"
    assert full.current_volume == 8_000_000.0  # the just-closed candle
    assert full.hour_timestamp_ms == H1
    assert tree.raw_alerts("LATEUSDT")[-1].current_volume == 6_000_000.0

    # nothing is owed any more: the next hh:30 and hh:00 send nothing
    tree.advance_to(H2 + 30 * MIN_MS)
    tree.advance_to(H3 + 1000)
    by_symbol = {s: [t for t, _ in tree.alerts(s)] for s in symbols}
    assert by_symbol == {
        "EARLYUSDT": ["SPIKE", "HALF_UPDATE", "FULL_UPDATE"],
        "LATEUSDT": ["SPIKE", "FULL_UPDATE"],
        "LASTUSDT": ["SPIKE", "FULL_UPDATE"],
        "CLOSEUSDT": ["SPIKE"],
        "SHUTUSDT": ["SPIKE"],
    }
    tree.stop()


# --- 3. a restart mid-hour neither repeats nor loses anything ---------------------------------


@pytest.mark.parametrize("how", ["crash", "tree"])
def test_a_restart_mid_hour_repeats_no_spike_and_loses_no_update(make_tree, how):
    tree = make_tree({"XUSDT": 1_500_000.0, "YUSDT": 1_500_000.0})
    ready(tree, "XUSDT", "YUSDT")

    def restart() -> None:
        if how == "crash":
            tree.crash_scanner()
        else:
            tree.restart_tree()
        # the new incarnation knows the universe and H0 again (exchangeInfo and backfill)
        ready(tree, "XUSDT", "YUSDT")

    tree.advance_to(H1 + 10 * MIN_MS)
    tree.trade("XUSDT", H1, 5_100_000.0)
    assert tree.alerts() == [("SPIKE", "XUSDT")]

    tree.advance_to(H1 + 12 * MIN_MS)
    restart()
    # the backfill already brought X's crossing candle back; the feed repeats it, and more
    tree.trade("XUSDT", H1, 5_100_000.0)
    tree.trade("XUSDT", H1, 6_000_000.0)
    # control: the new incarnation does evaluate (Y has not spiked in this hour)
    tree.trade("YUSDT", H1, 5_000_000.0)
    assert tree.alerts() == [("SPIKE", "XUSDT"), ("SPIKE", "YUSDT")]

    tree.advance_to(H1 + 30 * MIN_MS)
    assert tree.alerts()[2:] == [("HALF_UPDATE", "XUSDT"), ("HALF_UPDATE", "YUSDT")]

    tree.advance_to(H1 + 45 * MIN_MS)
    restart()  # after the HALF: it must not come again; the FULL is still owed
    tree.trade("XUSDT", H1, 6_500_000.0)
    tree.advance_to(H2 - 1)
    tree.trade("XUSDT", H1, 7_000_000.0, closed=True)
    tree.trade("YUSDT", H1, 5_500_000.0, closed=True)
    tree.advance_to(H2)
    assert tree.alerts()[4:] == [("FULL_UPDATE", "XUSDT"), ("FULL_UPDATE", "YUSDT")]
    assert tree.raw_alerts("XUSDT")[-1].current_volume == 7_000_000.0

    tree.advance_to(H2 + 5 * MIN_MS)
    restart()  # after the FULL: nothing comes again
    tree.advance_to(H2 + 30 * MIN_MS)
    assert tree.alerts("XUSDT") == [
        ("SPIKE", "XUSDT"),
        ("HALF_UPDATE", "XUSDT"),
        ("FULL_UPDATE", "XUSDT"),
    ]
    assert len(tree.alerts()) == 6
    tree.stop()


# --- 4. listings and delistings -----------------------------------------------------------------


def test_a_listing_is_planned_and_backfilled_and_a_delisting_is_dropped(make_tree):
    tree = make_tree(
        dict.fromkeys(("AAAUSDT", "BBBUSDT", "CCCUSDT"), 1_500_000.0), per_connection=2
    )
    ready(tree, "AAAUSDT", "BBBUSDT", "CCCUSDT")
    # the shards start after the scanner (as in build_tree): the plan reaches a shard that was
    # not there yet at the next backfill tick
    tree.advance_to(tree.now_ms() + 60_000)
    assert tree.streams(SHARDS[0]) == ("aaausdt@kline_1h", "bbbusdt@kline_1h")
    assert tree.streams(SHARDS[1]) == ("cccusdt@kline_1h",)
    backfilled = {params(r)["symbol"] for r in tree.requests()}
    assert backfilled == {"AAAUSDT", "BBBUSDT", "CCCUSDT"}

    # a listing: only the shard with room changes, and the new symbol's history is asked for
    tree.market.list("NEWUSDT")
    tree.market.put(kline("NEWUSDT", H1, 200_000.0))  # listed this hour: no previous candle
    listed = ("AAAUSDT", "BBBUSDT", "CCCUSDT", "NEWUSDT")
    tree.tell(TradingSymbols(symbols=tuple(map(Symbol, listed)), at_ms=TimestampMs(tree.now_ms())))
    assert tree.ask(SCANNER, "universe") == listed
    assert tree.streams(SHARDS[0]) == ("aaausdt@kline_1h", "bbbusdt@kline_1h")
    assert tree.streams(SHARDS[1]) == ("cccusdt@kline_1h", "newusdt@kline_1h")
    tree.sync()  # asked at once, not at the next backfill tick
    new = [r for r in tree.requests() if params(r)["symbol"] == "NEWUSDT"]
    assert len(new) == 1
    assert new[0].caller == SCANNER
    assert params(new[0]) == {
        "symbol": "NEWUSDT",
        "interval": "1h",
        "limit": "3",
    }
    # the answer holds no previous hour: a new listing, not asked for again
    assert tree.ask(SCANNER, "needs_backfill") == ()
    tree.advance_to(tree.now_ms() + 120_000)
    assert len(tree.requests()) == 4
    tree.trade("NEWUSDT", H1, 9_000_000.0)  # 45 x nothing: no previous hour, no alert
    assert tree.alerts() == []
    assert tree.ask(SCANNER, "counters")["no_previous"] == 1  # known absent, not missing

    # a delisting: gone from the universe and from its shard, and its late events are refused
    tree.market.delist("BBBUSDT")
    remaining = ("AAAUSDT", "CCCUSDT", "NEWUSDT")
    tree.tell(
        TradingSymbols(symbols=tuple(map(Symbol, remaining)), at_ms=TimestampMs(tree.now_ms()))
    )
    assert tree.ask(SCANNER, "universe") == remaining
    assert tree.streams(SHARDS[0]) == ("aaausdt@kline_1h",)
    assert tree.streams(SHARDS[1]) == ("cccusdt@kline_1h", "newusdt@kline_1h")
    tree.trade("BBBUSDT", H1, 9_000_000.0)  # would be 6 x
    assert tree.alerts() == []
    assert tree.ask(SCANNER, "counters")["klines_unknown_symbol"] == 1
    # the plan is re-told on the backfill timer, still without the delisted symbol
    tree.advance_to(tree.now_ms() + 60_000)
    planned = {s for shard in SHARDS for s in tree.streams(shard) or ()}
    assert planned == {"aaausdt@kline_1h", "cccusdt@kline_1h", "newusdt@kline_1h"}
    tree.stop()


# --- 5. hour boundaries are the exchange's -----------------------------------------------------


def test_the_detection_minute_and_the_ticks_follow_binance_server_time(make_tree):
    offset_ms = 10 * MIN_MS  # the exchange is ten minutes ahead of the local clock
    symbols = ("AUSDT", "BUSDT", "CUSDT")
    tree = make_tree(
        dict.fromkeys(symbols, 1_500_000.0), start_ms=H1 + 2 * MIN_MS, offset_ms=offset_ms
    )
    ready(tree, *symbols)
    assert tree.clock.time_ms() == H1 + 2 * MIN_MS - offset_ms  # local 05:52

    tree.advance_to(H1 + 15 * MIN_MS)  # local :05, exchange :15 -> HALF owed
    tree.trade("AUSDT", H1, 5_000_000.0)
    tree.advance_to(H1 + 25 * MIN_MS)  # local :15, exchange :25 -> no HALF
    tree.trade("BUSDT", H1, 5_000_000.0)
    assert [a.detection_time_ms for a in tree.raw_alerts()] == [H1 + 15 * MIN_MS, H1 + 25 * MIN_MS]

    tree.advance_to(H1 + 30 * MIN_MS - 1)
    assert len(tree.alerts()) == 2
    tree.advance_to(H1 + 30 * MIN_MS)  # the half-hour tick at local :20
    assert tree.clock.time_ms() == H1 + 20 * MIN_MS
    assert tree.alerts()[2:] == [("HALF_UPDATE", "AUSDT")]

    tree.advance_to(H1 + 57 * MIN_MS)  # local :47, exchange :57 -> no FULL
    tree.trade("CUSDT", H1, 5_000_000.0)
    tree.advance_to(H2 - 1)
    for symbol in symbols:
        tree.trade(symbol, H1, 6_000_000.0, closed=True)
    assert tree.alerts()[3:] == [("SPIKE", "CUSDT")]
    tree.advance_to(H2)  # the hour tick at local :50
    assert tree.clock.time_ms() == H2 - offset_ms
    assert tree.alerts()[4:] == [("FULL_UPDATE", "AUSDT"), ("FULL_UPDATE", "BUSDT")]
    assert tree.raw_alerts()[-1].timestamp_ms == H2

    tree.advance_to(H2 + 15 * MIN_MS)  # local hh:00 and hh:05 pass: nothing
    assert len(tree.alerts()) == 6
    tree.stop()


# --- an unreadable saved state -----------------------------------------------------------------


@pytest.mark.parametrize(
    "saved",
    [
        {"version": 99, "spikes": []},  # a state from another version
        {"version": 1, "spikes": [["XUSDT", "not an hour", 0, 1.0, True, True]]},
        ["not", "a", "mapping"],
    ],
)
def test_an_unreadable_saved_state_starts_the_scanner_empty_instead_of_crashing_it(
    make_tree, tmp_path, saved
):
    with StateStore(tmp_path) as store:
        store.kv_put("volume", "detector", saved, 0)
    tree = make_tree({"XUSDT": 1_500_000.0})
    ready(tree, "XUSDT")
    assert tree.generation() == 1  # started once, not in a crash loop
    tree.advance_to(H1 + 10 * MIN_MS)
    tree.trade("XUSDT", H1, 5_100_000.0)
    assert tree.alerts() == [("SPIKE", "XUSDT")]
    # and the readable state replaced the bad one: a restart does not repeat the SPIKE
    tree.restart_tree()
    ready(tree, "XUSDT")
    tree.trade("XUSDT", H1, 6_000_000.0)
    assert tree.alerts() == [("SPIKE", "XUSDT")]
    tree.stop()


def test_a_backfill_whose_answer_never_comes_is_asked_again(make_tree):
    """A gateway that restarts with the request queued never answers it: ask again later."""
    tree = make_tree({"AAAUSDT": 1_500_000.0})
    ready(tree, "AAAUSDT")
    tree.market.list("NEWUSDT")
    tree.market.put(kline("NEWUSDT", H1 - HOUR_MS, 1_000_000.0, closed=True))
    tree.market.lost.add("NEWUSDT")
    listed = ("AAAUSDT", "NEWUSDT")
    tree.tell(TradingSymbols(symbols=tuple(map(Symbol, listed)), at_ms=TimestampMs(tree.now_ms())))
    tree.sync()

    def asked() -> int:
        return sum(params(r)["symbol"] == "NEWUSDT" for r in tree.requests())

    assert asked() == 1
    tree.advance_to(tree.now_ms() + 60_000)  # the next backfill tick: still waiting for it
    assert asked() == 1
    assert tree.ask(SCANNER, "needs_backfill") == ("NEWUSDT",)
    tree.advance_to(tree.now_ms() + 60_000)  # past BACKFILL_RETRY_S: asked again, answered
    tree.sync()
    assert asked() == 2
    assert tree.ask(SCANNER, "needs_backfill") == ()
    tree.stop()


def test_many_failed_backfills_make_one_log_line_per_round_and_are_asked_again(make_tree):
    tree = make_tree({"AAAUSDT": 1_500_000.0})
    ready(tree, "AAAUSDT")
    new = [f"NEW{n}USDT" for n in range(40)]
    for symbol in new:
        tree.market.list(symbol)
        tree.market.put(kline(symbol, H1 - HOUR_MS, 1_000_000.0, closed=True))
        tree.market.stopped.add(symbol)
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        listed = ("AAAUSDT", *new)
        tree.tell(
            TradingSymbols(symbols=tuple(map(Symbol, listed)), at_ms=TimestampMs(tree.now_ms()))
        )
        tree.sync()
        assert set(tree.ask(SCANNER, "needs_backfill")) == set(new)
        tree.advance_to(tree.now_ms() + 60_000)  # the next backfill round
        tree.sync()
    finally:
        logger.remove(sink)
    failed = [line for line in lines if "backfill" in line]
    assert len(failed) == 1, failed
    assert "backfill failed for 40 symbol(s)" in failed[0]
    assert "40 x the REST gateway stopped; ask again" in failed[0]
    assert tree.ask(SCANNER, "needs_backfill") == ()  # asked again in that round, answered
    tree.stop()


def test_oi_change_comes_from_our_own_history_and_only_from_recent_samples(make_tree):
    """``oiChange`` = OI now vs at the hour's open, from the OI board; a stale baseline or a
    stale current sample means it is omitted (WEAK-11), never 0.0."""
    tree = make_tree({"XUSDT": 1_500_000.0, "OLDUSDT": 1_500_000.0, "STALEUSDT": 1_500_000.0})
    ready(tree, "XUSDT", "OLDUSDT", "STALEUSDT")
    tree.oi.add("XUSDT", H1 - 20_000, 1_000.0)  # 20 s before the open: the hour's baseline
    tree.oi.add("XUSDT", H1 + 9 * MIN_MS, 1_250.0)
    tree.oi.add("OLDUSDT", H1 - 3 * HOUR_MS // 2, 1_000.0)  # 90 min before the open: too old
    tree.oi.add("OLDUSDT", H1 + 9 * MIN_MS, 1_250.0)
    tree.oi.add("STALEUSDT", H1, 1_000.0)
    tree.oi.add("STALEUSDT", H1 + MIN_MS, 1_250.0)  # nine minutes old at detection
    tree.advance_to(H1 + 10 * MIN_MS)
    for symbol in ("XUSDT", "OLDUSDT", "STALEUSDT"):
        tree.trade(symbol, H1, 5_100_000.0)
    assert sorted(tree.spikes()) == ["OLDUSDT", "STALEUSDT", "XUSDT"]
    assert tree.raw_alerts("XUSDT")[0].oi_change == pytest.approx(0.25)
    assert tree.raw_alerts("OLDUSDT")[0].oi_change is None
    assert tree.raw_alerts("STALEUSDT")[0].oi_change is None
    tree.stop()


def test_a_shard_that_asks_for_its_streams_gets_its_part_of_the_plan_at_once(make_tree):
    tree = make_tree(
        dict.fromkeys(("AAAUSDT", "BBBUSDT", "CCCUSDT"), 1_500_000.0), per_connection=2
    )
    ready(tree, "AAAUSDT", "BBBUSDT", "CCCUSDT")
    before = len(tree.journal.told(SHARDS[1]))
    tree.tell(StreamsWanted(feed=SHARDS[1]))  # no clock advance: not the periodic re-tell
    tree.sync()
    told = tree.journal.told(SHARDS[1])
    assert len(told) == before + 1
    assert told[-1] == SetStreams(streams=("cccusdt@kline_1h",))
    tree.tell(StreamsWanted(feed="feed-klines-9"))  # not a shard of this scanner: ignored
    tree.sync()
    tree.stop()


# --- alerts stay the scanner's until the poster confirms them ---------------------------------


def test_an_alert_the_poster_never_confirmed_is_resent_on_the_tick_and_after_a_restart(
    make_tree,
):
    tree = make_tree({"XUSDT": 1_500_000.0, "YUSDT": 1_500_000.0})
    ready(tree, "XUSDT", "YUSDT")
    key = "volume:XUSDT:2026-03-19T06:00:00Z:SPIKE"
    tree.journal.confirming = False  # the poster takes handoffs but its receipts never come
    tree.advance_to(H1 + 10 * MIN_MS)
    tree.trade("XUSDT", H1, 5_100_000.0)
    assert tree.alerts() == [("SPIKE", "XUSDT")]
    assert tree.ask(SCANNER, "unconfirmed") == (key,)

    # the next backfill tick (60 s here) hands it over again: 10 s passed without a receipt
    tree.advance_to(tree.now_ms() + 60_000)
    assert tree.alerts() == [("SPIKE", "XUSDT")] * 2

    # a new process: the alert was saved with the dedup in one PutState; it is handed over at
    # once, and the repeated crossing is still no second SPIKE
    tree.restart_tree()
    ready(tree, "XUSDT", "YUSDT")
    assert tree.alerts() == [("SPIKE", "XUSDT")] * 3
    tree.trade("XUSDT", H1, 6_000_000.0)
    assert tree.ask(SCANNER, "unconfirmed") == (key,)

    # receipts again: the next resend is confirmed, and then nothing more comes
    tree.journal.confirming = True
    tree.trade("YUSDT", H1, 5_000_000.0)  # a new alert is confirmed at once
    tree.advance_to(tree.now_ms() + 60_000)
    assert tree.ask(SCANNER, "unconfirmed") == ()
    tree.advance_to(tree.now_ms() + 120_000)
    assert tree.alerts() == [("SPIKE", "XUSDT")] * 3 + [("SPIKE", "YUSDT"), ("SPIKE", "XUSDT")]
    tree.ask("store", Ping())  # it has written what the scanner saved after the receipt
    with StateStore(tree.state_dir) as store:
        assert store.kv_get("volume", "detector")["unconfirmed"] == []
    tree.stop()


def test_a_state_the_store_could_not_answer_at_start_is_read_on_a_backfill_tick_not_overwritten(
    make_tree, tmp_path
):
    """The store starts after the scanner (a spec order, or a store that is not there yet): the
    scanner saves nothing over the state it could not read; the next backfill tick reads it,
    merges it with what happened since, resends the saved unconfirmed alert once and saves."""
    x_spike = VolumeAlert(
        symbol=Symbol("XUSDT"), asset="X", current_volume=5_100_000.0,
        previous_volume=1_500_000.0, volume_ratio=3.4,
        message="X hourly volume 5.10M (3.40x prev) — VOLUME SPIKE!",
        timestamp_ms=TimestampMs(H1 + 10 * MIN_MS),
        detection_time_ms=TimestampMs(H1 + 10 * MIN_MS), hour_timestamp_ms=TimestampMs(H1),
    )  # fmt: skip
    waiting = Unconfirmed()
    waiting.add(x_spike, 0.0)
    x_record = ["XUSDT", H1, H1 + 10 * MIN_MS, 1_500_000.0, True, True]  # HALF and FULL owed
    saved = {"version": STATE_VERSION, "spikes": [x_record], "unconfirmed": waiting.export()}
    with StateStore(tmp_path) as store:
        store.kv_put("volume", "detector", saved, 0)

    def stored() -> Any:
        tree.ask("store", Ping())  # it has written every PutState the scanner told it before
        with StateStore(tmp_path) as store:
            return store.kv_get("volume", "detector")

    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        tree = make_tree(
            {"XUSDT": 1_500_000.0, "YUSDT": 1_500_000.0},
            start_ms=H1 + 12 * MIN_MS,
            store_first=False,
        )
    finally:
        logger.remove(sink)
    assert [line for line in lines if "could not load the saved spike state" in line]
    ready(tree, "XUSDT", "YUSDT")
    # a new alert before the state was read: handed over and confirmed, but saved over nothing
    tree.trade("YUSDT", H1, 5_000_000.0)
    assert tree.alerts() == [("SPIKE", "YUSDT")]
    assert tree.ask(SCANNER, "unconfirmed") == ()
    assert stored() == saved

    tree.advance_to(tree.now_ms() + 60_000)  # the backfill tick: read, merged, resent, saved
    assert tree.alerts() == [("SPIKE", "YUSDT"), ("SPIKE", "XUSDT")]
    assert tree.raw_alerts("XUSDT") == [x_spike]  # the saved alert itself
    assert tree.ask(SCANNER, "unconfirmed") == ()  # the poster confirmed it
    merged = stored()
    assert merged["unconfirmed"] == []
    y_record = ["YUSDT", H1, H1 + 12 * MIN_MS, 1_500_000.0, True, True]
    assert sorted(merged["spikes"]) == [x_record, y_record]

    # the saved dedup holds (no second X SPIKE) and its owed HALF_UPDATE comes at hh:30
    tree.trade("XUSDT", H1, 6_000_000.0)
    tree.advance_to(tree.now_ms() + 60_000)  # another backfill tick: nothing to resend
    assert tree.alerts() == [("SPIKE", "YUSDT"), ("SPIKE", "XUSDT")]
    tree.advance_to(H1 + 30 * MIN_MS)
    assert sorted(tree.alerts()[2:]) == [("HALF_UPDATE", "XUSDT"), ("HALF_UPDATE", "YUSDT")]
    assert tree.alerts("XUSDT") == [("SPIKE", "XUSDT"), ("HALF_UPDATE", "XUSDT")]
    tree.stop()


def test_a_spike_repeated_before_the_late_read_keeps_the_saved_owed_half_update(
    make_tree, tmp_path
):
    """The saved X SPIKE (detected at :10, HALF owed) is read late; X crossed again at :21
    meanwhile, past the HALF cut-off: the merge keeps the earlier detection and what it owes."""
    x_record = ["XUSDT", H1, H1 + 10 * MIN_MS, 1_500_000.0, True, True]
    with StateStore(tmp_path) as store:
        saved = {"version": STATE_VERSION, "spikes": [x_record], "unconfirmed": []}
        store.kv_put("volume", "detector", saved, 0)
    tree = make_tree({"XUSDT": 1_500_000.0}, start_ms=H1 + 21 * MIN_MS, store_first=False)
    ready(tree, "XUSDT")
    tree.trade("XUSDT", H1, 6_000_000.0)
    assert tree.alerts() == [("SPIKE", "XUSDT")]
    tree.advance_to(tree.now_ms() + 60_000)  # the backfill tick: the saved state is read
    tree.advance_to(H1 + 30 * MIN_MS)
    assert tree.alerts() == [("SPIKE", "XUSDT"), ("HALF_UPDATE", "XUSDT")]
    tree.stop()
