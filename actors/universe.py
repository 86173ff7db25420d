"""The liquid universe: 24 h quote volumes from ``!ticker@arr`` with the original's hysteresis.

A thin shell around :class:`~actors._universe_logic.UniverseTracker`:

- ``Tickers`` (told by the market feed, route ``Tickers → universe``) → ``tracker.observe``;
  cheap, nothing else happens per frame;
- the TRADING USDT perpetuals come from ``exchangeInfo``: this actor asks the REST gateway once
  at start (``request_id="exchangeInfo"``), and takes the gateway's own hourly fetch too when
  it is listed in the gateway's ``exchange_info_to``; while it has no list it asks again on
  every evaluation tick (at most one request in flight);
- ``Tick(timer="universe-evaluate")`` every ``evaluate_period_s`` → ``tracker.evaluate``; the
  resulting :class:`~messages.open_interest.LiquidUniverse` is told to the OI poller at every
  evaluation (level-triggered: a restarted poller catches up at the next tick) and, when
  ``post_to_backend`` is set, to the poster for the backend's liquid-universe update endpoint
  — when the membership changed or ``post_every_s`` passed, and **never** an empty set (the
  tracker holds the previous set instead of computing an empty one; an empty set before the
  first real evaluation is simply not sent). A *held* set (no ticker data yet after a restart,
  no exchangeInfo) still goes to the poller, so polling resumes at once, but is not posted:
  its volumes may be unknown;
- with every evaluation it also tells the poller a
  :class:`~messages.open_interest.TradingUniverse`: every TRADING USDT perpetual but the
  excluded ones, for the five-minute OI snapshot (once exchangeInfo was read; the same message
  object until the list changes);
- the tracker's state (members with entry times, last known volumes) is saved in the store
  (``PutState("universe", "tracker")``) after each evaluation that changed it, and loaded at
  start (``GetState``, ask with a timeout), so a restart keeps the hysteresis.

Accepts: ``Tickers``, ``RestResponse``, ``Tick``; asks ``"universe"`` / ``"trading"`` (tests,
operators). Emits: ``TradingUniverse`` and ``LiquidUniverse`` to the poller (and the latter
optionally to the poster); ``RestRequest`` to the gateway; ``PutState`` to the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors._universe_logic import UniverseRules, UniverseTracker
from messages.binance_rest import trading_usdt_perpetuals
from messages.control import Tick
from messages.delivery import GetState, PutState
from messages.errors import FrameError
from messages.market import Tickers
from messages.open_interest import TradingUniverse
from messages.rest import RestResponse, rest_request
from messages.types import Symbol, TimestampMs
from supervisors.actor import SupervisedActor
from supervisors.clock import exchange_now_ms
from supervisors.spec import ChildSpec

if TYPE_CHECKING:
    from actors._status import StatusBoard
    from messages._base import Message
    from messages.open_interest import LiquidUniverse
    from supervisors.clock import ServerTimeOffset
    from supervisors.config import Config
    from supervisors.context import ChildContext

__all__ = ["UniverseActor"]

STATE_NAMESPACE = "universe"
STATE_KEY = "tracker"


class UniverseActor(SupervisedActor):
    """Keeps the liquid universe and tells it to the OI poller (and optionally the backend).

    Args:
        context: from the supervisor.
        status: the status board (counters for ``/metrics``).
        rules: the hysteresis thresholds and exclusion list
            (``UniverseRules.from_config(config)``).
        evaluate_period_s: seconds between two evaluations.
        post_to_backend: tell the poster each (non-empty) universe for the backend's update
            endpoint (``POST …/liquid-universe/update``).
        post_every_s: re-post an unchanged universe this often (fresh volumes and times).
        poller: the OI poller's registry name (``None``: nobody).
        poster: the poster's registry name.
        gateway: the REST gateway's name (``None``: only broadcasts and tests feed the list).
        store: the store's name (``None``: no persistence).
        server_time: Binance server time (ticker event times are the exchange's).
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        status: StatusBoard,
        rules: UniverseRules | None = None,
        evaluate_period_s: float = 10.0,
        post_to_backend: bool = False,
        post_every_s: float = 300.0,
        poller: str | None = "oi-poller",
        poster: str = "poster",
        gateway: str | None = "rest-gateway",
        store: str | None = "store",
        server_time: ServerTimeOffset | None = None,
    ) -> None:
        super().__init__(context=context)
        if evaluate_period_s <= 0 or post_every_s <= 0:
            raise ValueError("evaluate_period_s and post_every_s must be positive")
        self._status = status
        self._tracker = UniverseTracker(rules or UniverseRules())
        self._period_s = evaluate_period_s
        self._post = post_to_backend
        self._post_every_s = post_every_s
        self._poller = poller
        self._poster = poster
        self._gateway = gateway
        self._store = store
        self._server_time = server_time
        self._trading: frozenset[str] = frozenset()
        self._trading_msg: TradingUniverse | None = None
        self._info_pending = False
        self._universe: LiquidUniverse | None = None
        self._saved: Any = None
        self._posted_members: tuple[str, ...] = ()
        self._posted_mono = float("-inf")
        self._held = "not evaluated yet"
        self._counts: dict[str, float] = {
            "universe_evaluations_total": 0,
            "universe_entered_total": 0,
            "universe_left_total": 0,
            "universe_held_total": 0,
            "universe_posts_total": 0,
            "universe_tickers_total": 0,
            "universe_exchange_info_errors_total": 0,
        }

    @classmethod
    def spec(
        cls,
        config: Config,
        *,
        status: StatusBoard,
        server_time: ServerTimeOffset | None = None,
        name: str = "universe",
        **options: Any,
    ) -> ChildSpec:
        """The universe's child spec for ``config``: after store, poster and gateway.

        ``options`` pass through (``post_to_backend=True``, ``evaluate_period_s`` …).
        """
        return ChildSpec(
            name=name,
            actor_class=cls,
            kwargs={
                "status": status,
                "rules": UniverseRules.from_config(config),
                "server_time": server_time,
                **options,
            },
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def on_start(self) -> None:
        """Load the saved hysteresis state, ask for exchangeInfo, start the evaluation timer."""
        self._load_state()
        self._request_exchange_info()
        if self.timers is not None:
            self.start_timer("universe-evaluate", period_s=self._period_s, catch_up=False)
        self._publish()

    def _load_state(self) -> None:
        if self._store is None:
            return
        try:
            reply = self.registry.ask(
                self._store, GetState(namespace=STATE_NAMESPACE, key=STATE_KEY), timeout=5
            )
            state = reply.value(None)
        except Exception as exc:  # a dead or slow store means "no saved state", said loudly
            self._log.warning("could not load the saved universe ({}); starting empty", exc)
            return
        if not state:
            return
        try:
            self._tracker.import_state(state)
        except (TypeError, ValueError) as exc:
            self._log.warning("saved universe unreadable ({}); starting empty", exc)
            self._tracker = UniverseTracker(self._tracker.rules)
            return
        self._saved = self._tracker.export_state()
        self._log.info("loaded a universe of {} member(s)", len(self._tracker.members))

    def redeliverable(self, message: Message) -> bool:
        """Tickers are superseded within a second."""
        return not isinstance(message, Tickers)

    def _now_ms(self) -> int:
        return exchange_now_ms(self._server_time, self.clock)

    # --- messages -----------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Dispatch (actor thread)."""
        match message:
            case Tickers():
                self._counts["universe_tickers_total"] += self._tracker.observe(message.items)
                self.report_progress()
            case RestResponse(request_id="exchangeInfo"):
                self._handle_exchange_info(message)
            case RestResponse():
                pass
            case Tick(timer="universe-evaluate"):
                self._evaluate()
            case "universe":
                return self._universe
            case "trading":
                return self._trading
            case _:
                return super().on_receive(message)
        return None

    def _request_exchange_info(self) -> None:
        if self._gateway is None or self._info_pending:
            return
        request = rest_request(
            "/fapi/v1/exchangeInfo",
            request_id="exchangeInfo",
            caller=self.name,
            priority="high",
            expires_after_s=60.0,
        )
        self._info_pending = self.registry.tell(self._gateway, request)

    def _handle_exchange_info(self, response: RestResponse) -> None:
        if response.caller == self.name:
            self._info_pending = False
        if not response.ok or response.body is None:
            self._counts["universe_exchange_info_errors_total"] += 1
            self._log.warning("exchangeInfo failed: {}", response.error_message)
            return
        try:
            symbols = trading_usdt_perpetuals(response.body)
        except FrameError as exc:
            self._counts["universe_exchange_info_errors_total"] += 1
            self._log.warning("exchangeInfo unreadable: {}", exc)
            return
        if not symbols:
            self._log.warning("exchangeInfo lists no TRADING USDT perpetual; keeping the list")
            return
        first = not self._trading
        self._trading = frozenset(symbols)
        covered = tuple(Symbol(s) for s in sorted(self._trading - self._tracker.rules.exclude))
        if self._trading_msg is None or self._trading_msg.symbols != covered:
            self._trading_msg = TradingUniverse(
                symbols=covered, updated_ms=TimestampMs(self._now_ms())
            )
        self._tracker.forget_unlisted(self._trading)
        self._log.info("{} TRADING USDT perpetuals", len(self._trading))
        if first and self._counts["universe_tickers_total"]:
            self._evaluate()  # no need to wait a whole period for the first universe
        self._publish()

    def _evaluate(self) -> None:
        if not self._trading:
            self._request_exchange_info()
        now_ms = self._now_ms()
        result = self._tracker.evaluate(self._trading, now_ms)
        universe = result.universe
        self._counts["universe_evaluations_total"] += 1
        if result.held:
            self._counts["universe_held_total"] += 1
            if result.held != self._held:
                log = self._log.warning if universe.members else self._log.info
                log("universe held at {} member(s): {}", len(universe.members), result.held)
        self._held = result.held
        if universe.entered or universe.left:
            self._counts["universe_entered_total"] += len(universe.entered)
            self._counts["universe_left_total"] += len(universe.left)
            self._log.info(
                "universe: {} member(s), +{} -{} {}",
                len(universe.members),
                list(universe.entered),
                list(universe.left),
                dict(result.reasons),
            )
        self._universe = universe
        self._save_state()
        if self._poller is not None and self._trading_msg is not None:
            self.registry.tell(self._poller, self._trading_msg)
        if universe.members:  # never an empty set, to anybody
            if self._poller is not None:
                self.registry.tell(self._poller, universe)
            if not result.held:  # a held set is not fresh data (volumes may be unknown)
                self._maybe_post(universe)
        self._publish()

    def _maybe_post(self, universe: LiquidUniverse) -> None:
        if not self._post:
            return
        members = tuple(m.symbol for m in universe.members)
        now = self.clock.monotonic()
        if members == self._posted_members and now - self._posted_mono < self._post_every_s:
            return
        if self.registry.tell(self._poster, universe):
            self._posted_members, self._posted_mono = members, now
            self._counts["universe_posts_total"] += 1
        else:
            self._log.error("no {} to post the liquid universe to", self._poster)

    def _save_state(self) -> None:
        if self._store is None:
            return
        state = self._tracker.export_state()
        if state == self._saved:
            return
        if self.registry.tell(self._store, PutState.of(STATE_NAMESPACE, STATE_KEY, state)):
            self._saved = state
        else:
            self._log.error("no store to save the universe in; a restart loses the hysteresis")

    def _publish(self) -> None:
        counters = dict(self._counts)
        counters["universe_members"] = len(self._tracker.members)
        counters["universe_trading_symbols"] = len(self._trading)
        counters["universe_held"] = 1 if self._held else 0
        if self._universe is not None:
            counters["universe_updated_ms"] = TimestampMs(self._universe.updated_ms)
        self._status.count(self.name, counters)
