"""Child specifications: what a supervisor starts, and how it treats each child's exits.

A :class:`ChildSpec` is immutable data. The supervisor starts a child by calling
``spec.actor_class.start(context=..., **spec.kwargs)`` in its own thread, so ``__init__``
should only validate (habit 9: validate in ``__init__``, connect in ``on_start``).

Restart types (Erlang/OTP's):

- ``permanent``: always restarted, whether it crashed or stopped normally;
- ``transient``: restarted only after an abnormal exit (an exception, a failed start, a
  missed liveness deadline); a normal stop ends it;
- ``temporary``: never restarted; its exit is recorded and nothing else happens (a
  ``rest_for_one`` restart of an earlier sibling stops it for good as well).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from supervisors.backoff import BackoffPolicy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from supervisors.actor import SupervisedActor

__all__ = ["ChildSpec", "RestartType", "Strategy"]

RestartType = Literal["permanent", "transient", "temporary"]
"""When a child that ended is started again (see the module docstring)."""

Strategy = Literal["one_for_one", "rest_for_one"]
"""What else restarts with a failed child: nothing (``one_for_one``), or every sibling started
after it (``rest_for_one``; they are stopped in reverse order first, then everything is started
again in order)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """One child of a supervisor."""

    name: str
    """Unique in the whole tree; the child's address in the :class:`NameRegistry`."""
    actor_class: type[SupervisedActor]
    """The actor to start; a subclass of :class:`~supervisors.actor.SupervisedActor`."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for the constructor (besides ``context``). Shared by every incarnation:
    pass immutable values, or objects that are meant to be shared (a registry, a store)."""
    restart: RestartType = "permanent"
    """See the module docstring."""
    start_timeout_s: float = 10.0
    """How long the start handshake (``on_start`` returning) may take before the incarnation is
    abandoned and counted as a failure. For a supervisor, its whole subtree's start."""
    stop_timeout_s: float = 5.0
    """How long the child may take to stop before it is reported and abandoned. For a
    supervisor, its whole subtree's stop."""
    progress_deadline_s: float | None = None
    """If set, a running child that reports no progress for this long is restarted."""
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    """Restart delays for this child."""

    def __post_init__(self) -> None:
        """Refuse specs that could never work."""
        if not self.name or "/" in self.name or self.name != self.name.strip():
            raise ValueError(f"invalid child name {self.name!r} (non-empty, no '/', no spaces)")
        if self.restart not in ("permanent", "transient", "temporary"):
            raise ValueError(f"{self.name}: unknown restart type {self.restart!r}")
        if self.start_timeout_s <= 0 or self.stop_timeout_s <= 0:
            raise ValueError(f"{self.name}: start and stop timeouts must be positive")
        if self.progress_deadline_s is not None and self.progress_deadline_s <= 0:
            raise ValueError(f"{self.name}: progress_deadline_s must be positive")
        if "context" in self.kwargs:
            raise ValueError(f"{self.name}: 'context' is set by the supervisor, not the spec")
