"""The status board: what each actor publishes about itself for ``/health`` and ``/metrics``.

Like the price board, one writer per key and lock-free readers: an actor replaces its own
entry (an immutable snapshot) in one ``dict`` assignment; the HTTP server's thread reads with
single ``dict`` operations. So ``/health`` costs about as much as a symbol lookup instead of a
round trip through every actor.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["FeedStatus", "StatusBoard", "render_metrics"]


class FeedStatus(NamedTuple):
    """A feed actor's view of its connection (published on every change and every second)."""

    connected: bool
    """A connection is open."""
    data_age_s: float | None
    """Seconds since the exchange event time last advanced; ``None`` before any data."""
    stalled: str | None
    """Why the feed counts as stalled right now, or ``None``."""
    streams: int
    """Streams this feed carries."""
    published_mono: float
    """When this status was published (monotonic), so readers can age it."""


class StatusBoard:
    """Named snapshots and counters, one writer per name."""

    def __init__(self) -> None:
        self._status: dict[str, Any] = {}
        self._counters: dict[str, Mapping[str, float]] = {}

    def publish(self, name: str, status: Any) -> None:
        """Replace ``name``'s status snapshot (writer: the actor called ``name``)."""
        self._status[name] = status

    def status(self, name: str) -> Any:
        """``name``'s latest snapshot, or ``None``."""
        return self._status.get(name)

    def statuses(self) -> dict[str, Any]:
        """A copy of every snapshot."""
        return self._status.copy()

    def count(self, name: str, counters: Mapping[str, float]) -> None:
        """Replace ``name``'s counters (pass a fresh dict each time, never mutate it later)."""
        self._counters[name] = counters

    def counters(self) -> dict[str, Mapping[str, float]]:
        """A copy of every actor's counters."""
        return self._counters.copy()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(counters: Mapping[str, Mapping[str, float]], gauges: Mapping[str, float]) -> str:
    """Prometheus text format: ``volspike_<metric>{actor="<name>"} <value>`` plus gauges.

    Metric names ending in ``_total`` are declared counters, the others gauges. Values that
    are not finite are skipped (missing is not zero).
    """
    by_metric: dict[str, list[tuple[str, float]]] = {}
    for actor, values in sorted(counters.items()):
        for metric, value in values.items():
            by_metric.setdefault(metric, []).append((actor, value))
    lines = []
    for metric, rows in sorted(by_metric.items()):
        kind = "counter" if metric.endswith("_total") else "gauge"
        lines.append(f"# TYPE volspike_{metric} {kind}")
        lines.extend(
            f'volspike_{metric}{{actor="{_label(actor)}"}} {value:g}'
            for actor, value in rows
            if math.isfinite(value)
        )
    for metric, value in sorted(gauges.items()):
        if math.isfinite(value):
            lines.append(f"# TYPE volspike_{metric} gauge")
            lines.append(f"volspike_{metric} {value:g}")
    return "\n".join(lines) + "\n"
