"""What a supervised actor knows about its place in the tree, handed to it at construction.

A supervisor builds one :class:`ChildContext` per incarnation and passes it to the child's
constructor as ``context=``. The child reads its name, generation, clock, registry and timers
from it, and reports to ``parent`` (its supervisor's ``ActorRef``, or the root handle for the
root supervisor). The context is immutable; the objects it points to are thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from messages.types import ActorName
from supervisors.clock import SystemClock
from supervisors.registry import NameRegistry

if TYPE_CHECKING:
    from supervisors.clock import Clock
    from supervisors.timers import TimerService

__all__ = ["ChildContext", "Reporter"]


class Reporter(Protocol):
    """Where a child's reports go: an ``ActorRef`` of its supervisor, or the root handle."""

    def tell(self, message: Any) -> None:
        """Deliver one report without blocking (may raise ``pykka.ActorDeadError``)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildContext:
    """One incarnation's identity and services."""

    name: ActorName
    """The child's name under its supervisor (and in the registry)."""
    path: str
    """The child's path from the root, for logs (``"root/market/feed"``)."""
    generation: int
    """1 for the first start, +1 per restart."""
    parent: Reporter | None
    """Receives ``ChildStarted``, ``Progress`` and ``ChildFailed``; ``None`` when unsupervised."""
    clock: Clock
    """Every time reading goes through it."""
    registry: NameRegistry
    """Addressing by name; shared by the whole tree."""
    timers: TimerService | None = None
    """The tree's timer service (``None`` when unsupervised and none was given)."""

    @classmethod
    def standalone(
        cls,
        name: str,
        *,
        clock: Clock | None = None,
        registry: NameRegistry | None = None,
        timers: TimerService | None = None,
        parent: Reporter | None = None,
    ) -> ChildContext:
        """A context for an actor started outside any supervisor (tests, embedding)."""
        return cls(
            name=ActorName(name),
            path=name,
            generation=1,
            parent=parent,
            clock=clock if clock is not None else SystemClock(),
            registry=registry if registry is not None else NameRegistry(),
            timers=timers,
        )

    def for_child(self, name: str, *, generation: int, parent: Reporter) -> ChildContext:
        """The context of a child of the actor that holds this context (a supervisor)."""
        return replace(
            self,
            name=ActorName(name),
            path=f"{self.path}/{name}",
            generation=generation,
            parent=parent,
        )
