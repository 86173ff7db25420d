"""The poster: every deliverable payload goes into the durable outbox, then to every sink.

For each ``VolumeAlert``, ``OiAlert``, ``OiSamples`` or ``LiquidUniverse`` it receives, in its
own thread and in this order:

1. **outbox first**: the payload (an OI batch split into chunks of at most 100) is committed
   to the outbox with its deterministic idempotency key and one delivery row per sink that
   takes its kind, before any delivery is tried. A key already there is a duplicate and is
   not delivered again (a second SPIKE for the same symbol-hour cannot happen);
2. **local SQLite sink**: written at once, in this thread. Alerts go through the outbox like
   any sink (``volume_alerts``, ``oi_alerts``), so a ``kill -9`` between the two writes is
   repaired at the next start; OI samples are written straight into ``oi_samples`` (superseded
   within seconds, not worth an outbox row each);
3. **remote sinks** (PROD, DEV, Telegram, callbacks): each has its own
   :class:`~actors._sinks.SinkWorker` thread. When a worker is idle and its sink has due
   payloads, the poster reads up to ``batch_size`` of them (alerts first, then the universe,
   then OI samples, oldest first; one priority per job, at most four OI chunks) and hands
   them over; the worker makes the requests (every one with ``timeout=(connect, read)``) and
   only ``tell``s the outcomes back. The poster
   records them: delivered; retry later (jittered exponential backoff, or the server's
   ``Retry-After``); or failed for good (a 4xx other than 408/429: kept, logged at ERROR,
   listed by :class:`~messages.delivery.DeliveryQuery`, never retried unless requeued). A slow
   or dead DEV occupies only DEV's worker: PROD never waits for it.

**Alerts with a receipt.** Producers hand their alerts over in an
:class:`~messages.delivery.AlertHandoff` naming themselves; once the outbox transaction has
committed, the poster tells the producer :class:`~messages.delivery.AlertsCommitted` with the
alerts' keys (a key already in the outbox counts: a resend after a lost receipt is a duplicate,
never delivered twice). Until then the alert is the producer's (see :mod:`actors._handoff`), so
a handoff refused while the poster restarts, or dropped with a crashed incarnation's inbox, is
sent again rather than lost. Bare ``VolumeAlert`` / ``OiAlert`` messages are still taken, with
no receipt (embedding applications, tests).

**Backoff.** A retryable failure pauses its sink for a delay that grows with the sink's
consecutive failures (a dead backend is probed once per delay, not hammered), and the payload
itself is not due before ``max(sink pause, its own backoff)`` (so a payload that keeps failing
on a healthy backend backs off alone). Waits are one-shot timers that come back as
:class:`~messages.delivery.WakeSink`; no handler sleeps.

**Why the poster opens its own connection to the database.** SQLite connections belong to
one thread, so the outbox needs a connection in the poster's thread or a round trip to the
StoreActor for every write and every ``due`` query. Going through the StoreActor would mean
either blocking this thread on an ``ask`` per payload (the commit must be done before the first
attempt) or a two-step protocol, and a StoreActor restart would stall delivery. With WAL, two
connections are fine, and the writers are disjoint: the poster writes only the outbox,
``deliveries``, ``counters`` and the local sink's tables; the StoreActor writes only ``kv`` and
``oi_history``. Every write is a short ``BEGIN IMMEDIATE`` transaction (``busy_timeout`` 5 s).

**Sample backlog.** Pending OI-sample batches are bounded per sink (``max_sample_batches``);
when a new batch pushes a sink over it, the oldest whole batches are marked ``dropped``, one
WARNING line says how many chunks per sink, and ``delivery_<sink>_dropped_samples_total``
(persisted, since the database was made) counts them. Alerts are never dropped.

**Stop, crash, restart.** On stop (or after a crash) the poster flushes for at most
``flush_timeout_s``: workers finish their current job and get what is due now; outcomes that
reached the stopping actor are recorded from the workers directly. What is not delivered stays
pending in the outbox and resumes at the next start (a new incarnation, or the next process).
A request that was on the wire when its worker was abandoned may be sent again later with the
same ``Idempotency-Key``.

Accepts: ``AlertHandoff`` (tell; answered with ``AlertsCommitted`` to its ``reply_to``),
``VolumeAlert``, ``OiAlert``, ``OiSamples``, ``LiquidUniverse`` (tell);
``DeliveryOutcome``, ``SinkReady`` (its workers); ``WakeSink``, ``Tick(timer="poster-sweep")``
(timers); ``DeliveryQuery`` (ask → ``DeliveryReport``); ``RequeueFailed`` (ask → int).
"""

