"""The market model: prices, candles and 24 h statistics of every simulated symbol at any time.

The market is a pure function of (seed, simulated time, scenario overlays): nothing advances
in the background, so the WebSocket publisher, REST handlers and tests all see the same values
for the same instant. Hourly candles come from the real history (see :mod:`simulator.universe`);
inside an hour a seeded path (:mod:`simulator.intrahour`) gives every sub-hour candle, the
latest price and the growth of the open candle's volume towards the hourly total.

Mark price, index, funding and open interest live in :mod:`simulator.derivatives`.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from simulator.history import HOUR_MS, History
from simulator.intervals import interval_open, next_open, previous_open
from simulator.intrahour import HourPath, build_path, stable_seed
from simulator.overlays import Overlays
from simulator.universe import Instrument, build_universe, make_instrument

if TYPE_CHECKING:
    from simulator.config import SimulatorConfig
    from supervisors.clock import Clock

__all__ = ["DAY_MS", "Agg", "Bar", "Candle", "Market"]

DAY_MS = 86_400_000
_BAR_CACHE = 200_000
_PATH_CACHE = 6_000


@dataclass(frozen=True, slots=True)
class Bar:
    """One simulated hourly candle before overlays."""

    o: float
    h: float
    l: float  # noqa: E741 - Binance's own field letter
    c: float
    v: float
    q: float
    n: int
    taker: float
    seed: int
    raw: tuple[str, str, str, str, str, str] | None


@dataclass(frozen=True, slots=True)
class Agg:
    """Aggregated trading of one symbol over a time range."""

    o: float
    h: float
    l: float  # noqa: E741 - Binance's own field letter
    c: float
    v: float
    q: float
    n: int
    taker_v: float
    taker_q: float
    first_id: int
    last_id: int
    raw: tuple[str, str, str, str, str, str] | None = None
    """The exchange's own strings when the range is exactly one untouched real hour."""


@dataclass(frozen=True, slots=True)
class Candle:
    """A kline: ``close_ms`` is ``open_ms + interval - 1``; ``closed`` is Binance's ``x``."""

    symbol: str
    interval: str
    open_ms: int
    close_ms: int
    agg: Agg
    closed: bool


