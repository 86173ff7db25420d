# The messages use the original's multiplication sign on purpose.
# ruff: noqa: RUF001
from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from actors._candle_store import HOUR_MS, CandleStore
from actors._volume_rule import (
    SpikeConfig,
    SpikeDetector,
    SpikeRecord,
    full_update_owed,
    half_update_owed,
    humanize_volume,
    make_alert,
)
from messages.market import Kline, KlineUpdate, KlineUpdates
from messages.types import Symbol, TimestampMs

MIN = 60_000
T13 = int(datetime(2026, 3, 19, 13, tzinfo=UTC).timestamp() * 1000)
T14 = T13 + HOUR_MS
T15 = T14 + HOUR_MS
T16 = T15 + HOUR_MS
X = Symbol("XUSDT")
PREV = 1_500_000.0
"""Quote volume of X's closed 13:00 candle."""


def kline(
    open_ms: int,
    qv: float,
    *,
    symbol: str = X,
    closed: bool = False,
    trades: int | None = None,
    open_: float = 1.0,
    close: float = 1.1,
    interval: str = "1h",
) -> Kline:
    return Kline(
        symbol=Symbol(symbol),
        interval=interval,
        open_time_ms=TimestampMs(open_ms),
        close_time_ms=TimestampMs(open_ms + HOUR_MS - 1),
        open=open_,
        high=max(open_, close),
        low=min(open_, close),
        close=close,
        base_volume=qv,
        quote_volume=qv,
        trade_count=int(qv // 1000) if trades is None else trades,
        closed=closed,
    )


def upd(k: Kline, at: int) -> KlineUpdate:
    return KlineUpdate(kline=k, event_time_ms=TimestampMs(at), received_ms=TimestampMs(at))


def no_enrich(symbol: Symbol, hour_open_ms: TimestampMs) -> tuple[float | None, float | None]:
    return None, None


class Run:
    """A detector plus everything it said, fed like the actor would feed it."""

    def __init__(self, detector: SpikeDetector | None = None, symbols=(X,)) -> None:
        self.detector = detector or SpikeDetector()
        self.detector.set_universe(symbols)
        self.alerts: list = []

    def feed(self, k: Kline, at: int) -> list:
        out = self.detector.on_update(upd(k, at), at, no_enrich)
        self.alerts += out
        return out

    def half(self, at: int) -> list:
        out = self.detector.on_half_hour(at, no_enrich)
        self.alerts += out
        return out

    def hour(self, at: int) -> list:
        out = self.detector.on_hour(at, no_enrich)
        self.alerts += out
        return out

    def backfill(self, symbol: str, rows: list[Kline], at: int) -> list:
        out = self.detector.ingest_backfill(symbol, rows, at, no_enrich)
        self.alerts += out
        return out

    @property
    def kinds(self) -> list[tuple[str, int]]:
        return [(a.alert_type, a.hour_timestamp_ms) for a in self.alerts]


@pytest.fixture
def run() -> Run:
    """X with its closed 13:00 candle (1.5M) delivered at the 14:00 roll."""
    r = Run()
    r.feed(kline(T13, PREV, closed=True), T14 + 50)
    return r


# --- the worked timeline of spec §1.6 and its continuous-time edges ----------------------


@pytest.mark.parametrize(
    ("detected_at", "half", "full"),
    [
        pytest.param(10 * MIN, True, True, id="14:10 worked example: HALF and FULL"),
        pytest.param(0, True, True, id="14:00:00.000 first instant"),
        pytest.param(20 * MIN, True, True, id="14:20:00.000 minute 20"),
        pytest.param(21 * MIN - 1, True, True, id="14:20:59.999 last HALF instant (minute 20)"),
        pytest.param(21 * MIN, False, True, id="14:21:00.000 minute 21: no HALF"),
        pytest.param(25 * MIN, False, True, id="14:25 worked example: no HALF"),
        pytest.param(55 * MIN - 1, False, True, id="14:54:59.999 last FULL instant"),
        pytest.param(55 * MIN, False, False, id="14:55 worked example: neither"),
        pytest.param(59 * MIN, False, False, id="14:59: neither"),
    ],
)
def test_worked_timeline_spike_then_half_at_30_then_full_at_the_close(
    run: Run, detected_at: int, half: bool, full: bool
):
    assert run.feed(kline(T14, 2_000_000), T14 + 3 * MIN) == []
    spike = run.feed(kline(T14, 5_200_000, close=1.2), T14 + detected_at)
    assert [(a.alert_type, a.detection_time_ms, a.hour_timestamp_ms) for a in spike] == [
        ("SPIKE", T14 + detected_at, T14)
    ]
    assert spike[0].volume_ratio == pytest.approx(5_200_000 / PREV)
    run.feed(kline(T14, 5_300_000, close=1.25), T14 + detected_at + 1)  # same hour: no SPIKE
    assert [a.alert_type for a in run.half(T14 + 30 * MIN)] == ["HALF_UPDATE"] * half
    assert run.half(T14 + 30 * MIN + 5) == []  # a repeated tick adds nothing
    run.feed(kline(T14, 7_000_000, close=1.3), T14 + 59 * MIN + 59_000)
    assert run.hour(T15) == []  # the closing event is still in flight
    closing = run.feed(kline(T14, 7_500_000, close=1.4, closed=True), T15 + 80)
    assert run.hour(T15 + 1000) == []
    expected = [("SPIKE", T14)] + [("HALF_UPDATE", T14)] * half + [("FULL_UPDATE", T14)] * full
    assert run.kinds == expected
    if full:
        (update,) = closing
        assert (update.current_volume, update.previous_volume, update.price) == (
            7_500_000,
            PREV,
            1.4,
        )
        assert update.message == "UPDATE: X hourly volume 7.50M (5.00× prev) — VOLUME SPIKE!"


def test_the_half_update_reports_the_volume_and_ratio_at_the_tick(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    run.feed(kline(T14, 3_900_000 * 1.5, close=1.05), T14 + 29 * MIN)
    (half,) = run.half(T14 + 30 * MIN)
    assert half.alert_type == "HALF_UPDATE"
    assert half.is_update
    assert (half.current_volume, half.price, half.timestamp_ms) == (5_850_000, 1.05, T14 + 30 * MIN)
    assert half.message == "HALF-UPDATE: X hourly volume 5.85M (3.90× prev) — VOLUME SPIKE!"


def test_updates_ignore_the_thresholds_once_the_spike_was_sent():
    r = Run()
    r.feed(kline(T13, 10_000_000, closed=True), T14)
    r.feed(kline(T14, 30_000_000), T14 + 5 * MIN)
    r.feed(kline(T14, 31_000_000, closed=True), T15 + 1)  # ratio 3.1
    (_, full) = r.alerts
    assert full.alert_type == "FULL_UPDATE"
    assert full.volume_ratio == pytest.approx(3.1)


def test_the_full_update_goes_out_with_the_closing_event_when_the_tick_came_first(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    assert run.hour(T15) == []
    assert [a.alert_type for a in run.feed(kline(T14, 6e6, closed=True), T15 + 300)] == [
        "FULL_UPDATE"
    ]


def test_a_closing_spike_is_caught_on_the_closed_candle_and_gets_no_updates(run: Run):
    run.feed(kline(T14, 4_400_000), T14 + 59 * MIN)  # ratio 2.93: not yet
    (spike,) = run.feed(kline(T14, 4_600_000, closed=True), T15 + 100)
    assert (spike.alert_type, spike.hour_timestamp_ms, spike.detection_time_ms) == (
        "SPIKE",
        T14,
        T15 + 100,
    )
    run.feed(kline(T15, 1_000_000), T15 + 30 * MIN)
    assert run.half(T15 + 30 * MIN) == []
    assert run.hour(T16) == []
    assert run.detector.counters["closing_spikes"] == 1


def test_a_closed_candle_is_a_closing_spike_even_when_the_clock_says_the_hour_is_young(run: Run):
    run.backfill(X, [kline(T13, PREV, closed=True), kline(T14, 5e6, closed=True)], T14 + MIN)
    (record,) = run.detector.records
    assert (record.half_owed, record.full_owed) == (False, False)


def test_a_late_partial_event_of_the_past_hour_alerts_without_updates(run: Run):
    (spike,) = run.feed(kline(T14, 4_600_000), T15 + 200)
    assert spike.hour_timestamp_ms == T14
    run.feed(kline(T14, 4_700_000, closed=True), T15 + 300)
    assert run.hour(T15 + 400) == []


def test_a_closed_candle_older_than_the_closing_window_is_history_not_a_spike(run: Run):
    config = SpikeConfig()
    assert run.backfill(X, [kline(T14, 9e6, closed=True)], T15 + config.closing_window_ms) == []


# --- thresholds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "spikes"),
    [
        pytest.param(3_000_000, 9_000_000, True, id="ratio exactly 3"),
        pytest.param(1_000_000, 3_000_000, True, id="volume exactly 3M"),
        pytest.param(900_000, 3_000_000, True, id="volume exactly 3M, ratio 3.33"),
        pytest.param(3_000_000, 8_999_999.99, False, id="ratio just under 3"),
        pytest.param(900_000, 2_999_999.99, False, id="volume just under 3M"),
        pytest.param(1_546_437.2277, 4_640_585.1418, True, id="WLFI 03-17 00:00: x3.0008"),
        pytest.param(9_602_743.0014, 28_801_053.4574, False, id="BNB 03-01 13:00: x2.9993"),
    ],
)
def test_threshold_edges(previous: float, current: float, spikes: bool):
    r = Run()
    r.feed(kline(T13, previous, closed=True), T14)
    assert len(r.feed(kline(T14, current), T14 + MIN)) == spikes


def test_thresholds_are_configurable():
    r = Run(SpikeDetector(SpikeConfig(multiple=2.0, min_quote_volume=1_000_000)))
    r.feed(kline(T13, 400_000, closed=True), T14)
    assert r.feed(kline(T14, 799_999), T14 + MIN) == []  # ratio 1.99999
    assert r.feed(kline(T14, 999_999), T14 + 2 * MIN) == []  # ratio 2.5, volume just under
    assert len(r.feed(kline(T14, 1_000_000), T14 + 3 * MIN)) == 1
    assert r.detector.counters["ratio_hit_below_min"] == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"multiple": 0},
        {"multiple": math.nan},
        {"min_quote_volume": -1},
        {"closing_window_ms": HOUR_MS},
        {"backfill_grace_ms": -1},
    ],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        SpikeConfig(**kwargs)


