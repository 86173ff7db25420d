"""Health of the whole daemon, computed from feed liveness and supervisor reports (pure).

Healthy means: every required feed is connected and its exchange event time advanced within
the stall threshold, the price board holds data that is not all stale, and no supervised actor
is waiting to restart or has failed. Health is **not** computed from the oldest symbol (a single
delisted symbol must not make the daemon unhealthy forever — the original's bug).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors._status import FeedStatus

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from actors._price_board import PriceBoard
    from messages.control import HealthReport

__all__ = ["compute_health", "walk_children"]


def walk_children(report: HealthReport, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every child in a (nested) report as ``(path, ChildHealth)``."""
    base = f"{prefix}{report.supervisor}/"
    for child in report.children:
        yield base + child.name, child
    for sub in report.subtrees:
        yield from walk_children(sub, base)


def compute_health(  # noqa: PLR0913 - everything health depends on, by name
    *,
    statuses: Mapping[str, Any],
    board: PriceBoard,
    feeds: Sequence[str],
    report: HealthReport | None,
    now_mono: float,
    stale_after_s: float,
    status_max_age_s: float,
    uptime_s: float,
) -> tuple[bool, dict[str, Any]]:
    """``(healthy, body)`` for ``/health``; ``body["reasons"]`` says what is wrong."""
    reasons: list[str] = []
    feed_body = _feed_rows(statuses, feeds, now_mono, status_max_age_s, reasons)
    records = board.records()
    ages = [now_mono - r.received_mono for r in records.values()]
    stale = sum(1 for age in ages if age > stale_after_s)
    if not records:
        reasons.append("no prices received yet")
    elif stale == len(records):
        reasons.append(f"every price is older than {stale_after_s:g} s")
    actors = _actor_rows(report, reasons)
    body: dict[str, Any] = {
        "status": "healthy" if not reasons else "unhealthy",
        "reasons": reasons,
        "symbolCount": len(records),
        "staleSymbols": stale,
        "feeds": feed_body,
        "actors": actors,
        "uptimeSeconds": round(uptime_s, 1),
    }
    if ages:
        body["newestDataAgeSeconds"] = round(max(0.0, min(ages)), 3)
        body["oldestDataAgeSeconds"] = round(max(0.0, *ages), 3)
    return not reasons, body


_FINE = frozenset({"running", "stopped"})
"""Child states that are healthy (``stopped``: a normal exit that needs no restart)."""


def _actor_rows(report: HealthReport | None, reasons: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if report is None:
        return rows
    for path, child in walk_children(report):
        row: dict[str, Any] = {"name": path, "state": child.state, "restarts": child.restarts}
        if child.uptime_s is not None:
            row["uptimeSeconds"] = round(child.uptime_s, 1)
        failure = child.last_failure
        if failure is not None:
            row["lastFailure"] = f"{failure.error_type}: {failure.error_message}"
        rows.append(row)
        if child.state not in _FINE:
            reasons.append(f"actor {path}: {child.state}")
    return rows


def _feed_rows(
    statuses: Mapping[str, Any],
    feeds: Sequence[str],
    now_mono: float,
    status_max_age_s: float,
    reasons: list[str],
) -> dict[str, Any]:
    feed_body: dict[str, Any] = {}
    for name in feeds:
        status = statuses.get(name)
        if not isinstance(status, FeedStatus):
            reasons.append(f"feed {name}: not running")
            feed_body[name] = {"connected": False}
            continue
        silent_for = now_mono - status.published_mono
        entry: dict[str, Any] = {"connected": status.connected, "streams": status.streams}
        if status.streams == 0 and silent_for <= status_max_age_s:
            entry["idle"] = True  # nothing to carry (a spare kline shard): not a problem
            feed_body[name] = entry
            continue
        if status.data_age_s is not None:
            entry["dataAgeSeconds"] = round(status.data_age_s, 3)
        if silent_for > status_max_age_s:
            reasons.append(f"feed {name}: no status for {silent_for:.1f} s (actor not running?)")
        elif status.stalled is not None:
            reasons.append(f"feed {name}: {status.stalled}")
            entry["problem"] = status.stalled
        elif status.data_age_s is None:
            reasons.append(f"feed {name}: connected, no data yet")
            entry["problem"] = "no data yet"
        feed_body[name] = entry
    return feed_body
