"""The five-minute open-interest snapshot of the whole universe, as pure logic (spec §2.1).

Every ``period_ms`` on the exchange clock (:00, :05, :10 …) the OI poller posts one
``OiSamples(source="snapshot")`` covering every TRADING USDT perpetual (~540 symbols):

- **liquid symbols reuse their latest realtime sample** (at most ``reuse_max_age_ms`` old by its
  exchange time; :func:`~actors._universe_logic.plan_snapshot`), so they cost nothing;
- **only the others are polled** (~200), spaced evenly over ``sweep_ms`` (270 s of the 300 s
  by default), so the sweep is over well before the next slot and its rate is known in
  advance: :func:`snapshot_load_per_min` is what the poller reserves from the gateway's budget
  before computing its realtime interval;
- a symbol whose poll failed (an error answer, an unreadable body, no answer by the deadline)
  is **omitted and counted**, never posted as 0 (missing is not zero; the original's I-5).

:class:`SnapshotRun` is one slot's sweep: what was reused, what is left to send, what is in
flight, what came back and what failed. It holds values only; the actor sends the requests
and feeds the answers back in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from actors._universe_logic import plan_snapshot

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from messages.open_interest import OiSample

__all__ = [
    "DEFAULT_PERIOD_S",
    "DEFAULT_SWEEP_S",
    "SnapshotResult",
    "SnapshotRun",
    "snapshot_load_per_min",
    "snapshot_poll_estimate",
]

DEFAULT_PERIOD_S: Final = 300.0
"""The snapshot's period: every five minutes on the clock (spec §2.1)."""
DEFAULT_SWEEP_S: Final = 270.0
"""The polls of one snapshot are spread over this long: done 30 s before the next slot."""


def snapshot_poll_estimate(trading: Iterable[str], liquid: Iterable[str]) -> int:
    """How many symbols a snapshot will poll: the TRADING symbols outside the liquid set."""
    return len(set(trading) - set(liquid))


def snapshot_load_per_min(polls: int, sweep_s: float) -> float:
    """Requests per minute the snapshot's sweep spends while it runs: ``60 * polls / sweep_s``.

    With 540 TRADING and 340 liquid symbols and a 270 s sweep: ``60 * 200 / 270 = 44.4``.
    """
    if polls <= 0 or sweep_s <= 0:
        return 0.0
    return 60.0 * polls / sweep_s


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """A finished (or abandoned) sweep."""

    slot_ms: int
    """The clock slot it belongs to (exchange time, a multiple of the period)."""
    items: tuple[OiSample, ...]
    """Every sample to post, sorted by symbol: reused realtime samples plus polled ones."""
    reused: int
    """How many items are reused realtime samples."""
    polled: int
    """How many items were polled for this snapshot."""
    failed: tuple[tuple[str, str], ...]
    """``(symbol, why)`` of every symbol left out, sorted: the poll failed or never answered."""
    finished_ms: int
    """When it was finished (exchange time)."""

    @property
    def symbols(self) -> int:
        """How many symbols the snapshot covers (items plus failures)."""
        return len(self.items) + len(self.failed)


@dataclass(slots=True)
class SnapshotRun:
    """One slot's sweep.

    Args:
        slot_ms: the slot (exchange time).
        reused: the fresh realtime samples taken as they are, by symbol.
        to_poll: symbols to poll, in order.
        deadline_ms: answers later than this are not waited for (exchange time).
    """

    slot_ms: int
    reused: dict[str, OiSample]
    to_poll: deque[str]
    deadline_ms: int
    in_flight: set[str] = field(default_factory=set)
    polled: dict[str, OiSample] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    polls: int = 0
    """How many symbols this run had to poll in all."""

    @classmethod
    def plan(  # noqa: PLR0913 - the plan's inputs, keyword-only
        cls,
        *,
        slot_ms: int,
        trading: Iterable[str],
        latest: Mapping[str, OiSample],
        now_ms: int,
        reuse_max_age_ms: int,
        deadline_ms: int,
        skip: Iterable[str] = (),
    ) -> SnapshotRun:
        """Split ``trading`` into reused realtime samples and symbols to poll.

        Args:
            slot_ms: the clock slot.
            trading: every TRADING symbol the snapshot covers.
            latest: the newest realtime sample per symbol.
            now_ms: exchange time now.
            reuse_max_age_ms: a realtime sample at most this old is reused.
            deadline_ms: when the sweep is given up on (unanswered symbols count as failed).
            skip: symbols known to be invalid (``-1121``): neither polled nor counted.
        """
        skipped = set(skip)
        plan = plan_snapshot(
            (s for s in trading if s not in skipped), latest, now_ms, reuse_max_age_ms
        )
        return cls(
            slot_ms=slot_ms,
            reused={s.symbol: s for s in plan.reuse},
            to_poll=deque(plan.poll),
            deadline_ms=deadline_ms,
            polls=len(plan.poll),
        )

    def next_symbol(self) -> str | None:
        """The next symbol to send a request for, or ``None`` when all were sent."""
        if not self.to_poll:
            return None
        symbol = self.to_poll.popleft()
        self.in_flight.add(symbol)
        return symbol

    def answered(self, symbol: str, sample: OiSample) -> bool:
        """Record a polled sample; False when ``symbol`` was not awaited (late or unknown)."""
        if symbol not in self.in_flight:
            return False
        self.in_flight.discard(symbol)
        self.polled[symbol] = sample
        return True

    def failed_with(self, symbol: str, why: str) -> bool:
        """Record a failed poll; False when ``symbol`` was not awaited."""
        if symbol not in self.in_flight:
            return False
        self.in_flight.discard(symbol)
        self.failed[symbol] = why
        return True

    def not_sent(self, symbol: str, why: str) -> None:
        """A request that could not be handed to the gateway: the symbol fails."""
        self.in_flight.discard(symbol)
        self.failed[symbol] = why

    @property
    def done(self) -> bool:
        """Every poll was sent and answered (or failed)."""
        return not self.to_poll and not self.in_flight

    def expired(self, now_ms: int) -> bool:
        """Whether the deadline has passed."""
        return now_ms >= self.deadline_ms

    def finish(self, now_ms: int) -> SnapshotResult:
        """The result; symbols never sent or still unanswered count as failed."""
        failed = dict(self.failed)
        failed.update(dict.fromkeys(self.in_flight, "unanswered"))
        failed.update(dict.fromkeys(self.to_poll, "not sent"))
        items = sorted([*self.reused.values(), *self.polled.values()], key=lambda s: s.symbol)
        return SnapshotResult(
            slot_ms=self.slot_ms,
            items=tuple(items),
            reused=len(self.reused),
            polled=len(self.polled),
            failed=tuple(sorted(failed.items())),
            finished_ms=now_ms,
        )
