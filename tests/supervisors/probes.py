"""Test doubles for the supervision tests: a scriptable actor, its messages, and recorders.

Nothing here sleeps: every wait is on a condition variable with a timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from messages._base import Message, message
from messages.control import Tick
from supervisors import BackoffPolicy, ChildSpec, SupervisedActor, Supervisor

WAIT = 5.0
"""Upper bound, in real seconds, of any wait in these tests."""


@message
class ProbeWork(Message):
    """Record ``n`` in the journal."""

    n: int = 0
    """A label for the work item."""


@message
class ProbeCrash(Message):
    """Raise the given kind of exception in the handler."""

    kind: Literal["exception", "system_exit", "keyboard_interrupt", "base_exception"] = "exception"
    """What to raise."""


@message
class ProbeStopSelf(Message):
    """Call ``self.stop()`` (a normal exit, unless ``_close`` raises)."""


@message
class ProbeProgress(Message):
    """Call ``self.report_progress()``."""


@message
class ProbeFlaky(Message):
    """Crash while the script's ``flaky`` counter is positive, then record success."""

    n: int = 0
    """A label."""


@message
class ProbePoison(Message):
    """Always crash."""

    n: int = 0
    """A label."""


@message
class ProbeHang(Message):
    """Block the handler on the script's ``hang_gate`` (a hung actor: its inbox waits)."""


@message
class ProbeVanish(Message):
    """Die without any hook running (sets ``actor_stopped`` directly): a silent death."""


class Journal:
    """A thread-safe event log that tests wait on. Events are tuples ``(kind, name, gen, ...)``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: list[tuple[Any, ...]] = []
        self._times: list[float] = []

    def add(self, *event: Any) -> None:
        with self._cond:
            self._events.append(event)
            self._times.append(time.monotonic())
            self._cond.notify_all()

    def events(self, kind: str | None = None, name: str | None = None) -> list[tuple[Any, ...]]:
        with self._cond:
            return [
                e
                for e in self._events
                if (kind is None or e[0] == kind) and (name is None or e[1] == name)
            ]

    def timed(self, kind: str, name: str) -> list[tuple[float, tuple[Any, ...]]]:
        with self._cond:
            return [
                (t, e)
                for t, e in zip(self._times, self._events, strict=True)
                if e[0] == kind and e[1] == name
            ]

    def wait_for(self, kind: str, name: str, count: int = 1, timeout: float = WAIT) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: len([e for e in self._events if e[0] == kind and e[1] == name]) >= count,
                timeout,
            )

    def generations(self, kind: str, name: str) -> list[int]:
        return [e[2] for e in self.events(kind, name)]


@dataclass
class Script:
    """Behaviour shared by every incarnation of a probe (counters are consumed as they fire)."""

    fail_starts: int = 0
    hang_starts: int = 0
    exit_on_start: int = 0
    exit_kind: str = "keyboard_interrupt"
    """What ``exit_on_start`` raises (a :class:`ProbeCrash` kind)."""
    raise_in_close: int = 0
    flaky: int = 0
    start_gate: threading.Event | None = None
    hang_gate: threading.Event | None = None
    close_gate: threading.Event | None = None
    gate_first_start_only: bool = False
    timer_period_s: float | None = None
    timer_aligned: bool = False
    timer_offset_s: float = 0.0
    crash_ticks: int = 0
    """Ticks to crash on (after journalling them), one per count, across incarnations."""
    settle_timers_on_start: bool = False
    """Wait in ``on_start`` until the timer service told the ticks owed to the new timer, so
    they are queued before anything the supervisor tells after the start (a redelivery)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, counter: str) -> bool:
        with self._lock:
            left = getattr(self, counter)
            if left > 0:
                setattr(self, counter, left - 1)
                return True
            return False


