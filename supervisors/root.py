"""The top of the tree: start it, block on it, stop it, and get the process exit code.

``run.py`` does, in its main thread::

    handle = start_tree(Supervisor.spec("root", children=[...]))
    try:
        code = handle.wait()                  # blocks until the tree has ended
    except KeyboardInterrupt:
        code = handle.shutdown("interrupted", exit_code=0, timeout=30)
    sys.exit(1 if code is None else code)

The root supervisor reports to a :class:`RootHandle` instead of a parent actor. A normal end
(``Shutdown``, or the root being stopped) gives the requested exit code (0 by default); the
root giving up (restart intensity exceeded, an escalation from below) gives 1, or the
requested code if one was set and non-zero. Nothing in the tree calls ``sys.exit``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pykka
from loguru import logger

from messages.control import ChildFailed, ChildStarted, HealthQuery, HealthReport, Shutdown
from messages.types import ActorName
from supervisors.clock import SystemClock
from supervisors.context import ChildContext
from supervisors.registry import NameRegistry
from supervisors.timers import TimerService

if TYPE_CHECKING:
    from pykka import ActorRef

    from messages.control import FailureInfo
    from supervisors.clock import Clock, ServerTimeOffset
    from supervisors.spec import ChildSpec

__all__ = ["EXIT_FAILURE", "RootHandle", "start_tree"]

EXIT_FAILURE = 1
"""The exit code when the root supervisor gives up."""

_HANDLE_OWNER = "<root handle>"


class RootHandle:
    """The root supervisor's parent: records how the tree ends. Thread-safe.

    :meth:`tell` is called from the root supervisor's thread; everything else from any thread
    (usually the main thread).
    """

    def __init__(
        self, *, name: str, registry: NameRegistry, timers: TimerService, owns_timers: bool
    ) -> None:
        self.name = name
        """The root supervisor's name (also its registry address)."""
        self.registry = registry
        """The tree's registry."""
        self.timers = timers
        """The tree's timer service."""
        self.ref: ActorRef[Any] | None = None
        """The root supervisor (set by :func:`start_tree`)."""
        self.exit_code: int | None = None
        """The process exit code, once the tree has ended."""
        self.reason: str | None = None
        """Why the tree ended."""
        self.failure: FailureInfo | None = None
        """What killed the root, if it failed."""
        self._owns_timers = owns_timers
        self._cond = threading.Condition()
        self._started = False
        self._done = threading.Event()
        self._requested: tuple[int, str] | None = None

    # -- Reporter (root supervisor's thread) ----------------------------------------------------

    def tell(self, message: Any) -> None:
        """Receive the root supervisor's reports."""
        match message:
            case ChildStarted():
                with self._cond:
                    self._started = True
                    self._cond.notify_all()
            case Shutdown(exit_code=code, reason=reason):
                with self._cond:
                    self._requested = (code, reason)
            case ChildFailed():
                self._end(message)
            case _:
                pass

    def _end(self, report: ChildFailed) -> None:
        with self._cond:
            requested = self._requested
        if report.abnormal:
            failure = report.failure
            code = requested[0] if requested and requested[0] else EXIT_FAILURE
            what = "unknown failure" if failure is None else failure.error_message
            reason = f"root supervisor failed: {what}"
        else:
            failure = None
            code, reason = requested or (0, "stopped")
        self.exit_code, self.reason, self.failure = code, reason, failure
        logger.bind(actor=self.name).log(
            "ERROR" if code else "INFO",
            "tree {} ended with exit code {}: {}",
            self.name,
            code,
            reason,
        )
        if self._owns_timers:
            self.timers.stop()
        else:  # a shared service: the tree's aligned schedules are not owed to anyone now
            self.timers.forget_slots(self.name)
        self.registry.release(self.name, _HANDLE_OWNER)
        with self._cond:
            self._done.set()
            self._cond.notify_all()

    # -- for the main thread --------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the tree has ended."""
        return self._done.is_set()

    @property
    def started(self) -> bool:
        """Whether every child of the root completed its start at least once."""
        with self._cond:
            return self._started

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until the whole tree has started (``True``) or has ended / time ran out."""
        with self._cond:
            self._cond.wait_for(lambda: self._started or self._done.is_set(), timeout)
            return self._started and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the tree ends; the exit code, or ``None`` if ``timeout`` ran out."""
        if not self._done.wait(timeout):
            return None
        return self.exit_code

    def shutdown(
        self,
        reason: str = "shutdown requested",
        exit_code: int = 0,
        *,
        timeout: float | None = 30.0,
    ) -> int | None:
        """Stop the tree in reverse start order and wait for it; the exit code, or ``None``."""
        if not self.done and self.ref is not None:
            try:
                self.ref.tell(Shutdown(reason=reason, exit_code=exit_code))
            except pykka.ActorDeadError:
                logger.debug("root {} already stopped", self.name)
        return self.wait(timeout)

    def health(self, *, timeout: float = 2.0) -> HealthReport:
        """Ask the root for the nested health report.

        Raises:
            pykka.ActorDeadError: if the tree has ended.
            pykka.Timeout: if no answer came in ``timeout`` seconds.
        """
        if self.ref is None:
            raise pykka.ActorDeadError(f"root {self.name} was never started")
        report = self.ref.ask(HealthQuery(), timeout=timeout)
        assert isinstance(report, HealthReport)
        return report

    def __repr__(self) -> str:
        return f"RootHandle(name={self.name!r}, done={self.done}, exit_code={self.exit_code})"


def start_tree(  # noqa: PLR0913 - the spec plus optional, keyword-only services
    root: ChildSpec,
    *,
    clock: Clock | None = None,
    registry: NameRegistry | None = None,
    timers: TimerService | None = None,
    server_time: ServerTimeOffset | None = None,
    wait_started_s: float | None = 30.0,
) -> RootHandle:
    """Start a supervision tree from its root spec (usually ``Supervisor.spec("root", ...)``).

    Args:
        root: the root's spec; its restart type and backoff are not used (the root is not
            restarted: the process ends, and systemd starts it again).
        clock: for every time reading in the tree; the system clock by default.
        registry: the tree's registry; a new one by default.
        timers: the tree's timer service; by default a new one is started here and stopped
            when the tree ends.
        server_time: makes the default timer service align to Binance server time.
        wait_started_s: block until the whole tree has started (or ended), at most this long;
            ``None`` returns at once.

    Raises:
        Exception: whatever the root's ``__init__`` raised (e.g. ``ValueError`` for a bad spec).
    """
    clock = clock if clock is not None else SystemClock()
    registry = registry if registry is not None else NameRegistry()
    owns_timers = timers is None
    if timers is None:
        timers = TimerService(clock, registry=registry, server_time=server_time).start()
    handle = RootHandle(name=root.name, registry=registry, timers=timers, owns_timers=owns_timers)
    context = ChildContext(
        name=ActorName(root.name),
        path=root.name,
        generation=1,
        parent=handle,
        clock=clock,
        registry=registry,
        timers=timers,
    )
    registry.claim(root.name, _HANDLE_OWNER)
    try:
        ref = root.actor_class.start(context=context, **root.kwargs)
    except BaseException:
        registry.unregister(root.name)
        registry.release(root.name, _HANDLE_OWNER)
        if owns_timers:
            timers.stop()
        raise
    handle.ref = ref
    if wait_started_s is not None and not handle.wait_started(wait_started_s) and not handle.done:
        logger.warning("tree {} not fully started after {:g} s", root.name, wait_started_s)
    return handle
