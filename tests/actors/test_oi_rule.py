"""The open-interest alert rule (spec §2.4, issue 6 item 4) and its history.

Most state-machine tests use a "chain": samples every ``step`` seconds where ``step`` divides
the lookback, so the baseline of sample ``k`` is exactly sample ``k - lag``; ``pcts[k]`` then is
the change the rule sees at sample ``k`` (the first ``lag`` entries only seed the history).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import threading
from collections import defaultdict

import pytest

from actors._oi_rule import (
    DEFAULT_TIMEFRAMES,
    HistoryKeeper,
    OiAlertRule,
    OiHistory,
    OiRuleConfig,
    TimeframeRule,
    baseline_tolerance_s,
)
from messages.open_interest import OiAlert, OiSample
from supervisors.config import Config

T0 = 1_773_900_000_000
FIVE, FIFTEEN, HOUR = DEFAULT_TIMEFRAMES
ONLY_FIVE = OiRuleConfig(timeframes=(FIVE,))
BIG = 1_000_000.0


def sample(t_s, oi, symbol="MAVIAUSDT", mark=None, funding=None):
    return OiSample(
        symbol=symbol,
        open_interest=oi,
        time_ms=T0 + round(t_s * 1000),
        mark_price=mark,
        funding_rate=funding,
    )


def chain(pcts, *, step_s=100, lag=3, start=BIG, symbol="MAVIAUSDT"):
    """Samples whose change against the sample ``lag`` steps back is ``pcts[k]``."""
    ois: list[float] = []
    for k, pct in enumerate(pcts):
        ois.append(start if k < lag else ois[k - lag] * (1 + pct))
    return [sample(k * step_s, oi, symbol) for k, oi in enumerate(ois)]


def feed(rule, samples):
    return [alert for s in samples for alert in rule.add_sample(s).alerts]


def alert_times_s(alerts):
    return [(a.timestamp_ms - T0) / 1000 for a in alerts]


# --- thresholds and timeframes ---------------------------------------------------------------


@pytest.mark.parametrize("tf", DEFAULT_TIMEFRAMES, ids=lambda tf: tf.label)
@pytest.mark.parametrize(("direction", "sign"), [("UP", 1), ("DOWN", -1)], ids=["up", "down"])
def test_each_timeframe_alerts_exactly_at_its_threshold_in_both_directions(tf, direction, sign):
    current = BIG + sign * tf.threshold * BIG  # 1_030_000, 880_000, ...: exact fractions
    rule = OiAlertRule()
    alerts = feed(rule, [sample(0, BIG), sample(tf.lookback_s, current)])
    assert alerts == [
        OiAlert(
            symbol="MAVIAUSDT",
            direction=direction,
            baseline=BIG,
            current=current,
            pct_change=sign * tf.threshold,
            abs_change=current - BIG,
            timestamp_ms=T0 + tf.lookback_ms,
            timeframe=tf.label,
        )
    ]
    assert alerts[0].source == "oi_realtime_poller"
    assert rule.is_outside("MAVIAUSDT", tf.label) == direction


@pytest.mark.parametrize("tf", DEFAULT_TIMEFRAMES, ids=lambda tf: tf.label)
@pytest.mark.parametrize("sign", [1, -1], ids=["up", "down"])
def test_one_contract_short_of_the_threshold_does_not_alert(tf, sign):
    current = BIG + sign * (tf.threshold * BIG - 1)
    rule = OiAlertRule()
    assert feed(rule, [sample(0, BIG), sample(tf.lookback_s, current)]) == []
    assert rule.is_outside("MAVIAUSDT", tf.label) is None


def test_the_thresholds_and_windows_come_from_the_config():
    config = Config().replace(oi_spike_threshold_pct_5min=0.05, oi_alert_cooldown_60min=7200.0)
    rule_config = OiRuleConfig.from_config(config)
    assert [tf.label for tf in rule_config.timeframes] == ["5 min", "15 min", "1 hour"]
    assert rule_config.timeframes[0].threshold == 0.05
    assert rule_config.timeframes[2].cooldown_ms == 7_200_000
    assert OiRuleConfig.from_config(Config()) == OiRuleConfig()
    rule = OiAlertRule(rule_config)
    assert feed(rule, [sample(0, BIG), sample(300, 1_040_000.0)]) == []


def test_a_large_jump_alerts_every_timeframe_at_the_same_sample():
    flat = [sample(t, BIG) for t in range(0, 3600, 10)]
    rule = OiAlertRule()
    alerts = feed(rule, [*flat, sample(3600, 1_150_000.0)])
    assert [(a.timeframe, a.direction, a.timestamp_ms) for a in alerts] == [
        ("5 min", "UP", T0 + 3_600_000),
        ("15 min", "UP", T0 + 3_600_000),
        ("1 hour", "UP", T0 + 3_600_000),
    ]


# --- minimum change ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "alerts"),
    [(105_000.0, 1), (104_999.0, 0), (95_000.0, 1), (95_001.0, 0)],
    ids=["up-exactly-5000", "up-4999", "down-exactly-5000", "down-4999"],
)
def test_the_minimum_change_in_contracts_is_inclusive(current, alerts):
    # 100_000 contracts: every case is far beyond 3 %, only the contract count decides.
    rule = OiAlertRule(ONLY_FIVE)
    assert len(feed(rule, [sample(0, 100_000.0), sample(300, current)])) == alerts


def test_a_crossing_too_small_in_contracts_stays_inside_and_is_re_evaluated_next_sample():
    rule = OiAlertRule(ONLY_FIVE)
    samples = [sample(0, 100_000.0), sample(10, 100_000.0), sample(300, 104_999.0)]
    assert feed(rule, samples) == []
    assert rule.is_outside("MAVIAUSDT", "5 min") is None
    assert rule.stats["below_min_delta"] == 1
    (alert,) = feed(rule, [sample(310, 105_500.0)])
    assert (alert.timestamp_ms, alert.abs_change) == (T0 + 310_000, 5_500.0)


USD = OiRuleConfig(timeframes=(FIVE,), min_delta_usd=1_000_000.0)


@pytest.mark.parametrize(
    ("mark", "alerts", "skipped"),
    [(30.0, 1, 0), (25.0, 1, 0), (24.99, 0, 0), (None, 1, 1)],
    ids=["1.2M-usd", "exactly-1M-usd", "just-under-1M-usd", "no-mark-contracts-only"],
)
def test_the_optional_minimum_change_in_usd_uses_the_current_mark(mark, alerts, skipped):
    rule = OiAlertRule(USD)
    samples = [sample(0, BIG, mark=10.0), sample(300, 1_040_000.0, mark=mark)]
    assert len(feed(rule, samples)) == alerts
    assert rule.stats["usd_check_skipped"] == skipped


def test_the_usd_minimum_stops_a_cheap_coin_the_contract_minimum_alone_would_let_through():
    cheap = [sample(0, 200_000.0, mark=0.01), sample(300, 210_000.0, mark=0.01)]  # $100 change
    assert len(feed(OiAlertRule(ONLY_FIVE), cheap)) == 1
    assert feed(OiAlertRule(USD), cheap) == []


# --- the state machine: dedup, cooldown, consumed crossings -----------------------------------


def test_staying_outside_never_realerts_and_the_state_is_outside_after_an_alert():
    # MAVIAUSDT +3.01 % then +3.76 % (I-7): one alert, not two.
    rule = OiAlertRule(ONLY_FIVE)
    samples = [sample(0, BIG), sample(10, BIG), sample(300, 1_030_100.0)]
    assert [a.pct_change for a in feed(rule, samples)] == [pytest.approx(0.0301)]
    assert rule.is_outside("MAVIAUSDT", "5 min") == "UP"
    assert feed(rule, [sample(310, 1_037_600.0)]) == []


def test_back_inside_and_out_again_alerts_once_the_cooldown_has_passed():
    #        seed      UP   in   UP(cooldown)  out ... out (t=900 is past cooldown)  in  UP
    pcts = [0, 0, 0, 0.04, 0.0, 0.04, 0.04, 0.04, 0.04, 0.04, 0.0, 0.04]
    rule = OiAlertRule(ONLY_FIVE)
    alerts = feed(rule, chain(pcts))
    # The original kept the state INSIDE during the cooldown and fired late at t=900 (WEAK-15);
    # here the crossing at t=500 is consumed and only the fresh crossing at t=1100 alerts.
    assert alert_times_s(alerts) == [300, 1100]
    assert rule.stats["cooldown_consumed"] == 1


@pytest.mark.parametrize(
    ("gap_s", "alerts"), [(600, 2), (599.999, 1)], ids=["exactly-cooldown", "just-inside"]
)
def test_the_cooldown_boundary_is_exclusive(gap_s, alerts):
    # One alert at t=300; a second crossing exactly ``gap_s`` later (inside in between).
    rule = OiAlertRule(ONLY_FIVE)
    first = [sample(0, BIG), sample(300, 1_040_000.0), sample(400, 1_040_000.0)]
    t = 300 + gap_s
    second = [sample(t - 300, 1_040_000.0), sample(t - 10, 1_040_000.0), sample(t, 1_090_000.0)]
    assert len(feed(rule, first + second)) == alerts


def test_the_cooldown_is_per_direction_and_a_side_flip_is_a_crossing():
    rule = OiAlertRule(ONLY_FIVE)
    alerts = feed(rule, chain([0, 0, 0, 0.04, -0.04]))
    assert [(a.direction, t) for a, t in zip(alerts, alert_times_s(alerts), strict=True)] == [
        ("UP", 300),
        ("DOWN", 400),
    ]


def test_timeframes_keep_independent_states_and_cooldowns():
    # A 15-minute alert does not use up the 5-minute cooldown, nor the other way round.
    rule = OiAlertRule(OiRuleConfig(timeframes=(FIVE, FIFTEEN)))
    samples = [sample(0, BIG), sample(600, BIG), sample(900, 1_080_000.0)]
    assert [a.timeframe for a in feed(rule, samples)] == ["5 min", "15 min"]


def test_mavia_oscillating_around_minus_three_percent_gives_one_alert_per_cooldown():
    # I-7: OI falling ~3 % per 5 minutes with +-0.4 % noise flips the 5-minute change across
    # -3 % on every sample (25 samples per window, odd, so the noise never cancels).
    step, minutes = 12, 40
    ois = [
        BIG * math.exp(-0.0305 * k * step / 300) * (1 + (0.004 if k % 2 else -0.004))
        for k in range(minutes * 60 // step)
    ]
    samples = [sample(k * step, oi) for k, oi in enumerate(ois)]
    no_cooldown = OiRuleConfig(timeframes=(TimeframeRule("5 min", 0.03, 300, 0),))
    spam = [a for a in feed(OiAlertRule(no_cooldown), samples) if a.direction == "DOWN"]
    assert len(spam) > 30  # what the first version of the rule would have sent
    rule = OiAlertRule(ONLY_FIVE)
    times = alert_times_s(feed(rule, samples))
    assert 2 <= len(times) <= math.ceil((minutes * 60 - 300) / 600)
    assert all(b - a >= 600 for a, b in itertools.pairwise(times))


# --- baseline -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lookback", "tolerance"), [(300, 30), (900, 90), (3600, 120), (100, 30), (2000, 120)]
)
def test_the_baseline_tolerance_is_the_originals_formula(lookback, tolerance):
    assert baseline_tolerance_s(lookback) == tolerance


@pytest.mark.parametrize("tf", DEFAULT_TIMEFRAMES, ids=lambda tf: tf.label)
@pytest.mark.parametrize(
    ("offset_ms", "found"),
    [(0, True), (-1, True), (1, True), (-1000, True), (1000, True), (-1001, False), (1001, False)],
    ids=["exact", "-1ms", "+1ms", "old-edge", "young-edge", "too-old", "too-young"],
)
def test_a_baseline_is_used_up_to_the_tolerance_and_not_one_millisecond_beyond(
    tf, offset_ms, found
):
    # offset is in units of the tolerance/1000: +-1000 = exactly at the tolerance.
    delta_ms = offset_ms * tf.tolerance_ms // 1000
    rule = OiAlertRule(OiRuleConfig(timeframes=(tf,)))
    base = OiSample(symbol="X", open_interest=BIG, time_ms=T0 + delta_ms)
    now = T0 + tf.lookback_ms
    current = OiSample(symbol="X", open_interest=BIG * (1 + tf.threshold), time_ms=now)
    assert rule.add_sample(base).accepted
    assert len(rule.add_sample(current).alerts) == (1 if found else 0)


def test_the_closest_sample_is_the_baseline_and_the_older_one_wins_a_tie():
    history = OiHistory(retention_ms=10_000_000)
    for t_s, oi in [(0, 1.0), (290, 2.0), (310, 3.0), (600, 4.0)]:
        history.add("X", T0 + t_s * 1000, oi, None)
    target = T0 + 300_000
    assert history.baseline("X", target, 30_000, T0 + 600_000)[1] == 2.0  # tie: older
    assert history.baseline("X", target + 5_000, 30_000, T0 + 600_000)[1] == 3.0
    assert history.baseline("X", target, 30_000, T0 + 290_000) is None  # before_ms excludes
    assert history.baseline("Y", target, 30_000, T0 + 600_000) is None


def test_without_a_baseline_the_state_is_left_alone_so_a_gap_does_not_realert():
    rule = OiAlertRule(ONLY_FIVE)
    assert len(feed(rule, [sample(0, BIG), sample(300, 1_040_000.0)])) == 1
    # Nothing from 300 to 700, then OI keeps rising 4 % per 5 minutes: samples 700..960 have no
    # baseline; from 1000 on they have one again and are still outside on the same side. The
    # original reset the state to INSIDE without a baseline and alerted again at 1000.
    later = [sample(t, 1_040_000.0 * 1.04 ** ((t - 300) / 300)) for t in range(700, 1100, 10)]
    assert feed(rule, later) == []
    assert rule.stats["no_baseline"] == 1 + 27
    assert rule.is_outside("MAVIAUSDT", "5 min") == "UP"


def test_history_is_bounded_to_the_longest_lookback_plus_its_tolerance():
    rule = OiAlertRule()
    feed(rule, [sample(t, BIG) for t in range(0, 3 * 3600, 10)])
    assert rule.config.retention_ms == 3_720_000
    assert len(rule.history) == 3_720 // 10 + 1


def test_a_history_handed_to_a_new_rule_keeps_its_baselines_and_can_be_checked():
    first = OiAlertRule()
    feed(first, [sample(t, BIG) for t in range(0, 600, 10)])
    second = OiAlertRule(history=first.history)  # the poller's next incarnation
    assert second.history is first.history
    assert second.history.newest() == {"MAVIAUSDT": T0 + 590_000}
    assert second.history.consistent()
    assert second.history.baseline("MAVIAUSDT", T0 + 290_000, 30_000, T0 + 600_000) is not None
    second.history._series["MAVIAUSDT"].ois.pop()  # a series torn in the middle of an add
    assert not second.history.consistent()
    second.history.clear()
    assert len(second.history) == 0
    assert second.history.consistent()


def test_the_keeper_hands_its_history_to_one_taker_and_is_empty_until_given_back():
    keeper = HistoryKeeper()
    assert keeper.take() is None  # nothing kept yet: the first incarnation loads from the store
    history = OiHistory(OiRuleConfig().retention_ms)
    history.add("MAVIAUSDT", T0, BIG, None)
    keeper.give_back(history)
    assert keeper.take() is history  # the very object: the next incarnation goes on with it
    assert keeper.take() is None  # now the taker's: a second taker gets none, never a share
    keeper.give_back(history)
    newer = OiHistory(OiRuleConfig().retention_ms)
    keeper.give_back(newer)  # the last one given back is the one kept
    assert keeper.take() is newer
    assert keeper.take() is None
    assert (history.retention_ms, OiHistory(61_000).retention_ms) == (3_720_000, 61_000)


def test_takers_racing_for_the_kept_history_never_hold_it_two_at_a_time():
    keeper = HistoryKeeper()
    history = OiHistory(OiRuleConfig().retention_ms)
    keeper.give_back(history)
    lock = threading.Lock()
    holders: list[int] = [0, 0]  # holding now, most ever holding at once
    got = [0] * 4
    strangers: list[object] = []
    start = threading.Barrier(len(got), timeout=10)

    def take_and_give_back(i: int) -> None:
        start.wait()
        for _ in range(2_000):
            taken = keeper.take()
            if taken is None:
                continue
            if taken is not history:
                strangers.append(taken)
            with lock:
                holders[0] += 1
                holders[1] = max(holders)
            got[i] += 1
            with lock:
                holders[0] -= 1
            keeper.give_back(taken)

    threads = [threading.Thread(target=take_and_give_back, args=(i,)) for i in range(len(got))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert (holders, strangers) == ([0, 1], [])
    assert sum(got) > 0
    assert keeper.take() is history  # handed around, never lost nor doubled
    assert keeper.take() is None


# --- enrichment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_mark", "mark", "price_change"),
    [(2.0, 2.1, pytest.approx(0.05)), (None, 2.1, None), (2.0, None, None), (2.0, 0.0, None)],
    ids=["both-known", "no-baseline-mark", "no-current-mark", "zero-mark-is-missing"],
)
def test_price_change_is_attached_only_when_both_marks_are_known(base_mark, mark, price_change):
    rule = OiAlertRule(ONLY_FIVE)
    samples = [sample(0, BIG, mark=base_mark), sample(300, 1_040_000.0, mark=mark)]
    (alert,) = feed(rule, samples)
    assert alert.price_change == price_change


@pytest.mark.parametrize(
    ("funding", "expected"), [(0.0000128, 0.0000128), (-0.0003, -0.0003), (None, None)]
)
def test_the_funding_rate_is_attached_when_known(funding, expected):
    rule = OiAlertRule(ONLY_FIVE)
    samples = [sample(0, BIG), sample(300, 1_040_000.0, funding=funding)]
    (alert,) = feed(rule, samples)
    assert alert.funding_rate == expected


# --- input hygiene ----------------------------------------------------------------------------


def test_excluded_symbols_are_ignored_entirely():
    rule = OiAlertRule()
    samples = [sample(0, BIG, "USDCUSDT"), sample(300, 2 * BIG, "USDCUSDT")]
    assert feed(rule, samples) == []
    assert rule.history.newest_ms("USDCUSDT") is None
    assert rule.stats["excluded"] == 2


@pytest.mark.parametrize("oi", [0.0, -5.0, math.nan, math.inf])
def test_non_positive_or_non_finite_open_interest_is_rejected(oi):
    rule = OiAlertRule()
    assert not rule.add_sample(sample(0, oi)).accepted
    assert rule.stats["invalid"] == 1


def test_a_sample_not_newer_than_the_last_one_is_rejected_as_stale():
    rule = OiAlertRule(ONLY_FIVE)
    feed(rule, [sample(0, BIG), sample(300, BIG)])
    assert not rule.add_sample(sample(300, 2 * BIG)).accepted
    assert not rule.add_sample(sample(200, 2 * BIG)).accepted
    assert rule.stats["stale"] == 2


# --- persistence and restarts -----------------------------------------------------------------


def restart(rule, now_ms, *, history=True, state=True):
    """A new rule restored from JSON round trips of the old one's exports."""
    fresh = OiAlertRule(rule.config)
    if history:
        fresh.history.import_rows(json.loads(json.dumps(rule.history.export_rows())))
    if state:
        fresh.import_state(json.loads(json.dumps(rule.export_state(now_ms))), now_ms)
    return fresh


