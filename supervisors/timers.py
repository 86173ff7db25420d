"""Timers (pykka has none): interval and clock-aligned ``Tick`` messages, driven by a ``Clock``.

One :class:`TimerService` owns one scheduler thread. The thread computes the next due instant,
blocks in ``clock.wait(...)`` (so on a :class:`~supervisors.clock.FakeClock` nothing fires until
a test advances time) and ``tell``s the due messages. It never blocks on an actor.

Kinds of timer:

- **interval**: every ``period_s`` seconds of monotonic time, first one ``period_s`` after
  creation;
- **aligned**: at every instant ``k * period_s + offset_s`` since the Unix epoch (wall clock, or
  Binance server time when a :class:`~supervisors.clock.ServerTimeOffset` is given):
  ``period_s=300`` fires at :00, :05, :10 …; ``period_s=3600, offset_s=1800`` at :30 past every
  hour; ``period_s=3600`` at the top of every hour. The first slot is the first one strictly
  after creation, so an actor restarted on a slot does not get that slot twice, unless the
  timer continues an earlier incarnation's (see below);
- **once**: one arbitrary message after a delay (supervisors use it for their deadlines).

**Missed slots are never skipped silently.** After a stall (or a wall-clock jump forward) each
missed slot is delivered as its own tick, late, with ``late=True`` and its own
``scheduled_ms``/``sequence``, oldest first, so an hourly job sees both :00 and :30 if it slept
through both. Two limits keep a long suspend from flooding an actor: a timer created with
``catch_up=False`` gets one tick per wake-up (the newest slot) with the older ones counted in
``Tick.skipped``; and no timer delivers more than ``max_catch_up`` ticks at once (the older rest
is counted in the first delivered tick's ``skipped``). A tick is ``late`` when it is sent more
than ``min(late_tolerance_s, period / 2)`` after its slot.

**Nor across a restart.** An aligned timer created with a ``resume_key`` (``SupervisedActor.
start_timer`` passes the actor's path) continues the schedule of the last timer made under the
same key and timer name by *another* owner that has since ended (the previous incarnation),
if it had the same period and offset: the slots that fell due after that one's last tick (the
07:00 slot of an hourly timer whose actor crashed at 06:59:59 and came back at 07:00:02) are
delivered at once, late and oldest first, under the same two limits, then the schedule goes
on. "Last tick" is the last one the old incarnation took from its inbox when it says so
(``cancel_owned_by(..., taken=...)``, as ``SupervisedActor`` does), else the last one told.
The memory is per service; :meth:`TimerService.forget_slots` drops a subtree's (a supervisor
calls it when a child ends for good), and cancelling a timer by its handle drops that timer's
(a timer stopped on purpose owes nothing).

Addressing: a target is an actor *name* (looked up in the :class:`NameRegistry` at every fire,
so it survives restarts; a tick that finds nobody under the name is counted there as
undelivered) or an ``ActorRef`` (one incarnation). A timer with an ``owner`` is cancelled as
soon as the owner is found dead, and :class:`~supervisors.actor.SupervisedActor` cancels the
timers it owns when it stops, so timers die with the incarnation that made them. A timer
addressed to a name outlives the incarnations behind it, and is cancelled only when its owner
dies, by its handle, or by :meth:`TimerService.cancel_targeting` (a supervisor calls it when a
child ends for good).
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pykka
from loguru import logger

from messages.control import Tick
from messages.types import TimestampMs
from supervisors.clock import SystemClock

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pykka import ActorRef

    from supervisors.clock import Clock, ServerTimeOffset
    from supervisors.registry import NameRegistry

__all__ = ["TimerHandle", "TimerService", "next_aligned_ms"]

_EPSILON = 1e-9


def next_aligned_ms(now_ms: int, period_ms: int, offset_ms: int = 0) -> int:
    """The first instant ``k * period_ms + offset_ms`` strictly after ``now_ms`` (epoch ms)."""
    if period_ms <= 0:
        raise ValueError("period must be positive")
    return ((now_ms - offset_ms) // period_ms + 1) * period_ms + offset_ms


@dataclass(slots=True, eq=False)
class _Timer:
    id: int
    name: str
    target: str | ActorRef[Any]
    owner: ActorRef[Any] | None
    kind: Literal["interval", "aligned", "once"]
    period: float
    """Seconds (interval, once) or milliseconds (aligned)."""
    origin: float
    """Slot 0's instant: monotonic seconds (interval, once) or epoch ms (aligned)."""
    catch_up: bool
    message: Any = None
    next_slot: int = 0
    """The first slot not yet told (slots before it were sent, or folded into ``skipped``)."""
    resume_key: tuple[str, str] | None = None
    """(resume key, timer name) for aligned timers that continue across incarnations."""

    def slot_at(self, k: int) -> float:
        return self.origin + k * self.period

    def slots_through(self, taken: Mapping[str, int]) -> int:
        """How many of this timer's slots are at or before ``taken[name]`` (0 if absent)."""
        last = taken.get(self.name)
        if last is None or last < self.origin:
            return 0
        return math.floor((last - self.origin) / self.period + _EPSILON) + 1

    def due_count(self, now: float) -> int:
        first = self.slot_at(self.next_slot)
        if now + _EPSILON < first:
            return 0
        if self.kind == "once":
            return 1
        return math.floor((now - first) / self.period + _EPSILON) + 1


