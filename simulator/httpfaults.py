"""Fault rules for an HTTP service: error statuses, slow answers, connection resets, timeouts.

Shared by the Binance REST simulator and the backend/Telegram doubles. Rules are matched in
the handler thread for every request (optionally only for paths with a given prefix); each
returns a :class:`~simulator.faulthandle.FaultHandle`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from simulator.faulthandle import FaultHandle

__all__ = ["HttpFaults", "Verdict"]

Kind = Literal["status", "slow", "reset", "timeout"]


@dataclass(slots=True)
class _Rule:
    kind: Kind
    handle: FaultHandle
    path: str | None
    status: int = 500
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the faults say about one request."""

    delay: float = 0.0
    """Real seconds to wait before answering."""
    action: Literal["reset", "timeout", "status"] | None = None
    """Replace the answer: RST the connection, hold it unanswered, or answer ``status``."""
    status: int = 0
    hold: float | None = None
    """For ``timeout``: how long to hold the request (``None``: the service default)."""


class HttpFaults:
    """The fault rules of one HTTP service (thread-safe)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def _add(self, rule: _Rule) -> FaultHandle:
        with self._lock:
            self._rules.append(rule)
        return rule.handle

    def _handle(self, what: str, count: int | None, seconds: float | None) -> FaultHandle:
        return FaultHandle(f"{self.name}: {what}", count=count, seconds=seconds)

    def errors(
        self,
        status: int = 500,
        *,
        count: int | None = None,
        seconds: float | None = None,
        path: str | None = None,
    ) -> FaultHandle:
        """Answer ``status`` (with the service's error body) instead of the real answer."""
        handle = self._handle(f"HTTP {status}", count, seconds)
        return self._add(_Rule("status", handle, path, status=status))

    def slow(
        self,
        delay: float,
        *,
        count: int | None = None,
        seconds: float | None = None,
        path: str | None = None,
    ) -> FaultHandle:
        """Wait ``delay`` real seconds before answering."""
        handle = self._handle(f"slow {delay}s", count, seconds)
        return self._add(_Rule("slow", handle, path, delay=delay))

    def resets(
        self, *, count: int | None = None, seconds: float | None = None, path: str | None = None
    ) -> FaultHandle:
        """Reset the TCP connection (RST) instead of answering."""
        return self._add(_Rule("reset", self._handle("reset", count, seconds), path))

    def timeouts(
        self,
        *,
        count: int | None = None,
        seconds: float | None = None,
        path: str | None = None,
        hold: float | None = None,
    ) -> FaultHandle:
        """Read the request, never answer; drop the connection after ``hold`` real seconds.

        ``hold=None`` uses the service's default hold.
        """
        handle = self._handle("timeout", count, seconds)
        return self._add(_Rule("timeout", handle, path, delay=-1.0 if hold is None else hold))

    def clear(self) -> None:
        """End every rule."""
        with self._lock:
            rules, self._rules = self._rules, []
        for r in rules:
            r.handle.end()

    def verdict(self, path: str) -> Verdict:
        """Match the rules against a request for ``path`` (consuming their counts)."""
        with self._lock:
            self._rules = [r for r in self._rules if r.handle.active]
            rules = list(self._rules)
        delay = 0.0
        action: Literal["reset", "timeout", "status"] | None = None
        status = 0
        hold: float | None = None
        rank = {"reset": 3, "timeout": 2, "status": 1}
        for r in rules:
            if r.path is not None and not path.startswith(r.path):
                continue
            if r.kind == "slow":
                if r.handle.consume():
                    delay += r.delay
                continue
            if action is not None and rank[action] >= rank[r.kind]:
                continue
            if r.handle.consume():
                action, status = r.kind, r.status
                hold = r.delay if r.kind == "timeout" and r.delay >= 0 else None
        return Verdict(delay, action, status, hold)
