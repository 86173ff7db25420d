"""The simulated symbol universe: which symbols exist and which real history each one plays.

Every simulated symbol plays an hourly series from :mod:`simulator.history`:

- a symbol with real data plays its own series; names without data (the manifest's non-ASCII
  names, padding such as ``SIM001USDT``, scripted listings) borrow another symbol's series
  with a different phase and price scale;
- **live** mode starts each series at a seeded random hour (its *phase*) and wraps around at the
  end. Prices are detrended per lap (a constant multiplier per hour), so a series that rose
  3x in its week does not compound lap after lap;
- **replay** mode maps simulated time onto the real timestamps (phase 0); inside the real
  window (lap 0) the candles are the real ones, bit for bit. Borrowed series keep their
  seeded phase, anchored to the history window (not to the replay's start), so an hour
  replays the same whichever hour the replay starts at.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.history import HOUR_MS, History, SymbolSeries
from simulator.intrahour import stable_seed

if TYPE_CHECKING:
    from simulator.config import SimulatorConfig

__all__ = ["Instrument", "base_asset", "build_universe", "make_instrument"]


def base_asset(symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC`` (the quote suffix removed)."""
    return symbol.removesuffix("USDT")


@dataclass(slots=True)
class Instrument:
    """One simulated USDT perpetual and the mapping of its time onto a real series."""

    symbol: str
    series: SymbolSeries
    ordinal: int
    phase_ms: int
    """``real time = simulated time + phase_ms`` (a whole number of hours)."""
    price_scale: float = 1.0
    exact_lap: int | None = None
    """The lap played without detrending (replay: 0), or ``None``."""
    price_decimals: int = 2
    qty_decimals: int = 3
    quote_decimals: int = 5
    template: str | None = None
    """The real symbol whose series this one borrows, if any."""
    listed_from: int | None = None
    delisted_at: int | None = None
    onboard_ms: int = 0
    lap_ms: int = field(init=False)
    lap_factor: float = field(init=False)
    trade_id_base: int = field(init=False)
    trades_per_ms: float = field(init=False)
    oi_points: list[tuple[int, float]] = field(init=False)
    funding_times: list[int] = field(init=False)

    def __post_init__(self) -> None:
        rows = self.series.rows
        self.lap_ms = len(rows) * HOUR_MS
        self.lap_factor = rows[-1].c / rows[0].o if rows[0].o > 0 else 1.0
        self.trade_id_base = 100_000_000 + stable_seed("tid", self.symbol) % 4_000_000_000
        self.trades_per_ms = max(1.0, sum(r.n for r in rows) / len(rows)) / HOUR_MS
        self.oi_points = self._cyclic_oi()
        self.funding_times = [t for t, _ in self.series.funding]

    @property
    def base_asset(self) -> str:
        """The base asset name."""
        return base_asset(self.symbol)

    def locate(self, t_ms: int) -> tuple[int, int]:
        """``(lap, offset_ms)`` of simulated time ``t_ms`` inside the real series."""
        off = t_ms + self.phase_ms - self.series.start_ms
        lap, x = divmod(off, self.lap_ms)
        return lap, x

    def hour_multiplier(self, hour_ms: int) -> float:
        """The constant price multiplier of the simulated hour opening at ``hour_ms``."""
        lap, x = self.locate(hour_ms)
        if self.exact_lap is not None and lap == self.exact_lap:
            return self.price_scale
        mid = (x + HOUR_MS / 2) / self.lap_ms
        return self.price_scale * math.pow(self.lap_factor, -mid)

    def real_offset(self, t_ms: int) -> int:
        """Real timestamp that ``t_ms`` plays, folded into the series' first lap."""
        return self.series.start_ms + self.locate(t_ms)[1]

    def _cyclic_oi(self) -> list[tuple[int, float]]:
        start, end = self.series.start_ms, self.series.start_ms + self.lap_ms
        pts = self.series.oi
        if not pts:
            rows = self.series.rows
            level = sum(r.q for r in rows) / len(rows) * 3.0 / rows[-1].c
            return [(start, level), (end, level)]
        first = _interpolate(pts, start)
        inside = [(t, v) for t, v in pts if start < t < end]
        return [(start, first), *inside, (end, first)]

    def open_interest_base(self, t_ms: int) -> float:
        """Open interest (contracts) of the real series at the time ``t_ms`` plays."""
        return _interpolate(self.oi_points, self.real_offset(t_ms)) / self.price_scale


