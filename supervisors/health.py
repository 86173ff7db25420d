"""Health reporting: failure descriptions and the one-line-per-actor health log format.

Pure functions (except :func:`collect_reports`); supervisors call them and write the lines
with loguru.

One health line describes one child as its supervisor sees it, with fixed keys in a fixed
order (``-`` means "none" or "not applicable")::

    health root/market/feed state=running gen=3 up=2h05m09s restarts=2 progress=0.4s dropped=0
    abandoned=0 failure=ConnectionResetError@receive failure_age=12m03s
    failure_msg="[Errno 104] Connection reset by peer"

(one line in the log; wrapped here.) A supervisor logs one per child every
``health_log_interval_s``, and on every restart one for each child the restart takes down: the
failed child (usually ``state=backoff``) and, under ``rest_for_one``, each later sibling
(``state=stopping``). The same data is available as a reply: ``HealthQuery`` (ask) to a
supervisor, or ``RootHandle.health()``, returns the nested ``HealthReport``. Reading it:

- ``root/market/feed``: the child's path from the root supervisor;
- ``state``: ``starting`` (waiting for its start handshake), ``running``, ``backoff`` (waiting
  to be restarted), ``stopping`` (asked, or queued by a restart, to stop), ``stopped`` (ended
  normally, not restarted) or ``failed`` (ended abnormally, not restarted);
- ``gen``: the incarnation (1 = first start; each restart adds 1);
- ``up``: how long the current incarnation has been running;
- ``restarts``: restarts since the supervisor started (siblings restarted by ``rest_for_one``
  count too);
- ``progress``: time since the child last reported progress (``-``: never / does not report);
- ``dropped``: poison messages dropped after crashing the child twice;
- ``abandoned``: incarnations that did not start or stop in time and were left behind;
- ``failure``: the last failure's type and where it happened (``init``, ``start``, ``receive``,
  ``stop``, or a supervisor verdict: ``start_timeout``, ``liveness``, ``vanished``,
  ``escalated``), ``failure_age`` how long ago, ``failure_msg`` its message, JSON-quoted.

Durations read ``12.3s``, ``4m05s``, ``3h12m05s`` or ``2d03h12m``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from messages.control import FailureInfo, HealthQuery, HealthReport
from messages.types import TimestampMs

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pykka import ActorRef

    from messages.control import ChildHealth, FailurePhase

__all__ = [
    "collect_reports",
    "failure_info",
    "format_duration",
    "format_health_line",
    "health_lines",
]

MAX_MESSAGE_CHARS = 200
"""Failure messages are cut to this length (a traceback belongs in the ERROR log, not here)."""


def failure_info(exc: BaseException, *, phase: FailurePhase, at_ms: int) -> FailureInfo:
    """Describe ``exc`` for a :class:`~messages.control.ChildFailed` report or a health line."""
    text = " ".join(str(exc).split())
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return FailureInfo(
        error_type=type(exc).__name__, error_message=text, at_ms=TimestampMs(at_ms), phase=phase
    )


def format_duration(seconds: float | None) -> str:
    """A compact, human duration: ``0.4s``, ``4m05s``, ``3h12m05s``, ``2d03h12m``, or ``-``."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


def _age(now_ms: int, then_ms: int | None) -> str:
    return "-" if then_ms is None else format_duration((now_ms - then_ms) / 1000)


def format_health_line(health: ChildHealth, *, path: str, now_ms: int) -> str:
    """One child's health as one log line (see the module docstring for how to read it)."""
    failure = health.last_failure
    if failure is None:
        failure_part = "failure=- failure_age=- failure_msg=-"
    else:
        failure_part = (
            f"failure={failure.error_type}@{failure.phase} "
            f"failure_age={_age(now_ms, failure.at_ms)} "
            f"failure_msg={json.dumps(failure.error_message, ensure_ascii=False)}"
        )
    return (
        f"health {path} state={health.state} gen={health.generation} "
        f"up={format_duration(health.uptime_s)} restarts={health.restarts} "
        f"progress={_age(now_ms, health.last_progress_ms)} "
        f"dropped={health.dropped_messages} abandoned={health.abandoned} {failure_part}"
    )


def health_lines(report: HealthReport, *, now_ms: int | None = None) -> list[str]:
    """Every child's line in a (nested) report: each supervisor's children, then its subtrees."""
    now = report.at_ms if now_ms is None else now_ms
    prefix = report.path or report.supervisor
    lines = [format_health_line(c, path=f"{prefix}/{c.name}", now_ms=now) for c in report.children]
    for subtree in report.subtrees:
        lines.extend(health_lines(subtree, now_ms=now))
    return lines


def collect_reports(
    supervisors: Iterable[ActorRef[Any]], *, timeout_s: float
) -> list[HealthReport]:
    """Ask every ref for its :class:`HealthReport` at once, waiting ``timeout_s`` in total.

    The one function here that talks to actors: a supervisor calls it from its own thread to
    nest its child supervisors' reports. Children never ask their parent, so this cannot
    deadlock; a subtree that does not answer in time (busy stopping) is left out.
    """
    futures = [ref.ask(HealthQuery(), block=False) for ref in supervisors]
    # pykka futures wait in real time whatever the tree's clock, so the budget is real time.
    deadline = time.monotonic() + timeout_s
    reports = []
    for future in futures:
        try:
            report = future.get(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            logger.debug("a subtree did not report its health: {!r}", exc)
            continue
        if isinstance(report, HealthReport):
            reports.append(report)
    return reports
