"""The volume-spike rule of the original scanner, evaluated on every kline update (pure logic).

Rule (spec §1.5): for a symbol's 1h candle ``curr`` and the closed candle of the hour before
it, ``prev``, ``ratio = curr.quote_volume / prev.quote_volume``; a SPIKE is due when
``ratio >= multiple`` (default 3) and ``curr.quote_volume >= min_quote_volume`` (default
3,000,000 USDT), at most once per (symbol, hour). Update alerts (spec §1.6) report the
*current* ratio and volume whatever they are: HALF_UPDATE at hh:30 and FULL_UPDATE at the next
hh:00 on the just-closed candle. Payload and message follow spec §1.7 / §4.2.

Timing. The original scanned at hh:00, :05 ... :55, sent a HALF_UPDATE at hh:30 when the
spike's scan minute was <= 20 and a FULL_UPDATE at the next hh:00 unless it was 55. Detection
is continuous here, so issue 7's wording applies to the actual detection minute:

- HALF_UPDATE owed ⇔ detected in minute 0-20 of the hour (before hh:21:00);
- FULL_UPDATE owed ⇔ detected before hh:55:00.

A crossing first seen on the closed candle (a "closing spike") gets no updates.

Differences from the original (``hourly_volume_alert_dual_env.py``):

- Detection runs on every stream update and backfill row instead of a 5-minute REST scan;
  ``detection_time_ms`` is the actual detection instant (``now_ms`` of the detecting call),
  not the scan time floored to five minutes, and ``timestamp_ms`` is the call's ``now_ms``.
- Dedup and owed updates are a small exportable state (:meth:`SpikeDetector.export_state`),
  so a restart never repeats a SPIKE and never drops a due update (WEAK-4); a tick that comes
  late still delivers, and a repeated tick delivers nothing twice (WEAK-7).
- A flat candle (close == open) has no ``candle_direction`` instead of "bearish" (WEAK-8).
- A previous volume of 0 (or a symbol without a previous hour, e.g. a new listing) never
  alerts, as before, but is counted once per symbol-hour (WEAK-9).
- ``funding_rate`` / ``oi_change`` come from an injected ``enrich`` callable and are ``None``
  when unknown, never 0.0 (WEAK-1); ``enrich`` runs only for alerts (WEAK-3).
- ``price`` is still the candle's close, i.e. the last trade price (WEAK-10, kept on purpose:
  the payload documents it as such).
- A FULL_UPDATE waits for the final (closed) candle: if the hh:00 tick comes before the
  closing event, the update goes out with the call that brings the closed candle.
- A HALF_UPDATE not delivered before its hour ends is superseded by the FULL_UPDATE
  (counted as ``expired_half``), so updates never arrive out of order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from actors._candle_store import HOUR_MS, CandleStore, hour_floor
from messages.types import AlertType, CandleDirection, Symbol, TimestampMs
from messages.volume import VolumeAlert

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from messages.market import Kline, KlineUpdate, KlineUpdates

__all__ = [
    "STATE_VERSION",
    "Enrich",
    "SpikeConfig",
    "SpikeDetector",
    "SpikeRecord",
    "full_update_owed",
    "half_update_owed",
    "humanize_volume",
    "make_alert",
]

MINUTE_MS: Final = 60_000
HALF_UPDATE_AT_MS: Final = 30 * MINUTE_MS
STATE_VERSION: Final = 1

Enrich: TypeAlias = Callable[[Symbol, TimestampMs], tuple[float | None, float | None]]
"""``enrich(symbol, hour_open_ms) -> (funding_rate, oi_change)``, ``None`` when unknown."""

_PREFIX: Final[dict[AlertType, str]] = {
    "SPIKE": "",
    "HALF_UPDATE": "HALF-UPDATE: ",
    "FULL_UPDATE": "UPDATE: ",
}


HALF_UPDATE_LAST_MINUTE: Final = 20
"""A spike detected in minute 0-20 of its hour (before hh:21:00) gets a HALF_UPDATE at hh:30."""
FULL_UPDATE_BEFORE_MINUTE: Final = 55
"""A spike detected before hh:55:00 gets a FULL_UPDATE at the next hh:00."""


def half_update_owed(offset_ms: int) -> bool:
    """Issue 7: "HALF_UPDATE at :30 for spikes detected by minute 20" (minute <= 20).

    ``offset_ms`` is the detection time minus the candle's open time.
    """
    return max(0, offset_ms) // MINUTE_MS <= HALF_UPDATE_LAST_MINUTE


def full_update_owed(offset_ms: int) -> bool:
    """Issue 7: "FULL_UPDATE at :00 ... for spikes detected before :55"."""
    return max(0, offset_ms) < FULL_UPDATE_BEFORE_MINUTE * MINUTE_MS


def humanize_volume(volume: float) -> str:
    """The original's ``fmt``: ``2.60B``, ``1.50M``, ``3.20K`` or ``999``, comma-grouped."""
    if volume >= 1e9:
        return f"{volume / 1e9:,.2f}B"
    if volume >= 1e6:
        return f"{volume / 1e6:,.2f}M"
    if volume >= 1e3:
        return f"{volume / 1e3:,.2f}K"
    return f"{volume:,.0f}"


