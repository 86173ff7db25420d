"""Persistence and delivery conversation: the store, the poster, its sink threads.

Who sends what::

    producers ──VolumeAlert / OiAlert / OiSamples / LiquidUniverse──► poster   (tell)
    producers ──AlertHandoff(reply_to, alerts)──► poster     (tell; alerts with a receipt)
    poster ──AlertsCommitted(keys)──► producer (by name)     the alerts are in the outbox
    sink thread ──DeliveryOutcome──► poster     one per payload it attempted
    sink thread ──SinkReady────────► poster     its job is over; give it the next one
    timer service ──WakeSink───────► poster     a sink's backoff or linger ended
    anyone ──DeliveryQuery──► poster (ask)      → DeliveryReport (backlog, failures)
    anyone ──RequeueFailed──► poster (ask)      → int: failed payloads made pending again

    owners of state ──PutState / DeleteState──► store   (tell; the store is the only writer)
    OI poller ──OiSamples──► store                       (tell; appended to the OI history)
    at start-up ──GetState / GetStates / LoadOiHistory──► store (ask with a timeout)
                 → StateReply / StatesReply / OiHistoryReply

An alert handed over in an :class:`AlertHandoff` stays the producer's responsibility until the
poster answers :class:`AlertsCommitted` with its idempotency key (see :mod:`actors._handoff`):
a handoff lost to a poster restart is simply sent again, and the outbox's unique key makes the
repeat harmless.

State travels as JSON bytes (``PutState.of(ns, key, plain_value)``), never as a dict: a message
is shared between threads, and bytes cannot be mutated after sending.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from messages._base import Message, message
from messages.open_interest import OiAlert, OiSample
from messages.types import ActorName, TimestampMs
from messages.volume import VolumeAlert

__all__ = [
    "AlertHandoff",
    "AlertsCommitted",
    "DeleteState",
    "DeliveryOutcome",
    "DeliveryQuery",
    "DeliveryReport",
    "FailedPayload",
    "GetState",
    "GetStates",
    "LoadOiHistory",
    "OiHistoryReply",
    "PutState",
    "RequeueFailed",
    "SinkReady",
    "SinkStatus",
    "StateEntry",
    "StateReply",
    "StatesReply",
    "WakeSink",
]

Outcome = Literal["delivered", "retry", "failed"]
"""What one attempt came to (``failed`` is permanent: kept, reported, not retried)."""


# --- poster: producers ------------------------------------------------------------------------


@message
class AlertHandoff(Message):
    """Alerts a producer hands to the poster, with a receipt: answered by :class:`AlertsCommitted`.

    The producer keeps every alert until its key comes back, and sends it again when no answer
    came (the poster was restarting, or crashed with this message in its inbox).
    """

    reply_to: ActorName
    """The producer's registry name (the answer reaches whichever incarnation is current)."""
    alerts: tuple[VolumeAlert | OiAlert, ...]
    """The alerts, in the order they were made."""


@message
class AlertsCommitted(Message):
    """The poster's receipt for an :class:`AlertHandoff`: these alerts are its business now.

    Told after the outbox transaction committed. A key counts as committed when its alert was
    written now, was already in the outbox (a repeat), or was refused for good (an unsendable
    alert, logged and counted by the poster: sending it again cannot help).
    """

    keys: tuple[str, ...]
    """The idempotency keys of the alerts handed over (:func:`actors._payloads.outbox_entries`)."""


# --- poster: sink threads and timers ---------------------------------------------------------


@message
class DeliveryOutcome(Message):
    """One payload's delivery attempt, from a sink's thread to the poster."""

    sink: str
    """The sink that tried (``"prod"``, ``"dev"``, ``"telegram"``, a callback's name)."""
    job: int
    """The job the payload was handed over in."""
    outbox_id: int
    """The payload's outbox row."""
    kind: str
    """The payload kind (``volume_alert``, ``oi_alert``, ``oi_samples``, ``universe``)."""
    idempotency_key: str
    """The payload's idempotency key (for logs and reports)."""
    attempts: int
    """Failed attempts before this one."""
    outcome: Outcome
    """Delivered, retry later, or failed for good."""
    reason: str
    """``"HTTP 200"``, ``"ConnectionError: …"``, ``"HTTP 400 {…}"`` (secrets removed)."""
    status: int | None = None
    """The HTTP status, when a response arrived."""
    retry_after_s: float | None = None
    """The server's requested wait (``Retry-After``, Telegram's ``retry_after``)."""


@message
class SinkReady(Message):
    """A sink's thread finished a job and waits for the next one."""

    sink: str
    """The sink."""
    job: int
    """The job that ended."""
    attempted: int
    """Payloads it reported an outcome for."""
    skipped: int
    """Payloads it did not try (the job stopped at a retryable failure, or it is stopping)."""


