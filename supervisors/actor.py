"""The base class of every supervised actor: death reports, containment, liveness, dispatch.

pykka tells nobody when an actor dies, calls neither ``on_failure`` nor ``on_stop`` when
``on_start`` raises, and answers a ``SystemExit`` in any actor by stopping *all* actors.
:class:`SupervisedActor` closes those gaps, so that a supervisor hears about every exit:

=================================  =========================================================
how the incarnation ends           what the base class does
=================================  =========================================================
exception in a ``tell`` handler    pykka calls ``on_failure``: ``_close()``, report abnormal
exception in ``on_start``          caught around ``on_start``: ``_close()``, report abnormal
exception in ``_close()``          caught: logged, report abnormal (phase ``stop``)
``BaseException`` in a handler     caught before pykka sees it (no ``stop_all``): this actor
or in ``on_start``                 stops, ``_close()``, report abnormal; an ``ask`` caller gets
                                   :class:`ContainedExitError`
normal stop (``stop()``)           ``on_stop``: ``_close()``, report normal
=================================  =========================================================

Each incarnation sends exactly one :class:`~messages.control.ChildFailed` (after ``_close()``
returned, so its resources are free before a successor starts) and, once ``on_start`` has
returned, one :class:`~messages.control.ChildStarted` (the start handshake). An exception
raised while handling an ``ask`` still goes back to the caller, and the actor carries on, as in
plain pykka: only ``tell``-driven work crashes an actor.

To catch these paths the class overrides two pykka internals, ``_actor_loop_setup`` (around
``on_start``) and ``_handle_receive`` (around every message). The tests in
``tests/supervisors/test_actor.py`` pin this behaviour, so a pykka upgrade that changes it fails
loudly. Subclasses must not override ``on_stop``, ``on_failure`` or those two; they put cleanup
in ``_close()``.

Writing a supervised actor::

    class PriceCacheActor(SupervisedActor):
        def __init__(self, *, context: ChildContext | None = None, stale_after_s: float) -> None:
            super().__init__(context=context)      # supervisor's thread: validate only
            self._stale_after_s = stale_after_s

        def on_start(self) -> None:                # actor thread: open, connect, start timers
            self.start_timer("sweep", period_s=5.0)

        def on_receive(self, message: Any) -> Any:  # actor thread
            match message:
                case MarkPrices():
                    self._handle_mark_prices(message)
                case Tick(timer="sweep"):
                    self._handle_sweep(message)
                case _:
                    return super().on_receive(message)   # Ping -> Pong, else pykka's warning
            return None

        def _close(self) -> None:                  # actor thread, exactly once
            ...

**Poison messages.** When a ``tell`` handler crashes, the message being handled is encoded with
the message codec and sent along in ``ChildFailed.crashed_on``, if :meth:`redeliverable` says
it is worth it. The supervisor gives it once more to the next incarnation, wrapped in
:class:`~messages.control.Redelivered`; if the handler crashes on it again, the supervisor
drops it, logs it and counts it. Override :meth:`redeliverable` to return ``False`` for data
that is worthless a second later (market ticks): those are simply lost with the incarnation,
like every other ``tell`` still queued in a crashed incarnation's inbox (pykka drops them; the
``ask`` callers among them get ``ActorDeadError``). One exception: the ``Tick`` of an aligned
timer (:meth:`start_timer`) lost that way is delivered again, late, once the next incarnation
starts that timer again.

**Addressing.** The constructor registers the new incarnation under its name in the tree's
:class:`~supervisors.registry.NameRegistry` before its thread starts, so peers reach it by name
(``self.registry.tell("price-cache", msg)``) from its first ``on_start`` line on.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, final

import pykka
from loguru import logger

from messages._base import Message
from messages.codec import decode, encode
from messages.control import (
    ChildFailed,
    ChildStarted,
    Ping,
    Pong,
    Progress,
    Redelivered,
    Tick,
)
from messages.errors import CodecError, SupervisionError
from messages.types import TimestampMs
from supervisors.context import ChildContext
from supervisors.health import failure_info

if TYPE_CHECKING:
    from types import TracebackType

    from messages.control import FailurePhase
    from messages.types import ActorName
    from supervisors.clock import Clock
    from supervisors.registry import NameRegistry
    from supervisors.timers import TimerHandle, TimerService

__all__ = ["ContainedExitError", "SupervisedActor"]

_SEALED = ("on_stop", "on_failure", "_handle_receive", "_actor_loop_setup")


class ContainedExitError(Exception):
    """A ``BaseException`` (``SystemExit``, ``KeyboardInterrupt`` …) raised inside an actor.

    It stopped only that actor; the original exception is the ``__cause__``.
    """


class SupervisedActor(pykka.ThreadingActor):
    """Base class for every actor a :class:`~supervisors.supervisor.Supervisor` runs.

    Accepts :class:`~messages.control.Ping` (answers :class:`~messages.control.Pong`). Emits to
    its supervisor: ``ChildStarted``, ``Progress``, ``ChildFailed``.

    Args:
        context: given by the supervisor; without it the actor runs standalone (its name is the
            class name, its reports go nowhere).

    Threads: ``__init__`` runs in the thread that calls ``start()`` (the supervisor's);
    ``on_start``, ``on_receive`` and ``_close`` run in the actor's own thread.
    """

    use_daemon_thread: ClassVar[bool] = True
    """Supervised actors run on daemon threads. Shutdown is explicit and ordered (the root stops
    its tree in reverse start order, each child with a timeout); a thread still alive after
    that was abandoned, and must not keep the process from exiting."""

    progress_interval_s: ClassVar[float] = 1.0
    """:meth:`report_progress` sends at most one ``Progress`` per this many seconds."""

    _defer_started: ClassVar[bool] = False
    """True for actors that announce their start later than ``on_start`` (supervisors)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse subclasses that override the hooks the death reports depend on."""
        super().__init_subclass__(**kwargs)
        sealed = [hook for hook in _SEALED if hook in cls.__dict__]
        if sealed:
            raise TypeError(
                f"{cls.__name__} must not override {', '.join(sealed)}: "
                "put cleanup in _close() and start-up in on_start()"
            )

    def __init__(self, *, context: ChildContext | None = None) -> None:
        super().__init__()
        self._context = (
            context if context is not None else ChildContext.standalone(type(self).__name__)
        )
        self._log = logger.bind(actor=self._context.path)
        self._handling: Any = None
        self._handling_redelivered = False
        self._finished = False
        self._last_progress_sent = -math.inf
        self._ticks_taken: dict[str, int] = {}
        """Timer name -> ``scheduled_ms`` of the last of its ticks taken from the inbox."""
        # Registered before the thread exists, so the name resolves to this incarnation from
        # its very first on_start line (a peer may answer on_start's request by name).
        self._context.registry.register(self.name, self.actor_ref)

    # -- identity and services ----------------------------------------------------------------

    @property
    def name(self) -> ActorName:
        """The name the supervisor knows this actor by (its registry address)."""
        return self._context.name

    @property
    def path(self) -> str:
        """The path from the root, for logs (``"root/market/feed"``)."""
        return self._context.path

    @property
    def generation(self) -> int:
        """This incarnation's number: 1 for the first start, +1 per restart."""
        return self._context.generation

    @property
    def clock(self) -> Clock:
        """The clock to read every time from."""
        return self._context.clock

    @property
    def registry(self) -> NameRegistry:
        """Reach siblings by name: ``self.registry.tell("price-cache", msg)``."""
        return self._context.registry

    @property
    def timers(self) -> TimerService | None:
        """The tree's timer service, if any."""
        return self._context.timers

    # -- for subclasses ------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Dispatch one message (actor thread). Subclasses ``match`` first, then call this."""
        match message:
            case Ping():
                return Pong(name=self.name, generation=self.generation)
            case _:
                return super().on_receive(message)

    def _close(self) -> None:
        """Release what ``on_start`` acquired (actor thread).

        Called exactly once per incarnation: from ``on_stop``, from ``on_failure``, or after
        ``on_start`` raised (so it must cope with a half-finished start). May raise; the error
        is logged and reported.
        """

    def redeliverable(self, message: Message) -> bool:
        """Whether ``message``, having crashed a handler, deserves one more try (actor thread).

        The default is yes. Return ``False`` for data that is stale a moment later.
        """
        del message
        return True

    def report_progress(self) -> None:
        """Tell the supervisor this actor is making progress (liveness).

        Cheap enough to call for every frame: one clock reading and a comparison, and at most
        one ``Progress`` message per :attr:`progress_interval_s`. Call it from the actor's own
        thread (helper threads should ``tell`` the actor instead).
        """
        now = self._context.clock.monotonic()
        if now - self._last_progress_sent < self.progress_interval_s:
            return
        self._last_progress_sent = now
        at_ms = TimestampMs(self._context.clock.time_ms())
        self._report(Progress(child=self.name, generation=self.generation, at_ms=at_ms))

    def start_timer(
        self,
        timer: str,
        *,
        period_s: float,
        aligned: bool = False,
        offset_s: float = 0.0,
        catch_up: bool = True,
    ) -> TimerHandle:
        """Deliver ``Tick(timer=...)`` to this incarnation periodically (any thread).

        ``aligned=True`` aligns the ticks to the epoch (``period_s=300`` fires at :00, :05, …;
        ``period_s=3600, offset_s=1800`` at :30). The timer is cancelled when this incarnation
        stops; a restarted actor starts its timers again in ``on_start``. An aligned timer then
        continues the previous incarnation's schedule: slots that fell due while the actor was
        down (an hourly tick during the restart) come first, late (``Tick.late``), instead of
        being skipped; the schedule is keyed by this actor's path and the timer's name.

        Raises:
            RuntimeError: if the actor has no timer service (standalone without one).
        """
        timers = self._context.timers
        if timers is None:
            raise RuntimeError(f"{self.path} has no timer service")
        ref = self.actor_ref
        if aligned:
            return timers.aligned(
                timer,
                ref,
                period_s=period_s,
                offset_s=offset_s,
                owner=ref,
                catch_up=catch_up,
                resume_key=self.path,
            )
        return timers.interval(timer, ref, period_s=period_s, owner=ref, catch_up=catch_up)

    # -- sealed pykka hooks ----------------------------------------------------------------------

    def _actor_loop_setup(self) -> None:
        """Run ``on_start`` (actor thread), containing every exception it raises."""
        try:
            self.on_start()
        except BaseException as exc:
            self._die(exc, phase="start")
            return
        if not self._defer_started:
            self._announce_started()

    def _handle_receive(self, message: Any) -> Any:
        """Handle one message (actor thread), keeping ``BaseException`` away from pykka."""
        redelivered = isinstance(message, Redelivered)
        if redelivered:
            try:
                message = decode(message.payload)
            except CodecError as exc:
                self._log.warning("redelivered message is unreadable, dropped: {}", exc)
                return None
        self._handling = message
        self._handling_redelivered = redelivered
        if isinstance(message, Tick):
            # Taken, even if its handler crashes (then it is redelivered, or not, as a poison
            # message); ticks still queued behind it are owed to the next incarnation.
            # A redelivered tick is older than those taken before it: never move back.
            taken = self._ticks_taken.get(message.timer, message.scheduled_ms)
            self._ticks_taken[message.timer] = max(taken, message.scheduled_ms)
        try:
            result = super()._handle_receive(message)
        except Exception:
            raise
        except BaseException as exc:
            self._die(exc, phase="receive")
            raise ContainedExitError(f"{exc!r} stopped {self.path}") from exc
        self._handling = None
        self._handling_redelivered = False
        return result

    @final
    def on_stop(self) -> None:
        """Normal stop (actor thread): ``_close()``, then report the exit. Do not override."""
        self._finish("stop", None)

    @final
    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """A ``tell`` handler raised (actor thread): ``_close()``, then report. Do not override.

        pykka has already logged the traceback on its ``pykka`` logger.
        """
        del exception_type, traceback
        self._log.error(
            "{} crashed handling {}: {!r}",
            self.path,
            type(self._handling).__name__,
            exception_value,
        )
        self._finish("receive", exception_value or RuntimeError("unknown failure"))

    # -- internals -------------------------------------------------------------------------------

    def _announce_started(self) -> None:
        self._report(ChildStarted(child=self.name, generation=self.generation))

    def _die(self, exc: BaseException, *, phase: FailurePhase) -> None:
        """Stop this actor because of ``exc`` without involving pykka's failure handling."""
        self._log.opt(exception=exc).error("{} crashed in {}: {!r}", self.path, phase, exc)
        pykka.ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        self._finish(phase, exc)

    def _finish(self, phase: FailurePhase, exc: BaseException | None) -> None:
        """Cancel timers, ``_close()``, and report the exit; once per incarnation."""
        if self._finished:
            return
        self._finished = True
        if self._context.timers is not None:
            self._context.timers.cancel_owned_by(self.actor_ref, taken=self._ticks_taken)
        close_error: BaseException | None = None
        try:
            self._close()
        except BaseException as err:
            close_error = err
            self._log.opt(exception=err).error("{} failed to clean up: {!r}", self.path, err)
        now_ms = self._context.clock.time_ms()
        if isinstance(exc, SupervisionError):
            phase = "escalated"
        if exc is not None:
            failure = failure_info(exc, phase=phase, at_ms=now_ms)
        elif close_error is not None:
            failure = failure_info(close_error, phase="stop", at_ms=now_ms)
        else:
            failure = None
        crashed_on = self._crash_payload() if exc is not None and phase == "receive" else None
        self._report(
            ChildFailed(
                child=self.name,
                generation=self.generation,
                failure=failure,
                abnormal=failure is not None,
                crashed_on=crashed_on,
                redelivered=crashed_on is not None and self._handling_redelivered,
            )
        )

    def _crash_payload(self) -> bytes | None:
        message = self._handling
        if not isinstance(message, Message) or not self.redeliverable(message):
            return None
        try:
            return encode(message)
        except CodecError as exc:
            self._log.debug("message that crashed {} cannot be redelivered: {}", self.path, exc)
            return None

    def _report(self, message: Any) -> None:
        parent = self._context.parent
        if parent is None:
            return
        try:
            parent.tell(message)
        except pykka.ActorDeadError:
            self._log.debug(
                "supervisor gone; {} from {} dropped", type(message).__name__, self.path
            )