def test_a_restart_after_an_alert_neither_realerts_nor_blinds_the_baselines():
    # Alert at 300, outside ever since; restart at 900 when the cooldown has just expired.
    samples = chain([0, 0, 0, *[0.04] * 9])
    rule = OiAlertRule(ONLY_FIVE)
    assert alert_times_s(feed(rule, samples[:10])) == [300]
    restored = restart(rule, samples[9].time_ms)
    assert feed(restored, samples[10:]) == []
    assert restored.stats["no_baseline"] == 0  # the baselines came back with the history
    # Without the alert state the same restart duplicates the alert (I-7 "after restarts").
    amnesiac = restart(rule, samples[9].time_ms, state=False)
    assert alert_times_s(feed(amnesiac, samples[10:])) == [1000]


def test_restored_cooldowns_still_consume_a_crossing_even_if_the_outside_state_was_lost():
    samples = chain([0, 0, 0, 0.04, 0.0, 0.04])
    rule = OiAlertRule(ONLY_FIVE)
    feed(rule, samples[:5])  # alert at 300, back inside at 400
    restored = restart(rule, samples[4].time_ms)
    assert feed(restored, samples[5:]) == []
    assert restored.is_outside("MAVIAUSDT", "5 min") == "UP"


def test_a_restart_in_the_middle_of_the_hour_alerts_at_the_same_sample_as_no_restart():
    # Flat for 10 minutes, then +40 contracts/s: the 1-hour change reaches exactly 12 % at t=3600
    # (1_120_000 vs 1_000_000); 5- and 15-minute changes stay near 1 % and 3 %.
    samples = [sample(t, BIG + 40 * max(0, t - 600)) for t in range(0, 4000, 10)]
    straight = feed(OiAlertRule(), samples)
    assert [(a.timeframe, a.timestamp_ms) for a in straight] == [("1 hour", T0 + 3_600_000)]
    cut = 240  # restart at t=2400, forty minutes into the window
    first = OiAlertRule()
    feed(first, samples[:cut])
    assert feed(restart(first, samples[cut - 1].time_ms), samples[cut:]) == straight
    assert feed(restart(first, samples[cut - 1].time_ms, history=False), samples[cut:]) == []


