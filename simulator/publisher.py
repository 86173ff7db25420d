"""The stream publisher: builds market-stream frames on their cadences and hands them to the server.

One thread. Every tick it reads the simulator clock once, builds the frames that are due *and*
subscribed somewhere (``!markPrice@arr`` every 3 s, ``@1s`` variants every second, tickers every
second, klines every 250 ms - all configurable, in real seconds), serializes each payload once
and passes them to :meth:`~simulator.ws_server.WsServer.publish`.

Closed candles (``x: true``): Binance sends a closed candle once, at (or just after) its close,
to the connections subscribed at that moment; it never replays candles that closed earlier.
So each subscribed kline stream remembers the open time of the candle it last sent, and when
simulated time has moved past that candle's close the next update sends *that* candle once
with ``x: true``, then the current one. The memory is forgotten as soon as no connection holds
the stream, so a new subscriber starts with the current candle (``x: false``) however long
the stream was idle. A clock jump (or a speed so high that a tick spans several candles) gets
the same answer real Binance would give across a gap: one closed candle - the one that was
open at the previous update - then the current one; the candles in between, never open while
anyone watched, are not sent (REST ``/fapi/v1/klines`` has them). A backward jump sends no
closed candle, only the current one.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

from simulator import payloads
from simulator.intervals import interval_open, is_interval

if TYPE_CHECKING:
    from simulator.config import SimulatorConfig
    from simulator.derivatives import Derivatives
    from simulator.market import Market
    from simulator.universe import Instrument
    from simulator.ws_server import WsServer
    from supervisors.clock import Clock

__all__ = ["Publisher"]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class Publisher:
    """Builds and publishes stream frames.

    Args:
        market: the market model.
        derivatives: mark/funding views.
        server: the WebSocket server to publish to.
        clock: the simulator clock (event times and market time).
        config: stream periods.
    """

    def __init__(
        self,
        market: Market,
        derivatives: Derivatives,
        server: WsServer,
        clock: Clock,
        config: SimulatorConfig,
    ) -> None:
        self.market = market
        self.derivatives = derivatives
        self.server = server
        self.clock = clock
        self.periods = {
            "mark": config.mark_price_period,
            "mark1s": config.mark_price_fast_period,
            "ticker": config.ticker_period,
            "kline": config.kline_period,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._kline_open: dict[str, int] = {}
        """Kline stream name -> open time of the candle it last sent (subscribed streams only)."""
        self._lower: dict[str, str] = {}
        self._ticked = threading.Condition()
        self.ticks = 0
        """Publishing rounds so far."""

    def start(self) -> None:
        """Start the publishing thread."""
        self._thread = threading.Thread(target=self._run, name="sim-publisher")
        self._threads.append(self._thread)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the publishing thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def threads(self) -> list[threading.Thread]:
        """The threads this publisher started that are still alive (none after :meth:`stop`)."""
        return [t for t in self._threads if t.is_alive()]

    def wait_for_ticks(self, count: int, timeout: float) -> bool:
        """Block until ``count`` more publishing rounds have run (or ``timeout`` real seconds)."""
        with self._ticked:
            target = self.ticks + count
            return self._ticked.wait_for(lambda: self.ticks >= target, timeout)

    def _run(self) -> None:
        now = time.monotonic()
        due = dict.fromkeys(self.periods, now)
        while not self._stop.is_set():
            now = time.monotonic()
            kinds = [k for k, t in due.items() if t <= now]
            for k in kinds:
                due[k] = max(due[k] + self.periods[k], now)
            if kinds:
                try:
                    frames = self.build(kinds, self.server.active_streams())
                    if frames:
                        self.server.publish(frames)
                except Exception:
                    logger.exception("simulator publisher: building frames failed")
                with self._ticked:
                    self.ticks += 1
                    self._ticked.notify_all()
            self._stop.wait(max(0.0, min(due.values()) - time.monotonic()))

    # -- frame building -----------------------------------------------------------------

    def _instrument(self, lower: str) -> Instrument | None:
        name = self._lower.get(lower)
        if name is None:
            self._lower = {i.symbol.lower(): i.symbol for i in self.market.instruments()}
            name = self._lower.get(lower)
        return None if name is None else self.market.instrument(name)

    def _listed(self, lower: str, now: int) -> Instrument | None:
        inst = self._instrument(lower)
        return inst if inst is not None and self.market.is_listed(inst.symbol, now) else None

    def build(self, kinds: list[str], active: frozenset[str]) -> list[tuple[str, str]]:
        """Frames ``(stream, raw JSON)`` for the due ``kinds``, limited to ``active`` streams."""
        if any(name not in active for name in self._kline_open):
            # Nobody holds these streams any more: a later subscriber starts afresh.
            self._kline_open = {k: v for k, v in self._kline_open.items() if k in active}
        if not active:
            return []
        now = self.clock.time_ms()
        per_kind: dict[str, list[tuple[str, str]]] = {}
        for name in active:
            if not name.startswith("!"):
                sym, _, kind = name.partition("@")
                per_kind.setdefault(kind, []).append((name, sym))
        frames: list[tuple[str, str]] = []
        if "mark" in kinds:
            frames += self._mark_frames(now, active, per_kind, "markPrice")
        if "mark1s" in kinds:
            frames += self._mark_frames(now, active, per_kind, "markPrice@1s")
        if "ticker" in kinds:
            frames += self._ticker_arrays(now, active)
            frames += self._symbol_tickers(now, per_kind)
        if "kline" in kinds:
            frames += self._all_klines(now, per_kind)
        return frames

    def _all_klines(
        self, now: int, per_kind: dict[str, list[tuple[str, str]]]
    ) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for kind, streams in per_kind.items():
            if kind.startswith("kline_") and is_interval(kind[6:]):
                for name, sym in streams:
                    out += self._kline_frames(now, name, sym, kind[6:])
        return out

    def _mark_frames(
        self,
        now: int,
        active: frozenset[str],
        per_kind: dict[str, list[tuple[str, str]]],
        kind: str,
    ) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        all_name = "!markPrice@arr" + kind[len("markPrice") :]
        if all_name in active:
            items = [
                payloads.mark_price_update(i, now, self.derivatives.mark(i.symbol, now))
                for i in self.market.listed(now)
            ]
            out.append((all_name, _dumps(items)))
        for name, sym in per_kind.get(kind, []):
            inst = self._listed(sym, now)
            if inst is not None:
                st = self.derivatives.mark(inst.symbol, now)
                out.append((name, _dumps(payloads.mark_price_update(inst, now, st))))
        return out

    def _ticker_arrays(self, now: int, active: frozenset[str]) -> list[tuple[str, str]]:
        full, mini = "!ticker@arr" in active, "!miniTicker@arr" in active
        if not (full or mini):
            return []
        tickers, minis = [], []
        for inst in self.market.listed(now):
            agg = self.market.rolling_24h(inst.symbol, now)
            if agg is not None:
                tickers.append(payloads.ticker_event(inst, now, agg))
                minis.append(payloads.mini_ticker_event(inst, now, agg))
        out = [("!ticker@arr", _dumps(tickers))] if full else []
        return out + ([("!miniTicker@arr", _dumps(minis))] if mini else [])

    def _symbol_tickers(
        self, now: int, per_kind: dict[str, list[tuple[str, str]]]
    ) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for kind, build in (
            ("ticker", payloads.ticker_event),
            ("miniTicker", payloads.mini_ticker_event),
        ):
            for name, sym in per_kind.get(kind, []):
                inst = self._listed(sym, now)
                agg = None if inst is None else self.market.rolling_24h(inst.symbol, now)
                if inst is not None and agg is not None:
                    out.append((name, _dumps(build(inst, now, agg))))
        return out

    def _kline_frames(self, now: int, name: str, sym: str, interval: str) -> list[tuple[str, str]]:
        inst = self._instrument(sym)
        if inst is None:
            return []
        out: list[tuple[str, str]] = []
        current = interval_open(interval, now)
        last = self._kline_open.get(name)
        if last is not None and last < current:
            # The candle open at the previous update has closed: send it once, closed. Only
            # that one, even if a jump skipped several (see the module docstring).
            candle = self.market.candle(inst.symbol, interval, last, now)
            if candle is not None:
                out.append((name, _dumps(payloads.kline_event(inst, now, candle))))
        self._kline_open[name] = current
        if self.market.is_listed(inst.symbol, now):
            candle = self.market.candle(inst.symbol, interval, current, now)
            if candle is not None:
                out.append((name, _dumps(payloads.kline_event(inst, now, candle))))
        return out