def test_at_most_one_spike_per_symbol_hour_and_the_next_hour_can_spike_again(run: Run):
    for minute in range(5, 60, 5):
        run.feed(kline(T14, 5e6 + minute * 1e5), T14 + minute * MIN)
    run.feed(kline(T14, 6e6, closed=True), T15 + 1)  # FULL (due), not a closing SPIKE
    run.feed(kline(T15, 18e6), T15 + 10 * MIN)
    run.feed(kline(T15, 19e6), T15 + 11 * MIN)
    assert [k for k in run.kinds if k[0] == "SPIKE"] == [("SPIKE", T14), ("SPIKE", T15)]


# --- candle details ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("open_", "close", "direction", "change"),
    [
        pytest.param(2.0, 2.0, None, 0.0, id="flat: no direction (WEAK-8)"),
        pytest.param(2.0, 2.2, "bullish", 0.1, id="bullish"),
        pytest.param(2.0, 1.5, "bearish", -0.25, id="bearish"),
        pytest.param(0.0, 1.5, "bullish", None, id="open 0: no price change"),
    ],
)
def test_candle_direction_and_price_change(run: Run, open_, close, direction, change):
    (spike,) = run.feed(kline(T14, 5e6, open_=open_, close=close), T14 + MIN)
    assert spike.candle_direction == direction
    assert spike.price_change == (None if change is None else pytest.approx(change))
    assert spike.price == close