def test_state_export_drops_expired_cooldowns_and_import_ignores_unknown_timeframes():
    rule = OiAlertRule(ONLY_FIVE)
    feed(rule, [sample(0, BIG), sample(300, 1_040_000.0)])
    state = rule.export_state(T0 + 300_000)
    assert state == {
        "outside": [("MAVIAUSDT", "5 min", "UP")],
        "cooldowns": [("MAVIAUSDT", "UP", "5 min", T0 + 300_000)],
    }
    assert rule.export_state(T0 + 900_000)["cooldowns"] == []
    other = OiAlertRule(OiRuleConfig(timeframes=(HOUR,)))
    other.import_state(state, T0 + 300_000)
    assert other.export_state(T0 + 300_000) == {"outside": [], "cooldowns": []}


def test_history_import_skips_bad_rows_and_accepts_any_order():
    history = OiHistory(retention_ms=3_720_000)
    rows = [
        ("X", T0 + 20_000, 3.0, None),
        ("X", T0, 1.0, 0.0),
        ("X", T0 + 10_000, 2.0, 5.0),
        ("X", T0 + 10_000, 9.0, 5.0),  # duplicate time
        ("X", T0 + 30_000, -1.0, None),  # invalid OI
        ("X", "later", 1.0, None),  # malformed
        ("X", T0 + 40_000),  # malformed
    ]
    assert history.import_rows(rows) == 3
    assert history.export_rows() == [
        ("X", T0, 1.0, None),
        ("X", T0 + 10_000, 2.0, 5.0),
        ("X", T0 + 20_000, 3.0, None),
    ]


