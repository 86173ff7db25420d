"""The open-interest alert rule and the OI history it reads, as pure logic.

No threads, sockets, clocks or SQLite: :class:`OiAlertRule` takes :class:`OiSample` values
(stamped with the exchange's ``time``) and returns :class:`OiAlert` values; its state goes out
and comes back as plain tuples and dicts, so the poller actor can persist it and a restart (or
``kill -9``) neither blinds the baselines (WEAK-17) nor re-alerts.

The rule (spec §2.4), per symbol and per timeframe independently:

- **baseline**: the stored sample closest to ``t - lookback`` if it is at most
  ``min(120, max(30, lookback // 10))`` seconds away (ties go to the older one). The single
  closest sample is kept for fidelity with the original's thresholds; a bisect replaces its
  linear scan.
- **crossing**: ``|pct| >= threshold`` where the previous state was INSIDE (or OUTSIDE on the
  *other* side). Staying outside never re-alerts.
- **minimum change**: ``|abs| >= min_delta_contracts`` and, when ``min_delta_usd`` is set,
  ``|abs| * mark >= min_delta_usd`` (contracts only when the mark is unknown; counted). A
  crossing that fails stays INSIDE and is re-evaluated on the next sample, as the original.
- **cooldown** per (symbol, direction, timeframe) since the last *emitted* alert: a crossing
  inside the cooldown is **consumed** (state OUTSIDE, no alert, no late alert at expiry;
  WEAK-15).
- no baseline (gap, fresh start): the state is left as it is, so a data gap never creates a
  second alert for the same excursion.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, get_args

from messages.open_interest import OiAlert, OiSample
from messages.types import OiDirection, OiTimeframe, Symbol, TimestampMs

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from supervisors.config import Config

__all__ = [
    "DEFAULT_TIMEFRAMES",
    "HistoryRow",
    "OiAlertRule",
    "OiEvaluation",
    "OiHistory",
    "OiRuleConfig",
    "TimeframeRule",
    "baseline_tolerance_s",
]

HistoryRow = tuple[str, int, float, float | None]
"""One persisted history sample: ``(symbol, time_ms, open_interest, mark_price | None)``."""

_DIRECTIONS: Final = frozenset(get_args(OiDirection))
_LABELS: Final = frozenset(get_args(OiTimeframe))


def baseline_tolerance_s(lookback_s: float) -> float:
    """The original's baseline tolerance: ``min(120, max(30, lookback // 10))`` seconds."""
    return float(min(120, max(30, lookback_s // 10)))


@dataclass(frozen=True, slots=True)
class TimeframeRule:
    """One timeframe of the rule."""

    label: OiTimeframe
    """The backend's ``timeframe`` value (``"5 min"``, ``"15 min"``, ``"1 hour"``)."""
    threshold: float
    """Alert when ``|pct_change| >= threshold`` (a fraction, 0.03 = 3 %)."""
    lookback_s: float
    """How far back the baseline is taken."""
    cooldown_s: float
    """Minimum time between two alerts of the same symbol, direction and timeframe."""

    def __post_init__(self) -> None:
        """Check the numbers."""
        if not self.threshold > 0:
            raise ValueError(f"{self.label}: threshold must be positive")
        if not self.lookback_s > self.tolerance_ms / 1000:
            raise ValueError(f"{self.label}: lookback must exceed the baseline tolerance")
        if self.cooldown_s < 0:
            raise ValueError(f"{self.label}: cooldown cannot be negative")

    @property
    def lookback_ms(self) -> int:
        """Lookback in milliseconds."""
        return round(self.lookback_s * 1000)

    @property
    def tolerance_ms(self) -> int:
        """Baseline tolerance in milliseconds."""
        return round(baseline_tolerance_s(self.lookback_s) * 1000)

    @property
    def cooldown_ms(self) -> int:
        """Cooldown in milliseconds."""
        return round(self.cooldown_s * 1000)


DEFAULT_TIMEFRAMES: Final = (
    TimeframeRule(label="5 min", threshold=0.03, lookback_s=300, cooldown_s=600),
    TimeframeRule(label="15 min", threshold=0.07, lookback_s=900, cooldown_s=900),
    TimeframeRule(label="1 hour", threshold=0.12, lookback_s=3600, cooldown_s=3600),
)
"""The original's three timeframes (spec §2.4)."""


@dataclass(frozen=True, slots=True)
class OiRuleConfig:
    """Settings of the rule (see :meth:`from_config` for the config names)."""

    timeframes: tuple[TimeframeRule, ...] = DEFAULT_TIMEFRAMES
    """The timeframes, evaluated independently."""
    min_delta_contracts: float = 5000.0
    """Minimum ``|current - baseline|`` in contracts."""
    min_delta_usd: float | None = None
    """Minimum ``|current - baseline| * mark`` in USDT; ``None`` disables the check."""
    exclude: frozenset[str] = frozenset({"USDCUSDT"})
    """Symbols ignored entirely (no history, no alerts)."""

    def __post_init__(self) -> None:
        """Check that there is at least one timeframe and labels are unique."""
        labels = [tf.label for tf in self.timeframes]
        if not labels or len(set(labels)) != len(labels):
            raise ValueError("timeframes must be non-empty with unique labels")

    @classmethod
    def from_config(cls, config: Config) -> OiRuleConfig:
        """Build from the project configuration.

        Reads ``oi_spike_threshold_pct_*``, ``oi_lookback_window_*``, ``oi_alert_cooldown_*``
        (suffixes ``5min``, ``15min``, ``60min``), ``oi_min_delta_*`` and
        ``oi_universe_exclude``.
        """
        rows: tuple[tuple[OiTimeframe, str], ...] = (
            ("5 min", "5min"),
            ("15 min", "15min"),
            ("1 hour", "60min"),
        )
        timeframes = tuple(
            TimeframeRule(
                label=label,
                threshold=getattr(config, f"oi_spike_threshold_pct_{suffix}"),
                lookback_s=getattr(config, f"oi_lookback_window_{suffix}"),
                cooldown_s=getattr(config, f"oi_alert_cooldown_{suffix}"),
            )
            for label, suffix in rows
        )
        return cls(
            timeframes=timeframes,
            min_delta_contracts=config.oi_min_delta_contracts,
            min_delta_usd=config.oi_min_delta_usd,
            exclude=frozenset(config.oi_universe_exclude),
        )

    @property
    def retention_ms(self) -> int:
        """History to keep behind the newest sample: the farthest any baseline can be."""
        return max(tf.lookback_ms + tf.tolerance_ms for tf in self.timeframes)


@dataclass(slots=True)
class _Series:
    """One symbol's samples in time order (parallel lists, so bisect works on ``times``)."""

    times: list[int] = field(default_factory=list)
    ois: list[float] = field(default_factory=list)
    marks: list[float | None] = field(default_factory=list)


class OiHistory:
    """Bounded per-symbol OI history with bisect baseline lookup.

    Args:
        retention_ms: samples older than ``newest - retention_ms`` are evicted.
    """

    def __init__(self, retention_ms: int) -> None:
        self._retention_ms = retention_ms
        self._series: dict[str, _Series] = {}

    def __len__(self) -> int:
        return sum(len(s.times) for s in self._series.values())

    @property
    def retention_ms(self) -> int:
        """How far back samples are kept, behind each symbol's newest."""
        return self._retention_ms

    def add(self, symbol: str, time_ms: int, oi: float, mark: float | None) -> bool:
        """Append a sample; False (and nothing stored) unless it is newer than the last one."""
        series = self._series.setdefault(symbol, _Series())
        if series.times and time_ms <= series.times[-1]:
            return False
        series.times.append(time_ms)
        series.ois.append(oi)
        series.marks.append(mark)
        cut = bisect_left(series.times, time_ms - self._retention_ms)
        if cut:
            del series.times[:cut], series.ois[:cut], series.marks[:cut]
        return True

    def baseline(
        self, symbol: str, target_ms: int, tolerance_ms: int, before_ms: int
    ) -> tuple[int, float, float | None] | None:
        """The sample closest to ``target_ms`` (older wins a tie), strictly before ``before_ms``.

        Returns:
            ``(time_ms, oi, mark)``, or ``None`` when no such sample is within ``tolerance_ms``.
        """
        series = self._series.get(symbol)
        if series is None:
            return None
        hi = bisect_left(series.times, before_ms)
        i = bisect_left(series.times, target_ms, 0, hi)
        candidates = [j for j in (i - 1, i) if 0 <= j < hi]
        if not candidates:
            return None
        best = min(candidates, key=lambda j: abs(series.times[j] - target_ms))
        if abs(series.times[best] - target_ms) > tolerance_ms:
            return None
        return series.times[best], series.ois[best], series.marks[best]

    def newest(self) -> dict[str, int]:
        """Each symbol's newest sample time."""
        return {symbol: s.times[-1] for symbol, s in self._series.items() if s.times}

    def consistent(self) -> bool:
        """Whether every series is whole (its parallel lists of one length, times ascending)."""
        return all(
            len(s.times) == len(s.ois) == len(s.marks)
            and all(a < b for a, b in zip(s.times, s.times[1:], strict=False))
            for s in self._series.values()
        )

    def clear(self) -> None:
        """Forget every sample."""
        self._series.clear()

    def newest_ms(self, symbol: str) -> int | None:
        """Time of the symbol's newest sample, if any."""
        series = self._series.get(symbol)
        return series.times[-1] if series and series.times else None

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop the history of ``symbols`` (e.g. they left the universe)."""
        for symbol in symbols:
            self._series.pop(symbol, None)

    def prune(self, now_ms: int) -> list[str]:
        """Drop symbols whose newest sample is older than the retention; returns them."""
        gone = [s for s, ser in self._series.items() if ser.times[-1] < now_ms - self._retention_ms]
        self.forget(gone)
        return gone

    def export_rows(self) -> list[HistoryRow]:
        """Every sample as ``(symbol, time_ms, oi, mark)``, per symbol in time order."""
        return [
            (symbol, t, oi, mark)
            for symbol, s in sorted(self._series.items())
            for t, oi, mark in zip(s.times, s.ois, s.marks, strict=True)
        ]

    def import_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Load persisted rows (any order; duplicates and invalid rows skipped); returns count."""
        parsed = [row for raw in rows if (row := _parse_row(raw)) is not None]
        parsed.sort(key=lambda row: row[1])
        return sum(self.add(*row) for row in parsed)


class HistoryKeeper:
    """Hands one :class:`OiHistory` from a poller incarnation to the next, one owner at a time.

    An incarnation takes it at start and gives it back when it ends (its cleanup runs after a
    crash too); one that never gave it back (abandoned while hung) leaves the keeper empty, so
    its successor builds a new history from the store instead of sharing lists with it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: OiHistory | None = None

    def take(self) -> OiHistory | None:
        """The kept history (now the caller's), or ``None``."""
        with self._lock:
            history, self._history = self._history, None
            return history

    def give_back(self, history: OiHistory) -> None:
        """Keep ``history`` for the next incarnation."""
        with self._lock:
            self._history = history


@dataclass(frozen=True, slots=True)
class OiEvaluation:
    """What :meth:`OiAlertRule.add_sample` did with one sample."""

    accepted: bool
    """False for excluded, invalid (OI not positive) and stale (not newer) samples."""
    alerts: tuple[OiAlert, ...] = ()
    """Alerts to deliver, at most one per timeframe."""
    state_changed: bool = False
    """True when :meth:`OiAlertRule.export_state` would now return something different."""


class OiAlertRule:
    """The multi-timeframe INSIDE→OUTSIDE alert state machine over an :class:`OiHistory`.

    Args:
        config: the rule's settings.
        history: the history to work on (default: a new one); a caller may keep it across
            rule instances (the poller's incarnations) so a restart need not reload it.
    """

    def __init__(
        self, config: OiRuleConfig | None = None, history: OiHistory | None = None
    ) -> None:
        self.config = config or OiRuleConfig()
        self.history = history if history is not None else OiHistory(self.config.retention_ms)
        self._outside: dict[tuple[str, str], OiDirection] = {}
        """(symbol, timeframe) → the side it is outside on; absent means INSIDE."""
        self._last_alert: dict[tuple[str, str, str], int] = {}
        """(symbol, direction, timeframe) → time of the last emitted alert."""
        self._changed = False
        self.stats: Counter[str] = Counter()
        """Counters for metrics: accepted, stale, invalid, excluded, no_baseline, alerts, ..."""

    def add_sample(self, sample: OiSample) -> OiEvaluation:
        """Store ``sample`` in the history and evaluate every timeframe against it."""
        reason = self._reject_reason(sample)
        if reason:
            self.stats[reason] += 1
            return OiEvaluation(accepted=False)
        self.stats["accepted"] += 1
        self._changed = False
        alerts = tuple(
            alert
            for tf in self.config.timeframes
            if (alert := self._evaluate(sample, tf)) is not None
        )
        self.stats["alerts"] += len(alerts)
        return OiEvaluation(accepted=True, alerts=alerts, state_changed=self._changed)

    def is_outside(self, symbol: str, timeframe: OiTimeframe) -> OiDirection | None:
        """The side ``symbol`` is outside on for ``timeframe``, or ``None`` when INSIDE."""
        return self._outside.get((symbol, timeframe))

    def _reject_reason(self, sample: OiSample) -> str:
        if sample.symbol in self.config.exclude:
            return "excluded"
        if not _valid_oi(sample.open_interest):
            return "invalid"
        mark = _mark(sample.mark_price)
        if not self.history.add(sample.symbol, sample.time_ms, sample.open_interest, mark):
            return "stale"
        return ""

    def _evaluate(self, sample: OiSample, tf: TimeframeRule) -> OiAlert | None:
        symbol, now = sample.symbol, sample.time_ms
        base = self.history.baseline(symbol, now - tf.lookback_ms, tf.tolerance_ms, now)
        if base is None:
            self.stats["no_baseline"] += 1
            return None  # a gap is no evidence of going back inside: state unchanged
        _, base_oi, base_mark = base
        key = (symbol, tf.label)
        abs_change = sample.open_interest - base_oi
        pct = abs_change / base_oi
        side = _side(pct, tf.threshold)
        if side is None:
            self._set_state(key, None)
            return None
        if self._outside.get(key) == side:
            return None  # still outside on the same side: dedup
        if not self._big_enough(abs_change, _mark(sample.mark_price)):
            self.stats["below_min_delta"] += 1
            self._set_state(key, None)  # stays INSIDE: re-evaluated on the next sample
            return None
        self._set_state(key, side)
        last = self._last_alert.get((symbol, side, tf.label))
        if last is not None and now - last < tf.cooldown_ms:
            self.stats["cooldown_consumed"] += 1
            return None  # consumed: no alert now, none when the cooldown expires
        self._last_alert[symbol, side, tf.label] = now
        self._changed = True
        return OiAlert(
            symbol=Symbol(symbol),
            direction=side,
            baseline=base_oi,
            current=sample.open_interest,
            pct_change=pct,
            abs_change=abs_change,
            timestamp_ms=TimestampMs(now),
            timeframe=tf.label,
            price_change=_price_change(base_mark, _mark(sample.mark_price)),
            funding_rate=_finite_or_none(sample.funding_rate),
        )

    def _set_state(self, key: tuple[str, str], side: OiDirection | None) -> None:
        if self._outside.get(key) == side:
            return
        self._changed = True
        if side is None:
            del self._outside[key]
        else:
            self._outside[key] = side

    def _big_enough(self, abs_change: float, mark: float | None) -> bool:
        if abs(abs_change) < self.config.min_delta_contracts:
            return False
        min_usd = self.config.min_delta_usd
        if min_usd is None:
            return True
        if mark is None:
            self.stats["usd_check_skipped"] += 1  # no mark: contracts alone decide
            return True
        return abs(abs_change) * mark >= min_usd

    def export_state(self, now_ms: int) -> dict[str, list[tuple[Any, ...]]]:
        """The alert state as plain values (cooldowns already expired at ``now_ms`` dropped).

        Returns:
            ``{"outside": [(symbol, timeframe, side)], "cooldowns": [(symbol, direction,
            timeframe, last_alert_ms)]}``, sorted, JSON- and SQLite-friendly.
        """
        self._drop_expired(now_ms)
        return {
            "outside": sorted((s, tf, side) for (s, tf), side in self._outside.items()),
            "cooldowns": sorted((s, d, tf, t) for (s, d, tf), t in self._last_alert.items()),
        }

    def import_state(self, state: Mapping[str, Iterable[Sequence[Any]]], now_ms: int) -> None:
        """Restore :meth:`export_state` output (merging); unknown timeframes are ignored."""
        known = {tf.label for tf in self.config.timeframes}
        for symbol, label, side in state.get("outside", ()):
            if label in known and side in _DIRECTIONS:
                self._outside[str(symbol), str(label)] = side
        for symbol, direction, label, last_ms in state.get("cooldowns", ()):
            if label in known and direction in _DIRECTIONS:
                key = (str(symbol), str(direction), str(label))
                self._last_alert[key] = max(int(last_ms), self._last_alert.get(key, int(last_ms)))
        self._drop_expired(now_ms)

    def _drop_expired(self, now_ms: int) -> None:
        cooldowns: dict[str, int] = {tf.label: tf.cooldown_ms for tf in self.config.timeframes}
        for key, last in list(self._last_alert.items()):
            if now_ms - last >= cooldowns.get(key[2], 0):
                del self._last_alert[key]

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop history and INSIDE/OUTSIDE state of ``symbols`` (cooldowns expire by themselves)."""
        wanted = set(symbols)
        self.history.forget(wanted)
        self._outside = {k: v for k, v in self._outside.items() if k[0] not in wanted}


def _valid_oi(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _parse_row(raw: Sequence[Any]) -> HistoryRow | None:
    """A persisted row as typed values, or ``None`` when it is malformed or OI is not positive."""
    try:
        symbol, time_ms, oi, mark = raw
        row = (str(symbol), int(time_ms), float(oi), None if mark is None else float(mark))
    except (TypeError, ValueError):
        return None
    return (row[0], row[1], row[2], _mark(row[3])) if _valid_oi(row[2]) else None


def _side(pct: float, threshold: float) -> OiDirection | None:
    """``UP`` / ``DOWN`` when ``|pct| >= threshold``, else ``None`` (INSIDE)."""
    if pct >= threshold:
        return "UP"
    if pct <= -threshold:
        return "DOWN"
    return None


def _mark(value: float | None) -> float | None:
    """A usable mark price or ``None`` (0, negative and NaN mean unknown, never a price)."""
    return value if value is not None and math.isfinite(value) and value > 0 else None


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _price_change(base_mark: float | None, mark: float | None) -> float | None:
    if base_mark is None or mark is None:
        return None
    return (mark - base_mark) / base_mark