def _direction(candle: Kline) -> CandleDirection | None:
    if candle.close > candle.open:
        return "bullish"
    if candle.close < candle.open:
        return "bearish"
    return None


def make_alert(  # noqa: PLR0913 - the payload has this many independent inputs
    alert_type: AlertType,
    candle: Kline,
    previous_volume: float,
    now_ms: int,
    *,
    funding_rate: float | None = None,
    oi_change: float | None = None,
) -> VolumeAlert:
    """Build the alert about ``candle`` exactly as spec §1.7 / §4.2 define it.

    Args:
        alert_type: SPIKE, HALF_UPDATE or FULL_UPDATE (selects the message prefix).
        candle: the candle the alert is about (its latest known version).
        previous_volume: quote volume of the closed hour before it.
        now_ms: when the alert is made; also its detection time.
        funding_rate: from the price cache, ``None`` when unknown.
        oi_change: open-interest change since the hour's start, ``None`` when unknown.
    """
    volume = candle.quote_volume
    ratio = volume / previous_volume if previous_volume > 0 else 0.0
    asset = candle.symbol.replace("USDT", "")
    message = (
        f"{_PREFIX[alert_type]}{asset} hourly volume {humanize_volume(volume)} "
        f"({ratio:.2f}× prev) — VOLUME SPIKE!"  # noqa: RUF001 - the original's sign
    )
    return VolumeAlert(
        symbol=candle.symbol,
        asset=asset,
        current_volume=volume,
        previous_volume=previous_volume,
        volume_ratio=ratio,
        message=message,
        timestamp_ms=TimestampMs(now_ms),
        detection_time_ms=TimestampMs(now_ms),
        hour_timestamp_ms=TimestampMs(candle.open_time_ms),
        alert_type=alert_type,
        price=candle.close,
        funding_rate=funding_rate,
        candle_direction=_direction(candle),
        price_change=(candle.close - candle.open) / candle.open if candle.open > 0 else None,
        oi_change=oi_change,
    )


@dataclass(frozen=True, slots=True)
class SpikeConfig:
    """Thresholds and timing of the detector."""

    multiple: float = 3.0
    """SPIKE when ``current >= multiple * previous`` (computed as a ratio, like the original)."""
    min_quote_volume: float = 3_000_000.0
    """... and the current candle's quote volume is at least this (USDT)."""
    closing_window_ms: int = 5 * MINUTE_MS
    """A candle is still evaluated this long after its close (closing spikes, late events)."""
    backfill_grace_ms: int = 5_000
    """How long after hh:00 the previous hour's closed candle may still be in flight."""

    def __post_init__(self) -> None:
        """Check the values."""
        if not (math.isfinite(self.multiple) and self.multiple > 0):
            raise ValueError("multiple must be a positive number")
        if not (math.isfinite(self.min_quote_volume) and self.min_quote_volume >= 0):
            raise ValueError("min_quote_volume must be a non-negative number")
        if not 0 <= self.closing_window_ms < HOUR_MS:
            raise ValueError("closing_window_ms must be in [0, 1 h)")
        if not 0 <= self.backfill_grace_ms < HOUR_MS:
            raise ValueError("backfill_grace_ms must be in [0, 1 h)")


