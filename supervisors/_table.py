"""A supervisor's children and the pure decisions about them: what to stop, what to start next.

No threads, clocks or messages here (only ``ActorRef.is_alive()`` is read):
:class:`~supervisors.supervisor.Supervisor` feeds events in and carries the answers out
(starting and stopping actors, timers, logs). Used only in the supervisor's thread.

The rules:

- a child ends → restarted if ``permanent``, or ``transient`` and abnormal; never if
  ``temporary``;
- with ``rest_for_one`` the later siblings go with it: the living ones are queued to stop in
  reverse start order (the failed child last, if it is still alive, as after a missed liveness
  deadline), then everything that wants to run starts again in spec order; a ``temporary``
  sibling stays stopped;
- stops are done one at a time, in queue order; with ``rest_for_one`` no child starts while a
  stop is pending;
- during the initial start (and always with ``rest_for_one``) children start one at a time in
  spec order, each only when every earlier child is *settled* (running, or ended for good);
  with ``one_for_one`` after the initial start, any child may restart independently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from supervisors._child import ChildRecord
from supervisors.backoff import Backoff

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from supervisors.spec import ChildSpec, Strategy

__all__ = ["ChildTable"]


class ChildTable:
    """The child records in start order, plus the stop queue."""

    def __init__(
        self, specs: Sequence[ChildSpec], *, strategy: Strategy, rand: Callable[[], float]
    ) -> None:
        if strategy not in ("one_for_one", "rest_for_one"):
            raise ValueError(f"unknown strategy {strategy!r}")
        names = [spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate child names {duplicates}")
        self.strategy: Strategy = strategy
        self.records = [
            ChildRecord(spec=spec, backoff=Backoff(spec.backoff, rand), index=i)
            for i, spec in enumerate(specs)
        ]
        self._by_name = {record.name: record for record in self.records}
        self.to_stop: list[ChildRecord] = []
        """Children to stop, in order; the head is the one being (or about to be) stopped."""
        self.initial_done = False
        """Whether every child has settled once (the start handshake towards the parent)."""

    def __iter__(self) -> Iterator[ChildRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def current(self, name: str, generation: int) -> ChildRecord | None:
        """The child ``name`` if ``generation`` is its living incarnation, else ``None``."""
        child = self._by_name.get(name)
        if child is None or child.ref is None or child.generation != generation:
            return None
        return child

    def get(self, name: str) -> ChildRecord | None:
        """The child called ``name``."""
        return self._by_name.get(name)

    @staticmethod
    def comes_back(child: ChildRecord, *, abnormal: bool) -> bool:
        """Whether ``child`` is restarted after an exit (its restart type's rule)."""
        restart = child.spec.restart
        return restart == "permanent" or (restart == "transient" and abnormal)

    def condemn(self, child: ChildRecord) -> list[ChildRecord]:
        """Apply the strategy to ``child``'s restart; return the later siblings that go with it.

        Queues the living ones (``child`` included, if alive) to stop in reverse start order,
        marks who comes back, and counts the restarts.
        """
        later = self.records[child.index + 1 :] if self.strategy == "rest_for_one" else []
        for sibling in reversed([child, *later]):
            if sibling.alive:
                self.queue_stop(sibling)
        for sibling in later:
            if sibling.spec.restart == "temporary":
                sibling.want_start = False
            elif sibling.alive or sibling.want_start:
                if sibling.alive:
                    sibling.restarts += 1
                sibling.want_start = True
        child.restarts += 1
        child.want_start = True
        return later

    def queue_stop(self, child: ChildRecord) -> None:
        """Add ``child`` to the stop queue (once)."""
        child.stop_queued = True
        if child not in self.to_stop:
            self.to_stop.append(child)

    def being_stopped(self, child: ChildRecord) -> bool:
        """Whether ``child``'s incarnation is stopping or queued to stop."""
        return child.phase == "stopping" or child in self.to_stop

    def stop_done(self, child: ChildRecord) -> None:
        """``child``'s incarnation is gone; take it off the queue."""
        child.stop_queued = False
        if child in self.to_stop:
            self.to_stop.remove(child)

    def next_stop(self) -> ChildRecord | None:
        """The child to ask to stop now, or ``None`` (queue empty, or a stop in progress)."""
        while self.to_stop:
            head = self.to_stop[0]
            if head.ref is None:
                self.to_stop.pop(0).stop_queued = False
                continue
            return None if head.phase == "stopping" else head
        return None

    def to_start(self) -> list[ChildRecord]:
        """The children to start now, in order (see the module docstring)."""
        if self.to_stop and self.strategy == "rest_for_one":
            return []
        ordered = self.strategy == "rest_for_one" or not self.initial_done
        chosen = []
        for child in self.records:
            startable = not child.alive and child.want_start and not child.waiting_backoff
            if startable and child not in self.to_stop:
                chosen.append(child)
                if ordered:
                    break
            if ordered and not child.settled:
                break
        return chosen

    def sweep(self, now: float) -> tuple[list[ChildRecord], list[tuple[ChildRecord, float]]]:
        """The periodic backstop check at monotonic time ``now``.

        Returns:
            The children whose actor is dead without a report for longer than their stop
            timeout (a dying child reports after its ``_close()``, which may take that long),
            and the running children silent past their progress deadline, with the silence.
        """
        vanished, silent = [], []
        for child in self.records:
            if child.ref is None:
                continue
            if not child.ref.is_alive():
                if child.dead_since is None:
                    child.dead_since = now
                elif now - child.dead_since >= child.spec.stop_timeout_s:
                    vanished.append(child)
                continue
            deadline, quiet = child.spec.progress_deadline_s, child.silent_for(now)
            overdue = deadline is not None and quiet is not None and quiet > deadline
            if overdue and quiet is not None and not self.being_stopped(child):
                silent.append((child, quiet))
        return vanished, silent

    def mark_started(self) -> bool:
        """``True`` exactly once: when every child has settled for the first time."""
        if self.initial_done or not all(child.settled for child in self.records):
            return False
        self.initial_done = True
        return True