def test_forget_and_prune_free_symbols_that_are_no_longer_polled():
    rule = OiAlertRule(ONLY_FIVE)
    feed(rule, [sample(0, BIG, "A"), sample(300, 1_040_000.0, "A"), sample(0, BIG, "B")])
    assert rule.history.prune(T0 + 200_000 + rule.config.retention_ms) == ["B"]
    rule.forget(["A"])
    assert len(rule.history) == 0
    assert rule.is_outside("A", "5 min") is None
    assert rule.export_state(T0 + 300_000)["cooldowns"] != []  # cooldowns still protect


def test_state_changed_tells_the_actor_when_to_persist():
    rule = OiAlertRule(ONLY_FIVE)
    changes = [rule.add_sample(s).state_changed for s in chain([0, 0, 0, 0.04, 0.04, 0.0])]
    assert changes == [False, False, False, True, False, True]


# --- real data --------------------------------------------------------------------------------


def reference_alerts(series, lags, config):
    """Brute force over exact lags (dict lookups, no bisect, no eviction): (t, symbol, tf, side)."""
    found = []
    for symbol, rows in series.items():
        by_time = dict(rows)
        for tf, lag in zip(config.timeframes, lags, strict=True):
            outside, last = None, {}
            for t, oi in rows:
                base = by_time.get(t - lag)
                if base is None:
                    continue  # no baseline: state untouched
                pct = (oi - base) / base
                side = "UP" if pct >= tf.threshold else "DOWN" if pct <= -tf.threshold else None
                if side is None or abs(oi - base) < config.min_delta_contracts:
                    outside = None
                elif outside != side:
                    outside = side
                    if t - last.get(side, -(10**18)) >= tf.cooldown_ms:
                        last[side] = t
                        found.append((t, symbol, tf.label, side))
    return sorted(found)