class TimerHandle:
    """A running timer; :meth:`cancel` stops it (idempotent, any thread)."""

    def __init__(self, service: TimerService, timer_id: int, name: str) -> None:
        self._service = service
        self.id = timer_id
        self.name = name

    def cancel(self) -> None:
        """Stop this timer; a tick already sent is not recalled."""
        self._service.cancel(self.id)

    @property
    def active(self) -> bool:
        """Whether the timer is still scheduled."""
        return self._service.is_active(self.id)

    def __repr__(self) -> str:
        return f"TimerHandle(id={self.id}, name={self.name!r}, active={self.active})"


class TimerService:
    """The scheduler thread and the timers it drives. Thread-safe.

    Args:
        clock: every time reading and every wait goes through it.
        registry: resolves name targets; required only for timers that target a name.
        server_time: if given, aligned timers align to Binance server time, not local time.
        late_tolerance_s: how far after its slot a tick may be sent and still be on time.
        max_catch_up: the most ticks one timer delivers at once after a stall.
        max_wait_s: the longest the thread sleeps without looking at the clock again (this
            bounds how late a wall-clock jump is noticed).
    """

    def __init__(  # noqa: PLR0913 - tuning knobs, all keyword-only
        self,
        clock: Clock | None = None,
        *,
        registry: NameRegistry | None = None,
        server_time: ServerTimeOffset | None = None,
        late_tolerance_s: float = 1.0,
        max_catch_up: int = 100,
        max_wait_s: float = 1.0,
    ) -> None:
        if max_catch_up < 1:
            raise ValueError("max_catch_up must be at least 1")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.registry = registry
        self._server_time = server_time
        self._late_tolerance_s = late_tolerance_s
        self._max_catch_up = max_catch_up
        self._max_wait_s = max_wait_s
        self._ids = itertools.count(1)
        self._timers: dict[int, _Timer] = {}
        self._slots: dict[tuple[str, str], _Timer] = {}
        """The last aligned timer made under each resume key: where its schedule got to."""
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_rounds = 0
        self._finished_rounds = 0

    # -- lifecycle (any thread) ---------------------------------------------------------------

    def start(self) -> TimerService:
        """Start the scheduler thread (a daemon: it never keeps the process alive)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="TimerService", daemon=True)
                self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and drop every timer."""
        self._stopping.set()
        self._wake.set()
        with self._cond:
            self._timers.clear()
            self._slots.clear()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the scheduler thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def settle(self, timeout: float = 5.0) -> bool:
        """Block until the thread has looked at the clock *after* this call and sent what is due.

        For tests on a :class:`~supervisors.clock.FakeClock`: ``clock.advance(…)`` then
        ``timers.settle()`` guarantees every tick due by the new time has been told.
        """
        with self._cond:
            wanted = self._started_rounds + 1
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(lambda: self._finished_rounds >= wanted, timeout)

    # -- creating and cancelling (any thread) --------------------------------------------------

    def interval(
        self,
        timer: str,
        target: str | ActorRef[Any],
        *,
        period_s: float,
        owner: ActorRef[Any] | None = None,
        catch_up: bool = True,
    ) -> TimerHandle:
        """Tick ``target`` every ``period_s`` seconds of monotonic time."""
        if period_s <= 0:
            raise ValueError("period_s must be positive")
        origin = self.clock.monotonic() + period_s
        return self._add(_Timer(0, timer, target, owner, "interval", period_s, origin, catch_up))

    def aligned(  # noqa: PLR0913 - a timer's full description, keyword-only
        self,
        timer: str,
        target: str | ActorRef[Any],
        *,
        period_s: float,
        offset_s: float = 0.0,
        owner: ActorRef[Any] | None = None,
        catch_up: bool = True,
        resume_key: str | None = None,
    ) -> TimerHandle:
        """Tick ``target`` at every ``k * period_s + offset_s`` seconds since the epoch.

        With a ``resume_key`` (an actor's path) and an ``owner``, the timer continues the
        schedule of the previous owner's timer of the same key, name, period and offset: the
        slots that owner never got (or never took from its inbox, when :meth:`cancel_owned_by`
        was told) are delivered first, late (see the module docstring).
        """
        period_ms = round(period_s * 1000)
        offset_ms = round(offset_s * 1000)
        if period_ms <= 0:
            raise ValueError("period_s must be at least 1 ms")
        if not 0 <= offset_ms < period_ms:
            raise ValueError("offset_s must be in [0, period_s)")
        origin = next_aligned_ms(self._aligned_now_ms(), period_ms, offset_ms)
        made = _Timer(0, timer, target, owner, "aligned", period_ms, origin, catch_up)
        if resume_key is not None:
            made.resume_key = (resume_key, timer)
        return self._add(made)

    def once(
        self,
        delay_s: float,
        target: str | ActorRef[Any],
        message: Any,
        *,
        owner: ActorRef[Any] | None = None,
    ) -> TimerHandle:
        """Send ``message`` to ``target`` once, ``delay_s`` seconds of monotonic time from now."""
        origin = self.clock.monotonic() + max(0.0, delay_s)
        name = type(message).__name__
        timer = _Timer(0, name, target, owner, "once", 0.0, origin, catch_up=False, message=message)
        return self._add(timer)

    def cancel(self, timer_id: int) -> None:
        """Stop one timer on purpose (unknown ids are ignored).

        Its place in an aligned schedule is forgotten: a later incarnation's timer of the same
        name starts afresh instead of catching up.
        """
        with self._cond:
            self._timers.pop(timer_id, None)
            for key in [k for k, t in self._slots.items() if t.id == timer_id]:
                del self._slots[key]

    def cancel_owned_by(
        self, owner: ActorRef[Any], *, taken: Mapping[str, int] | None = None
    ) -> int:
        """Stop every timer owned by ``owner`` (an incarnation that ended); how many there were.

        Their places in aligned schedules are kept for the owner's next incarnation. ``taken``
        maps a timer name to the ``scheduled_ms`` of the last tick of it the owner took from
        its inbox: later slots, told but still queued when it died (and lost with its inbox),
        are owed to the next incarnation too. Without it, a told tick counts as delivered.
        """
        with self._cond:
            ids = [t.id for t in self._timers.values() if t.owner is owner]
            for timer_id in ids:
                del self._timers[timer_id]
            if taken is not None:
                for timer in self._slots.values():
                    if timer.owner is owner:
                        timer.next_slot = min(timer.next_slot, timer.slots_through(taken))
        return len(ids)

    def cancel_targeting(self, name: str) -> int:
        """Stop every timer addressed to the name ``name``; returns how many there were."""
        with self._cond:
            ids = [
                t.id
                for t in self._timers.values()
                if isinstance(t.target, str) and t.target == name
            ]
            for timer_id in ids:
                del self._timers[timer_id]
        return len(ids)

    def forget_slots(self, path: str) -> int:
        """Forget where the aligned schedules of ``path`` and everything below it got to.

        For an actor that ended for good: a later actor at the same path starts its aligned
        timers afresh. Returns how many schedules were forgotten.
        """
        with self._cond:
            keys = [k for k in self._slots if k[0] == path or k[0].startswith(f"{path}/")]
            for key in keys:
                del self._slots[key]
        return len(keys)

    def is_active(self, timer_id: int) -> bool:
        """Whether the timer ``timer_id`` is still scheduled."""
        with self._cond:
            return timer_id in self._timers

    @property
    def active(self) -> int:
        """How many timers are scheduled."""
        with self._cond:
            return len(self._timers)

    def _add(self, timer: _Timer) -> TimerHandle:
        if isinstance(timer.target, str) and self.registry is None:
            raise ValueError("a timer that targets a name needs a TimerService with a registry")
        timer.id = next(self._ids)
        with self._cond:
            if self._stopping.is_set():
                # Late callers (an abandoned actor after shutdown) get a handle that never fires.
                logger.debug("timer service stopped; timer {} not scheduled", timer.name)
                return TimerHandle(self, timer.id, timer.name)
            if timer.resume_key is not None:
                self._resume(timer)
            self._timers[timer.id] = timer
        self._wake.set()
        return TimerHandle(self, timer.id, timer.name)

    def _resume(self, timer: _Timer) -> None:
        """Move an aligned ``timer``'s first slot back to its predecessor's first untold one.

        Called with the lock held, before ``timer`` is scheduled.
        """
        assert timer.resume_key is not None
        previous = self._slots.get(timer.resume_key)
        self._slots[timer.resume_key] = timer
        if (
            previous is None
            or previous.owner is None
            or previous.owner is timer.owner
            or previous.period != timer.period
            or (previous.origin - timer.origin) % timer.period != 0
        ):
            return
        if previous.id in self._timers:
            if previous.owner.is_alive():
                return  # an abandoned incarnation, still alive: it still gets its ticks
            del self._timers[previous.id]
        owed = previous.slot_at(previous.next_slot)
        if owed >= timer.origin:
            return
        missed = round((timer.origin - owed) / timer.period)
        logger.info(
            "timer {} of {}: {} slot(s) owed by its last incarnation; delivering them late",
            timer.name,
            timer.resume_key[0],
            missed,
        )
        timer.origin = owed

    # -- the scheduler thread ------------------------------------------------------------------

    def _aligned_now_ms(self) -> int:
        if self._server_time is not None:
            return self._server_time.now_ms()
        return self.clock.time_ms()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            with self._cond:
                self._started_rounds += 1
            try:
                wait_s = self._fire_due()
            except Exception:
                logger.exception("timer service: unexpected error; continuing")
                wait_s = self._max_wait_s
            with self._cond:
                self._finished_rounds += 1
                self._cond.notify_all()
            self.clock.wait(wait_s, self._wake)

    def _fire_due(self) -> float:
        """Send every due message; return how long to wait before looking again."""
        mono = self.clock.monotonic()
        wall_ms = self.clock.time_ms()
        aligned_ms = self._aligned_now_ms()
        batch: list[tuple[_Timer, Any]] = []
        wait_s = self._max_wait_s
        with self._cond:
            for timer in list(self._timers.values()):
                if timer.owner is not None and not timer.owner.is_alive():
                    del self._timers[timer.id]
                    continue
                now = float(aligned_ms) if timer.kind == "aligned" else mono
                batch.extend((timer, msg) for msg in self._due_messages(timer, now, wall_ms))
                if timer.kind == "once" and timer.next_slot > 0:
                    del self._timers[timer.id]
                    continue
                until = timer.slot_at(timer.next_slot) - now
                wait_s = min(wait_s, until / 1000 if timer.kind == "aligned" else until)
        for timer, msg in batch:
            self._deliver(timer, msg)
        return max(0.0, wait_s)

    def _due_messages(self, timer: _Timer, now: float, wall_ms: int) -> list[Any]:
        count = timer.due_count(now)
        if count == 0:
            return []
        first = timer.next_slot
        timer.next_slot += count
        if timer.kind == "once":
            return [timer.message]
        limit = self._max_catch_up if timer.catch_up else 1
        skipped = max(0, count - limit)
        if skipped:
            logger.warning(
                "timer {}: {} missed slots folded into one late tick", timer.name, skipped
            )
        period_s = timer.period / 1000 if timer.kind == "aligned" else timer.period
        tolerance_s = min(self._late_tolerance_s, period_s / 2)
        ticks = []
        for k in range(first + skipped, first + count):
            slot = timer.slot_at(k)
            if timer.kind == "aligned":
                lateness_s = (now - slot) / 1000
                scheduled_ms, fired_ms = round(slot), round(now)
            else:
                lateness_s = now - slot
                scheduled_ms, fired_ms = wall_ms - round(lateness_s * 1000), wall_ms
            ticks.append(
                Tick(
                    timer=timer.name,
                    scheduled_ms=TimestampMs(scheduled_ms),
                    fired_ms=TimestampMs(fired_ms),
                    late=lateness_s > tolerance_s,
                    sequence=k,
                    skipped=skipped if k == first + skipped else 0,
                )
            )
        return ticks

    def _deliver(self, timer: _Timer, msg: Any) -> None:
        if timer.owner is not None and not timer.owner.is_alive():
            self._not_told(timer, msg)
            return
        if isinstance(timer.target, str):
            assert self.registry is not None  # checked in _add
            self.registry.tell(timer.target, msg)
            return
        try:
            timer.target.tell(msg)
        except pykka.ActorDeadError:
            logger.debug("timer {}: target is dead; cancelled", timer.name)
            self._not_told(timer, msg)

    def _not_told(self, timer: _Timer, msg: Any) -> None:
        """``msg`` found its owner or target dead: end the timer; a successor is owed the slot."""
        with self._cond:
            self._timers.pop(timer.id, None)
            if isinstance(msg, Tick):
                timer.next_slot = min(timer.next_slot, msg.sequence)

    def __repr__(self) -> str:
        return f"TimerService(clock={self.clock!r}, active={self.active})"