from __future__ import annotations

import itertools
import math
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from actors._delivery_policy import RetryPolicy
from actors._payloads import ALERT_KINDS, PRIORITY, SAMPLE_KIND, backend_body, outbox_entries
from actors._sinks import LOCAL_KINDS, LOCAL_SINK, SinkWorker, sinks_from_config
from actors._store import StateStore
from messages.control import Tick
from messages.delivery import (
    AlertHandoff,
    AlertsCommitted,
    DeliveryOutcome,
    DeliveryQuery,
    DeliveryReport,
    FailedPayload,
    RequeueFailed,
    SinkReady,
    SinkStatus,
    WakeSink,
)
from messages.errors import CodecError
from messages.open_interest import LiquidUniverse, OiAlert, OiSamples
from messages.types import TimestampMs
from messages.volume import VolumeAlert
from supervisors.actor import SupervisedActor
from supervisors.spec import ChildSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from actors._payloads import OutboxEntry
    from actors._sinks import Sink
    from actors._status import StatusBoard
    from actors._store import OutboxItem
    from messages._base import Message
    from supervisors.config import Config
    from supervisors.context import ChildContext
    from supervisors.timers import TimerHandle

__all__ = ["PosterActor"]

_PRUNE_EVERY_S = 3600.0
_SAMPLE_JOB = 4
"""OI chunks per job at most, so a new alert waits for at most this many slow chunk POSTs."""


@dataclass(slots=True)
class _SinkState:
    sink: Sink
    worker: SinkWorker
    job: int = 0
    busy: bool = False
    failures: int = 0
    paused_until_ms: int = 0
    wake_ms: int | None = None
    wake: TimerHandle | None = None
    counts: Counter[str] = field(default_factory=Counter)


