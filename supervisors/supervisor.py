"""OTP-style supervisors on pykka: ordered start, restarts with backoff, intensity, liveness.

A :class:`Supervisor` is a :class:`~supervisors.actor.SupervisedActor`, so supervisors nest
(:meth:`Supervisor.spec` makes a child spec for a subtree). It works only by messages in its
own thread and never sleeps: backoff delays and deadlines are one-shot timers that come back as
messages. Only its final ``_close()`` blocks, stopping the children in reverse start order, at
most each child's ``stop_timeout_s``. Decisions live in :mod:`supervisors._table`, side
effects on the children in :mod:`supervisors._incarnations`.

1. **Ordered start.** Children start one at a time in spec order; the next starts when the
   previous one sent ``ChildStarted`` (its ``on_start`` returned) or ended for good. No
   handshake within ``start_timeout_s``: that incarnation is abandoned and counts as a failure.
   When all are up, the supervisor tells *its* parent ``ChildStarted`` (whole subtrees).
2. **Exits.** Each incarnation's end arrives as one ``ChildFailed``. The restart type decides
   whether the child comes back, the strategy what comes with it; the restart waits for the
   child's jittered, capped, exponential backoff.
3. **Intensity.** More than ``max_restarts`` restarts within ``within_s`` seconds: the
   supervisor stops its children and fails with ``SupervisionError``, a failure its parent
   handles like any other (the root turns it into exit code 1).
4. **Backstops**, every ``check_interval_s``: a child found dead that has not reported its exit
   within its ``stop_timeout_s`` is treated as crashed; a running child that has reported no
   progress for longer than its ``progress_deadline_s`` is stopped and restarted ("no progress
   for 31.2 s, deadline 30 s").
5. **Poison messages.** The message that crashed a child is given once more to the next
   incarnation; crashing that one too, it is dropped, logged and counted.
6. **Health.** ``HealthQuery`` (ask) returns a nested ``HealthReport``; one line per child is
   logged every ``health_log_interval_s``, and on every restart one line for each child the
   restart takes down (the failed one, and its later siblings under ``rest_for_one``).
7. **Ending for good.** A child that will not be restarted takes its timers along: timers
   addressed to its name (or a name in its subtree) are cancelled, and the aligned schedules
   kept for its next incarnation are forgotten.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypedDict, Unpack

import pykka

from messages.control import (
    ChildFailed,
    ChildStarted,
    FailureInfo,
    HealthQuery,
    HealthReport,
    Progress,
    Redelivered,
    RestartDue,
    Shutdown,
    StartTimedOut,
    StopTimedOut,
    Tick,
)
from messages.errors import SupervisionError
from messages.types import TimestampMs
from supervisors._incarnations import Incarnations
from supervisors._table import ChildTable
from supervisors.actor import SupervisedActor
from supervisors.backoff import BackoffPolicy
from supervisors.health import collect_reports, failure_info, format_health_line
from supervisors.intensity import RestartIntensity
from supervisors.spec import ChildSpec, RestartType, Strategy

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from messages._base import Message
    from messages.control import FailurePhase
    from supervisors._child import ChildRecord
    from supervisors.context import ChildContext
    from supervisors.timers import TimerService

__all__ = ["Supervisor", "SupervisorOptions"]


class SupervisorOptions(TypedDict, total=False):
    """The tuning keywords of :class:`Supervisor` (see its ``Args``), for ``Supervisor.spec``."""

    strategy: Strategy
    max_restarts: int
    within_s: float
    check_interval_s: float
    health_log_interval_s: float | None
    health_timeout_s: float
    rand: Callable[[], float] | None


class Supervisor(SupervisedActor):
    """Starts, watches and restarts its children (see the module docstring).

    Accepts ``ChildStarted``, ``Progress``, ``ChildFailed`` (children); ``RestartDue``,
    ``StartTimedOut``, ``StopTimedOut``, ``Tick`` (its own timers); ``HealthQuery`` (ask →
    ``HealthReport``); ``Shutdown``; ``Ping``.

    Args:
        children: the child specs, in start order; names unique in the tree.
        strategy: ``one_for_one`` or ``rest_for_one``.
        max_restarts: restarts allowed within ``within_s`` (restart intensity).
        within_s: the intensity window, seconds.
        check_interval_s: how often liveness deadlines and dead threads are checked.
        health_log_interval_s: seconds between health lines; ``None`` or 0 turns them off.
        health_timeout_s: how long a ``HealthQuery`` waits for child supervisors' reports.
        rand: the random source for backoff jitter (inject a constant in tests).
        context: from the parent supervisor, or from :func:`~supervisors.root.start_tree`.

    Raises:
        SupervisionError: without a context that has a timer service.
        ValueError: for duplicate child names or an unknown strategy.
    """

    _defer_started: ClassVar[bool] = True

    def __init__(  # noqa: PLR0913 - the OTP knobs, all keyword-only
        self,
        *,
        children: Sequence[ChildSpec],
        strategy: Strategy = "one_for_one",
        max_restarts: int = 10,
        within_s: float = 60.0,
        check_interval_s: float = 1.0,
        health_log_interval_s: float | None = 60.0,
        health_timeout_s: float = 1.0,
        rand: Callable[[], float] | None = None,
        context: ChildContext | None = None,
    ) -> None:
        super().__init__(context=context)
        if self.timers is None:
            raise SupervisionError(f"{self.path}: a supervisor needs a timer service")
        self._timer_service: TimerService = self.timers
        self._do = Incarnations(
            context=self._context, me=self.actor_ref, timers=self.timers, log=self._log
        )
        draw = rand if rand is not None else random.random
        self._table = ChildTable(children, strategy=strategy, rand=draw)
        self._intensity = RestartIntensity(max_restarts, within_s)
        self._check_interval_s = check_interval_s
        self._health_log_interval_s = health_log_interval_s or None
        self._health_timeout_s = health_timeout_s
        self._shutting_down = False

    @classmethod
    def spec(  # noqa: PLR0913 - the ChildSpec fields, keyword-only
        cls,
        name: str,
        *,
        children: Sequence[ChildSpec],
        restart: RestartType = "permanent",
        start_timeout_s: float | None = None,
        stop_timeout_s: float | None = None,
        backoff: BackoffPolicy | None = None,
        **options: Unpack[SupervisorOptions],
    ) -> ChildSpec:
        """A child spec that runs this supervisor over ``children`` (or a tree's root).

        ``options`` are the constructor's keyword arguments (``strategy``, ``max_restarts`` …).
        Start and stop timeouts default to the sum of the children's plus one second, so a
        whole subtree fits in them.

        Raises:
            ValueError: for duplicate child names or an unknown strategy (checked here already,
                so a bad tree fails where it is written).
        """
        ChildTable(children, strategy=options.get("strategy", "one_for_one"), rand=random.random)
        return ChildSpec(
            name=name,
            actor_class=cls,
            kwargs={"children": tuple(children), **options},
            restart=restart,
            start_timeout_s=start_timeout_s or sum(c.start_timeout_s for c in children) + 1.0,
            stop_timeout_s=stop_timeout_s or sum(c.stop_timeout_s for c in children) + 1.0,
            backoff=backoff if backoff is not None else BackoffPolicy(),
        )

    # -- hooks (actor thread) --------------------------------------------------------------------

    def on_start(self) -> None:
        """Claim the children's names, start the periodic timers, begin the ordered start."""
        for child in self._table:
            self.registry.claim(child.name, self.path)
        me, timers = self.actor_ref, self._timer_service
        period = self._check_interval_s
        timers.interval("supervisor-check", me, period_s=period, owner=me, catch_up=False)
        if self._health_log_interval_s is not None:
            period = self._health_log_interval_s
            timers.interval("health-log", me, period_s=period, owner=me, catch_up=False)
        self._log.info("{} starting {} children", self.path, len(self._table))
        self._pump()

    def on_receive(self, message: Any) -> Any:  # noqa: C901 - one case per message type
        """Dispatch one message (actor thread)."""
        match message:
            case Progress():
                self._handle_progress(message)
            case ChildStarted():
                self._handle_child_started(message)
            case ChildFailed():
                self._handle_child_failed(message)
            case RestartDue():
                child = self._table.get(message.child)
                if child is not None and child.generation == message.generation:
                    child.waiting_backoff = False
            case StartTimedOut():
                self._handle_start_timed_out(message)
            case StopTimedOut():
                self._handle_stop_timed_out(message)
            case Tick(timer="supervisor-check"):
                self._handle_check()
            case Tick(timer="health-log"):
                self._log_health()
            case HealthQuery():
                return self._health_report()
            case Shutdown():
                self._handle_shutdown(message)
            case _:
                return super().on_receive(message)
        self._pump()
        return None

    def _close(self) -> None:
        """Stop every child in reverse start order, each within its stop timeout (actor thread).

        A child that does not stop in time is logged and abandoned (its thread is a daemon).
        """
        self._shutting_down = True
        self._do.stop_all(reversed(self._table.records))
        # The names stay claimed: the next incarnation of this supervisor claims them again.
        self._log.info("{} stopped its children", self.path)

    def redeliverable(self, message: Message) -> bool:
        """Never: a supervisor's messages concern incarnations that no longer exist."""
        del message
        return False

    # -- message handlers (actor thread) ---------------------------------------------------------

    def _handle_progress(self, message: Progress) -> None:
        child = self._table.current(message.child, message.generation)
        if child is not None:
            child.last_progress = self.clock.monotonic()
            child.last_progress_ms = message.at_ms

    def _handle_child_started(self, message: ChildStarted) -> None:
        child = self._table.current(message.child, message.generation)
        if child is None or child.ref is None or child.phase != "starting":
            return
        child.cancel_timers()
        child.phase = "running"
        child.running_since = self.clock.monotonic()
        child.running_since_ms = self.clock.time_ms()
        self._log.info("{} running (gen {})", self._do.path_of(child), child.generation)
        if child.pending_redelivery is not None:
            child.ref.tell(Redelivered(payload=child.pending_redelivery))
            child.pending_redelivery = None

    def _handle_child_failed(self, message: ChildFailed) -> None:
        child = self._table.current(message.child, message.generation)
        if child is None:
            return  # an incarnation already given up on
        if self._table.being_stopped(child):
            if message.failure is not None:
                child.last_failure = message.failure
                self._log.warning(
                    "{} failed while stopping: {}", self._do.path_of(child), message.failure
                )
            self._stop_done(child)
            return
        self._do.drop(child)
        if child.note_crash(message.crashed_on, redelivered=message.redelivered):
            self._log.error(
                "{} crashed twice on the same message; dropped it ({} so far)",
                self._do.path_of(child),
                child.dropped,
            )
        self._child_ended(child, message.failure, abnormal=message.abnormal)

    def _handle_start_timed_out(self, message: StartTimedOut) -> None:
        child = self._table.current(message.child, message.generation)
        if child is None or child.ref is None or child.phase != "starting":
            return
        ref = child.ref
        reason = f"no start handshake within {child.spec.start_timeout_s:g} s"
        self._log.error("{}: {}; abandoned", self._do.path_of(child), reason)
        child.abandoned += 1
        self._do.drop(child)
        ref.stop(block=False)
        self._child_ended(child, self._verdict("StartTimeout", reason, "start_timeout"))

    def _handle_stop_timed_out(self, message: StopTimedOut) -> None:
        child = self._table.current(message.child, message.generation)
        if child is None or child.phase != "stopping":
            return
        timeout = child.spec.stop_timeout_s
        self._log.error(
            "{} did not stop within {:g} s; abandoned", self._do.path_of(child), timeout
        )
        child.abandoned += 1
        self._stop_done(child)

    def _handle_check(self) -> None:
        vanished, silent = self._table.sweep(self.clock.monotonic())
        for child in vanished:
            self._handle_vanished(child)
        for child, quiet in silent:
            if child.ref is None or self._table.being_stopped(child):
                continue  # an earlier restart in this loop took it down already
            deadline = child.spec.progress_deadline_s
            reason = f"no progress for {quiet:.1f} s, deadline {deadline:g} s"
            self._log.warning("{}: {}; restarting it", self._do.path_of(child), reason)
            failure = self._verdict("LivenessTimeout", reason, "liveness")
            self._child_ended(child, failure, still_alive=True)

    def _handle_vanished(self, child: ChildRecord) -> None:
        self._log.error("{} stopped without reporting its exit", self._do.path_of(child))
        if child.ref is not None:
            pykka.ActorRegistry.unregister(child.ref)  # nobody else will
        if self._table.being_stopped(child):
            self._stop_done(child)
            return
        self._do.drop(child)
        reason = "the actor stopped without reporting its exit"
        self._child_ended(child, self._verdict("ActorVanished", reason, "vanished"))

    def _handle_shutdown(self, message: Shutdown) -> None:
        self._report(message)  # upwards: the parent, or the root handle (records the exit code)
        if isinstance(self._context.parent, pykka.ActorRef):
            self._log.info("{} forwards shutdown to its parent: {}", self.path, message.reason)
            return
        self._log.info("{} shutting down: {}", self.path, message.reason)
        self._shutting_down = True
        self.stop()

    # -- decisions -------------------------------------------------------------------------------

    def _child_ended(
        self,
        child: ChildRecord,
        failure: FailureInfo | None,
        *,
        abnormal: bool = True,
        still_alive: bool = False,
    ) -> None:
        """Decide what follows the end (or condemnation) of ``child``'s incarnation."""
        now = self.clock.monotonic()
        path = self._do.path_of(child)
        if failure is not None:
            child.last_failure = failure
        child.ended_abnormally = abnormal
        why = "stopped normally" if failure is None else f"{failure.error_type}@{failure.phase}"
        if self._shutting_down:
            self._log.info("{} ended ({}) during shutdown", path, why)
            return
        if not self._table.comes_back(child, abnormal=abnormal):
            if still_alive:
                self._table.queue_stop(child)
            self._ended_for_good(child)
            self._log.info("{} ended ({}); {}, not restarted", path, why, child.spec.restart)
            return
        if not self._intensity.record(now):
            self._give_up(path, why)
        later = self._table.condemn(child)
        taken = [sibling for sibling in later if sibling.alive or sibling.want_start]
        for sibling in taken:
            if not sibling.want_start:
                self._ended_for_good(sibling)  # temporary: stopped with the rest, for good
        delay = child.backoff.next_delay(now=now, running_since=child.running_since)
        self._do.schedule_restart(child, delay)
        also = f" with {', '.join(s.name for s in taken)}" if taken else ""
        self._log.warning(
            "{} {}; restart #{}{} in {:.2f} s", path, why, child.restarts, also, delay
        )
        now_ms = self.clock.time_ms()
        for record in (child, *taken):
            self._log_child_health(record, now=now, now_ms=now_ms)

    def _ended_for_good(self, child: ChildRecord) -> None:
        """``child`` will not be started again: drop what was kept for its next incarnation."""
        child.want_start = False
        child.pending_redelivery = None
        timers = self._timer_service
        cancelled = sum(timers.cancel_targeting(name) for name in _subtree_names(child.spec))
        if cancelled:
            self._log.info(
                "{} ended for good; {} timer(s) addressed to it cancelled",
                self._do.path_of(child),
                cancelled,
            )
        timers.forget_slots(self._do.path_of(child))

    def _give_up(self, path: str, why: str) -> NoReturn:
        limit = (
            f"more than {self._intensity.max_restarts} restarts in {self._intensity.within_s:g} s"
        )
        self._log.error("{} gives up after {} ended ({}): {}", self.path, path, why, limit)
        self._shutting_down = True
        raise SupervisionError(f"restart intensity exceeded in {self.path}: {limit}")

    # -- mechanics (actor thread) ----------------------------------------------------------------

    def _pump(self) -> None:
        """Carry out what the table says: the next stop, then the starts, then the handshake."""
        if self._shutting_down:
            return
        head = self._table.next_stop()
        if head is not None:
            self._do.request_stop(head)
        for child in self._table.to_start():
            self._start_child(child)
        if self._table.mark_started():
            self._log.info("{} started all {} children", self.path, len(self._table))
            self._announce_started()

    def _start_child(self, child: ChildRecord) -> None:
        error = self._do.start(child)
        if error is not None:
            self._child_ended(child, failure_info(error, phase="init", at_ms=self.clock.time_ms()))

    def _stop_done(self, child: ChildRecord) -> None:
        self._do.drop(child)
        self._table.stop_done(child)

    # -- health (actor thread) -------------------------------------------------------------------

    def _health_report(self) -> HealthReport:
        now = self.clock.monotonic()
        rows = tuple(child.health(now=now) for child in self._table)
        subtrees = collect_reports(
            (
                child.ref
                for child in self._table
                if child.ref is not None
                and child.phase != "stopping"
                and issubclass(child.ref.actor_class, Supervisor)
            ),
            timeout_s=self._health_timeout_s,
        )
        at_ms = TimestampMs(self.clock.time_ms())
        return HealthReport(
            supervisor=self.name,
            children=rows,
            subtrees=tuple(subtrees),
            at_ms=at_ms,
            path=self.path,
        )

    def _log_health(self) -> None:
        now, now_ms = self.clock.monotonic(), self.clock.time_ms()
        for child in self._table:
            self._log_child_health(child, now=now, now_ms=now_ms)

    def _log_child_health(self, child: ChildRecord, *, now: float, now_ms: int) -> None:
        line = format_health_line(
            child.health(now=now), path=self._do.path_of(child), now_ms=now_ms
        )
        self._log.info("{}", line)

    def _verdict(self, error_type: str, reason: str, phase: FailurePhase) -> FailureInfo:
        at_ms = TimestampMs(self.clock.time_ms())
        return FailureInfo(error_type=error_type, error_message=reason, at_ms=at_ms, phase=phase)


def _subtree_names(spec: ChildSpec) -> list[str]:
    """``spec``'s name and, for a supervisor, every name in its subtree (spec order)."""
    names = [spec.name]
    if issubclass(spec.actor_class, Supervisor):
        for child in spec.kwargs.get("children", ()):
            names.extend(_subtree_names(child))
    return names
