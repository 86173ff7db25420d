"""Control conversation: handshakes, timers, failures and health between actors and supervisors."""

from __future__ import annotations

from typing import Literal

from messages._base import Message, message
from messages.types import ActorName, TimestampMs

__all__ = [
    "ChildFailed",
    "ChildHealth",
    "FailureInfo",
    "HealthQuery",
    "HealthReport",
    "Ping",
    "Pong",
    "Progress",
    "Shutdown",
    "Tick",
]

ChildState = Literal["starting", "running", "backoff", "stopping", "stopped", "failed"]


@message
class Ping(Message):
    """Sent with ``ask(..., timeout=...)`` right after start; the answer is a :class:`Pong`.

    An actor whose ``on_start`` raised never answers (``ActorDeadError`` or ``Timeout``), which
    is the only reliable signal pykka gives for that failure.
    """


@message
class Pong(Message):
    """The reply to :class:`Ping`."""

    name: str
    """The name of the actor that answered."""


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
    """Counts ticks of this timer from 0, so a receiver can see gaps."""


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
    """The exception's class name (``"ConnectionResetError"``)."""
    error_message: str
    """``str(exception)``, truncated, secrets redacted."""
    at_ms: TimestampMs
    """When it happened."""


@message
class ChildFailed(Message):
    """A supervised child died; sent to its supervisor from the child's failure path."""

    child: ActorName
    """The child's name."""
    generation: int
    """The incarnation that died."""
    failure: FailureInfo
    """What killed it."""
    abnormal: bool = True
    """False when the child stopped normally (matters for ``transient`` children)."""


@message
class Shutdown(Message):
    """Ask a supervisor (or the root) to stop everything in reverse order."""

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
    """Seconds since the current incarnation started, ``None`` while not running."""
    last_failure: FailureInfo | None = None
    """The most recent failure, if any."""
    last_progress_ms: TimestampMs | None = None
    """When the child last reported progress, if it reports progress at all."""
    dropped_messages: int = 0
    """Poison messages dropped after crashing the child twice."""


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
