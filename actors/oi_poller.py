"""The open-interest poller: the liquid universe paced evenly, plus the five-minute snapshot.

Binance has no open-interest stream, so every liquid symbol is polled through the REST gateway
(the one weight budget of the process). How it runs:

- ``LiquidUniverse`` (from the universe actor, every evaluation) → the list of symbols to poll
  (sorted; symbols that answered ``-1121 Invalid symbol`` are left out while they stay in the
  universe). The list is also saved in the store, so a restarted poller polls at once instead
  of waiting for the next evaluation.
- ``TradingUniverse`` (from the universe actor, every evaluation) → every TRADING USDT
  perpetual, for the snapshot.
- **Interval** (seconds between two samples of the same symbol)::

      snapshot = 60 * (N_trading - N_liquid) / snapshot_sweep_s           # its requests/minute
      rate     = min(max_req_per_min - snapshot,
                     gateway_target - reserve_per_min - snapshot)         # requests/minute
      interval = clamp(60 * N / rate, min_interval_s, max_interval_s)     # oi_poll_interval
      spacing  = interval / N                                             # one request each

  ``gateway_target`` is the REST gateway's budget target (``status.status("rest-gateway")
  .target``, 2000 of 2400 by default; ``max_req_per_min`` alone until the gateway published
  one); ``snapshot`` is what the five-minute snapshot's sweep spends while it runs (below);
  ``reserve_per_min`` (10) is left for the other REST users (exchangeInfo, server time, kline
  backfill, which the gateway queues when it comes in a burst). Each request weighs 1, so the
  poller spends at most ``rate + snapshot`` weight per minute. Worked example: 540 TRADING,
  340 liquid, target 2000: ``snapshot = 60 * 200 / 270 = 44.4``, ``rate = 2000 - 10 - 44.4 =
  1945.6``, ``interval = 60 * 340 / 1945.6 = 10.49 s``, and 2000 weight/min at most in all.
  The interval is recomputed at every universe change and every flush (the gateway's target
  follows ``exchangeInfo.rateLimits``).
- **Pacing**: an interval timer (``catch_up=False``: a stall never turns into a burst) fires
  every ``spacing`` seconds and sends **one** request, for the next symbol round-robin, unless
  ``max_in_flight`` requests are already unanswered (that tick is skipped and counted). A tick
  that comes after a short stall (``Tick.skipped`` slots missed) also sends the requests of up
  to ``POLL_CATCH_UP`` missed slots, so a busy moment does not stretch the round beyond the
  interval. Each
  request expires at the gateway after one interval (a newer one is due by then).
- **Each answer** → :class:`~messages.open_interest.OiSample` stamped with the response's
  ``time``, mark price and funding rate from the price board when fresh (omitted otherwise,
  never 0.0) → :class:`~actors._oi_rule.OiAlertRule` → alerts handed to the poster at once,
  with a receipt (:mod:`actors._handoff`): an alert stays the poller's until the poster answers
  ``AlertsCommitted``, and is handed over again on the ``oi-deliver`` tick when no answer came
  within ``resend_after_s``. The rule state (OUTSIDE sides, cooldowns) and the alerts waiting
  for a receipt are saved in one ``PutState`` before the alerts leave, so a restart or
  ``kill -9`` neither repeats nor loses an alert (a new incarnation resends the saved ones).
- **Samples** are batched: told to the poster as ``OiSamples(source="realtime")`` every
  ``deliver_period_s`` (the poster chunks them to 100), and to the store for the OI history
  every ``persist_period_s``.
- **Five-minute snapshot** (spec §2.1, :mod:`actors._oi_snapshot`): an aligned timer fires at
  :00, :05, … of the exchange clock. Liquid symbols reuse their latest realtime sample (when at
  most ``max(30 s, 2 x interval)`` old), every other TRADING symbol is polled (request ids
  ``oi-snap:<symbol>``), one request every ``snapshot_sweep_s / polls`` seconds, so the sweep
  ends ~30 s before the next slot within the budget above. When every poll is answered (or at
  the deadline, halfway between the sweep's end and the next slot) one
  ``OiSamples(source="snapshot")`` with every symbol's sample goes to the poster (which chunks
  it to 100). A failed poll (error answer, unreadable body, no answer by the deadline) is
  omitted, counted and logged, never posted as 0; a symbol that answered ``-1121`` is left out
  of later snapshots while it stays listed. The polled samples also go to the store's OI
  history and to the OI board, but not to the alert rule (it watches the liquid universe).
  A sweep still running when the next slot fires, or when the poller stops or crashes, is
  finished first, with what it has.
- **OI board** (:class:`~actors._oi_board.OiBoard`, shared, outlives restarts): every realtime
  and every polled snapshot sample is added, for the volume alerts' ``oiChange``; at start,
  while it is empty, it is filled from the persisted history back to the previous hour's open.
- **Restarts**: at start the rule state (``GetState("oi-rule", "state")``, with the alerts
  still unconfirmed) and the OI history of the longest lookback (``LoadOiHistory``) are loaded,
  so baselines are there from the first sample (WEAK-17), an excursion that already alerted
  does not alert again, and an alert the poster never confirmed is handed over again.

Accepts: ``LiquidUniverse``, ``TradingUniverse``, ``RestResponse``, ``Tick``,
``AlertsCommitted`` (the poster's receipts); asks
``"symbols"``, ``"trading"``, ``"interval"``, ``"snapshot"`` (the last finished
:class:`~actors._oi_snapshot.SnapshotResult`), ``"stats"`` (tests, operators). Emits:
``RestRequest`` to the gateway; ``AlertHandoff`` (of ``OiAlert``) and ``OiSamples``
(``"realtime"``, ``"snapshot"``) to the poster; ``OiSamples`` and ``PutState`` to the store.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from actors._handoff import LATE_LOAD_TIMEOUT_S, AlertCourier
from actors._oi_board import DEFAULT_MAX_START_GAP_MS, HOUR_MS
from actors._oi_rule import HistoryKeeper, OiAlertRule, OiRuleConfig
from actors._oi_snapshot import (
    DEFAULT_PERIOD_S,
    DEFAULT_SWEEP_S,
    SnapshotResult,
    SnapshotRun,
    snapshot_load_per_min,
    snapshot_poll_estimate,
)
from actors._weight_budget import oi_poll_interval
from messages.binance_rest import open_interest_sample
from messages.control import Tick
from messages.delivery import AlertsCommitted, GetState, LoadOiHistory, PutState
from messages.errors import FrameError
from messages.open_interest import LiquidUniverse, OiSample, OiSamples, TradingUniverse
from messages.rest import RestResponse, rest_request
from messages.types import TimestampMs
from supervisors.actor import SupervisedActor
from supervisors.clock import exchange_now_ms
from supervisors.spec import ChildSpec

if TYPE_CHECKING:
    from actors._oi_board import OiBoard
    from actors._price_board import PriceBoard
    from actors._status import StatusBoard
    from messages._base import Message
    from messages.open_interest import OiAlert
    from supervisors.clock import ServerTimeOffset
    from supervisors.config import Config
    from supervisors.context import ChildContext
    from supervisors.timers import TimerHandle

__all__ = ["OpenInterestPollerActor", "poll_rate_per_min"]

OI_PATH = "/fapi/v1/openInterest"
REALTIME_PREFIX = "oi:"
SNAPSHOT_PREFIX = "oi-snap:"
RULE_NAMESPACE = "oi-rule"
RULE_KEY = "state"
POLLER_NAMESPACE = "oi-poller"
SYMBOLS_KEY = "symbols"
INVALID_SYMBOL = -1121
POLL_CATCH_UP = 4
"""Missed pacing slots a late poll tick makes up for, at most (a stall of ~4 spacings)."""


def poll_rate_per_min(
    max_req_per_min: float,
    gateway_target: float | None,
    reserve_per_min: float,
    snapshot_per_min: float = 0.0,
) -> float:
    """Realtime requests per minute: ``min(max - snapshot, target - reserve - snapshot)``.

    At least 1; ``max - snapshot`` alone while the gateway has published no target.
    """
    if gateway_target is None:
        return max(1.0, max_req_per_min - snapshot_per_min)
    return max(
        1.0,
        min(max_req_per_min, gateway_target - reserve_per_min) - snapshot_per_min,
    )


class OpenInterestPollerActor(SupervisedActor):
    """Polls open interest for the liquid universe and runs the OI alert rule.

    Args:
        context: from the supervisor.
        board: the price board (mark price and funding rate for enrichment).
        status: the status board (counters; the gateway's budget target is read from it).
        rule: the alert rule's settings (``OiRuleConfig.from_config(config)``).
        max_req_per_min: ``OI_MAX_REQ_PER_MIN``.
        min_interval_s, max_interval_s: ``OI_MIN_INTERVAL_SEC``, ``OI_MAX_INTERVAL_SEC``.
        reserve_per_min: weight per minute left to the other REST users of the gateway (the
            snapshot's own load is added to it, computed).
        max_in_flight: unanswered requests at most (Little's law: requests per second x
            round trip; 340 symbols every 10.46 s at 200 ms is 6.5; the gateway needs as many
            workers, its ``max_in_flight``, or ticks are skipped and counted).
        deliver_period_s: how often batched samples go to the poster.
        persist_period_s: how often batched samples go to the store (OI history).
        stale_after_s: a mark price or funding rate older than this is not attached.
        gateway, poster, store: registry names (``store=None``: no persistence).
        server_time: Binance server time (sample times are the exchange's).
        oi_board: the shared OI board to fill (``None``: none).
        snapshot: run the five-minute snapshot of every TRADING symbol.
        snapshot_period_s: its period, aligned on the exchange clock.
        snapshot_sweep_s: its polls are spread over this long (less than the period).
        snapshot_max_in_flight: unanswered snapshot requests at most.
        resend_after_s: an alert the poster has not confirmed this long after it was handed
            over is handed over again (at the next ``oi-deliver`` tick).
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        board: PriceBoard,
        status: StatusBoard,
        rule: OiRuleConfig | None = None,
        max_req_per_min: float = 2000.0,
        min_interval_s: float = 5.0,
        max_interval_s: float = 20.0,
        reserve_per_min: float = 10.0,
        max_in_flight: int = 16,
        deliver_period_s: float = 5.0,
        persist_period_s: float = 1.0,
        stale_after_s: float = 180.0,
        gateway: str = "rest-gateway",
        poster: str = "poster",
        store: str | None = "store",
        server_time: ServerTimeOffset | None = None,
        oi_board: OiBoard | None = None,
        snapshot: bool = True,
        snapshot_period_s: float = DEFAULT_PERIOD_S,
        snapshot_sweep_s: float = DEFAULT_SWEEP_S,
        snapshot_max_in_flight: int = 4,
        resend_after_s: float = 10.0,
        history_keeper: HistoryKeeper | None = None,
    ) -> None:
        super().__init__(context=context)
        if not 0 < snapshot_sweep_s < snapshot_period_s or snapshot_max_in_flight < 1:
            raise ValueError("need 0 < snapshot_sweep_s < snapshot_period_s, max_in_flight >= 1")
        if not 0 < min_interval_s <= max_interval_s:
            raise ValueError("need 0 < min_interval_s <= max_interval_s")
        if max_req_per_min <= 0 or max_in_flight < 1 or reserve_per_min < 0:
            raise ValueError("max_req_per_min and max_in_flight must be positive")
        if deliver_period_s <= 0 or persist_period_s <= 0:
            raise ValueError("deliver_period_s and persist_period_s must be positive")
        self._board = board
        self._status = status
        self._rule = OiAlertRule(rule)
        self._keeper = history_keeper
        self._rule_loaded = False
        """Whether the saved rule state was read (until then nothing is saved over it)."""
        self._courier = AlertCourier(
            owner=self.name,
            poster=poster,
            registry=self.registry,
            log=self._log,
            what="OI alert(s)",
            resend_after_s=resend_after_s,
        )
        self._max_rpm = max_req_per_min
        self._min_s, self._max_s = min_interval_s, max_interval_s
        self._reserve = reserve_per_min
        self._max_in_flight = max_in_flight
        self._deliver_period_s = deliver_period_s
        self._persist_period_s = persist_period_s
        self._stale_after_s = stale_after_s
        self._gateway, self._poster, self._store = gateway, poster, store
        self._server_time = server_time
        self._symbols: tuple[str, ...] = ()
        self._invalid: set[str] = set()
        self._cursor = 0
        self._in_flight: dict[str, float] = {}  # symbol -> monotonic send time
        self._interval_s = max_interval_s
        self._spacing_s = 0.0
        self._poll_timer: TimerHandle | None = None
        self._to_poster: list[OiSample] = []
        self._to_store: list[OiSample] = []
        self._latest_ms: dict[str, int] = {}
        self._counts: Counter[str] = Counter()
        self._oi_board = oi_board
        self._snapshot_on = snapshot
        self._snapshot_period_s = snapshot_period_s
        self._snapshot_sweep_s = snapshot_sweep_s
        self._snapshot_max_in_flight = snapshot_max_in_flight
        self._trading: tuple[str, ...] = ()
        self._snapshot_invalid: set[str] = set()
        self._latest: dict[str, OiSample] = {}  # newest realtime sample, for reuse
        self._snapshot: SnapshotRun | None = None
        self._snapshot_timer: TimerHandle | None = None
        self._last_snapshot: SnapshotResult | None = None
        self._snapshot_gauges: dict[str, float] = {}

    @classmethod
    def spec(  # noqa: PLR0913 - the shared boards, keyword-only
        cls,
        config: Config,
        *,
        board: PriceBoard,
        status: StatusBoard,
        server_time: ServerTimeOffset | None = None,
        oi_board: OiBoard | None = None,
        name: str = "oi-poller",
        **options: Any,
    ) -> ChildSpec:
        """The poller's child spec for ``config``: after store, poster and gateway."""
        return ChildSpec(
            name=name,
            actor_class=cls,
            kwargs={
                "board": board,
                "status": status,
                "rule": OiRuleConfig.from_config(config),
                "max_req_per_min": config.oi_max_req_per_min,
                "min_interval_s": config.oi_min_interval_sec,
                "max_interval_s": config.oi_max_interval_sec,
                "stale_after_s": config.stale_after_s,
                "server_time": server_time,
                "oi_board": oi_board,
                # one history handed from incarnation to incarnation: a restart goes on with it
                # instead of reloading up to an hour of samples (~0.5 s for 340 symbols)
                "history_keeper": HistoryKeeper(),
                **options,
            },
            start_timeout_s=30.0,  # loads up to two hours of OI history from the store
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def on_start(self) -> None:
        """Load rule state, OI history and the last universe; start flushing and polling."""
        self._load()
        self._courier.resend(self.clock.monotonic())
        if self.timers is not None:
            self.start_timer("oi-deliver", period_s=self._deliver_period_s, catch_up=False)
            self.start_timer("oi-persist", period_s=self._persist_period_s, catch_up=False)
            if self._snapshot_on:
                self.start_timer(
                    "oi-snapshot", period_s=self._snapshot_period_s, aligned=True, catch_up=False
                )
        self._repace()
        self._publish()

    def _close(self) -> None:
        """Keep the history for the next incarnation; hand the batched samples on (best effort)."""
        if self._keeper is not None:
            self._keeper.give_back(self._rule.history)
        if self._snapshot is not None:
            self._log.warning(
                "stopping during a snapshot sweep: posting what it has, the rest counted missing"
            )
            self._finish_snapshot()
        self._deliver()
        self._persist()

    def _load(self) -> None:
        """The rule state, the OI history (kept in memory, else from the store), the symbols."""
        if self._store is None:
            self._rule_loaded = True
            return
        self._rule_loaded = self._load_rule_state()
        now_ms = self._now_ms()
        try:
            kept = self._take_history()
            since = now_ms - self._rule.config.retention_ms
            fill_board = self._oi_board is not None and len(self._oi_board) == 0
            if fill_board:  # back to the previous hour's open, for oiChange
                since = min(since, now_ms - now_ms % HOUR_MS - HOUR_MS - DEFAULT_MAX_START_GAP_MS)
            loaded = 0
            if not kept or fill_board:
                history = self.registry.ask(
                    self._store, LoadOiHistory(since_ms=TimestampMs(since)), timeout=10
                )
                if not kept:
                    loaded = self._rule.history.import_rows(
                        (s.symbol, s.time_ms, s.open_interest, s.mark_price)
                        for s in history.samples
                    )
                if fill_board and self._oi_board is not None:
                    self._oi_board.load(
                        (s.symbol, s.time_ms, s.open_interest) for s in history.samples
                    )
            reply = self.registry.ask(
                self._store, GetState(namespace=POLLER_NAMESPACE, key=SYMBOLS_KEY), timeout=5
            )
            symbols = reply.value([]) or []
        except Exception as exc:  # a dead or slow store means "no saved state", said loudly
            self._log.warning("could not load the OI history ({}); baselines start blind", exc)
            return
        for symbol, time_ms in self._rule.history.newest().items():
            self._latest_ms[symbol] = max(time_ms, self._latest_ms.get(symbol, 0))
        self._symbols = tuple(sorted({str(s) for s in symbols}))
        self._log.info(
            "{} OI history sample(s) {}, {} symbol(s) loaded",
            kept or loaded,
            "kept from the previous incarnation" if kept else "loaded",
            len(self._symbols),
        )

    def _on_deliver_tick(self) -> None:
        if not self._rule_loaded and self._load_rule_state(late=True):
            self._rule_loaded = True
            self._save_rule()  # the merge of what was saved and what happened since
        self._deliver()
        self._courier.resend(self.clock.monotonic())
        self._housekeeping()

    def _take_history(self) -> int:
        """Go on with the history the previous incarnation gave back; its size (0: none)."""
        taken = self._keeper.take() if self._keeper is not None else None
        if taken is None or not len(taken):
            return 0
        if taken.retention_ms != self._rule.config.retention_ms or not taken.consistent():
            self._log.warning("the OI history kept in memory is unusable; loading it again")
            return 0
        self._rule.history = taken
        return len(taken)

    def _load_rule_state(self, *, late: bool = False) -> bool:
        """Read the rule state and the unconfirmed alerts; whether the store (if any) answered.

        A store that does not answer is not "no saved state": nothing is saved over it until it
        was read (asked again on every ``oi-deliver`` tick), so its alerts and cooldowns survive.
        """
        if self._store is None:
            return True
        try:
            reply = self.registry.ask(
                self._store,
                GetState(namespace=RULE_NAMESPACE, key=RULE_KEY),
                timeout=LATE_LOAD_TIMEOUT_S if late else 5,
            )
        except Exception as exc:  # a dead or slow store: said loudly, asked again
            self._log.warning(
                "could not load the saved OI rule state ({}); saving nothing until it is read "
                "(asked again every {:g} s)",
                exc,
                self._deliver_period_s,
            )
            return False
        state = reply.value({}) or {}
        self._courier.load(state.get("unconfirmed") if isinstance(state, dict) else None)
        try:
            self._rule.import_state(state, self._now_ms())  # merged into what happened since
        except (AttributeError, TypeError, ValueError) as exc:
            self._log.error("saved OI rule state unreadable ({}); starting without it", exc)
        return True

    def redeliverable(self, message: Message) -> bool:
        """Answers and ticks are stale a moment later; a universe is worth a retry."""
        return isinstance(message, LiquidUniverse | TradingUniverse)

    def _now_ms(self) -> int:
        return exchange_now_ms(self._server_time, self.clock)

    # --- messages -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:  # noqa: C901, PLR0912 - one case per message type
        """Dispatch (actor thread)."""
        match message:
            case LiquidUniverse():
                self._handle_universe(message)
            case TradingUniverse():
                self._handle_trading(message)
            case RestResponse():
                self._handle_response(message)
            case Tick(timer="oi-poll", skipped=skipped):
                # slots a stall skipped are made up, a few at most: a round that lost them
                # would take that much longer than the interval (the budget had them spare)
                for _ in range(1 + min(skipped, POLL_CATCH_UP)):
                    self._poll_next()
            case Tick(timer="oi-snapshot"):
                self._start_snapshot(message)
            case Tick(timer="oi-snapshot-poll"):
                self._snapshot_poll()
            case Tick(timer="oi-deliver"):
                self._on_deliver_tick()
            case AlertsCommitted(keys=keys):
                if self._courier.committed(keys):
                    self._save_rule()
            case Tick(timer="oi-persist"):
                self._persist()
            case "symbols" | "trading" | "interval" | "snapshot" | "stats" | "unconfirmed":
                return self._answer(message)
            case _:
                return super().on_receive(message)
        return None

    def _answer(self, question: str) -> Any:
        match question:
            case "symbols":
                return self._symbols
            case "trading":
                return self._trading
            case "interval":
                return self._interval_s
            case "snapshot":
                return self._last_snapshot
            case "unconfirmed":
                return self._courier.pending.keys()
            case _:
                return {
                    **self._counts,
                    **self._snapshot_gauges,
                    **{f"rule_{k}": v for k, v in self._rule.stats.items()},
                }

    def _handle_universe(self, universe: LiquidUniverse) -> None:
        members = {m.symbol for m in universe.members}
        if not members:
            return  # never poll nothing because of an empty set
        self._invalid &= members  # a symbol that left and comes back is tried again
        symbols = tuple(sorted(members - self._invalid))
        if symbols == self._symbols:
            return
        self._set_symbols(symbols)

    def _set_symbols(self, symbols: tuple[str, ...]) -> None:
        current = self._symbols[self._cursor % len(self._symbols)] if self._symbols else None
        self._symbols = symbols
        # carry on from where the round-robin was, so no symbol waits two rounds
        self._cursor = next((i for i, s in enumerate(symbols) if current and s >= current), 0)
        if self._store is not None:
            self.registry.tell(self._store, PutState.of(POLLER_NAMESPACE, SYMBOLS_KEY, symbols))
        self._log.info("polling {} symbol(s)", len(symbols))
        self._repace()

    def _handle_trading(self, trading: TradingUniverse) -> None:
        symbols = tuple(sorted({str(s) for s in trading.symbols}))
        if not symbols or symbols == self._trading:
            return  # an empty list is a broken exchangeInfo, not an empty market
        self._trading = symbols
        self._snapshot_invalid &= set(symbols)
        self._log.info("{} TRADING symbol(s) in the five-minute snapshot", len(symbols))
        self._repace()

    def _snapshot_per_min(self) -> float:
        """What the snapshot's sweep spends per minute while it runs (see the module doc)."""
        if not self._snapshot_on or not self._trading:
            return 0.0
        polls = snapshot_poll_estimate(
            (s for s in self._trading if s not in self._snapshot_invalid), self._symbols
        )
        return snapshot_load_per_min(polls, self._snapshot_sweep_s)

    def _gateway_target(self) -> float | None:
        snapshot = self._status.status(self._gateway)
        target = getattr(snapshot, "target", None)
        return float(target) if isinstance(target, int | float) and target > 0 else None

    def _repace(self) -> None:
        """Recompute the interval and (re)start the pacing timer when the spacing changed."""
        n = len(self._symbols)
        rate = poll_rate_per_min(
            self._max_rpm, self._gateway_target(), self._reserve, self._snapshot_per_min()
        )
        self._interval_s = oi_poll_interval(n, rate, self._min_s, self._max_s)
        spacing = self._interval_s / n if n else 0.0
        if spacing and self._spacing_s and math.isclose(spacing, self._spacing_s, rel_tol=0.01):
            return
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        self._spacing_s = spacing
        if spacing and self.timers is not None:
            self._poll_timer = self.start_timer("oi-poll", period_s=spacing, catch_up=False)
            self._log.info(
                "OI: {} symbol(s) every {:.2f} s, one request every {:.1f} ms ({:.0f}/min)",
                n,
                self._interval_s,
                spacing * 1000,
                60 / spacing,
            )

    def _poll_next(self) -> None:
        if not self._symbols:
            return
        if len(self._in_flight) >= self._max_in_flight:
            self._counts["oi_ticks_skipped_total"] += 1
            return
        for _ in range(len(self._symbols)):
            symbol = self._symbols[self._cursor % len(self._symbols)]
            self._cursor = (self._cursor + 1) % len(self._symbols)
            if symbol not in self._in_flight:
                break
        else:
            self._counts["oi_ticks_skipped_total"] += 1
            return
        request = rest_request(
            OI_PATH,
            request_id=f"{REALTIME_PREFIX}{symbol}",
            caller=self.name,
            params={"symbol": symbol},
            expires_after_s=self._interval_s,
        )
        if self.registry.tell(self._gateway, request):
            self._in_flight[symbol] = self.clock.monotonic()
            self._counts["oi_requests_total"] += 1
        else:
            self._counts["oi_gateway_missing_total"] += 1

    def _handle_response(self, response: RestResponse) -> None:
        if response.request_id.startswith(SNAPSHOT_PREFIX):
            self._handle_snapshot_response(response)
            return
        if not response.request_id.startswith(REALTIME_PREFIX):
            return
        symbol = response.request_id.removeprefix(REALTIME_PREFIX)
        self._in_flight.pop(symbol, None)
        sample, _ = self._read_sample(response, symbol, "oi")
        if sample is None:
            if response.error_code == INVALID_SYMBOL:
                self._drop(symbol, response.error_message)
            return
        evaluation = self._rule.add_sample(sample)
        self.report_progress()
        if not evaluation.accepted:
            return
        self._counts["oi_samples_total"] += 1
        self._latest_ms[sample.symbol] = sample.time_ms
        self._latest[sample.symbol] = sample
        if self._oi_board is not None:
            self._oi_board.add(sample.symbol, sample.time_ms, sample.open_interest)
        self._to_poster.append(sample)
        self._to_store.append(sample)
        self._send_alerts(evaluation.alerts, state_changed=evaluation.state_changed)

    def _enrich(self, sample: OiSample) -> OiSample:
        """Mark price and funding rate from the board when fresh; omitted otherwise."""
        record = self._board.get(sample.symbol)
        if record is None or self.clock.monotonic() - record.received_mono > self._stale_after_s:
            self._counts["oi_samples_without_mark_total"] += 1
            return sample
        raw_mark, raw_funding = record.mark_price, record.funding_rate
        mark = raw_mark if math.isfinite(raw_mark) and raw_mark > 0 else None
        funding = raw_funding if raw_funding is not None and math.isfinite(raw_funding) else None
        if mark is None:
            self._counts["oi_samples_without_mark_total"] += 1
        return OiSample(
            symbol=sample.symbol,
            open_interest=sample.open_interest,
            time_ms=sample.time_ms,
            mark_price=mark,
            funding_rate=funding,
        )

    def _drop(self, symbol: str, why: str | None) -> None:
        self._counts["oi_invalid_symbols_total"] += 1
        self._invalid.add(symbol)
        self._log.warning("{} is not a valid symbol ({}); not polled any more", symbol, why)
        if symbol in self._symbols:
            self._set_symbols(tuple(s for s in self._symbols if s != symbol))
        self._rule.forget([symbol])
        self._latest_ms.pop(symbol, None)
        self._latest.pop(symbol, None)
        if self._oi_board is not None:
            self._oi_board.forget([symbol])

    def _send_alerts(self, alerts: tuple[OiAlert, ...], *, state_changed: bool) -> None:
        """Keep the alerts until the poster confirms them, save, then hand them over."""
        for alert in alerts:
            self._log.info(
                "OI {} [{}] {} {:+.2%}",
                alert.direction,
                alert.timeframe,
                alert.symbol,
                alert.pct_change,
            )
        self._courier.keep(alerts, self.clock.monotonic())
        if state_changed or alerts:
            self._save_rule()  # before the alerts leave: a restart never repeats nor loses one
        if alerts:
            self._courier.hand_over(alerts)

    def _save_rule(self) -> None:
        """Persist the rule state and the unconfirmed alerts, in one ``PutState``."""
        if self._store is None or not self._rule_loaded:
            return
        state = {
            **self._rule.export_state(self._now_ms()),
            "unconfirmed": self._courier.pending.export(),
        }
        if not self.registry.tell(self._store, PutState.of(RULE_NAMESPACE, RULE_KEY, state)):
            self._log.error("no store to save the OI rule state in; a restart could re-alert")

    def _deliver(self) -> None:
        if not self._to_poster:
            return
        batch = OiSamples(
            items=tuple(self._to_poster), source="realtime", created_ms=TimestampMs(self._now_ms())
        )
        self._to_poster = []
        if self.registry.tell(self._poster, batch):
            self._counts["oi_batches_total"] += 1
        else:
            self._counts["oi_batches_undelivered_total"] += 1

    def _persist(self) -> None:
        if not self._to_store or self._store is None:
            self._to_store = []
            return
        batch = OiSamples(
            items=tuple(self._to_store), source="realtime", created_ms=TimestampMs(self._now_ms())
        )
        self._to_store = []
        self.registry.tell(self._store, batch)

    def _housekeeping(self) -> None:
        """Forget answers that never came, prune old history, follow the budget, publish."""
        now = self.clock.monotonic()
        limit = max(30.0, 3 * self._interval_s)
        for symbol, sent in list(self._in_flight.items()):
            if now - sent > limit:
                del self._in_flight[symbol]
                self._counts["oi_answers_lost_total"] += 1
        gone = self._rule.history.prune(self._now_ms())
        if gone:
            self._rule.forget(gone)
            for symbol in gone:
                self._latest_ms.pop(symbol, None)
                self._latest.pop(symbol, None)
        if self._oi_board is not None:
            self._oi_board.prune(self._now_ms())
        run = self._snapshot
        if run is not None and run.expired(self._now_ms()):
            self._finish_snapshot()
        self._repace()
        self._publish()

    def _publish(self) -> None:
        counters: dict[str, float] = dict(self._counts)
        counters.update({f"oi_rule_{k}_total": v for k, v in self._rule.stats.items()})
        counters["oi_alerts_total"] = self._courier.handed
        counters["oi_alerts_undelivered_total"] = self._courier.refused
        counters.update(self._courier.counters("oi_alerts"))
        counters["oi_symbols"] = len(self._symbols)
        counters["oi_in_flight"] = len(self._in_flight)
        counters["oi_interval_seconds"] = self._interval_s
        now_ms = self._now_ms()
        ages = [now_ms - self._latest_ms[s] for s in self._symbols if s in self._latest_ms]
        if ages:
            counters["oi_max_sample_age_seconds"] = max(ages) / 1000
        counters["oi_symbols_never_sampled"] = sum(s not in self._latest_ms for s in self._symbols)
        counters["oi_trading_symbols"] = len(self._trading)
        counters["oi_snapshot_reserve_per_min"] = self._snapshot_per_min()
        counters["oi_snapshot_running"] = 1 if self._snapshot is not None else 0
        counters.update(self._snapshot_gauges)
        self._status.count(self.name, counters)

    # --- the five-minute snapshot ---------------------------------------------------------------

    def _start_snapshot(self, tick: Tick) -> None:
        if self._snapshot is not None:
            self._counts["oi_snapshot_overruns_total"] += 1
            self._log.warning("the previous OI snapshot was still running; posting what it has")
            self._finish_snapshot()
        if not self._trading:
            self._counts["oi_snapshots_skipped_total"] += 1
            self._log.warning("no TRADING list yet (exchangeInfo); OI snapshot skipped")
            return
        now_ms = self._now_ms()
        slot_ms = int(tick.scheduled_ms)
        period_ms = round(self._snapshot_period_s * 1000)
        sweep_ms = round(self._snapshot_sweep_s * 1000)
        run = SnapshotRun.plan(
            slot_ms=slot_ms,
            trading=self._trading,
            latest=self._latest,
            now_ms=now_ms,
            reuse_max_age_ms=round(max(30.0, 2 * self._interval_s) * 1000),
            deadline_ms=slot_ms + (sweep_ms + period_ms) // 2,
            skip=self._snapshot_invalid,
        )
        self._snapshot = run
        self._log.debug(
            "OI snapshot {}: {} reused, {} to poll", slot_ms, len(run.reused), run.polls
        )
        if run.polls == 0:
            self._finish_snapshot()
            return
        if self.timers is not None:
            self._stop_snapshot_timer()
            spacing = self._snapshot_sweep_s / run.polls
            self._snapshot_timer = self.start_timer(
                "oi-snapshot-poll", period_s=spacing, catch_up=False
            )
        self._snapshot_poll()  # the first one at once

    def _stop_snapshot_timer(self) -> None:
        if self._snapshot_timer is not None:
            self._snapshot_timer.cancel()
            self._snapshot_timer = None

    def _snapshot_poll(self) -> None:
        run = self._snapshot
        if run is None:
            self._stop_snapshot_timer()
            return
        now_ms = self._now_ms()
        if run.expired(now_ms):
            self._finish_snapshot()
            return
        if len(run.in_flight) >= self._snapshot_max_in_flight:
            self._counts["oi_snapshot_ticks_skipped_total"] += 1
            return
        symbol = run.next_symbol()
        if symbol is None:
            self._stop_snapshot_timer()  # all sent; the last answer finishes it
            return
        request = rest_request(
            OI_PATH,
            request_id=f"{SNAPSHOT_PREFIX}{symbol}",
            caller=self.name,
            params={"symbol": symbol},
            expires_after_s=max(1.0, (run.deadline_ms - now_ms) / 1000),
        )
        if self.registry.tell(self._gateway, request):
            self._counts["oi_snapshot_requests_total"] += 1
        else:
            self._counts["oi_gateway_missing_total"] += 1
            run.not_sent(symbol, "no gateway")
            if run.done:
                self._finish_snapshot()

    def _read_sample(
        self, response: RestResponse, symbol: str, prefix: str
    ) -> tuple[OiSample | None, str]:
        """An answer's enriched sample, or ``None`` and why (counted under ``prefix``)."""
        if not response.ok or response.body is None:
            why = response.error_type or "unknown"
            self._counts[f"{prefix}_errors_total"] += 1
            self._counts[f"{prefix}_errors_{why}_total"] += 1
            return None, why
        try:
            raw = open_interest_sample(response.body)
        except FrameError as exc:
            self._counts[f"{prefix}_errors_total"] += 1
            self._counts[f"{prefix}_errors_unreadable_total"] += 1
            self._log.warning("openInterest {} unreadable: {}", symbol, exc)
            return None, "unreadable"
        return self._enrich(raw), ""

    def _handle_snapshot_response(self, response: RestResponse) -> None:
        symbol = response.request_id.removeprefix(SNAPSHOT_PREFIX)
        run = self._snapshot
        sample, why = self._read_sample(response, symbol, "oi_snapshot")
        if sample is None and response.error_code == INVALID_SYMBOL:
            why = "invalid symbol"
            self._snapshot_invalid.add(symbol)
            self._log.warning(
                "{} is not a valid symbol ({}); left out of OI snapshots",
                symbol,
                response.error_message,
            )
        if sample is not None and math.isfinite(sample.open_interest):
            # a real reading, even a late one, belongs in the history
            if self._oi_board is not None:
                self._oi_board.add(sample.symbol, sample.time_ms, sample.open_interest)
            self._to_store.append(sample)
            self.report_progress()
        if run is None:
            self._counts["oi_snapshot_late_answers_total"] += 1
            return
        awaited = (
            run.answered(symbol, sample) if sample is not None else run.failed_with(symbol, why)
        )
        if not awaited:
            self._counts["oi_snapshot_late_answers_total"] += 1
        if run.done:
            self._finish_snapshot()

    def _finish_snapshot(self) -> None:
        run = self._snapshot
        if run is None:
            return
        self._snapshot = None
        self._stop_snapshot_timer()
        now_ms = self._now_ms()
        result = run.finish(now_ms)
        self._last_snapshot = result
        without_mark = sum(1 for s in result.items if s.mark_price is None)
        self._counts["oi_snapshots_total"] += 1
        self._counts["oi_snapshot_samples_total"] += len(result.items)
        self._counts["oi_snapshot_polled_total"] += result.polled
        self._counts["oi_snapshot_reused_total"] += result.reused
        self._counts["oi_snapshot_failed_total"] += len(result.failed)
        self._snapshot_gauges = {
            "oi_snapshot_last_slot_ms": result.slot_ms,
            "oi_snapshot_last_symbols": result.symbols,
            "oi_snapshot_last_samples": len(result.items),
            "oi_snapshot_last_reused": result.reused,
            "oi_snapshot_last_polled": result.polled,
            "oi_snapshot_last_failed": len(result.failed),
            "oi_snapshot_last_without_mark": without_mark,
            "oi_snapshot_last_duration_seconds": (now_ms - result.slot_ms) / 1000,
        }
        if result.items:
            batch = OiSamples(
                items=result.items, source="snapshot", created_ms=TimestampMs(result.slot_ms)
            )
            if self.registry.tell(self._poster, batch):
                self._counts["oi_snapshot_batches_total"] += 1
            else:
                self._counts["oi_snapshot_batches_undelivered_total"] += 1
                self._log.error("no {} to take the OI snapshot", self._poster)
        log = self._log.warning if result.failed else self._log.info
        log(
            "OI snapshot: {} of {} symbol(s) in {:.1f} s ({} reused, {} polled, {} without a "
            "mark price), {} missing{}",
            len(result.items),
            result.symbols,
            (now_ms - result.slot_ms) / 1000,
            result.reused,
            result.polled,
            without_mark,
            len(result.failed),
            f": {dict(result.failed[:10])}" if result.failed else "",
        )
        self._publish()
