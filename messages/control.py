"""Control conversation: handshakes, timers, failures and health between actors and supervisors.

Who sends what (see ``supervisors/`` for the machinery)::

    child ──ChildStarted──► supervisor     on_start returned (the start handshake)
    child ──Progress──────► supervisor     liveness, at most once per second
    child ──ChildFailed───► supervisor     every exit of an incarnation, normal or not
    supervisor ──Redelivered──► child      the message that crashed the previous incarnation
    timer service ──Tick──► actor          interval and clock-aligned timers
    timer service ──RestartDue / StartTimedOut / StopTimedOut──► supervisor   its own deadlines
    anyone ──Shutdown──► supervisor        stop the whole tree (forwarded up to the root)
    anyone ──HealthQuery──► supervisor     ask; the answer is a HealthReport
"""

from __future__ import annotations

from typing import Literal

from messages._base import Message, message
from messages.types import ActorName, TimestampMs

__all__ = [
    "ChildFailed",
    "ChildHealth",
    "ChildStarted",
    "ChildState",
    "FailureInfo",
    "FailurePhase",
    "HealthQuery",
    "HealthReport",
    "Ping",
    "Pong",
    "Progress",
    "Redelivered",
    "RestartDue",
    "Shutdown",
    "StartTimedOut",
    "StopTimedOut",
    "Tick",
]

ChildState = Literal["starting", "running", "backoff", "stopping", "stopped", "failed"]
"""A child's lifecycle state as its supervisor sees it.

``backoff`` means "waiting to be (re)started"; ``stopped`` is a normal exit that will not be
restarted (transient, temporary); ``failed`` an abnormal one that will not be restarted.
"""

FailurePhase = Literal[
    "init", "start", "receive", "stop", "start_timeout", "liveness", "vanished", "escalated"
]
"""Where a child died: in ``__init__`` (the supervisor's thread), ``on_start``, a message
handler, ``on_stop``/cleanup, or as judged by its supervisor (no start handshake in time, no
progress before the deadline, thread gone without a report, a child supervisor gave up)."""


@message
class Ping(Message):
    """Sent with ``ask(..., timeout=...)``; the answer is a :class:`Pong`.

    An actor whose ``on_start`` raised never answers (``ActorDeadError`` or ``Timeout``), which
    is the only reliable signal pykka gives for that failure. Because a ``Ping`` is handled in
    inbox order, an answered ``Ping`` also proves that everything told before it was handled.
    """


@message
class Pong(Message):
    """The reply to :class:`Ping`."""

    name: str
    """The name of the actor that answered."""
    generation: int = 0
    """Which incarnation answered (0 for an actor that is not supervised)."""


@message
class Tick(Message):
    """A timer fired for the receiving actor."""

    timer: str
    """The timer's name (``"scan-5m"``, ``"half-hour"``, ``"health-log"``)."""
    scheduled_ms: TimestampMs
    """The instant the tick was due (clock-aligned for aligned timers)."""
    fired_ms: TimestampMs
    """The instant it was actually sent."""
    late: bool = False
    """True when the slot was missed (e.g. a stall) and is delivered after its due time."""
    sequence: int = 0
    """The slot's index, counted from 0 at the timer's first slot; gaps are skipped slots."""
    skipped: int = 0
    """Older missed slots folded into this tick instead of being delivered one by one (only
    when the timer does not catch up, or the catch-up limit was reached); 0 normally."""


@message
class Progress(Message):
    """A child reports that it made progress (liveness); sent to its supervisor."""

    child: ActorName
    """The child's name under its supervisor."""
    generation: int
    """Which incarnation of the child (1 for the first start, +1 per restart)."""
    at_ms: TimestampMs
    """When the progress happened (wall clock)."""


