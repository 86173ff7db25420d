"""Mark price, index price, funding and open interest of the simulated perpetuals.

- **Index** follows the last price with a small smooth basis; **mark** = index x (1 + premium),
  the premium leaning with the funding rate (as on the exchange).
- **Funding**: each symbol plays its real ``fundingRate`` series (same phase as its candles), so
  settlement times keep the real 1 h / 4 h / 8 h intervals (which change inside the week for
  some symbols); between settlements the predicted rate moves linearly towards the next one.
  ``T`` (next funding time) is the next settlement, on the whole hour.
- **Open interest**: the real 4 h ``openInterestHist`` series, interpolated and made cyclic,
  times scenario OI ramps, plus a tiny smooth wobble.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.history import HOUR_MS

if TYPE_CHECKING:
    from simulator.market import Market
    from simulator.universe import Instrument

__all__ = ["OI_PERIODS", "Derivatives", "FundingRow", "MarkState", "OiRow"]

OI_PERIODS: dict[str, int] = {
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": 24 * HOUR_MS,
}
"""``period`` values accepted by ``/futures/data/openInterestHist``."""

INTEREST_RATE = 0.0001
DEFAULT_FUNDING = 0.0001


@dataclass(frozen=True, slots=True)
class MarkState:
    """What a ``markPriceUpdate`` / ``premiumIndex`` row carries."""

    mark: float
    index: float
    settle: float
    funding: float
    next_funding_ms: int
    interest: float = INTEREST_RATE


@dataclass(frozen=True, slots=True)
class FundingRow:
    """One settled funding (``GET /fapi/v1/fundingRate``)."""

    time_ms: int
    rate: float
    mark: float


@dataclass(frozen=True, slots=True)
class OiRow:
    """One ``openInterestHist`` row."""

    time_ms: int
    contracts: float
    value: float


def _wobble(t_ms: int, phase: float, period_s: float) -> float:
    return math.sin(2.0 * math.pi * (t_ms / 1000.0) / period_s + phase)


class Derivatives:
    """Mark/index/funding/OI views over a :class:`~simulator.market.Market`."""

    def __init__(self, market: Market) -> None:
        self.market = market

    # -- funding ------------------------------------------------------------------------

    def _funding(self, inst: Instrument, t_ms: int) -> tuple[float, int]:
        times = inst.funding_times
        rates = inst.series.funding
        if not times:
            return DEFAULT_FUNDING, (t_ms // (8 * HOUR_MS) + 1) * 8 * HOUR_MS
        x = inst.real_offset(t_ms)
        i = bisect.bisect_right(times, x)
        if i >= len(times):
            step = times[-1] - times[-2] if len(times) > 1 else 8 * HOUR_MS
            nxt = times[-1] + ((x - times[-1]) // step + 1) * step
            return rates[-1][1], (t_ms + nxt - x) // HOUR_MS * HOUR_MS
        nxt_t, nxt_rate = rates[i]
        prev_t, prev_rate = rates[i - 1] if i > 0 else (nxt_t - 8 * HOUR_MS, nxt_rate)
        progress = (x - prev_t) / (nxt_t - prev_t) if nxt_t > prev_t else 1.0
        predicted = prev_rate + (nxt_rate - prev_rate) * progress
        return predicted, (t_ms + nxt_t - x) // HOUR_MS * HOUR_MS

    def mark(self, symbol: str, t_ms: int) -> MarkState:
        """Mark, index, estimated settle price and funding of ``symbol`` at ``t_ms``."""
        inst = self.market.instrument(symbol)
        if inst is None:
            raise KeyError(symbol)
        last = self.market.price(symbol, t_ms)
        phase = (inst.trade_id_base % 1000) / 159.0
        index = last * (1.0 + 0.0002 * _wobble(t_ms, phase, 97.0))
        rate, next_ms = self._funding(inst, t_ms)
        premium = max(-0.01, min(0.01, rate * 0.5 + 0.0001 * _wobble(t_ms, phase, 41.0)))
        mark = index * (1.0 + premium)
        settle = index * (1.0 + 0.00005 * _wobble(t_ms, phase, 613.0))
        return MarkState(mark, index, settle, rate, next_ms)

    def funding_history(
        self, symbol: str, start_ms: int, end_ms: int, limit: int, *, newest: bool
    ) -> list[FundingRow]:
        """Settled funding of ``symbol`` in ``[start_ms, end_ms]``, oldest first.

        Args:
            symbol: the symbol.
            start_ms: earliest settlement time.
            end_ms: latest settlement time.
            limit: most rows returned.
            newest: keep the newest ``limit`` rows instead of the oldest.
        """
        inst = self.market.instrument(symbol)
        if inst is None or not inst.series.funding:
            return []
        lo = max(start_ms, self.market.history_floor_ms, inst.listed_from or start_ms)
        hi = min(end_ms, inst.delisted_at or end_ms)
        s0, lap = inst.series.start_ms, inst.lap_ms
        inside = [(t, r) for t, r in inst.series.funding if s0 <= t < s0 + lap]
        rows: list[FundingRow] = []
        k = (lo + inst.phase_ms - s0) // lap
        while True:
            base = s0 + k * lap - inst.phase_ms
            if base > hi:
                break
            for t, r in inside:
                sim_t = t - s0 + base
                if lo <= sim_t <= hi:
                    rows.append(FundingRow(sim_t, r, 0.0))
            k += 1
        rows = rows[-limit:] if newest else rows[:limit]
        return [FundingRow(r.time_ms, r.rate, self.mark(symbol, r.time_ms).mark) for r in rows]

    # -- open interest ------------------------------------------------------------------

    def open_interest(self, symbol: str, t_ms: int) -> float:
        """Open interest of ``symbol`` (contracts) at ``t_ms``, scenario ramps included."""
        inst = self.market.instrument(symbol)
        if inst is None:
            raise KeyError(symbol)
        base = inst.open_interest_base(t_ms)
        phase = (inst.trade_id_base % 997) / 101.0
        wobble = 1.0 + 0.0004 * _wobble(t_ms, phase, 53.0)
        return base * wobble * self.market.overlays.oi_factor(symbol, t_ms)

    def oi_history(  # noqa: PLR0913 - mirrors the endpoint's parameters
        self,
        symbol: str,
        period: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        *,
        now_ms: int,
    ) -> list[OiRow]:
        """``openInterestHist`` rows (oldest first, the last 30 days only)."""
        step = OI_PERIODS[period]
        inst = self.market.instrument(symbol)
        if inst is None:
            return []
        floor = max(now_ms - 30 * 24 * HOUR_MS, self.market.history_floor_ms)
        floor = max(floor, inst.listed_from or floor)
        last = (now_ms if end_ms is None else min(end_ms, now_ms)) // step * step
        first = floor // step * step + (step if floor % step else 0)
        if start_ms is not None:
            first = max(first, -(-start_ms // step) * step)
            times = list(range(first, last + 1, step))[:limit]
        else:
            times = list(range(max(first, last - (limit - 1) * step), last + 1, step))
        out = []
        for t in times:
            oi = self.open_interest(symbol, t)
            out.append(OiRow(t, oi, oi * self.mark(symbol, t).mark))
        return out
