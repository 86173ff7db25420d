"""The open-interest poller: ``/fapi/v1/openInterest`` for the liquid universe, paced evenly.

Binance has no open-interest stream, so every liquid symbol is polled through the REST gateway
(the one weight budget of the process). How it runs:

- ``LiquidUniverse`` (from the universe actor, every evaluation) → the list of symbols to poll
  (sorted; symbols that answered ``-1121 Invalid symbol`` are left out while they stay in the
  universe). The list is also saved in the store, so a restarted poller polls at once instead
  of waiting for the next evaluation.
- **Interval** (seconds between two samples of the same symbol)::

      rate     = min(max_req_per_min, gateway_target - reserve_per_min)   # requests/minute
      interval = clamp(60 * N / rate, min_interval_s, max_interval_s)     # oi_poll_interval
      spacing  = interval / N                                             # one request each

  ``gateway_target`` is the REST gateway's budget target (``status.status("rest-gateway")
  .target``, 2000 of 2400 by default; ``max_req_per_min`` alone until the gateway published
  one); ``reserve_per_min`` is left for the other REST users (the 5-minute snapshot, kline
  backfill, exchangeInfo). Each request weighs 1, so the poller spends at most ``rate`` weight
  per minute. The interval is recomputed at every universe change and every flush (the
  gateway's target follows ``exchangeInfo.rateLimits``).
- **Pacing**: an interval timer (``catch_up=False``: a stall never turns into a burst) fires
  every ``spacing`` seconds and sends **one** request, for the next symbol round-robin, unless
  ``max_in_flight`` requests are already unanswered (that tick is skipped and counted). Each
  request expires at the gateway after one interval (a newer one is due by then).
- **Each answer** → :class:`~messages.open_interest.OiSample` stamped with the response's
  ``time``, mark price and funding rate from the price board when fresh (omitted otherwise,
  never 0.0) → :class:`~actors._oi_rule.OiAlertRule` → alerts told to the poster at once
  (the rule state is saved in the store first, when it changed, so a restart neither repeats
  nor loses an alert).
- **Samples** are batched: told to the poster as ``OiSamples(source="realtime")`` every
  ``deliver_period_s`` (the poster chunks them to 100), and to the store for the OI history
  every ``persist_period_s``.
- **Restarts**: at start the rule state (``GetState("oi-rule", "state")``) and the OI history
  of the longest lookback (``LoadOiHistory``) are loaded, so baselines are there from the first
  sample (WEAK-17) and an excursion that already alerted does not alert again.

Accepts: ``LiquidUniverse``, ``RestResponse``, ``Tick``; asks ``"symbols"``, ``"interval"``,
``"stats"`` (tests, operators). Emits: ``RestRequest`` to the gateway; ``OiAlert`` and
``OiSamples`` to the poster; ``OiSamples`` and ``PutState`` to the store.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from actors._oi_rule import OiAlertRule, OiRuleConfig
from actors._weight_budget import oi_poll_interval
from messages.binance_rest import open_interest_sample
from messages.control import Tick
from messages.delivery import GetState, LoadOiHistory, PutState
from messages.errors import FrameError
from messages.open_interest import LiquidUniverse, OiSample, OiSamples
from messages.rest import RestResponse, rest_request
from messages.types import TimestampMs
from supervisors.actor import SupervisedActor
from supervisors.clock import exchange_now_ms
from supervisors.spec import ChildSpec

if TYPE_CHECKING:
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
RULE_NAMESPACE = "oi-rule"
RULE_KEY = "state"
POLLER_NAMESPACE = "oi-poller"
SYMBOLS_KEY = "symbols"
INVALID_SYMBOL = -1121


def poll_rate_per_min(
    max_req_per_min: float, gateway_target: float | None, reserve_per_min: float
) -> float:
    """Requests per minute the poller may spend: ``min(max, target - reserve)`` (at least 1)."""
    if gateway_target is None:
        return max(1.0, max_req_per_min)
    return max(1.0, min(max_req_per_min, gateway_target - reserve_per_min))


class OpenInterestPollerActor(SupervisedActor):
    """Polls open interest for the liquid universe and runs the OI alert rule.

    Args:
        context: from the supervisor.
        board: the price board (mark price and funding rate for enrichment).
        status: the status board (counters; the gateway's budget target is read from it).
        rule: the alert rule's settings (``OiRuleConfig.from_config(config)``).
        max_req_per_min: ``OI_MAX_REQ_PER_MIN``.
        min_interval_s, max_interval_s: ``OI_MIN_INTERVAL_SEC``, ``OI_MAX_INTERVAL_SEC``.
        reserve_per_min: weight per minute left to the other REST users of the gateway.
        max_in_flight: unanswered requests at most (Little's law: requests per second x
            round trip; 340 symbols every 10.46 s at 200 ms is 6.5; the gateway needs as many
            workers, its ``max_in_flight``, or ticks are skipped and counted).
        deliver_period_s: how often batched samples go to the poster.
        persist_period_s: how often batched samples go to the store (OI history).
        stale_after_s: a mark price or funding rate older than this is not attached.
        gateway, poster, store: registry names (``store=None``: no persistence).
        server_time: Binance server time (sample times are the exchange's).
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
        reserve_per_min: float = 50.0,
        max_in_flight: int = 16,
        deliver_period_s: float = 5.0,
        persist_period_s: float = 1.0,
        stale_after_s: float = 180.0,
        gateway: str = "rest-gateway",
        poster: str = "poster",
        store: str | None = "store",
        server_time: ServerTimeOffset | None = None,
    ) -> None:
        super().__init__(context=context)
        if not 0 < min_interval_s <= max_interval_s:
            raise ValueError("need 0 < min_interval_s <= max_interval_s")
        if max_req_per_min <= 0 or max_in_flight < 1 or reserve_per_min < 0:
            raise ValueError("max_req_per_min and max_in_flight must be positive")
        if deliver_period_s <= 0 or persist_period_s <= 0:
            raise ValueError("deliver_period_s and persist_period_s must be positive")
        self._board = board
        self._status = status
        self._rule = OiAlertRule(rule)
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

    @classmethod
    def spec(
        cls,
        config: Config,
        *,
        board: PriceBoard,
        status: StatusBoard,
        server_time: ServerTimeOffset | None = None,
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
                **options,
            },
            start_timeout_s=30.0,  # loads up to an hour of OI history from the store
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def on_start(self) -> None:
        """Load rule state, OI history and the last universe; start flushing and polling."""
        self._load()
        if self.timers is not None:
            self.start_timer("oi-deliver", period_s=self._deliver_period_s, catch_up=False)
            self.start_timer("oi-persist", period_s=self._persist_period_s, catch_up=False)
        self._repace()
        self._publish()

    def _close(self) -> None:
        """Hand the samples still batched to the store and the poster (best effort)."""
        self._deliver()
        self._persist()

    def _load(self) -> None:
        if self._store is None:
            return
        now_ms = self._now_ms()
        try:
            reply = self.registry.ask(
                self._store, GetState(namespace=RULE_NAMESPACE, key=RULE_KEY), timeout=5
            )
            self._rule.import_state(reply.value({}) or {}, now_ms)
            since = TimestampMs(now_ms - self._rule.config.retention_ms)
            history = self.registry.ask(self._store, LoadOiHistory(since_ms=since), timeout=10)
            rows = [(s.symbol, s.time_ms, s.open_interest, s.mark_price) for s in history.samples]
            loaded = self._rule.history.import_rows(rows)
            reply = self.registry.ask(
                self._store, GetState(namespace=POLLER_NAMESPACE, key=SYMBOLS_KEY), timeout=5
            )
            symbols = reply.value([]) or []
        except Exception as exc:  # a dead or slow store means "no saved state", said loudly
            self._log.warning("could not load the saved OI state ({}); baselines start blind", exc)
            return
        for symbol, time_ms, _, _ in self._rule.history.export_rows():
            self._latest_ms[symbol] = max(time_ms, self._latest_ms.get(symbol, 0))
        self._symbols = tuple(sorted({str(s) for s in symbols}))
        self._log.info(
            "loaded {} OI history sample(s), rule state and {} symbol(s)",
            loaded,
            len(self._symbols),
        )

    def redeliverable(self, message: Message) -> bool:
        """Answers and ticks are stale a moment later; a universe is worth a retry."""
        return isinstance(message, LiquidUniverse)

    def _now_ms(self) -> int:
        return exchange_now_ms(self._server_time, self.clock)

    # --- messages -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Dispatch (actor thread)."""
        match message:
            case LiquidUniverse():
                self._handle_universe(message)
            case RestResponse():
                self._handle_response(message)
            case Tick(timer="oi-poll"):
                self._poll_next()
            case Tick(timer="oi-deliver"):
                self._deliver()
                self._housekeeping()
            case Tick(timer="oi-persist"):
                self._persist()
            case "symbols":
                return self._symbols
            case "interval":
                return self._interval_s
            case "stats":
                return {**self._counts, **{f"rule_{k}": v for k, v in self._rule.stats.items()}}
            case _:
                return super().on_receive(message)
        return None

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

    def _gateway_target(self) -> float | None:
        snapshot = self._status.status(self._gateway)
        target = getattr(snapshot, "target", None)
        return float(target) if isinstance(target, int | float) and target > 0 else None

    def _repace(self) -> None:
        """Recompute the interval and (re)start the pacing timer when the spacing changed."""
        n = len(self._symbols)
        rate = poll_rate_per_min(self._max_rpm, self._gateway_target(), self._reserve)
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
            request_id=f"oi:{symbol}",
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
        if not response.request_id.startswith("oi:"):
            return
        symbol = response.request_id.removeprefix("oi:")
        self._in_flight.pop(symbol, None)
        if not response.ok or response.body is None:
            self._counts["oi_errors_total"] += 1
            self._counts[f"oi_errors_{response.error_type or 'unknown'}_total"] += 1
            if response.error_code == INVALID_SYMBOL:
                self._drop(symbol, response.error_message)
            return
        try:
            raw = open_interest_sample(response.body)
        except FrameError as exc:
            self._counts["oi_errors_total"] += 1
            self._counts["oi_errors_unreadable_total"] += 1
            self._log.warning("openInterest {} unreadable: {}", symbol, exc)
            return
        sample = self._enrich(raw)
        evaluation = self._rule.add_sample(sample)
        self.report_progress()
        if not evaluation.accepted:
            return
        self._counts["oi_samples_total"] += 1
        self._latest_ms[sample.symbol] = sample.time_ms
        self._to_poster.append(sample)
        self._to_store.append(sample)
        if evaluation.state_changed:
            self._save_rule()  # before the alerts leave: a restart never repeats one
        self._send_alerts(evaluation.alerts)

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

    def _send_alerts(self, alerts: tuple[OiAlert, ...]) -> None:
        for alert in alerts:
            self._log.info(
                "OI {} [{}] {} {:+.2%}",
                alert.direction,
                alert.timeframe,
                alert.symbol,
                alert.pct_change,
            )
            if self.registry.tell(self._poster, alert):
                self._counts["oi_alerts_total"] += 1
            else:
                self._counts["oi_alerts_undelivered_total"] += 1
                self._log.error("no {} to take the OI alert for {}", self._poster, alert.symbol)

    def _save_rule(self) -> None:
        if self._store is None:
            return
        state = self._rule.export_state(self._now_ms())
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
        self._repace()
        self._publish()

    def _publish(self) -> None:
        counters: dict[str, float] = dict(self._counts)
        counters.update({f"oi_rule_{k}_total": v for k, v in self._rule.stats.items()})
        counters["oi_symbols"] = len(self._symbols)
        counters["oi_in_flight"] = len(self._in_flight)
        counters["oi_interval_seconds"] = self._interval_s
        now_ms = self._now_ms()
        ages = [now_ms - self._latest_ms[s] for s in self._symbols if s in self._latest_ms]
        if ages:
            counters["oi_max_sample_age_seconds"] = max(ages) / 1000
        counters["oi_symbols_never_sampled"] = sum(s not in self._latest_ms for s in self._symbols)
        self._status.count(self.name, counters)
