"""A supervisor's record of one child: its current incarnation and its history.

Private to :mod:`supervisors.supervisor`; touched only in the supervisor's thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from messages.control import ChildHealth
from messages.types import ActorName, TimestampMs

if TYPE_CHECKING:
    from pykka import ActorRef

    from messages.control import ChildState, FailureInfo
    from supervisors.backoff import Backoff
    from supervisors.spec import ChildSpec
    from supervisors.timers import TimerHandle

__all__ = ["ChildRecord"]

Phase = Literal["starting", "running", "stopping"]


@dataclass(slots=True, eq=False)
class ChildRecord:
    """Everything a supervisor tracks about one child.

    ``ref`` is set exactly while an incarnation is believed alive; ``phase`` says which part of
    its life it is in. Without a ref, ``want_start`` separates "waiting to be (re)started" from
    "ended for good".
    """

    spec: ChildSpec
    backoff: Backoff
    index: int
    ref: ActorRef[Any] | None = None
    phase: Phase = "starting"
    generation: int = 0
    want_start: bool = True
    waiting_backoff: bool = False
    stop_queued: bool = False
    """The living incarnation is queued to stop (a restart decided on it; health: stopping)."""
    ended_abnormally: bool = False
    dead_since: float | None = None
    running_since: float | None = None
    running_since_ms: int | None = None
    last_progress: float | None = None
    last_progress_ms: int | None = None
    last_failure: FailureInfo | None = None
    restarts: int = 0
    dropped: int = 0
    abandoned: int = 0
    pending_redelivery: bytes | None = None
    timers: list[TimerHandle] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The child's name."""
        return self.spec.name

    @property
    def alive(self) -> bool:
        """Whether an incarnation is believed to exist."""
        return self.ref is not None

    @property
    def state(self) -> ChildState:
        """The health state (see :data:`messages.control.ChildState`)."""
        if self.ref is not None:
            return "stopping" if self.stop_queued else self.phase
        if self.want_start:
            return "backoff"
        return "failed" if self.ended_abnormally else "stopped"

    @property
    def settled(self) -> bool:
        """Running, or ended for good: nothing pending that later siblings must wait for."""
        if self.ref is not None:
            return self.phase == "running"
        return not self.want_start

    def cancel_timers(self) -> None:
        """Cancel this child's pending start/stop deadlines."""
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()

    def forget_incarnation(self) -> None:
        """The current incarnation is gone (exited, stopped or abandoned)."""
        self.cancel_timers()
        self.ref = None
        self.dead_since = None
        self.stop_queued = False

    def note_crash(self, payload: bytes | None, *, redelivered: bool) -> bool:
        """Poison-message accounting for a crash on ``payload`` (an encoded message).

        The first crash keeps the message for one redelivery to the next incarnation; a crash
        during that redelivery drops it for good.

        Returns:
            ``True`` if the message was dropped.
        """
        if payload is None:
            return False
        if redelivered:
            self.dropped += 1
            self.pending_redelivery = None
            return True
        self.pending_redelivery = payload
        return False

    def silent_for(self, now: float) -> float | None:
        """Seconds without progress while running, or ``None`` if not applicable."""
        if self.ref is None or self.phase != "running" or self.running_since is None:
            return None
        since = self.running_since if self.last_progress is None else self.last_progress
        return now - since

    def health(self, *, now: float) -> ChildHealth:
        """This child's :class:`~messages.control.ChildHealth` at monotonic time ``now``."""
        running = self.ref is not None and self.phase == "running"
        uptime = now - self.running_since if running and self.running_since is not None else None
        progress_ms = None if self.last_progress_ms is None else TimestampMs(self.last_progress_ms)
        return ChildHealth(
            name=ActorName(self.name),
            state=self.state,
            restarts=self.restarts,
            uptime_s=uptime,
            last_failure=self.last_failure,
            last_progress_ms=progress_ms,
            dropped_messages=self.dropped,
            generation=self.generation,
            abandoned=self.abandoned,
        )