def test_a_previous_volume_of_zero_never_alerts_and_is_counted_once_per_symbol_hour():
    r = Run()
    r.feed(kline(T13, 0.0, closed=True, trades=0), T14)
    for minute in (1, 2, 3):
        assert r.feed(kline(T14, minute * 10e6), T14 + minute * MIN) == []
    assert r.detector.counters["previous_zero"] == 1
    r.feed(kline(T14, 40e6, closed=True), T15)
    assert len(r.feed(kline(T15, 120e6), T15 + MIN)) == 1  # the next hour compares normally


def test_out_of_order_and_duplicate_events_are_ignored(run: Run):
    run.feed(kline(T14, 5_000_000, trades=500), T14 + 10 * MIN)
    assert run.feed(kline(T14, 4_000_000, trades=400), T14 + 10 * MIN + 1) == []
    assert run.feed(kline(T14, 5_000_000, trades=500), T14 + 10 * MIN + 2) == []
    (half,) = run.half(T14 + 30 * MIN)
    assert half.current_volume == 5_000_000
    run.feed(kline(T14, 6_000_000, trades=600, closed=True), T15 + 10)
    run.feed(kline(T14, 5_900_000, trades=590), T15 + 20)  # a late open version
    old_hour = T13 - 2 * HOUR_MS
    run.feed(kline(old_hour, 1.0, closed=True), T15 + 30)  # older than the three kept
    assert run.detector.store.closed_candle(X, T14).quote_volume == 6_000_000
    assert run.detector.store.candle(X, old_hour) is None
    assert run.kinds == [("SPIKE", T14), ("HALF_UPDATE", T14), ("FULL_UPDATE", T14)]
    assert run.detector.counters["klines_stale"] == 3
    assert run.detector.counters["klines_too_old"] == 1