class Market:
    """Every symbol's trading at any simulated time.

    Args:
        history: the real (or synthetic) history to draw from.
        config: the simulator configuration (seed, mode, universe size, history depth).
        clock: the simulator's clock (only read for "now" defaults).
        start_ms: the simulated start time (anchors live-mode phases and the history floor).
    """

    def __init__(
        self, history: History, config: SimulatorConfig, clock: Clock, start_ms: int
    ) -> None:
        self.history = history
        self.config = config
        self.clock = clock
        self.start_ms = start_ms
        self.overlays = Overlays()
        self.history_floor_ms = (start_ms - config.history_days * DAY_MS) // HOUR_MS * HOUR_MS
        self._lock = threading.Lock()
        self._instruments: dict[str, Instrument] = {}
        for inst in build_universe(history, config, start_ms):
            inst.onboard_ms = self.history_floor_ms
            self._instruments[inst.symbol] = inst
        self._bars: dict[tuple[str, int], Bar] = {}
        self._paths: dict[tuple[str, int], HourPath] = {}

    # -- universe -----------------------------------------------------------------------

    def now_ms(self) -> int:
        """The simulator's current time."""
        return self.clock.time_ms()

    def instrument(self, symbol: str) -> Instrument | None:
        """The instrument named ``symbol`` (listed or not), or ``None``."""
        return self._instruments.get(symbol)

    def instruments(self) -> list[Instrument]:
        """Every instrument ever created, listed or not, in universe order."""
        return list(self._instruments.values())

    @staticmethod
    def _listed(inst: Instrument, t_ms: int) -> bool:
        return (inst.listed_from is None or t_ms >= inst.listed_from) and (
            inst.delisted_at is None or t_ms < inst.delisted_at
        )

    def is_listed(self, symbol: str, t_ms: int | None = None) -> bool:
        """Whether ``symbol`` trades at ``t_ms`` (default: now)."""
        inst = self._instruments.get(symbol)
        return inst is not None and self._listed(inst, self.now_ms() if t_ms is None else t_ms)

    def listed(self, t_ms: int | None = None) -> list[Instrument]:
        """The instruments trading at ``t_ms`` (default: now), in universe order."""
        t = self.now_ms() if t_ms is None else t_ms
        return [i for i in self._instruments.values() if self._listed(i, t)]

    def symbols(self, t_ms: int | None = None) -> list[str]:
        """Names of the symbols trading at ``t_ms`` (default: now)."""
        return [i.symbol for i in self.listed(t_ms)]

    def add_instrument(self, symbol: str, template: str | None = None) -> Instrument:
        """Create ``symbol`` (for a scripted listing), borrowing ``template``'s history."""
        with self._lock:
            if symbol in self._instruments:
                return self._instruments[symbol]
            inst = make_instrument(
                symbol,
                self.history,
                len(self._instruments),
                seed=self.config.seed,
                replay=False,
                start_ms=self.start_ms,
                template=template or "",
            )
            inst.onboard_ms = self.history_floor_ms
            self._instruments = {**self._instruments, symbol: inst}
            return inst

    # -- hours and paths ----------------------------------------------------------------

    def bar(self, inst: Instrument, hour_ms: int) -> Bar:
        """The base (overlay-free) hourly candle of ``inst`` opening at ``hour_ms``."""
        key = (inst.symbol, hour_ms)
        bar = self._bars.get(key)
        if bar is not None:
            return bar
        _lap, x = inst.locate(hour_ms)
        row = inst.series.rows[x // HOUR_MS]
        m = inst.hour_multiplier(hour_ms)
        seed = stable_seed(self.config.seed, inst.symbol, hour_ms)
        drift = (row.c - row.o) / row.o if row.o else 0.0
        noise = random.Random(seed ^ 0x5A5A5A).gauss(0.0, 0.02)
        taker = min(0.7, max(0.3, 0.5 + 0.1 * math.tanh(drift * 40.0) + noise))
        exact = m == 1.0 and inst.template is None
        bar = Bar(
            row.o * m, row.h * m, row.l * m, row.c * m, row.v / m, row.q, row.n, taker, seed,
            row.raw if exact else None,
        )  # fmt: skip
        self._store(self._bars, key, bar, _BAR_CACHE)
        return bar

    def path(self, inst: Instrument, hour_ms: int) -> HourPath:
        """The intra-hour path of ``inst``'s hour opening at ``hour_ms``."""
        key = (inst.symbol, hour_ms)
        path = self._paths.get(key)
        if path is None:
            b = self.bar(inst, hour_ms)
            path = build_path(hour_ms, (b.o, b.h, b.l, b.c), b.seed)
            self._store(self._paths, key, path, _PATH_CACHE)
        return path

    def _store(
        self, cache: dict[Any, Any], key: tuple[str, int], value: object, limit: int
    ) -> None:
        with self._lock:
            if len(cache) >= limit:
                for k in list(islice(cache, limit // 2)):
                    cache.pop(k, None)
            cache[key] = value

    # -- prices and candles -------------------------------------------------------------

    def price(self, symbol: str, t_ms: int | None = None) -> float:
        """Last traded price of ``symbol`` at ``t_ms`` (default: now), overlays included."""
        inst = self._require(symbol)
        t = self.now_ms() if t_ms is None else t_ms
        hour = t // HOUR_MS * HOUR_MS
        return self.path(inst, hour).price(t) * self.overlays.price_factor(symbol, t)

    def _require(self, symbol: str) -> Instrument:
        inst = self._instruments.get(symbol)
        if inst is None:
            raise KeyError(symbol)
        return inst

    def trade_id(self, inst: Instrument, t_ms: int) -> int:
        """A monotonic trade id at ``t_ms`` (first/last ids of klines and tickers)."""
        return inst.trade_id_base + int((t_ms - self.history_floor_ms) * inst.trades_per_ms)

    def aggregate(self, symbol: str, a_ms: int, b_ms: int) -> Agg | None:
        """Trading of ``symbol`` in ``[a_ms, b_ms]``, or ``None`` if it did not trade then."""
        inst = self._require(symbol)
        a = max(a_ms, self.history_floor_ms, inst.listed_from or a_ms)
        b = min(b_ms, inst.delisted_at or b_ms)
        if b <= a:
            return None
        ov = self.overlays
        has_price = ov.has_price(symbol)
        shift = (lambda t: ov.price_factor(symbol, t)) if has_price else None
        o = c = 0.0
        hi, lo = -math.inf, math.inf
        v = q = tv = tq = 0.0
        n = 0
        raw = None
        hour = a // HOUR_MS * HOUR_MS
        while hour < b:
            bar = self.bar(inst, hour)
            s, e = max(a, hour), min(b, hour + HOUR_MS)
            if s == hour and e == hour + HOUR_MS and shift is None:
                so, sh, sl, sc, frac = bar.o, bar.h, bar.l, bar.c, 1.0
                if s == a and e == b:
                    raw = bar.raw
            else:
                seg = self.path(inst, hour).segment(s, e, shift)
                so, sh, sl, sc, frac = seg.o, seg.h, seg.l, seg.c, seg.frac
            if hour <= a:
                o = so
            c = sc
            hi, lo = max(hi, sh), min(lo, sl)
            v += bar.v * frac
            q += bar.q * frac
            tv += bar.v * frac * bar.taker
            tq += bar.q * frac * bar.taker
            n += round(bar.n * frac) if frac < 1.0 else bar.n
            hour += HOUR_MS
        extra = ov.extra_volume(symbol, a, b)
        if extra > 0.0:
            raw = None
            mid = (o + c) / 2 or 1.0
            v += extra / mid
            q += extra
            tv += extra / mid * 0.55
            tq += extra * 0.55
            n += int(extra / max(q / max(n, 1), 1.0))
        if has_price:
            raw = None
        first = self.trade_id(inst, a)
        return Agg(
            o, hi, lo, c, v, q, n, tv, tq, first, max(first, self.trade_id(inst, b) - 1), raw
        )

    def candle(self, symbol: str, interval: str, open_ms: int, now_ms: int) -> Candle | None:
        """The ``interval`` candle of ``symbol`` opening at ``open_ms``, as seen at ``now_ms``."""
        nxt = next_open(interval, open_ms)
        agg = self.aggregate(symbol, open_ms, min(now_ms, nxt))
        if agg is None:
            return None
        return Candle(symbol, interval, open_ms, nxt - 1, agg, now_ms >= nxt)

    def klines(  # noqa: PLR0913 - mirrors GET /fapi/v1/klines
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        now_ms: int,
    ) -> list[Candle]:
        """Candles as ``GET /fapi/v1/klines`` selects them (oldest first, open candle last)."""
        current = interval_open(interval, now_ms)
        last = current if end_ms is None else min(current, interval_open(interval, end_ms))
        inst = self._require(symbol)
        floor = interval_open(interval, max(self.history_floor_ms, inst.listed_from or 0))
        opens: list[int] = []
        if start_ms is not None:
            t = interval_open(interval, start_ms)
            if t < start_ms:
                t = next_open(interval, t)
            t = max(t, floor)
            while t <= last and len(opens) < limit:
                opens.append(t)
                t = next_open(interval, t)
        else:
            t = last
            while t >= floor and len(opens) < limit:
                opens.append(t)
                t = previous_open(interval, t)
            opens.reverse()
        out = []
        for t in opens:
            c = self.candle(symbol, interval, t, now_ms)
            if c is not None:
                out.append(c)
        return out

    def rolling_24h(self, symbol: str, t_ms: int) -> Agg | None:
        """The 24 h rolling statistics of ``symbol`` ending at ``t_ms``."""
        return self.aggregate(symbol, t_ms - DAY_MS, t_ms)