@dataclass(frozen=True, slots=True)
class SpikeRecord:
    """One SPIKE sent for a symbol-hour, and the updates still owed for it."""

    symbol: str
    hour_open_ms: int
    """Open time of the candle that spiked."""
    detected_ms: int
    """When the SPIKE was detected."""
    previous_volume: float
    """Quote volume of the closed hour before it (final, so updates can reuse it)."""
    half_owed: bool
    """A HALF_UPDATE is still to be sent."""
    full_owed: bool
    """A FULL_UPDATE is still to be sent."""

    def to_row(self) -> list[Any]:
        """The record as a plain list (JSON / msgpack friendly)."""
        return [
            self.symbol,
            self.hour_open_ms,
            self.detected_ms,
            self.previous_volume,
            self.half_owed,
            self.full_owed,
        ]

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> SpikeRecord:
        """Rebuild a record from :meth:`to_row`'s output.

        Raises:
            ValueError: if the row does not have that shape.
        """
        values = list(row)
        if len(values) != 6:
            raise ValueError(f"a spike record has 6 fields, got {len(values)}")
        symbol, hour, detected, previous, half, full = values
        if not (
            isinstance(symbol, str)
            and all(type(v) is int for v in (hour, detected))
            and hour % HOUR_MS == 0
            and type(previous) in (int, float)
            and all(type(v) is bool for v in (half, full))
        ):
            raise ValueError(f"malformed spike record {values!r}")
        return cls(symbol, hour, detected, float(previous), half, full)


