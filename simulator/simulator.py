"""The Binance USD-M simulator facade: one object that owns the market, the servers and the faults.

::

    sim = Simulator(SimulatorConfig(symbols=50, kline_period=0.05)).start()
    ws = websocket.create_connection(sim.ws_url + "/market/stream?streams=!markPrice@arr")
    requests.get(sim.rest_url + "/fapi/v1/exchangeInfo", timeout=5)
    sim.scenarios.volume_spike("BTCUSDT", ratio=4, by_minute=10)
    with sim.faults.stall():
        ...
    sim.stop()
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Self

from loguru import logger

from simulator.clock import AcceleratedClock, SimClock
from simulator.config import SimulatorConfig, resolve_fixtures_dir
from simulator.derivatives import Derivatives
from simulator.exchange_info import ExchangeInfoBuilder
from simulator.faults import SimulatorFaults
from simulator.history import load_history
from simulator.market import Market
from simulator.publisher import Publisher
from simulator.rest_server import BinanceRest
from simulator.scenarios import Scenarios
from simulator.ws_faults import WsFaultState
from simulator.ws_server import WsServer

if TYPE_CHECKING:
    import threading
    from types import TracebackType

    from supervisors.clock import Clock

__all__ = ["Simulator"]


class Simulator:
    """A Binance USD-M exchange on loopback: WebSocket streams, REST, market model, faults.

    Args:
        config: the configuration (defaults: Binance's documented numbers).
        clock: a clock to run on (e.g. :class:`~supervisors.clock.FakeClock`); default: an
            :class:`~simulator.clock.AcceleratedClock` starting at ``config.start_ms`` (or now,
            or the history window in replay mode) at ``config.speed``.

    Attributes:
        clock: the simulator's clock (a :class:`~simulator.clock.SimClock`; share it with the
            daemon under test so both agree on time).
        market: prices and candles (:class:`~simulator.market.Market`).
        derivatives: mark/index/funding/open interest.
        scenarios: scripted events (:class:`~simulator.scenarios.Scenarios`).
        faults: fault injection (:class:`~simulator.faults.SimulatorFaults`).
        rest: the REST server (``rest.request_log``, ``rest.consume_weight(n)``, ``rest.limiter``).
        ws: the WebSocket server (``ws.closed_connections``, ``ws.wait_for_connections``).
    """

    def __init__(
        self, config: SimulatorConfig | None = None, *, clock: Clock | None = None
    ) -> None:
        self.config = config = config or SimulatorConfig()
        self.history = load_history(resolve_fixtures_dir(config.fixtures_dir), config.seed)
        if clock is not None:
            start_ms = clock.time_ms()
            base: Clock = clock
        else:
            if config.start_ms is not None:
                start_ms = config.start_ms
            elif config.mode == "replay":
                start_ms = self.history.window_start_ms
            else:
                start_ms = int(time.time() * 1000)
            base = AcceleratedClock(start_ms / 1000.0, config.speed)
        self.start_ms = start_ms
        self.clock = SimClock(base)
        self.market = Market(self.history, config, self.clock, start_ms)
        self.derivatives = Derivatives(self.market)
        self.scenarios = Scenarios(self.market)
        self.exchange_info = ExchangeInfoBuilder(
            self.market, config.weight_limit, extra_contracts=config.extra_contracts
        )
        self._ws_faults = WsFaultState()
        self.ws = WsServer(config, self._ws_faults, self.clock)
        self.rest = BinanceRest(
            self.market, self.derivatives, self.exchange_info, self.clock, config
        )
        self.publisher = Publisher(self.market, self.derivatives, self.ws, self.clock, config)
        self.faults = SimulatorFaults(self.ws, self._ws_faults, self.rest, self.clock)
        self._running = False

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>``; append ``/market/stream?streams=...`` and the like."""
        return self.ws.url

    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:<port>``; append ``/fapi/v1/...``."""
        return self.rest.url

    def threads(self) -> list[threading.Thread]:
        """The threads this simulator started that are still alive (none after :meth:`stop`)."""
        return [*self.publisher.threads(), *self.ws.threads(), *self.rest.threads()]

    def set_speed(self, speed: float) -> None:
        """Change the speed of the built-in accelerated clock (e.g. boot slowly, replay fast).

        Raises:
            TypeError: if the simulator runs on a clock it was given (that clock's owner moves it).
        """
        base = self.clock.base
        if not isinstance(base, AcceleratedClock):
            raise TypeError(f"the simulator runs on {base!r}, not its own accelerated clock")
        base.set_speed(speed)

    @property
    def running(self) -> bool:
        """Whether :meth:`start` ran and :meth:`stop` did not."""
        return self._running

    def start(self) -> Self:
        """Bind the servers and start publishing; returns ``self``."""
        if self._running:
            return self
        self.rest.start()
        try:
            self.ws.start()
        except Exception:
            self.rest.stop()
            raise
        self.publisher.start()
        self._running = True
        logger.info(
            "simulator: {} symbols ({}), mode={}, speed={}, ws={} rest={}",
            len(self.market.listed()),
            self.history.source,
            self.config.mode,
            self.config.speed,
            self.ws_url,
            self.rest_url,
        )
        return self

    def stop(self) -> None:
        """Stop publishing, close every connection and join every thread (idempotent)."""
        self.faults.clear()
        self.publisher.stop()
        self.ws.stop()
        self.rest.stop()
        if self._running:
            logger.info("simulator: stopped")
        self._running = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Simulator(ws={self.ws_url!r}, rest={self.rest_url!r}, running={self._running})"
