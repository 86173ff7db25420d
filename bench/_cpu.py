"""CPU use of the current process, and which CPUs each helper process may run on.

**CPU layout.** On a machine with two or more usable CPUs the system under test (our daemon,
and the original's stand-in when it is measured) runs on its own CPU(s) and the load side (the
simulator, which stands in for Binance's servers, and the client processes) on the others, the
usual way to keep a load generator from measuring itself: on a shared 2-core box the
simulator's burst of ~2,600 kline frames every 250 ms otherwise takes the daemon's core in the
middle of a tick (p99 tick-to-readable 24 ms shared, 8-12 ms separated, same code). The
daemon's ingest is GIL-bound and uses under one core.

**The simulator yields.** In that layout the simulator also runs at the lowest priority
(``nice`` 19): it stands in for an exchange on another machine, and on this box its bursts
otherwise delay the load generator and the freshness poller that share its CPU, whose delays
would be counted as the daemon's (the simulator still gets all the CPU nobody else wants; its
own queueing is reported separately where it matters).

``python -m bench --no-pin`` runs everything on every CPU at normal priority; the report's
``cpu_layout`` says which was used.
"""

from __future__ import annotations

import os
import resource
import time
from typing import NamedTuple

__all__ = ["SIM_NICE", "CpuLayout", "CpuMeter", "cpu_layout", "pin"]


SIM_NICE = 19
"""The simulator's niceness in the pinned layout."""


class CpuLayout(NamedTuple):
    """CPUs for the system under test and for the load side (``None``: not pinned)."""

    system_under_test: tuple[int, ...] | None
    load: tuple[int, ...] | None
    sim_nice: int = 0
    """Niceness increment of the simulator's process."""


def cpu_layout(*, enabled: bool) -> CpuLayout:
    """The first half of the usable CPUs (at least one) for the system under test, the rest
    for the load side; no pinning when disabled, on fewer than two CPUs, or without affinity."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return CpuLayout(None, None)
    if not enabled or len(usable) < 2:
        return CpuLayout(None, None)
    half = max(1, len(usable) // 2)
    return CpuLayout(tuple(usable[:half]), tuple(usable[half:]), SIM_NICE)


def pin(cpus: tuple[int, ...] | None, nice: int = 0) -> None:
    """Restrict the calling process (threads started afterwards follow) to ``cpus``, and
    lower its priority by ``nice``."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    if nice:
        os.nice(nice)


class CpuMeter:
    """Mixin for a role object living in its own process (daemon, simulator)."""

    def cpu(self) -> float:
        """CPU seconds (user + system) this process has used."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def cpu_window(self, start_at: float, end_at: float) -> float | None:
        """CPU cores used between two future ``time.monotonic()`` instants (bounded: 120 s)."""
        if end_at <= start_at or end_at - time.monotonic() > 120:
            return None
        time.sleep(max(0.0, start_at - time.monotonic()))
        c0, t0 = self.cpu(), time.monotonic()
        time.sleep(max(0.0, end_at - time.monotonic()))
        c1, t1 = self.cpu(), time.monotonic()
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None