class PosterActor(SupervisedActor):
    """Durable delivery to every sink (see the module docstring).

    Args:
        context: from the supervisor.
        state_dir: the directory of ``volspike.db`` (shared with the StoreActor).
        sinks: remote sinks (:func:`~actors._sinks.sinks_from_config` builds them).
        local: record alerts and OI samples in the local SQLite tables.
        status: where counters for ``/metrics`` are published.
        retry: backoff and ``Retry-After`` handling.
        batch_size: payloads per job handed to a sink's worker.
        flush_timeout_s: how long stopping may spend delivering what is due.
        sweep_period_s: how often every sink is looked at again and metrics are published.
        synchronous: SQLite ``synchronous`` (``FULL`` survives power loss).
        max_sample_batches: pending OI-sample batches kept per sink; older ones are dropped.
        outbox_retention_s: settled payloads older than this are deleted; a key is forgotten
            with its payload, so keep it longer than any producer may repeat one (the volume
            key is per symbol-hour, and the scanner's own dedup is persisted).
        local_samples_retention_s: local ``oi_samples`` rows older than this are deleted
            (alerts are kept).
        rand: uniform ``[0, 1)`` source for the jitter.
    """

    flush_timeout_default_s: ClassVar[float] = 2.0
    """Default of ``flush_timeout_s``; the child's ``stop_timeout_s`` must exceed it."""

    def __init__(  # noqa: PLR0913 - keyword-only settings
        self,
        *,
        context: ChildContext | None = None,
        state_dir: Path | str,
        sinks: Sequence[Sink] = (),
        local: bool = True,
        status: StatusBoard | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int = 50,
        flush_timeout_s: float = flush_timeout_default_s,
        sweep_period_s: float = 10.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_sample_batches: int = 120,
        outbox_retention_s: float = 6 * 3600.0,
        local_samples_retention_s: float = 86400.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(context=context)
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names) or LOCAL_SINK in names:
            raise ValueError(f"sink names must be unique and not {LOCAL_SINK!r}: {names}")
        if batch_size < 1 or flush_timeout_s < 0 or sweep_period_s <= 0:
            raise ValueError("batch_size >= 1, flush_timeout_s >= 0 and sweep_period_s > 0")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self._state_dir = Path(state_dir)
        self._sink_config = tuple(sinks)
        self._local = local
        self._status = status
        self._retry = retry if retry is not None else RetryPolicy()
        self._batch_size = batch_size
        self._flush_timeout_s = flush_timeout_s
        self._sweep_period_s = sweep_period_s
        self._synchronous = synchronous
        self._max_sample_batches = max_sample_batches
        self._outbox_retention_ms = round(outbox_retention_s * 1000)
        self._local_retention_ms = round(local_samples_retention_s * 1000)
        self._rand = rand
        self._store: StateStore | None = None
        self._states: dict[str, _SinkState] = {}
        self._idle = threading.Event()
        self._counts: Counter[str] = Counter()
        self._last_prune = -math.inf
        self._closing = False

    @classmethod
    def spec(
        cls,
        config: Config,
        *,
        name: str = "poster",
        status: StatusBoard | None = None,
        extra_sinks: Iterable[Sink] = (),
        local: bool = True,
        **options: Any,
    ) -> ChildSpec:
        """The poster's child spec for ``config`` (PROD, DEV, Telegram when configured)."""
        flush = options.get("flush_timeout_s", cls.flush_timeout_default_s)
        return ChildSpec(
            name=name,
            actor_class=cls,
            kwargs={
                "state_dir": config.state_dir,
                "sinks": sinks_from_config(config, extra=extra_sinks),
                "local": local,
                "status": status,
                **options,
            },
            stop_timeout_s=flush + 3.0,
        )

    @property
    def store(self) -> StateStore:
        """The outbox (actor thread only)."""
        if self._store is None:
            raise RuntimeError("the poster's store is not open")
        return self._store

    # --- lifecycle ------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Open the outbox, start one worker per sink, resume what is pending (actor thread)."""
        if self.timers is None:
            raise RuntimeError(f"{self.path} needs a timer service (run it in a supervision tree)")
        self._store = StateStore(
            self._state_dir,
            synchronous=self._synchronous,
            max_sample_batches=self._max_sample_batches,
        )
        ref = self.actor_ref
        for sink in self._sink_config:
            worker = SinkWorker(sink, self.clock, ref.tell, idle=self._idle).start()
            self._states[sink.name] = _SinkState(sink, worker)
        described = [s.describe() for s in self._sink_config]
        if self._local:
            described.append(f"{LOCAL_SINK} SQLite {self.store.path}")
        self._log.info(
            "poster: outbox {}; sinks: {}", self.store.path, "; ".join(described) or "none"
        )
        self._log_backlog("resuming")
        self._drain_local()
        for name in self._states:
            self._pump(name)
        self.start_timer("poster-sweep", period_s=self._sweep_period_s)
        self._publish()

    def _close(self) -> None:
        """Flush for at most ``flush_timeout_s``, keep the rest, close (actor thread)."""
        self._closing = True
        try:
            if self._store is not None:
                self._flush()
        finally:
            for state in self._states.values():
                if not state.worker.stop(timeout=0.2):
                    self._log.warning(
                        "sink {}: request still on the wire; abandoned", state.sink.name
                    )
            if self._store is not None:
                for state in self._states.values():
                    self._apply_unsettled(state)
                self._log_backlog("stopping; kept for the next start")
                self._publish()
                self._store.close()
                self._store = None

    def redeliverable(self, message: Message) -> bool:
        """Outcomes and wake-ups are not replayed (the outbox already holds the truth)."""
        return not isinstance(message, (DeliveryOutcome, SinkReady, WakeSink, Tick))

    # --- messages -------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Dispatch (actor thread)."""
        match message:
            case AlertHandoff():
                self._handle_handoff(message)
            case VolumeAlert() | OiAlert() | OiSamples() | LiquidUniverse():
                self._handle_deliverable(message)
            case DeliveryOutcome():
                self._handle_outcome(message)
            case SinkReady():
                self._handle_ready(message)
            case WakeSink():
                self._handle_wake(message)
            case Tick(timer="poster-sweep"):
                self._handle_sweep()
            case DeliveryQuery():
                return self._delivery_report(message.failed_limit)
            case RequeueFailed():
                return self._handle_requeue(message)
            case _:
                return super().on_receive(message)
        return None

    def _sinks_for(self, kind: str) -> list[str]:
        names = [n for n, s in self._states.items() if kind in s.sink.kinds]
        if self._local and kind in LOCAL_KINDS:
            names.append(LOCAL_SINK)
        return names

    def _handle_handoff(self, handoff: AlertHandoff) -> None:
        keys = self._handle_deliverable(*handoff.alerts)
        self._confirm(handoff, keys)

    def _confirm(self, handoff: AlertHandoff, keys: tuple[str, ...]) -> None:
        """Tell the producer its alerts are committed (if it is not there, it sends them again)."""
        if self.registry.tell(handoff.reply_to, AlertsCommitted(keys=keys)):
            self._counts["confirmed_total"] += len(keys)
        else:
            self._log.debug("no {} to confirm {} alert(s) to", handoff.reply_to, len(keys))

    def _handle_deliverable(self, *messages: Message) -> tuple[str, ...]:
        """Commit ``messages`` to the outbox, then start delivering; returns their keys.

        Every key returned is the poster's business from now on: committed now, already in the
        outbox, or refused for good (logged and counted).
        """
        now = self.clock.time_ms()
        groups: dict[tuple[str, ...], list[OutboxEntry]] = {}
        local_samples: list[OutboxEntry] = []
        entries = [entry for message in messages for entry in outbox_entries(message)]
        for entry in entries:
            try:
                backend_body(entry.message)  # never store what no sink could send
            except ValueError as exc:
                self._counts["rejected_total"] += 1
                self._log.error("refusing payload {}: {}", entry.idempotency_key, exc)
                continue
            local = self._local and entry.kind == SAMPLE_KIND
            if local:
                local_samples.append(entry)
            sinks = tuple(self._sinks_for(entry.kind))
            if sinks:
                groups.setdefault(sinks, []).append(entry)
            elif not local:
                self._counts["unrouted_total"] += 1
        touched = self._enqueue(groups, now)
        self._report_dropped()
        for entry in local_samples:
            self.store.record_local(entry.message, entry.idempotency_key, now)
        if LOCAL_SINK in touched:
            self._drain_local()
        for name in touched - {LOCAL_SINK}:
            state = self._states[name]
            if state.sink.linger_s > 0:
                self._wake_at(name, now + math.ceil(state.sink.linger_s * 1000))
            else:
                self._pump(name)
        return tuple(entry.idempotency_key for entry in entries)

    def _report_dropped(self) -> None:
        """One WARNING per enqueue that pushed sample batches out of a sink's backlog."""
        dropped = self.store.take_dropped()
        if not dropped:
            return
        self._log.warning(
            "OI sample backlog over {} batch(es): dropped the oldest superseded chunk(s): {}",
            self._max_sample_batches,
            ", ".join(f"{sink}={n}" for sink, n in sorted(dropped.items())),
        )
        self._publish()

    def _enqueue(self, groups: dict[tuple[str, ...], list[OutboxEntry]], now: int) -> set[str]:
        """Commit the entries to the outbox; the sinks that got something new."""
        touched: set[str] = set()
        for sinks, entries in groups.items():
            new = self.store.enqueue_many(entries, sinks, now)
            self._counts["enqueued_total"] += new
            if new < len(entries):
                self._counts["duplicates_total"] += len(entries) - new
                self._log.debug("{} duplicate payload(s) not enqueued", len(entries) - new)
            if new:
                touched.update(sinks)
        return touched

    def _handle_outcome(self, outcome: DeliveryOutcome) -> None:
        state = self._states.get(outcome.sink)
        if state is None:
            return
        self._apply(state, outcome)
        state.worker.settled(outcome.outbox_id)

    def _handle_ready(self, ready: SinkReady) -> None:
        state = self._states.get(ready.sink)
        if state is None or ready.job != state.job:
            return
        state.busy = False
        self._pump(ready.sink)

    def _handle_wake(self, wake: WakeSink) -> None:
        state = self._states.get(wake.sink)
        if state is None:
            return
        if state.wake_ms == wake.at_ms:
            state.wake_ms, state.wake = None, None
        self._pump(wake.sink)

    def _handle_sweep(self) -> None:
        dead = [name for name, state in self._states.items() if not state.worker.alive]
        if dead:
            raise RuntimeError(f"sink worker(s) ended unexpectedly: {', '.join(dead)}")
        for name in self._states:
            self._pump(name)
        now_mono = self.clock.monotonic()
        if now_mono - self._last_prune >= _PRUNE_EVERY_S:
            self._last_prune = now_mono
            now = self.clock.time_ms()
            pruned = self.store.prune_outbox(now - self._outbox_retention_ms)
            if self._local:
                pruned += self.store.prune_local_samples(now - self._local_retention_ms)
            if pruned:
                self._log.info("pruned {} settled payload(s) and old local samples", pruned)
        self._publish()

    def _handle_requeue(self, message: RequeueFailed) -> int:
        count = self.store.requeue_failed(message.sink, self.clock.time_ms())
        self._log.info("sink {}: {} failed payload(s) pending again", message.sink, count)
        if message.sink == LOCAL_SINK:
            self._drain_local()
        elif message.sink in self._states:
            self._pump(message.sink)
        return count

    # --- delivery -------------------------------------------------------------------------------

    def _drain_local(self) -> None:
        """Record due payloads into the local tables (actor thread; bounded by the backlog)."""
        if not self._local:
            return
        store = self.store
        while items := store.due(LOCAL_SINK, self.clock.time_ms(), limit=200):
            now = self.clock.time_ms()
            for item in items:
                try:
                    store.record_local(item.message(), item.idempotency_key, now)
                except (CodecError, TypeError) as exc:
                    store.mark_failed_permanent(
                        item.outbox_id, LOCAL_SINK, error=str(exc)[:200], now_ms=now
                    )
                    self._log.error("local sink cannot record {}: {}", item.idempotency_key, exc)
                else:
                    store.mark_delivered(item.outbox_id, LOCAL_SINK, now)

    def _pump(self, name: str) -> None:
        """Give an idle sink its next job, or schedule the wake-up when it will have one."""
        state = self._states[name]
        if state.busy or self._closing:
            return
        now = self.clock.time_ms()
        if now < state.paused_until_ms:
            self._wake_at(name, state.paused_until_ms)
            return
        items = self._due(name, now)
        if items:
            state.job += 1
            state.busy = True
            state.worker.submit(state.job, items)
            return
        due_ms = self.store.next_due_ms(name)
        if due_ms is not None:
            self._wake_at(name, max(due_ms, now + 1))

    def _due(self, name: str, now: int) -> list[OutboxItem]:
        """The next job for ``name``: due payloads of the most urgent kind present.

        A job never mixes priorities and holds few OI chunks, so an alert that arrives while a
        job is running waits for that job only, never behind a long tail of samples.
        """
        items = self.store.due(name, now, limit=self._batch_size)
        if not items:
            return items
        first = PRIORITY[items[0].kind]
        job = list(itertools.takewhile(lambda item: PRIORITY[item.kind] == first, items))
        return job[:_SAMPLE_JOB] if items[0].kind == SAMPLE_KIND else job

    def _wake_at(self, name: str, at_ms: int) -> None:
        state = self._states[name]
        if state.wake_ms is not None and state.wake_ms <= at_ms:
            return
        if state.wake is not None:
            state.wake.cancel()
        timers = self.timers
        if timers is None:
            return
        delay_s = max(0.0, (at_ms - self.clock.time_ms()) / 1000)
        message = WakeSink(sink=name, at_ms=TimestampMs(at_ms))
        state.wake = timers.once(delay_s, self.actor_ref, message, owner=self.actor_ref)
        state.wake_ms = at_ms

    def _apply(self, state: _SinkState, outcome: DeliveryOutcome) -> None:
        """Record one outcome in the outbox (idempotent: only pending rows change)."""
        store, name, now = self.store, state.sink.name, self.clock.time_ms()
        what = f"{name}: {outcome.kind} {outcome.idempotency_key}"
        if outcome.outcome == "delivered":
            if store.mark_delivered(outcome.outbox_id, name, now):
                state.counts["delivered_total"] += 1
            if state.failures:
                self._log.info("{}: delivering again after {} failure(s)", name, state.failures)
            state.failures, state.paused_until_ms = 0, 0
        elif outcome.outcome == "failed":
            if store.mark_failed_permanent(
                outcome.outbox_id, name, error=outcome.reason, now_ms=now
            ):
                state.counts["failed_total"] += 1
                self._log.error(
                    "{} refused for good ({}); kept as failed_permanent", what, outcome.reason
                )
            if outcome.status is not None:
                state.failures = 0  # the server answered: it is up
        else:
            state.failures += 1
            retry_after = outcome.retry_after_s
            pause_s = self._retry.delay_s(state.failures - 1, self._rand(), retry_after)
            own_s = self._retry.delay_s(outcome.attempts, self._rand(), retry_after)
            pause_until = now + math.ceil(pause_s * 1000)
            state.paused_until_ms = max(state.paused_until_ms, pause_until)
            next_ms = max(pause_until, now + math.ceil(own_s * 1000))
            if store.mark_retry(
                outcome.outbox_id, name, next_attempt_ms=next_ms, error=outcome.reason, now_ms=now
            ):
                state.counts["retries_total"] += 1
            level = "WARNING" if state.failures == 1 or state.failures % 20 == 0 else "DEBUG"
            self._log.log(
                level,
                "{} not delivered ({}); retry in {:.1f} s ({} failure(s) in a row)",
                what,
                outcome.reason,
                (next_ms - now) / 1000,
                state.failures,
            )

    def _apply_unsettled(self, state: _SinkState) -> None:
        for outcome in state.worker.take_unsettled():
            self._apply(state, outcome)

    def _flush(self) -> None:
        """Deliver what is due now, for at most ``flush_timeout_s`` (actor thread, stopping)."""
        deadline = self.clock.monotonic() + self._flush_timeout_s
        while True:
            self._idle.clear()
            working = False
            now = self.clock.time_ms()
            for name, state in self._states.items():
                if state.worker.busy:
                    working = True
                    continue
                self._apply_unsettled(state)
                if now < state.paused_until_ms or not state.worker.alive:
                    continue
                items = self._due(name, now)
                if items:
                    state.job += 1
                    state.worker.submit(state.job, items)
                    working = True
            remaining = deadline - self.clock.monotonic()
            if not working or remaining <= 0:
                return
            self._idle.wait(remaining)

    # --- reporting ------------------------------------------------------------------------------

    def _log_backlog(self, when: str) -> None:
        backlog = self.store.backlog()
        if not backlog:
            return
        parts = [f"{sink}={sum(kinds.values())}" for sink, kinds in sorted(backlog.items())]
        self._log.info("{}: pending deliveries {}", when, ", ".join(parts))
        unknown = set(backlog) - set(self._states) - {LOCAL_SINK}
        if unknown:
            self._log.warning(
                "pending deliveries for sinks not configured now (kept): {}",
                ", ".join(sorted(unknown)),
            )

    def _delivery_report(self, failed_limit: int) -> DeliveryReport:
        store = self.store
        backlog, dropped = store.backlog(), store.dropped_samples()
        now = self.clock.time_ms()
        names = [*self._states, *([LOCAL_SINK] if self._local else [])]
        names += sorted(set(backlog) - set(names))
        sinks = []
        for name in names:
            kinds = backlog.get(name, {})
            state = self._states.get(name)
            sinks.append(
                SinkStatus(
                    sink=name,
                    configured=state is not None or (name == LOCAL_SINK and self._local),
                    pending=sum(kinds.values()),
                    pending_alerts=sum(n for k, n in kinds.items() if k in ALERT_KINDS),
                    dropped_samples=dropped.get(name, 0),
                    consecutive_failures=state.failures if state else 0,
                    paused_for_s=max(0.0, (state.paused_until_ms - now) / 1000) if state else 0.0,
                    delivered=state.counts["delivered_total"] if state else 0,
                    failed=state.counts["failed_total"] if state else 0,
                )
            )
        failed = tuple(
            FailedPayload(
                sink=f.sink,
                kind=f.kind,
                idempotency_key=f.idempotency_key,
                attempts=f.attempts,
                last_error=f.last_error,
                failed_ms=TimestampMs(f.failed_ms),
            )
            for f in store.failed_deliveries(failed_limit)
        )
        return DeliveryReport(db_path=str(store.path), sinks=tuple(sinks), failed=failed)

    def _publish(self) -> None:
        if self._status is None or self._store is None:
            return
        counters: dict[str, float] = {f"outbox_{k}": v for k, v in self._counts.items()}
        backlog, dropped = self._store.backlog(), self._store.dropped_samples()
        for name, state in self._states.items():
            for key, value in state.counts.items():
                counters[f"delivery_{name}_{key}"] = value
            counters[f"delivery_{name}_pending"] = sum(backlog.get(name, {}).values())
            counters[f"delivery_{name}_dropped_samples_total"] = dropped.get(name, 0)
            counters[f"delivery_{name}_failures_in_a_row"] = state.failures
        self._status.count(self.name, counters)
