"""The inside of one simulated hour: a price path and a cumulative-volume curve.

An hour is 61 price points (one per minute boundary, ``P[0]`` = open, ``P[60]`` = close) and a
cumulative volume fraction ``W`` (``W[0] = 0``, ``W[60] = 1`` exactly). The path touches the
hour's high and low exactly, so any candle aggregated from it (1m ... 1h) is consistent with
the hourly candle, and the full hour reproduces it. Everything is drawn from a seeded RNG, so
an hour looks the same every time it is asked for.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MINUTES", "HourPath", "Segment", "build_path", "stable_seed"]

MINUTES = 60
MINUTE_MS = 60_000


def stable_seed(*parts: object) -> int:
    """A process-independent 64-bit seed from ``parts`` (``hash()`` is salted per process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class Segment:
    """OHLC and the volume fraction of a time range inside one hour."""

    o: float
    h: float
    l: float  # noqa: E741 - Binance's own field letter
    c: float
    frac: float


@dataclass(frozen=True, slots=True)
class HourPath:
    """Price points and cumulative volume of one hour (both indexed by minute boundary)."""

    open_ms: int
    points: tuple[float, ...]
    cumulative: tuple[float, ...]

    def _locate(self, t_ms: int) -> tuple[int, float]:
        u = min(max((t_ms - self.open_ms) / MINUTE_MS, 0.0), float(MINUTES))
        j = min(int(u), MINUTES - 1)
        return j, u - j

    def price(self, t_ms: int) -> float:
        """The path's price at ``t_ms`` (linear between minute boundaries)."""
        j, f = self._locate(t_ms)
        p = self.points
        return p[j] + (p[j + 1] - p[j]) * f

    def volume_fraction(self, t_ms: int) -> float:
        """The fraction of the hour's volume traded before ``t_ms``."""
        j, f = self._locate(t_ms)
        w = self.cumulative
        return w[j] + (w[j + 1] - w[j]) * f

    def segment(self, a_ms: int, b_ms: int, shift: Callable[[int], float] | None = None) -> Segment:
        """OHLC and volume fraction of ``[a_ms, b_ms]`` (inside this hour).

        Args:
            a_ms: start of the range.
            b_ms: end of the range.
            shift: optional price multiplier as a function of time (scenario overlays).
        """
        pa, pb = self.price(a_ms), self.price(b_ms)
        if shift is not None:
            pa *= shift(a_ms)
            pb *= shift(b_ms)
        hi, lo = max(pa, pb), min(pa, pb)
        first = math.floor((a_ms - self.open_ms) / MINUTE_MS) + 1
        last = math.ceil((b_ms - self.open_ms) / MINUTE_MS) - 1
        for j in range(max(first, 0), min(last, MINUTES) + 1):
            p = self.points[j]
            if shift is not None:
                p *= shift(self.open_ms + j * MINUTE_MS)
            hi = max(hi, p)
            lo = min(lo, p)
        frac = self.volume_fraction(b_ms) - self.volume_fraction(a_ms)
        return Segment(pa, hi, lo, pb, frac)


def build_path(open_ms: int, ohlc: tuple[float, float, float, float], seed: int) -> HourPath:
    """Draw the path of one hour whose candle is ``ohlc``.

    Args:
        open_ms: the hour's open time.
        ohlc: the hourly candle the path must reproduce exactly (open, high, low, close).
        seed: RNG seed (see :func:`stable_seed`).
    """
    o, h, low, c = ohlc
    rng = random.Random(seed)
    walk = [0.0]
    for _ in range(MINUTES):
        walk.append(walk[-1] + rng.gauss(0.0, 1.0))
    bridge = [walk[j] - walk[-1] * j / MINUTES for j in range(MINUTES + 1)]
    spread = (max(bridge) - min(bridge)) or 1.0
    amp = (h - low) / spread * 0.6
    pts = [
        min(h, max(low, o + (c - o) * j / MINUTES + amp * bridge[j])) for j in range(MINUTES + 1)
    ]
    pts[0], pts[MINUTES] = o, c
    inner = range(1, MINUTES)
    if h > max(o, c):
        pts[max(inner, key=lambda j: pts[j])] = h
    if low < min(o, c):
        candidates = [j for j in inner if pts[j] != h] or list(inner)
        pts[min(candidates, key=lambda j: pts[j])] = low
    rng_range = (h - low) or 1.0
    weights = [
        (rng.expovariate(1.0) + 0.15) * (1.0 + 4.0 * abs(pts[j + 1] - pts[j]) / rng_range)
        for j in range(MINUTES)
    ]
    total = sum(weights)
    cum = [0.0]
    acc = 0.0
    for w in weights[:-1]:
        acc += w
        cum.append(acc / total)
    cum.append(1.0)
    return HourPath(open_ms, tuple(pts), tuple(cum))