def test_foreign_intervals_and_unaligned_candles_are_rejected(run: Run):
    assert run.feed(kline(T14, 9e6, interval="1m"), T14 + MIN) == []
    assert run.feed(kline(T14 + 1, 9e6), T14 + MIN) == []
    assert run.detector.counters["klines_rejected"] == 2


def test_a_batch_is_applied_in_order(run: Run):
    batch = KlineUpdates(items=(upd(kline(T14, 2e6), T14 + MIN), upd(kline(T14, 5e6), T14 + MIN)))
    assert [a.alert_type for a in run.detector.on_updates(batch, T14 + MIN, no_enrich)] == ["SPIKE"]


# --- listings, delistings, backfill ----------------------------------------------------------


def test_a_symbol_listed_mid_run_never_alerts_in_its_first_hour_and_is_counted():
    new = Symbol("NEWUSDT")
    r = Run(symbols=(X,))
    r.detector.set_universe((X, new))
    at = T13 + 10_000
    assert r.detector.needs_backfill(at) == (new, X)
    r.backfill(new, [kline(T13, 100.0, symbol=new)], at)  # REST knows only the listing hour
    assert r.detector.needs_backfill(at) == (X,)
    for minute in (5, 10, 15):
        assert r.feed(kline(T13, minute * 20e6, symbol=new), T13 + minute * MIN) == []
    assert r.feed(kline(T13, 400e6, symbol=new, closed=True), T14 + 50) == []
    assert r.detector.counters["no_previous"] == 1
    assert new not in r.detector.needs_backfill(T14 + 10_000)
    (spike,) = r.feed(kline(T14, 1_200e6, symbol=new), T14 + MIN)
    assert spike.symbol == new


def test_an_empty_backfill_answer_marks_a_listing_at_the_current_hour():
    new = Symbol("NEWUSDT")
    r = Run(symbols=(new,))
    r.backfill(new, [], T13 + 10_000)
    assert r.detector.needs_backfill(T13 + 20_000) == ()