@message
class FailureInfo(Message):
    """What killed a child, for health reports and logs."""

    error_type: str
    """The exception's class name (``"ConnectionResetError"``), or a supervisor verdict
    (``"StartTimeout"``, ``"LivenessTimeout"``, ``"ActorVanished"``)."""
    error_message: str
    """``str(exception)`` on one line, truncated to 200 characters."""
    at_ms: TimestampMs
    """When it happened."""
    phase: FailurePhase = "receive"
    """Where it happened."""


@message
class ChildStarted(Message):
    """The start handshake: told by a child to its supervisor once ``on_start`` has returned.

    A supervisor child sends it only when all of its own children have started, so a parent
    that waits for it waits for the whole subtree.
    """

    child: ActorName
    """The child's name."""
    generation: int
    """The incarnation that started."""


@message
class ChildFailed(Message):
    """A supervised child's incarnation ended; sent to its supervisor from the child's exit path.

    Every incarnation sends exactly one, whether it crashed or stopped normally.
    """

    child: ActorName
    """The child's name."""
    generation: int
    """The incarnation that ended."""
    failure: FailureInfo | None = None
    """What killed it; ``None`` for a normal stop."""
    abnormal: bool = True
    """False when the child stopped normally (matters for ``transient`` children)."""
    crashed_on: bytes | None = None
    """The message whose handler crashed, codec-encoded (``messages.codec.encode``), when the
    child considers it worth one redelivery; ``None`` otherwise."""
    redelivered: bool = False
    """True when the crash happened while handling a :class:`Redelivered` message: the second
    crash on the same message, so the supervisor drops it."""


@message
class Redelivered(Message):
    """A message that crashed the previous incarnation, given once more to the new one."""

    payload: bytes
    """The original message, codec-encoded (``messages.codec.encode``)."""


@message
class RestartDue(Message):
    """A supervisor's own timer: a child's restart backoff has elapsed."""

    child: ActorName
    """The child to restart."""
    generation: int
    """The incarnation that ended; a later one makes this message stale."""


@message
class StartTimedOut(Message):
    """A supervisor's own timer: a child did not complete its start handshake in time."""

    child: ActorName
    """The child being started."""
    generation: int
    """The incarnation being started."""


@message
class StopTimedOut(Message):
    """A supervisor's own timer: a child asked to stop has not reported its exit in time."""

    child: ActorName
    """The child being stopped."""
    generation: int
    """The incarnation being stopped."""


@message
class Shutdown(Message):
    """Stop the whole tree in reverse start order; a non-root supervisor forwards it upwards."""

    reason: str
    """Why, for the log."""
    exit_code: int = 0
    """The process exit code the root should use."""


@message
class HealthQuery(Message):
    """Ask a supervisor for a :class:`HealthReport` (use ``ask`` with a timeout)."""


@message
class ChildHealth(Message):
    """One child's health as its supervisor sees it."""

    name: ActorName
    """The child's name."""
    state: ChildState
    """Lifecycle state."""
    restarts: int
    """Restarts since the supervisor started."""
    uptime_s: float | None
    """Seconds since the current incarnation completed its start, ``None`` while not running."""
    last_failure: FailureInfo | None = None
    """The most recent failure, if any."""
    last_progress_ms: TimestampMs | None = None
    """When the child last reported progress, if it reports progress at all."""
    dropped_messages: int = 0
    """Poison messages dropped after crashing the child twice."""
    generation: int = 0
    """The current (or last) incarnation, 1 for the first start."""
    abandoned: int = 0
    """Incarnations that did not stop (or start) in time and were left behind."""


@message
class HealthReport(Message):
    """A supervisor's view of its children, nested supervisors included."""

    supervisor: ActorName
    """The reporting supervisor's name."""
    children: tuple[ChildHealth, ...]
    """One entry per child, in start order."""
    subtrees: tuple[HealthReport, ...] = ()
    """Reports of child supervisors, in start order."""
    at_ms: TimestampMs = TimestampMs(0)
    """When the report was made."""
    path: str = ""
    """The supervisor's path from the root (``"root/market"``); children are ``path/name``."""
