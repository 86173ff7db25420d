"""Small statistics helpers shared by the benchmarks (no numpy: no extra dependency)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["percentile", "rounded", "summary"]


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of an already sorted sequence, linearly interpolated."""
    n = len(ordered)
    if n == 0:
        return None
    if n == 1:
        return float(ordered[0])
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(ordered[lo]) * (1.0 - frac) + float(ordered[hi]) * frac


def rounded(value: float | None, digits: int = 4) -> float | None:
    """``value`` with ``digits`` significant digits (``None`` stays ``None``)."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    magnitude = math.floor(math.log10(abs(value)))
    return round(value, max(0, digits - 1 - magnitude))


def summary(
    values: Iterable[float | None], *, scale: float = 1.0, digits: int = 4
) -> dict[str, Any]:
    """``n, min, p50 (median), p99, max, mean`` of ``values`` multiplied by ``scale``.

    ``None`` values (nothing measured) are left out.
    """
    ordered = sorted(v * scale for v in values if v is not None)
    n = len(ordered)
    if n == 0:
        return {"n": 0, "min": None, "median": None, "p99": None, "max": None, "mean": None}
    return {
        "n": n,
        "min": rounded(ordered[0], digits),
        "median": rounded(percentile(ordered, 50), digits),
        "p99": rounded(percentile(ordered, 99), digits),
        "max": rounded(ordered[-1], digits),
        "mean": rounded(sum(ordered) / n, digits),
    }