def test_needs_backfill_waits_a_grace_period_for_the_closing_event(run: Run):
    run.feed(kline(T14, 1e6), T14 + 59 * MIN)
    assert run.detector.needs_backfill(T15 + 1000) == ()  # checks 13:00, which is there
    assert run.detector.needs_backfill(T15 + 5000) == (X,)
    run.backfill(X, [kline(T13, PREV, closed=True), kline(T14, 1.1e6, closed=True)], T15 + 6000)
    assert run.detector.needs_backfill(T15 + 7000) == ()


def test_a_backfilled_closed_candle_delivers_the_waiting_full_update(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    run.half(T14 + 30 * MIN)
    assert run.hour(T15) == []
    rows = [kline(T13, PREV, closed=True), kline(T14, 6e6, closed=True), kline(T15, 1e3)]
    assert [a.alert_type for a in run.backfill(X, rows, T15 + 8000)] == ["FULL_UPDATE"]


def test_backfill_rows_of_another_symbol_are_rejected(run: Run):
    assert run.backfill(X, [kline(T14, 9e6, symbol="YUSDT")], T14 + MIN) == []
    assert run.detector.counters["klines_rejected"] == 1


def test_a_delisted_symbol_is_dropped_and_cannot_spike_twice_if_it_returns(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    assert run.detector.set_universe(()) == ((), (X,))
    assert run.feed(kline(T14, 6e6), T14 + 11 * MIN) == []
    assert run.detector.counters["klines_unknown_symbol"] == 1
    assert run.detector.needs_backfill(T14 + 12 * MIN) == ()
    assert run.half(T14 + 30 * MIN) == []  # no candle to report
    assert run.detector.set_universe((X,)) == ((X,), ())
    back = run.backfill(X, [kline(T13, PREV, closed=True), kline(T14, 7e6)], T14 + 40 * MIN)
    assert [a.alert_type for a in back] == ["HALF_UPDATE"]  # still owed, never a second SPIKE
    assert run.kinds == [("SPIKE", T14), ("HALF_UPDATE", T14)]


# --- schedule: late and repeated ticks -------------------------------------------------------


def test_late_ticks_still_deliver_and_repeated_ticks_deliver_nothing_twice(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    assert run.half(T14 + 29 * MIN) == []  # early: not due yet
    (half,) = run.half(T14 + 44 * MIN)
    assert half.timestamp_ms == half.detection_time_ms == T14 + 44 * MIN
    assert run.half(T14 + 45 * MIN) == []
    run.feed(kline(T14, 6e6, closed=True), T14 + 59 * MIN + 59_999)  # early final event
    (full,) = run.hour(T15 + 20 * MIN)
    assert full.alert_type == "FULL_UPDATE"
    assert run.hour(T15 + 21 * MIN) == []
    assert run.half(T15 + 30 * MIN) == []


def test_a_half_update_not_sent_before_the_hour_ends_is_superseded_by_the_full_update(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    run.feed(kline(T14, 6e6, closed=True), T15 + 10)
    assert [a.alert_type for a in run.alerts] == ["SPIKE", "FULL_UPDATE"]
    assert run.half(T15 + 30 * MIN) == []
    assert run.detector.counters["expired_half"] == 1


def test_a_full_update_whose_closed_candle_never_comes_expires_after_two_hours(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    run.half(T14 + 30 * MIN)
    assert run.hour(T16) == []
    assert run.detector.records == ()
    assert run.detector.counters["expired_full"] == 1


# --- restart: export / import ------------------------------------------------------------------


def restarted(detector: SpikeDetector) -> Run:
    """A new detector from the old one's exported state, through JSON like SQLite would."""
    fresh = SpikeDetector()
    fresh.import_state(json.loads(json.dumps(detector.export_state())))
    return Run(fresh)


def test_a_restart_mid_hour_never_repeats_the_spike_and_keeps_the_due_updates(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    after = restarted(run.detector)
    at = T14 + 12 * MIN
    assert after.detector.needs_backfill(at) == (X,)
    assert after.backfill(X, [kline(T13, PREV, closed=True), kline(T14, 5.3e6)], at) == []
    after.feed(kline(T14, 5.4e6), at + 1)
    after.half(T14 + 30 * MIN)
    after.feed(kline(T14, 6e6, closed=True), T15 + 10)
    assert after.kinds == [("HALF_UPDATE", T14), ("FULL_UPDATE", T14)]


def test_a_restart_after_the_half_update_does_not_send_it_again(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    run.half(T14 + 30 * MIN)
    after = restarted(run.detector)
    after.backfill(X, [kline(T13, PREV, closed=True), kline(T14, 5.3e6)], T14 + 31 * MIN)
    assert after.half(T14 + 32 * MIN) == []
    after.feed(kline(T14, 6e6, closed=True), T15 + 10)
    assert after.kinds == [("FULL_UPDATE", T14)]


def test_an_update_that_fell_due_while_down_goes_out_with_the_backfill(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    after = restarted(run.detector)  # down from 14:29 to 14:40: the :30 tick was missed
    rows = [kline(T13, PREV, closed=True), kline(T14, 5.9e6)]
    assert [a.alert_type for a in after.backfill(X, rows, T14 + 40 * MIN)] == ["HALF_UPDATE"]


def test_a_restart_across_the_hour_delivers_the_full_update_from_the_backfill(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    run.half(T14 + 30 * MIN)
    after = restarted(run.detector)
    rows = [kline(T13, PREV, closed=True), kline(T14, 6e6, closed=True), kline(T15, 1e4)]
    assert [a.alert_type for a in after.backfill(X, rows, T15 + 2 * MIN)] == ["FULL_UPDATE"]


def test_state_rows_round_trip_and_merge_keeps_only_what_both_copies_owe(run: Run):
    run.feed(kline(T14, 5_200_000), T14 + 10 * MIN)
    state = run.detector.export_state()
    (record,) = run.detector.records
    assert state == {"version": 1, "spikes": [[X, T14, T14 + 10 * MIN, PREV, True, True]]}
    assert SpikeRecord.from_row(record.to_row()) == record
    run.half(T14 + 30 * MIN)
    revision = run.detector.revision
    assert run.detector.import_state(state) == 1  # an older copy cannot revive the HALF
    assert run.detector.revision > revision
    assert run.half(T14 + 31 * MIN) == []


def test_of_two_detections_of_one_hour_the_merge_keeps_the_earlier_and_what_it_owes():
    saved = [X, T14, T14 + 10 * MIN, PREV, True, True]  # detected at :10, HALF still owed
    later = [X, T14, T14 + 21 * MIN, PREV, False, True]  # again at :21: past the HALF cut-off
    ours = SpikeDetector()
    ours.import_state({"version": 1, "spikes": [later]})
    ours.import_state({"version": 1, "spikes": [saved]})  # the late read of the saved state
    assert [r.to_row() for r in ours.records] == [saved]
    theirs = SpikeDetector()
    theirs.import_state({"version": 1, "spikes": [saved]})
    theirs.import_state({"version": 1, "spikes": [later]})  # a later copy changes nothing
    assert [r.to_row() for r in theirs.records] == [saved]


@pytest.mark.parametrize(
    "state",
    [
        {"version": 2, "spikes": []},
        {"version": 1},
        {"version": 1, "spikes": [[X, T14, T14, PREV, True]]},
        {"version": 1, "spikes": [[X, T14 + 1, T14, PREV, True, True]]},
        {"version": 1, "spikes": [[X, T14, T14, "1", True, True]]},
        {"version": 1, "spikes": [[X, T14, T14, PREV, 1, True]]},
    ],
)
def test_a_malformed_state_is_refused(state):
    with pytest.raises(ValueError):
        SpikeDetector().import_state(state)


# --- payload -----------------------------------------------------------------------------------


def test_enrich_is_called_for_alerts_only_with_the_hour_and_its_values_pass_through(run: Run):
    calls = []

    def enrich(symbol, hour_open_ms):
        calls.append((symbol, hour_open_ms))
        return 0.0001, -0.02

    run.detector.on_update(upd(kline(T14, 2e6), T14 + MIN), T14 + MIN, enrich)
    assert calls == []
    (spike,) = run.detector.on_update(upd(kline(T14, 5e6), T14 + 2 * MIN), T14 + 2 * MIN, enrich)
    assert calls == [(X, T14)]
    assert (spike.funding_rate, spike.oi_change) == (0.0001, -0.02)


@pytest.mark.parametrize(
    "enrich_result",
    [(None, None), (math.nan, math.inf), ZeroDivisionError],
    ids=["unknown", "not finite", "raises"],
)
def test_unknown_enrichment_is_none_never_zero(run: Run, enrich_result):
    def enrich(symbol, hour_open_ms):
        if enrich_result is ZeroDivisionError:
            raise ZeroDivisionError
        return enrich_result

    (spike,) = run.detector.on_update(upd(kline(T14, 5e6), T14 + MIN), T14 + MIN, enrich)
    assert (spike.funding_rate, spike.oi_change) == (None, None)
    assert run.detector.counters["enrich_failed"] == (enrich_result is ZeroDivisionError)


@pytest.mark.parametrize(
    ("volume", "text"),
    [
        (0, "0"),
        (999.4, "999"),
        (1_000, "1.00K"),
        (5_432.1, "5.43K"),
        (3_000_000, "3.00M"),
        (999_999_999, "1,000.00M"),
        (2_595_000_000, "2.60B"),
        (1_234_000_000_000, "1,234.00B"),
    ],
)
def test_humanized_volume(volume, text):
    assert humanize_volume(volume) == text


def test_the_spike_payload_has_every_field_of_the_contract():
    candle = kline(T14, 17_012_345.6, symbol="币安人生USDT", open_=0.5, close=0.55)
    alert = make_alert("SPIKE", candle, 55_000.0, T14 + 7 * MIN + 123, funding_rate=-0.0002)
    assert alert.symbol == "币安人生USDT"
    assert alert.asset == "币安人生"
    assert alert.message == "币安人生 hourly volume 17.01M (309.32× prev) — VOLUME SPIKE!"
    assert (alert.current_volume, alert.previous_volume) == (17_012_345.6, 55_000.0)
    assert alert.volume_ratio == 17_012_345.6 / 55_000.0
    assert alert.timestamp_ms == alert.detection_time_ms == T14 + 7 * MIN + 123
    assert alert.hour_timestamp_ms == T14
    assert (alert.alert_type, alert.is_update) == ("SPIKE", False)
    assert (alert.price, alert.candle_direction) == (0.55, "bullish")
    assert alert.price_change == pytest.approx(0.1)
    assert (alert.funding_rate, alert.oi_change) == (-0.0002, None)


# --- timing helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "half", "full"),
    [
        (-5, True, True),
        (0, True, True),
        (20 * MIN, True, True),
        (21 * MIN - 1, True, True),
        (21 * MIN, False, True),
        (30 * MIN, False, True),
        (55 * MIN - 1, False, True),
        (55 * MIN, False, False),
        (HOUR_MS + 100, False, False),
    ],
)
def test_updates_are_owed_by_detection_minute_as_issue_7_defines(offset, half, full):
    assert (half_update_owed(offset), full_update_owed(offset)) == (half, full)


def test_the_store_keeps_three_hours_per_symbol():
    store = CandleStore()
    store.set_universe((X,))
    for hour in range(5):
        assert store.put(kline(T13 + hour * HOUR_MS, 1.0, closed=True)) == "accepted"
    assert [store.candle(X, T13 + h * HOUR_MS) is not None for h in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
