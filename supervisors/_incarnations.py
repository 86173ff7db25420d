"""The supervisor's side effects on its children: start, stop, forget, schedule a restart.

Private to :mod:`supervisors.supervisor`. Every method runs in the supervisor's thread and
returns at once, except :meth:`Incarnations.stop_all`, which the supervisor calls only from its
own ``_close()`` and which waits at most each child's stop timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pykka

from messages.control import RestartDue, StartTimedOut, StopTimedOut
from messages.types import ActorName

if TYPE_CHECKING:
    from collections.abc import Iterable

    from loguru import Logger
    from pykka import ActorRef

    from supervisors._child import ChildRecord
    from supervisors.context import ChildContext
    from supervisors.timers import TimerHandle, TimerService

__all__ = ["Incarnations"]


class Incarnations:
    """Acts on one supervisor's children.

    Args:
        context: the supervisor's own context (children get ``context.for_child(...)``).
        me: the supervisor's ref: its children's parent and its deadlines' target and owner.
        timers: the tree's timer service.
        log: the supervisor's bound logger.
    """

    def __init__(
        self, *, context: ChildContext, me: ActorRef[Any], timers: TimerService, log: Logger
    ) -> None:
        self._context = context
        self._me = me
        self._timers = timers
        self._log = log

    def path_of(self, child: ChildRecord) -> str:
        """The child's path from the root, for logs."""
        return f"{self._context.path}/{child.name}"

    def start(self, child: ChildRecord) -> BaseException | None:
        """Start the child's next incarnation and arm its start deadline.

        Returns:
            What the constructor raised (the child then has no incarnation), or ``None``.
        """
        child.generation += 1
        child.running_since = child.running_since_ms = None
        child.last_progress = child.last_progress_ms = None
        context = self._context.for_child(child.name, generation=child.generation, parent=self._me)
        try:
            ref = child.spec.actor_class.start(context=context, **child.spec.kwargs)
        except BaseException as exc:
            # A constructor that raised after SupervisedActor.__init__ left a registration.
            self._context.registry.unregister(child.name)
            self._log.opt(exception=exc).error("{} not created: {!r}", self.path_of(child), exc)
            return exc
        child.ref = ref
        child.phase = "starting"
        deadline = StartTimedOut(child=ActorName(child.name), generation=child.generation)
        child.timers.append(self._once(child.spec.start_timeout_s, deadline))
        return None

    def request_stop(self, child: ChildRecord) -> None:
        """Ask the living incarnation to stop (after its queued messages) and arm the deadline.

        Its name is unregistered at once: from now on, messages for it are counted as
        undelivered instead of piling up in an inbox that is about to be dropped.
        """
        assert child.ref is not None
        child.cancel_timers()
        child.phase = "stopping"
        self._context.registry.unregister(child.name, child.ref)
        self._log.info("stopping {}", self.path_of(child))
        child.ref.stop(block=False)
        deadline = StopTimedOut(child=ActorName(child.name), generation=child.generation)
        child.timers.append(self._once(child.spec.stop_timeout_s, deadline))

    def drop(self, child: ChildRecord) -> None:
        """Forget the current incarnation (it exited, stopped, or is abandoned)."""
        if child.ref is not None:
            self._context.registry.unregister(child.name, child.ref)
        child.forget_incarnation()

    def schedule_restart(self, child: ChildRecord, delay: float) -> None:
        """Hold the child back for ``delay`` seconds; a ``RestartDue`` message releases it."""
        child.waiting_backoff = True
        due = RestartDue(child=ActorName(child.name), generation=child.generation)
        if delay <= 0:
            self._me.tell(due)
        else:
            self._once(delay, due)

    def stop_all(self, children: Iterable[ChildRecord]) -> None:
        """Stop the given children one by one, blocking at most each one's stop timeout.

        A child that does not stop in time is logged, counted and abandoned.
        """
        for child in children:
            ref = child.ref
            if ref is None:
                continue
            self._context.registry.unregister(child.name, ref)
            try:
                ref.stop(block=True, timeout=child.spec.stop_timeout_s)
            except pykka.Timeout:
                child.abandoned += 1
                self._log.error(
                    "{} did not stop within {:g} s; abandoned",
                    self.path_of(child),
                    child.spec.stop_timeout_s,
                )
            child.forget_incarnation()

    def _once(self, delay: float, message: Any) -> TimerHandle:
        return self._timers.once(delay, self._me, message, owner=self._me)