def _interpolate(points: list[tuple[int, float]], t: int) -> float:
    times = [p[0] for p in points]
    i = bisect.bisect_right(times, t)
    if i == 0:
        return points[0][1]
    if i >= len(points):
        return points[-1][1]
    (t0, v0), (t1, v1) = points[i - 1], points[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1


def make_instrument(  # noqa: PLR0913 - keyword-only knobs
    symbol: str,
    history: History,
    ordinal: int,
    *,
    seed: int,
    replay: bool,
    start_ms: int,
    template: str | None = None,
) -> Instrument:
    """Build the instrument for ``symbol`` (borrowing ``template``'s series if it has none)."""
    rng = random.Random(stable_seed("instrument", seed, symbol))
    own = history.series.get(symbol) if template is None else None
    if own is None:
        # A replay plays the same market whatever hour it starts at: borrowed series are
        # anchored to the history window, not to the replay's first hour.
        anchor = history.window_start_ms if replay else start_ms
        full = sorted(s for s, ser in history.series.items() if len(ser.rows) >= 168)
        pool = full or sorted(history.series)
        source = history.series.get(template or "")
        source = source or history.series[pool[stable_seed("tpl", seed, symbol) % len(pool)]]
        scale = 10 ** rng.uniform(-1.0, 1.0)
        extra = math.ceil(-math.log10(scale)) if scale < 1 else 0
        return Instrument(
            symbol,
            source,
            ordinal,
            phase_ms=_phase(source, rng, anchor),
            price_scale=scale,
            price_decimals=min(8, source.price_decimals + extra),
            qty_decimals=source.qty_decimals,
            quote_decimals=source.quote_decimals,
            template=source.symbol,
        )
    if replay:
        inst = Instrument(
            symbol,
            own,
            ordinal,
            phase_ms=0,
            exact_lap=0,
            price_decimals=own.price_decimals,
            qty_decimals=own.qty_decimals,
            quote_decimals=own.quote_decimals,
        )
        if own.start_ms > history.window_start_ms:
            inst.listed_from = own.start_ms
        return inst
    return Instrument(
        symbol,
        own,
        ordinal,
        phase_ms=_phase(own, rng, start_ms),
        price_decimals=own.price_decimals,
        qty_decimals=own.qty_decimals,
        quote_decimals=own.quote_decimals,
    )


def _phase(series: SymbolSeries, rng: random.Random, start_ms: int) -> int:
    first_hour = rng.randrange(len(series.rows))
    return series.start_ms + first_hour * HOUR_MS - start_ms // HOUR_MS * HOUR_MS


def build_universe(history: History, config: SimulatorConfig, start_ms: int) -> list[Instrument]:
    """The instruments of a simulator: ``config.symbol_names``, else the manifest order.

    The manifest order is padded or cut to ``config.symbols``.
    """
    names = list(history.order)
    if config.symbol_names is not None:
        names = list(config.symbol_names)
    elif config.symbols is not None:
        if config.symbols <= len(names):
            names = names[: config.symbols]
        else:
            names += [f"SIM{i:03d}USDT" for i in range(1, config.symbols - len(names) + 1)]
    replay = config.mode == "replay"
    return [
        make_instrument(name, history, i, seed=config.seed, replay=replay, start_ms=start_ms)
        for i, name in enumerate(names)
    ]