def test_real_open_interest_history_matches_a_brute_force_reference(fixtures_dir):
    # 539 symbols of 4-hour openInterestHist (HIVEUSDT has gaps; HYPEUSDT excluded here),
    # replayed with each 4-hour step as 5 minutes so that all three timeframes have baselines.
    name = "um_openInterestHist_4h_all-symbols_2026-03-12_2026-03-20.csv"
    with (fixtures_dir / "binance-history" / name).open() as handle:
        rows = list(csv.DictReader(handle))
    first = int(rows[0]["timestamp"])
    series = defaultdict(list)
    for row in rows:
        t = T0 + (int(row["timestamp"]) - first) // 48  # 4 h -> 5 min
        series[row["symbol"]].append((t, float(row["sum_open_interest"])))
    samples = sorted(
        (
            OiSample(symbol=symbol, open_interest=oi, time_ms=t)
            for symbol, points in series.items()
            for t, oi in points
        ),
        key=lambda s: (s.time_ms, s.symbol),
    )
    rule = OiAlertRule(OiRuleConfig(exclude=frozenset({"USDCUSDT", "HYPEUSDT"})))
    alerts = feed(rule, samples)
    included = {k: v for k, v in series.items() if k not in rule.config.exclude}
    expected = reference_alerts(included, (300_000, 900_000, 3_600_000), rule.config)
    got = sorted((a.timestamp_ms, a.symbol, a.timeframe, a.direction) for a in alerts)
    assert got == expected
    assert len({tf for _, _, tf, _ in got}) == 3 and len(got) > 100
    assert rule.stats["excluded"] == len(series["HYPEUSDT"]) > 0
