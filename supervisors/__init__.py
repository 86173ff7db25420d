"""OTP-style supervision on top of pykka: supervised actors, supervisors, timers, health.

Build a tree from child specs, start it, and block on it::

    from supervisors import ChildSpec, Supervisor, start_tree

    handle = start_tree(
        Supervisor.spec(
            "root",
            children=[
                ChildSpec(name="price-cache", actor_class=PriceCacheActor),
                Supervisor.spec("market", strategy="rest_for_one", children=[...]),
            ],
        )
    )
    exit_code = handle.wait()

Actors subclass :class:`SupervisedActor`, reach each other with ``self.registry.tell(name,
msg)``, report liveness with ``self.report_progress()`` and get ``Tick`` messages from
``self.start_timer(...)``. See the README section "Supervision model".
"""

from __future__ import annotations

from supervisors.actor import ContainedExitError, SupervisedActor
from supervisors.backoff import Backoff, BackoffPolicy
from supervisors.clock import Clock, FakeClock, ServerTimeOffset, SystemClock
from supervisors.context import ChildContext, Reporter
from supervisors.health import (
    collect_reports,
    failure_info,
    format_duration,
    format_health_line,
    health_lines,
)
from supervisors.intensity import RestartIntensity
from supervisors.registry import NameRegistry
from supervisors.root import EXIT_FAILURE, RootHandle, start_tree
from supervisors.spec import ChildSpec, RestartType, Strategy
from supervisors.supervisor import Supervisor, SupervisorOptions
from supervisors.timers import TimerHandle, TimerService, next_aligned_ms

__all__ = [
    "EXIT_FAILURE",
    "Backoff",
    "BackoffPolicy",
    "ChildContext",
    "ChildSpec",
    "Clock",
    "ContainedExitError",
    "FakeClock",
    "NameRegistry",
    "Reporter",
    "RestartIntensity",
    "RestartType",
    "RootHandle",
    "ServerTimeOffset",
    "Strategy",
    "SupervisedActor",
    "Supervisor",
    "SupervisorOptions",
    "SystemClock",
    "TimerHandle",
    "TimerService",
    "collect_reports",
    "failure_info",
    "format_duration",
    "format_health_line",
    "health_lines",
    "next_aligned_ms",
    "start_tree",
]