class ProbeActor(SupervisedActor):
    """A supervised actor whose every move is journalled and whose failures are scripted."""

    def __init__(self, *, journal: Journal, script: Script | None = None, context=None) -> None:
        super().__init__(context=context)
        self.journal = journal
        self.script = script if script is not None else Script()

    def on_start(self) -> None:
        self.journal.add("start", self.name, self.generation)
        gate = self.script.start_gate
        if gate is not None and (self.generation == 1 or not self.script.gate_first_start_only):
            gate.wait(WAIT * 2)
        if self.script.take("hang_starts"):
            assert self.script.hang_gate is not None
            self.script.hang_gate.wait(WAIT * 2)
        if self.script.take("fail_starts"):
            raise RuntimeError("start failed")
        if self.script.take("exit_on_start"):
            raise _exception(self.script.exit_kind)
        if self.script.timer_period_s is not None:
            self.start_timer(
                "probe",
                period_s=self.script.timer_period_s,
                aligned=self.script.timer_aligned,
                offset_s=self.script.timer_offset_s,
            )
            if self.script.settle_timers_on_start:
                assert self.timers is not None
                assert self.timers.settle(WAIT)
        self.journal.add("started", self.name, self.generation)

    def on_receive(self, message: Any) -> Any:
        match message:
            case ProbeWork(n=n):
                self.journal.add("work", self.name, self.generation, n)
            case ProbeCrash(kind=kind):
                self.journal.add("crash", self.name, self.generation, kind)
                raise _exception(kind)
            case ProbeStopSelf():
                self.stop()
            case ProbeProgress():
                self.report_progress()
            case ProbeFlaky(n=n):
                if self.script.take("flaky"):
                    raise RuntimeError(f"flaky {n}")
                self.journal.add("flaky-ok", self.name, self.generation, n)
            case ProbePoison(n=n):
                self.journal.add("poisoned", self.name, self.generation, n)
                raise ValueError(f"poison {n}")
            case ProbeHang():
                self.journal.add("hang", self.name, self.generation)
                assert self.script.hang_gate is not None
                self.script.hang_gate.wait(WAIT * 2)
            case ProbeVanish():
                self.journal.add("vanish", self.name, self.generation)
                self.actor_stopped.set()
            case Tick():
                self.journal.add("tick", self.name, self.generation, message)
                if self.script.take("crash_ticks"):
                    raise RuntimeError(f"crashed on the {message.timer} tick")
            case _:
                return super().on_receive(message)
        return None

    def redeliverable(self, message: Message) -> bool:
        # ProbeCrash is a one-shot kill; ProbePoison and ProbeFlaky exercise redelivery.
        return not isinstance(message, ProbeCrash)

    def _close(self) -> None:
        self.journal.add("close", self.name, self.generation)
        gate = self.script.close_gate
        if gate is not None:
            gate.wait(WAIT * 2)
        if self.script.take("raise_in_close"):
            raise OSError("close failed")


class TickDropper(ProbeActor):
    """A probe that, like a market feed, does not want crashing messages redelivered."""

    def redeliverable(self, message: Message) -> bool:
        return not isinstance(message, (ProbeCrash, ProbePoison))


def _exception(kind: str) -> BaseException:
    if kind == "system_exit":
        return SystemExit(3)
    if kind == "keyboard_interrupt":
        return KeyboardInterrupt()
    if kind == "base_exception":
        return BaseException("base")
    return RuntimeError("boom")


class Recorder:
    """Stands in for a supervisor: collects what a child reports (``tell`` from its thread)."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()

    def tell(self, message: Any) -> None:
        self.messages.put(message)

    def next(self, kind: type, timeout: float = WAIT) -> Any:
        """The next report of type ``kind``, skipping others (bounded)."""
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            item = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(item, kind):
                return item
        raise AssertionError(f"no {kind.__name__} reported")

    def drain(self) -> list[Any]:
        items = []
        while not self.messages.empty():
            items.append(self.messages.get_nowait())
        return items


class QueueTarget:
    """A timer target that records ticks synchronously in the scheduler thread."""

    def __init__(self) -> None:
        self.items: queue.Queue[Any] = queue.Queue()
        self.alive = True

    def tell(self, message: Any) -> None:
        self.items.put(message)

    def is_alive(self) -> bool:
        return self.alive

    def drain(self) -> list[Any]:
        items = []
        while not self.items.empty():
            items.append(self.items.get_nowait())
        return items


def probe(name: str, journal: Journal, script: Script | None = None, **spec: Any) -> ChildSpec:
    """A child spec for a :class:`ProbeActor`, restarting immediately unless told otherwise."""
    spec.setdefault("backoff", BackoffPolicy.immediate())
    actor_class = spec.pop("actor_class", ProbeActor)
    kwargs = {"journal": journal, "script": script if script is not None else Script()}
    return ChildSpec(name=name, actor_class=actor_class, kwargs=kwargs, **spec)


def root(children: list[ChildSpec], **options: Any) -> ChildSpec:
    """The root supervisor's spec, with periodic health lines off unless asked for."""
    options.setdefault("health_log_interval_s", None)
    return Supervisor.spec("root", children=children, **options)
