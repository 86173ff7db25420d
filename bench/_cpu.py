"""CPU use of the current process, shared by the benchmark's helper-process roles."""

from __future__ import annotations

import resource
import time

__all__ = ["CpuMeter"]


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