@message
class WakeSink(Message):
    """The poster's one-shot timer: look at a sink's due payloads again."""

    sink: str
    """The sink."""
    at_ms: TimestampMs
    """The wall-clock instant the wake-up was scheduled for."""


# --- poster: queries -------------------------------------------------------------------------


@message
class DeliveryQuery(Message):
    """Ask the poster for its backlog and recent permanent failures (→ :class:`DeliveryReport`)."""

    failed_limit: int = 20
    """The most recent permanent failures to include."""


@message
class SinkStatus(Message):
    """One sink's delivery state."""

    sink: str
    """The sink's name (``"local"`` is the SQLite sink)."""
    configured: bool
    """False for a sink that has pending rows in the outbox but is not configured any more."""
    pending: int
    """Payloads waiting for this sink."""
    pending_alerts: int
    """Of which alerts (never dropped)."""
    dropped_samples: int
    """OI-sample chunks dropped by the backlog bound since the database was made."""
    consecutive_failures: int
    """Retryable failures in a row (0 when the sink is healthy)."""
    paused_for_s: float
    """Seconds until the sink is tried again after a failure (0 when not paused)."""
    delivered: int
    """Payloads delivered by this incarnation."""
    failed: int
    """Payloads failed for good by this incarnation."""


@message
class FailedPayload(Message):
    """A payload a sink refused for good (a 4xx other than 408/429, or unsendable)."""

    sink: str
    """The sink that refused it."""
    kind: str
    """The payload kind."""
    idempotency_key: str
    """Its key."""
    attempts: int
    """Attempts made."""
    last_error: str | None
    """The refusal (``"HTTP 400 {…}"``)."""
    failed_ms: TimestampMs
    """When it failed for good."""


@message
class DeliveryReport(Message):
    """The poster's answer to :class:`DeliveryQuery`."""

    db_path: str
    """The database file."""
    sinks: tuple[SinkStatus, ...]
    """Every configured sink, then unconfigured ones with pending rows."""
    failed: tuple[FailedPayload, ...]
    """The most recent permanent failures, newest first."""

    def sink(self, name: str) -> SinkStatus | None:
        """The status of sink ``name``, or ``None``."""
        return next((s for s in self.sinks if s.sink == name), None)


@message
class RequeueFailed(Message):
    """Make a sink's permanently failed payloads pending again (after fixing a key or URL).

    Ask it; the answer is the number of payloads requeued.
    """

    sink: str
    """The sink."""


# --- store -----------------------------------------------------------------------------------


@message
class PutState(Message):
    """Store a value under ``namespace``/``key`` (replacing it). Build it with :meth:`of`."""

    namespace: str
    """The owner's namespace (``"volume"``, ``"oi-rule"``, ``"universe"``)."""
    key: str
    """The key inside the namespace."""
    json: bytes
    """The value as JSON."""

    @classmethod
    def of(cls, namespace: str, key: str, value: Any) -> PutState:
        """A ``PutState`` for a JSON-able value (dicts, lists, tuples, numbers, strings).

        Raises:
            TypeError: if ``value`` cannot be written as JSON.
        """
        return cls(namespace=namespace, key=key, json=orjson.dumps(value))


@message
class DeleteState(Message):
    """Remove ``namespace``/``key``."""

    namespace: str
    """The namespace."""
    key: str
    """The key."""


@message
class GetState(Message):
    """Ask for one value (→ :class:`StateReply`)."""

    namespace: str
    """The namespace."""
    key: str
    """The key."""


@message
class StateReply(Message):
    """The answer to :class:`GetState`."""

    namespace: str
    """The namespace asked."""
    key: str
    """The key asked."""
    json: bytes | None
    """The value as JSON, or ``None`` when nothing is stored."""

    def value(self, default: Any = None) -> Any:
        """The stored value (JSON arrays come back as lists), or ``default``."""
        return default if self.json is None else orjson.loads(self.json)


@message
class GetStates(Message):
    """Ask for every key of a namespace (→ :class:`StatesReply`)."""

    namespace: str
    """The namespace."""


@message
class StateEntry(Message):
    """One key and value of a namespace."""

    key: str
    """The key."""
    json: bytes
    """The value as JSON."""


@message
class StatesReply(Message):
    """The answer to :class:`GetStates`."""

    namespace: str
    """The namespace asked."""
    entries: tuple[StateEntry, ...]
    """Every key and value, by key."""

    def values(self) -> dict[str, Any]:
        """The entries as a fresh ``{key: value}`` dict."""
        return {entry.key: orjson.loads(entry.json) for entry in self.entries}


@message
class LoadOiHistory(Message):
    """Ask for the stored OI history (→ :class:`OiHistoryReply`)."""

    since_ms: TimestampMs
    """Samples at or after this instant."""


@message
class OiHistoryReply(Message):
    """The answer to :class:`LoadOiHistory`: samples by symbol, then time (no funding rates)."""

    samples: tuple[OiSample, ...]
    """The samples."""
