"""Addressing by name that survives restarts: look the current incarnation up at send time.

pykka refs die with their actor, and a supervisor replaces a crashed child with a *new* actor.
So siblings never keep a ref: they write ``registry.tell("price-cache", msg)``, and the registry
hands the message to whichever incarnation is current. While nobody is there (the child is
restarting, or was never started), ``tell`` returns ``False`` and counts the miss per name
instead of raising; the caller decides whether that matters.

Supervisors keep the registry current: a child registers itself while it is being constructed
(before its thread exists) and its supervisor unregisters it the moment it exits or is asked to
stop; unregistering names the incarnation, so a late call about an old one cannot remove its
successor. Names are unique across one tree: every supervisor *claims* its children's names
(owner: the supervisor's path, the same for all its incarnations) and a claim by another
supervisor is refused. Claims last as long as the tree.

Thread-safe: any thread may call any method.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import pykka
from loguru import logger

from messages.errors import SupervisionError

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["NameRegistry"]


class NameRegistry:
    """Names to the current incarnation's ``ActorRef``, plus per-name delivery misses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, ActorRef[Any]] = {}
        self._claims: dict[str, str] = {}
        self._undelivered: Counter[str] = Counter()

    def claim(self, name: str, owner: str) -> None:
        """Reserve ``name`` for ``owner`` (a supervisor's path); idempotent for the same owner.

        Raises:
            SupervisionError: if another owner holds the name.
        """
        with self._lock:
            holder = self._claims.setdefault(name, owner)
        if holder != owner:
            raise SupervisionError(f"actor name {name!r} is already used by {holder}")

    def release(self, name: str, owner: str) -> None:
        """Give up a claim made by ``owner`` (registrations are untouched; other owners too)."""
        with self._lock:
            if self._claims.get(name) == owner:
                del self._claims[name]

    def register(self, name: str, ref: ActorRef[Any]) -> None:
        """Make ``ref`` the current incarnation for ``name`` (replacing any previous one)."""
        with self._lock:
            self._refs[name] = ref

    def unregister(self, name: str, ref: ActorRef[Any] | None = None) -> bool:
        """Forget ``name``; with ``ref``, only if it is still the registered incarnation.

        Returns:
            Whether something was removed.
        """
        with self._lock:
            current = self._refs.get(name)
            if current is None or (ref is not None and current is not ref):
                return False
            del self._refs[name]
            return True

    def get(self, name: str) -> ActorRef[Any] | None:
        """The current, living incarnation for ``name``, or ``None``."""
        with self._lock:
            ref = self._refs.get(name)
        if ref is None or not ref.is_alive():
            return None
        return ref

    def tell(self, name: str, message: Any) -> bool:
        """Send ``message`` to the current incarnation of ``name``; never raises for absence.

        Returns:
            ``True`` if it was put in a living actor's inbox, ``False`` (and counted) if nobody
            is there.
        """
        ref = self.get(name)
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass
            else:
                return True
        with self._lock:
            self._undelivered[name] += 1
        logger.debug("no actor named {} to receive {}", name, type(message).__name__)
        return False

    def ask(self, name: str, message: Any, *, timeout: float) -> Any:
        """Ask the current incarnation of ``name`` and wait at most ``timeout`` seconds.

        Raises:
            pykka.ActorDeadError: if nobody is there (counted like a failed :meth:`tell`).
            pykka.Timeout: if no answer came in time.
        """
        ref = self.get(name)
        if ref is None:
            with self._lock:
                self._undelivered[name] += 1
            raise pykka.ActorDeadError(f"no actor named {name!r}")
        return ref.ask(message, timeout=timeout)

    def undelivered(self, name: str) -> int:
        """How many messages for ``name`` found nobody to deliver them to."""
        with self._lock:
            return self._undelivered[name]

    def names(self) -> tuple[str, ...]:
        """The currently registered names, sorted."""
        with self._lock:
            return tuple(sorted(self._refs))

    def __repr__(self) -> str:
        return f"NameRegistry(names={list(self.names())!r})"