class SpikeDetector:
    """Candle store, rule, dedup and owed updates for the whole universe.

    Every method takes ``now_ms`` (Binance server time, epoch ms) and returns the alerts to
    send, in order. Nothing here blocks, sleeps or reads a clock. ``enrich`` is called once
    per alert built, never for symbols that do not alert.

    Args:
        config: thresholds and timing.
    """

    def __init__(self, config: SpikeConfig | None = None) -> None:
        self.config = config or SpikeConfig()
        self.store = CandleStore()
        self.counters: Counter[str] = Counter()
        """Events by kind (``spikes``, ``no_previous``, ``previous_zero``, ``klines_stale``...)."""
        self.revision = 0
        """Grows whenever the exportable state changes (persist when it moved)."""
        self._records: dict[str, dict[int, SpikeRecord]] = {}
        self._noted: set[tuple[str, int, str]] = set()
        self._pruned_hour = 0

    # --- universe and backfill -----------------------------------------------------------

    def set_universe(self, symbols: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Track exactly ``symbols``; returns ``(added, removed)``.

        A removed symbol's candles are dropped; its dedup records stay until they age out,
        so a symbol that flickers out and back within the hour cannot spike twice.
        """
        return self.store.set_universe(symbols)

    def needs_backfill(self, now_ms: int) -> tuple[str, ...]:
        """Symbols whose previous hour's closed candle is missing: fetch them over REST."""
        return self.store.needs_backfill(now_ms, self.config.backfill_grace_ms)

    def ingest_backfill(
        self, symbol: str, rows: Iterable[Kline], now_ms: int, enrich: Enrich
    ) -> list[VolumeAlert]:
        """Apply one complete REST answer (``klines?symbol=S&interval=1h&limit=3``).

        ``rows`` must be every row the request returned, with ``closed`` set for candles whose
        close time is past; an answer without the previous hour marks a new listing.
        """
        klines = sorted(rows, key=lambda k: k.open_time_ms)
        own = [k for k in klines if k.symbol == symbol]
        self.counters["klines_rejected"] += len(klines) - len(own)
        self.store.note_backfill(symbol, (k.open_time_ms for k in own), now_ms)
        alerts: list[VolumeAlert] = []
        for kline in own:
            alerts += self._ingest(kline, now_ms, enrich)
        return alerts

    # --- stream --------------------------------------------------------------------------

    def on_update(self, update: KlineUpdate, now_ms: int, enrich: Enrich) -> list[VolumeAlert]:
        """Apply one kline event; returns the SPIKEs it causes.

        Also returns any update of the same symbol that is due at ``now_ms`` and not yet
        sent. The ticks normally send them first; this path delivers the FULL_UPDATE whose
        closing event came after the hh:00 tick, and updates owed across a restart.
        """
        return self._ingest(update.kline, now_ms, enrich)

    def on_updates(self, batch: KlineUpdates, now_ms: int, enrich: Enrich) -> list[VolumeAlert]:
        """Apply a batch of kline events in order."""
        alerts: list[VolumeAlert] = []
        for update in batch.items:
            alerts += self._ingest(update.kline, now_ms, enrich)
        return alerts

    # --- schedule ------------------------------------------------------------------------

    def on_half_hour(self, now_ms: int, enrich: Enrich) -> list[VolumeAlert]:
        """The hh:30 tick: every HALF_UPDATE due by ``now_ms``. Late or repeated calls are safe."""
        return self._due_everywhere(now_ms, enrich, full=False)

    def on_hour(self, now_ms: int, enrich: Enrich) -> list[VolumeAlert]:
        """The hh:00 tick: every FULL_UPDATE due whose closed candle is known."""
        return self._due_everywhere(now_ms, enrich, full=True)

    # --- state ---------------------------------------------------------------------------

    @property
    def records(self) -> tuple[SpikeRecord, ...]:
        """Every kept record, ordered by (hour, symbol)."""
        rows = (r for by_hour in self._records.values() for r in by_hour.values())
        return tuple(sorted(rows, key=lambda r: (r.hour_open_ms, r.symbol)))

    def export_state(self) -> dict[str, Any]:
        """The dedup and owed-update state as plain data (JSON / msgpack friendly)."""
        return {"version": STATE_VERSION, "spikes": [r.to_row() for r in self.records]}

    def import_state(self, state: Mapping[str, Any]) -> int:
        """Merge a state from :meth:`export_state`; returns the number of records read.

        A record already present as the same detection keeps only the updates that both copies
        still owe. Two detections of one symbol-hour (a SPIKE raised again before a late read of
        the saved state) keep the earlier one, owed updates and all: the later copy's "not owed"
        may only mean "past its cut-off when it was detected"; its SPIKE repeats the earlier's
        idempotency key, so the outbox never delivers it twice.

        Raises:
            ValueError: if ``state`` is not a known version or is malformed.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown volume state version {state.get('version')!r}")
        rows = state.get("spikes")
        if not isinstance(rows, list | tuple):
            raise ValueError("volume state has no 'spikes' list")  # noqa: TRY004 - one error type
        records = [SpikeRecord.from_row(row) for row in rows]
        for record in records:
            old = self._record(record.symbol, record.hour_open_ms)
            if old is not None and old.detected_ms < record.detected_ms:
                continue  # ours is the earlier detection
            if old is not None and old.detected_ms == record.detected_ms:
                record = replace(  # noqa: PLW2901 - the merged version replaces the read one
                    old,
                    half_owed=old.half_owed and record.half_owed,
                    full_owed=old.full_owed and record.full_owed,
                )
            self._put_record(record)
        return len(records)

    # --- internals -----------------------------------------------------------------------

    def _record(self, symbol: str, hour_open_ms: int) -> SpikeRecord | None:
        by_hour = self._records.get(symbol)
        return None if by_hour is None else by_hour.get(hour_open_ms)

    def _put_record(self, record: SpikeRecord) -> None:
        self._records.setdefault(record.symbol, {})[record.hour_open_ms] = record
        self.revision += 1

    def _note(self, symbol: str, hour_open_ms: int, reason: str) -> None:
        """Count ``reason`` once per symbol-hour."""
        key = (symbol, hour_open_ms, reason)
        if key not in self._noted:
            self._noted.add(key)
            self.counters[reason] += 1

    def _ingest(self, kline: Kline, now_ms: int, enrich: Enrich) -> list[VolumeAlert]:
        self._prune(now_ms)
        result = self.store.put(kline)
        if result != "accepted":
            self.counters[f"klines_{result}"] += 1
            return []
        alerts = self._due_updates(kline.symbol, now_ms, enrich, half=True, full=True)
        for open_ms in (kline.open_time_ms, kline.open_time_ms + HOUR_MS):
            spike = self._evaluate(kline.symbol, open_ms, now_ms, enrich)
            if spike is not None:
                alerts.append(spike)
        return alerts

    def _evaluate(
        self, symbol: str, open_ms: int, now_ms: int, enrich: Enrich
    ) -> VolumeAlert | None:
        """Apply the rule to ``symbol``'s candle at ``open_ms``; record and build a SPIKE."""
        candle = self.store.candle(symbol, open_ms)
        if candle is None or self._record(symbol, open_ms) is not None:
            return None
        if now_ms >= open_ms + HOUR_MS + self.config.closing_window_ms:
            return None
        previous = self.store.closed_candle(symbol, open_ms - HOUR_MS)
        if previous is None:
            if self.store.known_absent(symbol, open_ms - HOUR_MS):
                self._note(symbol, open_ms, "no_previous")
            return None
        if previous.quote_volume <= 0:
            self._note(symbol, open_ms, "previous_zero")
            return None
        if candle.quote_volume / previous.quote_volume < self.config.multiple:
            return None
        if candle.quote_volume < self.config.min_quote_volume:
            self._note(symbol, open_ms, "ratio_hit_below_min")
            return None
        offset = now_ms - open_ms
        record = SpikeRecord(
            symbol=symbol,
            hour_open_ms=open_ms,
            detected_ms=now_ms,
            previous_volume=previous.quote_volume,
            half_owed=not candle.closed and half_update_owed(offset),
            full_owed=not candle.closed and full_update_owed(offset),
        )
        self._put_record(record)
        self.counters["closing_spikes" if candle.closed else "spikes"] += 1
        return self._alert("SPIKE", candle, record, now_ms, enrich)

    def _due_everywhere(self, now_ms: int, enrich: Enrich, *, full: bool) -> list[VolumeAlert]:
        self._prune(now_ms, force=True)
        alerts: list[VolumeAlert] = []
        for symbol in sorted(self._records):
            alerts += self._due_updates(symbol, now_ms, enrich, half=not full, full=full)
        return alerts

    def _due_updates(
        self, symbol: str, now_ms: int, enrich: Enrich, *, half: bool, full: bool
    ) -> list[VolumeAlert]:
        """Send what ``symbol`` owes at ``now_ms`` and can be built from known candles.

        A HALF_UPDATE still owed when its hour has ended is dropped (the FULL_UPDATE supersedes
        it); a FULL_UPDATE waits for the closed candle.
        """
        alerts: list[VolumeAlert] = []
        for hour in sorted(self._records.get(symbol, {})):
            record = self._records[symbol][hour]
            if record.half_owed and now_ms >= hour + HOUR_MS:
                record = self._settle(record, "expired_half")
            elif half and record.half_owed and now_ms >= hour + HALF_UPDATE_AT_MS:
                candle = self.store.candle(symbol, hour)
                if candle is not None:
                    record = self._settle(record, "half_updates")
                    alerts.append(self._alert("HALF_UPDATE", candle, record, now_ms, enrich))
            if full and record.full_owed and now_ms >= hour + HOUR_MS:
                closed = self.store.closed_candle(symbol, hour)
                if closed is not None:
                    record = self._settle(record, "full_updates")
                    alerts.append(self._alert("FULL_UPDATE", closed, record, now_ms, enrich))
        return alerts

    def _settle(self, record: SpikeRecord, outcome: str) -> SpikeRecord:
        """Mark one owed update of ``record`` done: ``*_half`` ones clear the HALF flag."""
        self.counters[outcome] += 1
        if outcome.endswith("_half") or outcome.startswith("half_"):
            done = replace(record, half_owed=False)
        else:
            done = replace(record, full_owed=False)
        self._put_record(done)
        return done

    def _alert(
        self,
        alert_type: AlertType,
        candle: Kline,
        record: SpikeRecord,
        now_ms: int,
        enrich: Enrich,
    ) -> VolumeAlert:
        funding, oi_change = self._enrichment(candle.symbol, candle.open_time_ms, enrich)
        return make_alert(
            alert_type,
            candle,
            record.previous_volume,
            now_ms,
            funding_rate=funding,
            oi_change=oi_change,
        )

    def _enrichment(
        self, symbol: Symbol, hour_open_ms: int, enrich: Enrich
    ) -> tuple[float | None, float | None]:
        """Call ``enrich``; a failure or a non-finite value becomes ``None`` (and is counted)."""
        try:
            funding, oi_change = enrich(symbol, TimestampMs(hour_open_ms))
        except Exception:
            self.counters["enrich_failed"] += 1
            return None, None
        return _finite_or_none(funding), _finite_or_none(oi_change)

    def _prune(self, now_ms: int, *, force: bool = False) -> None:
        """Forget symbol-hours that can no longer be evaluated or updated (once per hour)."""
        hour = hour_floor(now_ms)
        if hour == self._pruned_hour and not force:
            return
        self._pruned_hour = hour
        horizon = now_ms - 2 * HOUR_MS
        for symbol in list(self._records):
            by_hour = self._records[symbol]
            for open_ms in [t for t in by_hour if t <= horizon]:
                record = by_hour.pop(open_ms)
                self.counters["expired_half"] += record.half_owed
                self.counters["expired_full"] += record.full_owed
                self.revision += 1
            if not by_hour:
                del self._records[symbol]
        self._noted = {key for key in self._noted if key[1] > horizon}


def _finite_or_none(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
