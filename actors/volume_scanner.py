"""The volume scanner: the original's spike rule on live ``<sym>@kline_1h`` updates.

A thin shell around :class:`~actors._volume_rule.SpikeDetector`:

- ``KlineUpdate`` (from the kline feeds) → the rule, on every update; SPIKEs leave at once;
- ``Tick(timer="half-hour")`` at hh:30 → HALF_UPDATEs; ``Tick(timer="hour")`` at hh:00 →
  FULL_UPDATEs on the closed candles (timers aligned to Binance server time; a late tick still
  delivers, nothing is sent twice);
- ``TradingSymbols`` (the exchange's TRADING USDT perpetuals) → the detector's universe, and a
  new plan of which kline streams each feed shard carries (``SetStreams``, minimal churn: a
  listing or delisting only touches its own shard); the plan is re-told every few seconds,
  so a shard that started late or restarted empty catches up;
- the exchange's ``exchangeInfo``, broadcast by the REST gateway at start and hourly (a
  ``RestResponse`` with ``request_id="exchangeInfo"``), gives the same universe;
- backfill: whenever the detector lacks a symbol's previous closed hour (start, a listing, a
  feed gap), a ``klines?interval=1h&limit=3`` request (weight 1) goes to the REST gateway and
  its rows go back into the detector;
- dedup and owed updates are saved in the store after every change (``PutState``) and loaded
  at start (``GetState``, ask with a timeout), so a restart or ``kill -9`` never repeats a
  SPIKE nor loses a due update;
- alerts are enriched in-process, only for symbols that alert, with no HTTP hop: the funding
  rate from the price board when fresh, and ``oiChange`` from our own OI history on the OI
  board (the OI at the alert hour's open vs now, both samples within a few minutes of those
  instants, else omitted — never a days-old baseline, WEAK-11);
- then handed to the poster with a receipt (:mod:`actors._handoff`): an alert stays the
  scanner's until the poster answers ``AlertsCommitted`` (it is in the outbox), and is handed
  over again on the backfill tick when no answer came within ``resend_after_s`` (the poster
  was restarting, or crashed with it queued). The alerts waiting for an answer are saved in
  the same ``PutState`` as the dedup that stops them being raised again, so a ``kill -9``
  keeps both or neither, and a new incarnation hands the saved ones over at once.

Accepts: ``KlineUpdate``, ``KlineUpdates``, ``TradingSymbols``, ``RestResponse``, ``Tick``,
``StreamsWanted`` (a shard that restarted asks for its streams; answered at once),
``AlertsCommitted`` (the poster's receipts).
Emits: ``AlertHandoff`` (of ``VolumeAlert``) to ``poster``; ``SetStreams`` to each kline
shard; ``RestRequest`` to the gateway; ``PutState`` to the store.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from actors._feed_logic import kline_stream, reshard
from actors._handoff import LATE_LOAD_TIMEOUT_S, AlertCourier
from actors._volume_rule import SpikeConfig, SpikeDetector
from messages.binance_rest import kline_rows, trading_usdt_perpetuals
from messages.control import Tick
from messages.delivery import AlertsCommitted, GetState, PutState
from messages.errors import FrameError
from messages.feed import SetStreams, StreamsWanted
from messages.market import KlineUpdate, KlineUpdates, TradingSymbols
from messages.rest import RestResponse, rest_request
from supervisors.actor import SupervisedActor
from supervisors.clock import exchange_now_ms

if TYPE_CHECKING:
    from collections.abc import Sequence

    from actors._oi_board import OiBoard
    from actors._price_board import PriceBoard
    from actors._status import StatusBoard
    from messages._base import Message
    from messages.types import Symbol, TimestampMs
    from messages.volume import VolumeAlert
    from supervisors.clock import ServerTimeOffset
    from supervisors.context import ChildContext

__all__ = ["VolumeScannerActor"]

HOUR_S = 3600.0
BACKFILL_RETRY_S = 90.0
"""A backfill request unanswered this long is sent again (the gateway expires it after 60 s)."""


class VolumeScannerActor(SupervisedActor):
    """Detects hourly volume spikes the moment they happen.

    Args:
        context: from the supervisor.
        board: the price board (funding rates for enrichment).
        status: the status board (counters for ``/metrics``).
        shards: names of the kline feed actors, in order.
        streams_per_connection: the most streams one shard carries.
        config: the spike rule's thresholds.
        server_time: Binance server time (hour boundaries are the exchange's).
        poster: the registry name alerts go to.
        stale_after_s: a funding rate older than this is not attached.
        oi_board: our own OI history (``oiChange``); ``None``: never attached.
        resend_after_s: an alert the poster has not confirmed this long after it was handed
            over is handed over again (at the next backfill tick).
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        board: PriceBoard,
        status: StatusBoard,
        shards: Sequence[str],
        streams_per_connection: int = 200,
        config: SpikeConfig | None = None,
        server_time: ServerTimeOffset | None = None,
        poster: str = "poster",
        gateway: str | None = "rest-gateway",
        store: str | None = "store",
        stale_after_s: float = 180.0,
        backfill_period_s: float = 5.0,
        oi_board: OiBoard | None = None,
        resend_after_s: float = 10.0,
    ) -> None:
        super().__init__(context=context)
        if streams_per_connection < 1:
            raise ValueError("streams_per_connection must be at least 1")
        self._board = board
        self._status = status
        self._shards = tuple(shards)
        self._per_connection = streams_per_connection
        self._detector = SpikeDetector(config)
        self._server_time = server_time
        self._poster = poster
        self._gateway = gateway
        self._store = store
        self._stale_after_s = stale_after_s
        self._backfill_period_s = backfill_period_s
        self._oi_board = oi_board
        self._backfill_pending: dict[str, float] = {}  # symbol -> when asked (monotonic)
        self._backfill_failures: Counter[str] = Counter()  # reason -> not yet logged
        self._backfill_failed_example = ""
        self._courier = AlertCourier(
            owner=self.name,
            poster=poster,
            registry=self.registry,
            log=self._log,
            resend_after_s=resend_after_s,
        )
        self._state_loaded = store is None
        """Whether the saved state was read (until then nothing is saved over it)."""
        self._saved_revision = (-1, 0)
        self._plan: tuple[tuple[str, ...], ...] = ()

    def on_start(self) -> None:
        """Load the saved state, ask for the universe, start the timers (actor thread)."""
        self._load_state()
        self._resend()
        if self._gateway is not None:  # the gateway's own broadcast may precede our start
            self.registry.tell(
                self._gateway,
                rest_request(
                    "/fapi/v1/exchangeInfo",
                    request_id="exchangeInfo",
                    caller=self.name,
                    priority="high",
                ),
            )
        if self.timers is not None:
            self.start_timer("half-hour", period_s=HOUR_S, aligned=True, offset_s=HOUR_S / 2)
            self.start_timer("hour", period_s=HOUR_S, aligned=True)
            self.start_timer("backfill", period_s=self._backfill_period_s)
        self._publish()

    def _load_state(self, *, late: bool = False) -> None:
        """Read the saved dedup, owed updates and unconfirmed alerts (merged into ours).

        A store that does not answer is not "no saved state": nothing is saved over it until
        it was read (asked again on every backfill tick), so its unconfirmed alerts survive.
        """
        if self._store is None:
            return
        try:
            reply = self.registry.ask(
                self._store,
                GetState(namespace="volume", key="detector"),
                timeout=LATE_LOAD_TIMEOUT_S if late else 5,
            )
            state = reply.value(None)
        except Exception as exc:  # a dead or slow store: said loudly, asked again
            self._log.warning(
                "could not load the saved spike state ({}); saving nothing until it is read "
                "(asked again every {:g} s)",
                exc,
                self._backfill_period_s,
            )
            return
        self._state_loaded = True
        if state:
            self._courier.load(state.get("unconfirmed") if isinstance(state, dict) else None)
            try:  # all or nothing: a failed import leaves the detector as it was
                count = self._detector.import_state(state)
            except (AttributeError, TypeError, ValueError) as exc:
                # Another version or a damaged row: crashing here would crash every restart.
                self._log.error("saved spike state unreadable ({}); starting empty", exc)
                return
            if not late:
                self._saved_revision = (self._detector.revision, self._courier.pending.revision)
            self._log.info("loaded {} spike record(s) from the store", count)
        if late:
            self._save_state()  # the merge of what was saved and what happened since

    def redeliverable(self, message: Message) -> bool:
        """Kline updates are superseded within a second; ticks and universes are worth a retry."""
        return not isinstance(message, (KlineUpdate, KlineUpdates))

    def _now_ms(self) -> int:
        return exchange_now_ms(self._server_time, self.clock)

    def on_receive(self, message: Any) -> Any:  # noqa: C901 - one case per message type
        """Dispatch (actor thread)."""
        match message:
            case KlineUpdate():
                self._send(self._detector.on_update(message, self._now_ms(), self._enrich))
                self.report_progress()
            case KlineUpdates():
                self._send(self._detector.on_updates(message, self._now_ms(), self._enrich))
                self.report_progress()
            case Tick(timer="half-hour"):
                self._send(self._detector.on_half_hour(self._now_ms(), self._enrich))
            case Tick(timer="hour"):
                self._send(self._detector.on_hour(self._now_ms(), self._enrich))
            case TradingSymbols():
                self._handle_universe(message)
            case StreamsWanted(feed=feed):
                self._tell_shard(feed)
            case AlertsCommitted(keys=keys):
                self._handle_committed(keys)
            case RestResponse():
                self._handle_rest(message)
            case Tick(timer="backfill"):
                if not self._state_loaded:
                    self._load_state(late=True)
                self._resend()
                self._log_backfill_failures()
                self._request_backfill()
                self._reconcile_shards()
            case "counters" | "needs_backfill" | "universe" | "unconfirmed":
                return self._introspect(message)
            case _:
                return super().on_receive(message)
        return None

    def _enrich(
        self, symbol: Symbol, hour_open_ms: TimestampMs
    ) -> tuple[float | None, float | None]:
        """Funding rate from the price board when fresh; OI change over the alert's hour."""
        oi_change = (
            None
            if self._oi_board is None
            else self._oi_board.oi_change(symbol, hour_open_ms, self._now_ms())
        )
        record = self._board.get(symbol)
        if record is None or record.funding_rate is None:
            return None, oi_change
        if self.clock.monotonic() - record.received_mono > self._stale_after_s:
            return None, oi_change
        return record.funding_rate, oi_change

    def _introspect(self, question: str) -> Any:
        """Answers for tests and operators (ask with a timeout)."""
        if question == "counters":
            return dict(self._detector.counters)
        if question == "needs_backfill":
            return self._detector.needs_backfill(self._now_ms())
        if question == "unconfirmed":
            return self._courier.pending.keys()
        return tuple(sorted(self._detector.store.symbols))

    def _handle_rest(self, response: RestResponse) -> None:
        if response.request_id == "exchangeInfo":
            self._handle_exchange_info(response)
        else:
            self._handle_backfill(response)

    def _handle_exchange_info(self, response: RestResponse) -> None:
        if not response.ok or response.body is None:
            self._log.warning("exchangeInfo failed: {}", response.error_message)
            return
        try:
            symbols = trading_usdt_perpetuals(response.body)
        except FrameError as exc:
            self._log.warning("exchangeInfo unreadable: {}", exc)
            return
        if not symbols:
            self._log.warning("exchangeInfo lists no TRADING USDT perpetual; keeping the universe")
            return
        self._handle_universe(TradingSymbols(symbols=symbols, at_ms=response.answered_ms))
        self._request_backfill()

    def _request_backfill(self) -> None:
        if self._gateway is None:
            return
        now = self.clock.monotonic()
        for symbol in self._detector.needs_backfill(self._now_ms()):
            asked = self._backfill_pending.get(symbol)
            # an answer that never came (a gateway restarted with it queued) is asked again
            if asked is not None and now - asked < BACKFILL_RETRY_S:
                continue
            request = rest_request(
                "/fapi/v1/klines",
                request_id=f"klines:{symbol}",
                caller=self.name,
                params={"symbol": symbol, "interval": "1h", "limit": 3},
                priority="high",
                expires_after_s=60.0,
            )
            if self.registry.tell(self._gateway, request):
                self._backfill_pending[symbol] = now

    def _handle_backfill(self, response: RestResponse) -> None:
        symbol = response.request_id.removeprefix("klines:")
        self._backfill_pending.pop(symbol, None)
        if not response.ok or response.body is None:
            self._backfill_failures[response.error_message or "no body"] += 1
            self._backfill_failed_example = symbol
            return
        now = self._now_ms()
        try:
            rows, bad = kline_rows(symbol, "1h", response.body, now)
        except FrameError as exc:
            self._log.warning("backfill of {} unreadable: {}", symbol, exc)
            return
        if bad:
            self._log.warning("backfill of {}: {} bad row(s), e.g. {}", symbol, len(bad), bad[0])
        self._send(self._detector.ingest_backfill(symbol, rows, now, self._enrich))

    def _log_backfill_failures(self) -> None:
        """One line per backfill round for the failures since the last one.

        A restarting REST gateway fails hundreds of queued backfills at once.
        """
        if not self._backfill_failures:
            return
        total = sum(self._backfill_failures.values())
        reasons = "; ".join(f"{n} x {why}" for why, n in self._backfill_failures.most_common(3))
        self._log.warning(
            "backfill failed for {} symbol(s) (e.g. {}): {}; asked again every {:g} s",
            total,
            self._backfill_failed_example,
            reasons,
            self._backfill_period_s,
        )
        self._backfill_failures.clear()

    def _send(self, alerts: list[VolumeAlert]) -> None:
        """Keep the alerts until the poster confirms them, save, then hand them over."""
        for alert in alerts:
            self._log.info("{} {}: {}", alert.alert_type, alert.symbol, alert.message)
        self._courier.keep(alerts, self.clock.monotonic())
        self._save_state()  # dedup and the alerts in flight, in one PutState
        if alerts:
            self._courier.hand_over(tuple(alerts))
            self._publish()

    def _resend(self) -> None:
        """Hand over again what the poster has not confirmed in time (or before a restart)."""
        if self._courier.resend(self.clock.monotonic()):
            self._publish()

    def _handle_committed(self, keys: tuple[str, ...]) -> None:
        if self._courier.committed(keys):
            self._save_state()
            self._publish()

    def _reconcile_shards(self) -> None:
        """Tell every shard the streams it should carry.

        Level-triggered: a shard that started after the plan, or restarted empty, catches up at
        the next tick (or at once, when it asks with ``StreamsWanted``); shards ignore a set
        they already carry.
        """
        for name in self._shards:
            self._tell_shard(name)

    def _tell_shard(self, name: str) -> None:
        """Tell one shard its part of the plan (nothing before there is a plan)."""
        if not self._plan or name not in self._shards:
            return
        index = self._shards.index(name)
        streams = self._plan[index] if index < len(self._plan) else ()
        self.registry.tell(name, SetStreams(streams=streams))

    def _save_state(self) -> None:
        """Persist dedup, owed updates and unconfirmed alerts whenever they changed.

        One ``PutState``, so the store commits the dedup of an alert and the alert itself (until
        the poster confirmed it) together: after ``kill -9`` it is either raised again or
        resent, never neither.
        """
        revision = (self._detector.revision, self._courier.pending.revision)
        if self._store is None or not self._state_loaded or revision == self._saved_revision:
            return
        state = {**self._detector.export_state(), "unconfirmed": self._courier.pending.export()}
        if self.registry.tell(self._store, PutState.of("volume", "detector", state)):
            self._saved_revision = revision
        else:
            self._log.error("no store to save the spike state in; a restart could repeat alerts")

    def _handle_universe(self, universe: TradingSymbols) -> None:
        added, removed = self._detector.set_universe(universe.symbols)
        capacity = len(self._shards) * self._per_connection
        symbols = sorted(universe.symbols)
        if len(symbols) > capacity:
            self._log.error(
                "{} symbols but {} shards x {} streams: the last {} are not watched",
                len(symbols),
                len(self._shards),
                self._per_connection,
                len(symbols) - capacity,
            )
            symbols = symbols[:capacity]
        self._plan = reshard(self._plan, [kline_stream(s) for s in symbols], self._per_connection)
        self._reconcile_shards()
        self._log.info(
            "universe: {} symbols (+{} -{}) on {} shard(s)",
            len(symbols),
            len(added),
            len(removed),
            len(self._plan),
        )
        self._request_backfill()  # a listing needs its previous hour now, not at the next tick
        self._publish()

    def _publish(self) -> None:
        counters: dict[str, float] = {
            f"volume_{k}_total": v for k, v in self._detector.counters.items()
        }
        counters["volume_alerts_sent_total"] = self._courier.handed
        counters["volume_alerts_undelivered_total"] = self._courier.refused
        counters.update(self._courier.counters("volume_alerts"))
        counters["volume_symbols"] = len(self._detector.store.symbols)
        self._status.count(self.name, counters)
