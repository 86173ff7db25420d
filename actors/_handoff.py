"""Alerts a producer still answers for: handed to the poster, not yet confirmed committed.

A producer (the volume scanner, the OI poller) hands its alerts over in an
:class:`~messages.delivery.AlertHandoff` naming itself; the poster commits them to the outbox
and answers :class:`~messages.delivery.AlertsCommitted` with their idempotency keys::

    producer ──AlertHandoff(reply_to, alerts)──► poster     outbox transaction commits, then
    producer ◄──AlertsCommitted(keys)─────────── poster     (tell, to the producer's name)

Until its key comes back an alert stays in :class:`Unconfirmed`, and that covers every way a
handoff can be lost on its way *into* the outbox:

- the poster is restarting: ``tell`` is refused, nothing answers;
- the poster crashed with the handoff in its inbox: the supervision layer drops what was
  queued for that incarnation, nothing answers;
- ``kill -9`` before the poster committed: the producer persists :meth:`Unconfirmed.export` in
  the **same** ``PutState`` as the dedup or rule state that keeps the alert from being raised
  again, so both are stored or neither is; after a restart :meth:`Unconfirmed.load` brings the
  alerts back and they are handed over again at once.

Whatever was not confirmed after ``resend_after_s`` is handed over again (:meth:`take_due`, on
the producer's periodic tick). Resending is harmless: the outbox's idempotency key is unique,
so an alert the poster had committed (its receipt lost, or still on its way) is a duplicate,
never enqueued nor delivered again, and is confirmed like a new one.

:class:`Unconfirmed` is pure (values in, values out; the caller passes its clock's monotonic
seconds); :class:`AlertCourier` wraps it with the telling and the logging both producers share.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors._payloads import outbox_entries
from messages.codec import decode, encode
from messages.delivery import AlertHandoff
from messages.errors import CodecError
from messages.open_interest import OiAlert
from messages.volume import VolumeAlert

if TYPE_CHECKING:
    from collections.abc import Iterable

    from messages.types import ActorName

__all__ = ["LATE_LOAD_TIMEOUT_S", "Alert", "AlertCourier", "Unconfirmed", "alert_key"]

LATE_LOAD_TIMEOUT_S = 1.0
"""How long a producer whose saved state could not be read at start waits for the store when it
asks again on its tick (a hung store then blocks it 1 s in 5, not all the time)."""

Alert = VolumeAlert | OiAlert
"""What travels with a receipt."""


def alert_key(alert: Alert) -> str:
    """The alert's idempotency key: the outbox's unique key, as the poster derives it."""
    return outbox_entries(alert)[0].idempotency_key


@dataclass(slots=True)
class _Pending:
    alert: Alert
    sent_s: float
    """Monotonic seconds of the last handoff (``-inf``: loaded, not handed over yet)."""


class Unconfirmed:
    """The alerts handed to the poster whose commit it has not confirmed yet, by key.

    Args:
        resend_after_s: an alert unconfirmed this long after its last handoff is due again.

    Attributes:
        revision: grows whenever the exported state changes (persist when it moved).
        rounds: rounds of resending alerts that waited in vain since everything was last
            confirmed (1 on the first one, so a producer can log that one loudly and the rest
            quietly); handing over loaded alerts after a restart is not such a round.
        counts: ``added``, ``confirmed``, ``resent`` (alerts, since this object was made).
    """

    def __init__(self, resend_after_s: float = 10.0) -> None:
        if not resend_after_s > 0:
            raise ValueError("resend_after_s must be positive")
        self.resend_after_s = resend_after_s
        self.revision = 0
        self.rounds = 0
        self.counts: Counter[str] = Counter()
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def keys(self) -> tuple[str, ...]:
        """The keys waiting for a receipt, oldest first."""
        return tuple(self._pending)

    def alerts(self) -> tuple[Alert, ...]:
        """The alerts waiting for a receipt, oldest first."""
        return tuple(p.alert for p in self._pending.values())

    def add(self, alert: Alert, now_s: float) -> str:
        """Remember ``alert`` as handed over at ``now_s``; returns its key.

        An alert whose key is already waiting is not added again: the outbox keeps the first
        alert of a key too.
        """
        key = alert_key(alert)
        if key not in self._pending:
            self._pending[key] = _Pending(alert, now_s)
            self.counts["added"] += 1
            self.revision += 1
        return key

    def confirm(self, keys: Iterable[str]) -> int:
        """Forget the alerts whose keys the poster confirmed; returns how many were waiting.

        Unknown keys (a repeat's second receipt, another incarnation's alert) are ignored.
        """
        confirmed = sum(1 for key in keys if self._pending.pop(key, None) is not None)
        if confirmed:
            self.counts["confirmed"] += confirmed
            self.revision += 1
        if not self._pending:
            self.rounds = 0
        return confirmed

    def take_due(self, now_s: float) -> tuple[Alert, ...]:
        """The alerts unconfirmed ``resend_after_s`` after their last handoff, oldest first.

        They count as handed over again at ``now_s`` (the caller sends them now).
        """
        due = [p for p in self._pending.values() if now_s - p.sent_s >= self.resend_after_s]
        if any(math.isfinite(p.sent_s) for p in due):
            self.rounds += 1  # loaded alerts alone (a restart) are not a round of waiting
        for pending in due:
            pending.sent_s = now_s
        self.counts["resent"] += len(due)
        return tuple(p.alert for p in due)

    def export(self) -> list[str]:
        """The waiting alerts as JSON-able rows (base64 of the message codec), oldest first."""
        return [base64.b64encode(encode(p.alert)).decode("ascii") for p in self._pending.values()]

    def load(self, rows: Any) -> tuple[int, int]:
        """Add alerts from :meth:`export` rows, due at once; returns ``(loaded, unreadable)``.

        A row that does not decode to an alert is skipped and counted (it could never be
        delivered); the others are loaded. ``None`` (nothing was saved) loads nothing.

        Raises:
            TypeError: if ``rows`` is neither ``None`` nor a list of rows.
        """
        if rows is None:
            return 0, 0
        if not isinstance(rows, list | tuple):
            raise TypeError(f"unconfirmed alerts must be a list, not {type(rows).__name__}")
        loaded = unreadable = 0
        for row in rows:
            try:
                alert = decode(base64.b64decode(row, validate=True))
            except (CodecError, binascii.Error, TypeError, ValueError):
                unreadable += 1
                continue
            if not isinstance(alert, VolumeAlert | OiAlert):
                unreadable += 1
                continue
            key = alert_key(alert)
            if key not in self._pending:
                self._pending[key] = _Pending(alert, -math.inf)
                self.revision += 1
            loaded += 1
        return loaded, unreadable


class AlertCourier:
    """A producer's side of the handoff: keep, hand over, resend, confirm (its actor thread).

    The scanner and the OI poller each own one; it does the telling and the logging, the
    producer decides when (on its alerts, its periodic tick, the poster's receipt) and persists
    :meth:`Unconfirmed.export` of :attr:`pending` with its own state.

    Args:
        owner: the producer's name (``reply_to`` of its handoffs).
        poster: the poster's name.
        registry: where names resolve (``registry.tell(name, message) -> bool``).
        log: the producer's logger.
        what: how the log calls its alerts (``"alert(s)"``, ``"OI alert(s)"``).
        resend_after_s: see :class:`Unconfirmed`.
    """

    def __init__(  # noqa: PLR0913 - keyword-only wiring
        self,
        *,
        owner: ActorName,
        poster: str,
        registry: Any,
        log: Any,
        what: str = "alert(s)",
        resend_after_s: float = 10.0,
    ) -> None:
        self.pending = Unconfirmed(resend_after_s)
        self.handed = 0
        """Alerts the poster's inbox took (resends included)."""
        self.refused = 0
        """Alerts no poster was there to take (kept, handed over again later)."""
        self._owner, self._poster = owner, poster
        self._registry, self._log, self._what = registry, log, what

    def load(self, saved: Any) -> None:
        """Take back what the previous incarnation saved unconfirmed (logged, never raises)."""
        try:
            loaded, unreadable = self.pending.load(saved)
        except TypeError as exc:
            self._log.error("saved unconfirmed {} unreadable ({}); none resent", self._what, exc)
            return
        if unreadable:
            self._log.error("{} saved unconfirmed {} unreadable; dropped", unreadable, self._what)
        if loaded:
            self._log.info("loaded {} {} the poster had not confirmed", loaded, self._what)

    def keep(self, alerts: Iterable[Alert], now_s: float) -> None:
        """Remember ``alerts`` as handed over now (before saving and handing them over)."""
        for alert in alerts:
            self.pending.add(alert, now_s)

    def hand_over(self, alerts: tuple[Alert, ...]) -> None:
        """Tell the poster ``alerts`` with a receipt asked for."""
        if self._registry.tell(self._poster, AlertHandoff(reply_to=self._owner, alerts=alerts)):
            self.handed += len(alerts)
            return
        self.refused += len(alerts)
        self._log.warning(
            "no {} to take {} {} (e.g. {}); kept, handed over again in {:g} s",
            self._poster,
            len(alerts),
            self._what,
            alerts[0].symbol,
            self.pending.resend_after_s,
        )

    def resend(self, now_s: float) -> bool:
        """Hand over again what waited in vain (or was saved before a restart); any sent?

        Logged at WARNING on the first round of waiting and every 20th after it.
        """
        before = self.pending.rounds
        due = self.pending.take_due(now_s)
        if not due:
            return False
        rounds = self.pending.rounds
        if rounds == before:  # only alerts the previous incarnation saved
            self._log.info(
                "{} {} saved unconfirmed before a restart; resending", len(due), self._what
            )
        else:
            level = "WARNING" if rounds == 1 or rounds % 20 == 0 else "DEBUG"
            self._log.log(
                level,
                "{} {} not yet confirmed by {}; resending",
                len(due),
                self._what,
                self._poster,
            )
        self.hand_over(due)
        return True

    def committed(self, keys: tuple[str, ...]) -> bool:
        """The poster's receipt; whether it confirmed anything waiting (save then)."""
        waited = self.pending.rounds
        if not self.pending.confirm(keys):
            return False
        if waited and not self.pending:
            self._log.info("{} confirmed all the resent {}", self._poster, self._what)
        return True

    def counters(self, prefix: str) -> dict[str, float]:
        """``<prefix>_{resent,confirmed}_total`` and ``<prefix>_unconfirmed``."""
        return {
            f"{prefix}_resent_total": self.pending.counts["resent"],
            f"{prefix}_confirmed_total": self.pending.counts["confirmed"],
            f"{prefix}_unconfirmed": len(self.pending),
        }
