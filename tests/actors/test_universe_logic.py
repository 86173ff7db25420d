"""The liquid universe's hysteresis (spec §2.2, issue 6 item 2) and the snapshot plan."""

from __future__ import annotations

import json

import pytest

from actors._payloads import EmptyUniverseError, iso_utc, universe_update_body
from actors._universe_logic import (
    SnapshotPlan,
    UniverseRules,
    UniverseTracker,
    plan_snapshot,
)
from messages.market import Ticker24h
from messages.open_interest import LiquidUniverse, OiSample, UniverseMember
from supervisors.config import Config

T0 = 1_773_900_000_000  # 2026-03-19T06:00:00Z
MIN = 60_000
TRADING = frozenset({"BTCUSDT", "ETHUSDT", "MAVIAUSDT", "ZZZUSDT", "USDCUSDT"})


def ticker(symbol, volume, t_ms=T0):
    return Ticker24h(symbol=symbol, event_time_ms=t_ms, last_price=1.0, quote_volume=volume)


def tracker_with(members=(), *, rules=None):
    """A tracker whose current members are ``members`` (entered at T0 - 1 h, seen at T0)."""
    tracker = UniverseTracker(rules or UniverseRules())
    tracker.import_state(
        {
            "members": [(s, T0 - 60 * MIN) for s in members],
            "seen": [(s, 10e6, T0) for s in members],
        }
    )
    return tracker


# --- hysteresis -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "volume", "after"),
    [
        (False, 4_000_000.0, True),  # enters exactly at the enter threshold
        (False, 3_999_999.99, False),
        (False, 3_000_000.0, False),  # between the thresholds: a non-member stays out
        (True, 3_000_000.0, True),  # ... and a member stays in
        (True, 2_000_000.0, True),  # stays exactly at the exit threshold
        (True, 1_999_999.99, False),  # leaves just under it
    ],
)
def test_enter_at_four_million_stay_down_to_two_million(member, volume, after):
    tracker = tracker_with(["BTCUSDT", *(["MAVIAUSDT"] if member else [])])
    tracker.observe([ticker("BTCUSDT", 1e9, T0 + MIN), ticker("MAVIAUSDT", volume, T0 + MIN)])
    result = tracker.evaluate(TRADING, T0 + 2 * MIN)
    assert ("MAVIAUSDT" in {m.symbol for m in result.universe.members}) is after
    assert result.held == ""
    assert (result.universe.entered == ("MAVIAUSDT",)) is (after and not member)
    assert (result.universe.left == ("MAVIAUSDT",)) is (member and not after)


def test_thresholds_and_exclusion_come_from_the_config():
    config = Config().replace(oi_liquid_enter_quote_24h=10e6, oi_universe_exclude=("BTCUSDT",))
    rules = UniverseRules.from_config(config, max_ticker_age_ms=5 * MIN)
    assert rules == UniverseRules(
        enter_quote_24h=10e6,
        exit_quote_24h=2e6,
        exclude=frozenset({"BTCUSDT"}),
        max_ticker_age_ms=5 * MIN,
    )
    assert UniverseRules.from_config(Config()) == UniverseRules()
    with pytest.raises(ValueError, match="exit_quote_24h"):
        UniverseRules(enter_quote_24h=1.0, exit_quote_24h=2.0)


def test_excluded_and_non_trading_symbols_never_enter_and_members_leave_with_a_reason():
    tracker = tracker_with(["BTCUSDT", "USDCUSDT", "ETHUSDT"])  # e.g. from an older config
    tracker.observe(
        [
            ticker("BTCUSDT", 1e9),
            ticker("USDCUSDT", 1e9),
            ticker("ETHUSDT", 1e9),
            ticker("XYZUSDC", 1e9),  # not a USDT perpetual: not in TRADING
        ]
    )
    trading = TRADING - {"ETHUSDT"}  # ETH stopped trading (settling, delisted)
    result = tracker.evaluate(trading, T0 + MIN)
    assert [m.symbol for m in result.universe.members] == ["BTCUSDT"]
    assert result.reasons == (("ETHUSDT", "not-trading"), ("USDCUSDT", "excluded"))


# --- missing tickers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("silence_ms", "stays"),
    [(5 * MIN, True), (60 * MIN, True), (60 * MIN + 1, False)],
    ids=["5-min", "exactly-max-age", "just-over"],
)
def test_a_member_without_a_ticker_row_keeps_its_last_volume_until_it_is_too_old(silence_ms, stays):
    # !ticker@arr only carries symbols that changed: silence is not a reason to leave.
    tracker = tracker_with(["BTCUSDT"])
    tracker.observe([ticker("MAVIAUSDT", 5e6, T0)])
    assert "MAVIAUSDT" in tracker.evaluate(TRADING, T0).universe.entered
    now = T0 + silence_ms
    tracker.observe([ticker("BTCUSDT", 1e9, now)])
    result = tracker.evaluate(TRADING, now)
    member = {m.symbol: m for m in result.universe.members}.get("MAVIAUSDT")
    if stays:
        assert member is not None
        assert (member.quote_volume_24h, member.last_seen_ms) == (5e6, T0)
    else:
        assert member is None
        assert result.reasons == (("MAVIAUSDT", "stale"),)


def test_a_stale_volume_cannot_make_a_symbol_enter():
    tracker = tracker_with(["BTCUSDT"])
    tracker.observe([ticker("MAVIAUSDT", 50e6, T0 - 61 * MIN), ticker("BTCUSDT", 1e9)])
    assert [m.symbol for m in tracker.evaluate(TRADING, T0).universe.members] == ["BTCUSDT"]


def test_an_older_ticker_never_overwrites_a_newer_one():
    tracker = UniverseTracker()
    assert tracker.observe([ticker("BTCUSDT", 9e6, T0), ticker("BTCUSDT", 1e6, T0 - 1)]) == 1
    assert tracker.observe([ticker("ETHUSDT", float("nan"))]) == 0
    (member,) = tracker.evaluate(TRADING, T0).universe.members
    assert member.quote_volume_24h == 9e6


# --- never an empty set -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tickers", "trading", "held"),
    [
        ([], TRADING, "no ticker data"),
        ([ticker("BTCUSDT", 1e9, T0 - 2 * 60 * MIN)], TRADING, "no ticker data"),  # feed down
        ([ticker("BTCUSDT", 1e9)], frozenset(), "no trading symbols"),  # exchangeInfo failed
        ([ticker("BTCUSDT", 1.0), ticker("ETHUSDT", 1.0)], TRADING, "would be empty"),
    ],
    ids=["no-data", "all-stale", "no-trading-list", "everything-below-exit"],
)
def test_an_evaluation_that_would_empty_the_set_keeps_the_previous_one(tickers, trading, held):
    tracker = UniverseTracker()
    tracker.import_state({"members": [("BTCUSDT", T0 - MIN), ("ETHUSDT", None)], "seen": []})
    tracker.observe(tickers)
    result = tracker.evaluate(trading, T0 + MIN)
    assert result.held == held
    assert [m.symbol for m in result.universe.members] == ["BTCUSDT", "ETHUSDT"]
    assert (result.universe.entered, result.universe.left) == ((), ())
    assert tracker.members == {"BTCUSDT", "ETHUSDT"}


def test_a_fresh_tracker_without_data_is_empty_and_says_why():
    result = UniverseTracker().evaluate(TRADING, T0)
    assert (result.universe.members, result.held) == ((), "no ticker data")


# --- enteredAt and persistence ----------------------------------------------------------------


def test_entered_at_is_kept_across_evaluations_and_restarts_and_reset_on_re_entry():
    tracker = UniverseTracker()
    tracker.observe([ticker("BTCUSDT", 1e9), ticker("MAVIAUSDT", 5e6)])
    tracker.evaluate(TRADING, T0)
    tracker.observe([ticker("MAVIAUSDT", 3e6, T0 + MIN)])
    assert tracker.evaluate(TRADING, T0 + 2 * MIN).universe.members[1].entered_ms == T0
    restored = UniverseTracker()
    restored.import_state(json.loads(json.dumps(tracker.export_state())))
    assert restored.export_state() == {
        "members": [("BTCUSDT", T0), ("MAVIAUSDT", T0)],
        "seen": [("BTCUSDT", 1e9, T0), ("MAVIAUSDT", 3e6, T0 + MIN)],
    }
    restored.observe([ticker("MAVIAUSDT", 1e6, T0 + 3 * MIN)])
    assert restored.evaluate(TRADING, T0 + 3 * MIN).universe.left == ("MAVIAUSDT",)
    restored.observe([ticker("MAVIAUSDT", 6e6, T0 + 4 * MIN)])
    members = restored.evaluate(TRADING, T0 + 5 * MIN).universe.members
    assert {m.symbol: m.entered_ms for m in members} == {
        "BTCUSDT": T0,
        "MAVIAUSDT": T0 + 5 * MIN,
    }


def test_forget_unlisted_drops_volumes_of_symbols_that_no_longer_trade():
    tracker = tracker_with(["BTCUSDT"])
    tracker.observe([ticker("OLDUSDT", 1e6), ticker("ETHUSDT", 1e6)])
    tracker.forget_unlisted({"ETHUSDT"})
    assert [row[0] for row in tracker.export_state()["seen"]] == ["BTCUSDT", "ETHUSDT"]


# --- the backend payload ----------------------------------------------------------------------


def test_the_update_payload_has_the_originals_shape_and_omits_unknown_entry_times():
    universe = LiquidUniverse(
        members=(
            UniverseMember(
                symbol="BTCUSDT",
                quote_volume_24h=9.5e9,
                entered_ms=T0 - 86_400_000 + 123,
                last_seen_ms=T0 + 7,
            ),
            UniverseMember(
                symbol="ETHUSDT", quote_volume_24h=4e6, entered_ms=None, last_seen_ms=T0
            ),
        ),
        updated_ms=T0 + 1_000,
    )
    assert universe_update_body(universe) == {
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "quoteVolume24h": 9.5e9,
                "enteredAt": "2026-03-18T06:00:00Z",
                "lastSeenAt": "2026-03-19T06:00:00Z",
            },
            {
                "symbol": "ETHUSDT",
                "quoteVolume24h": 4e6,
                "lastSeenAt": "2026-03-19T06:00:00Z",
            },
        ],
        "updatedAt": "2026-03-19T06:00:01Z",
    }
    json.dumps(universe_update_body(universe))  # plain JSON, no nulls
    assert "null" not in json.dumps(universe_update_body(universe))


def test_no_payload_is_built_for_an_empty_universe():
    with pytest.raises(EmptyUniverseError):
        universe_update_body(LiquidUniverse(members=(), updated_ms=T0))


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "1970-01-01T00:00:00Z"), (T0 + 999, "2026-03-19T06:00:00Z")],
)
def test_iso_times_are_utc_in_the_scripts_format(ms, text):
    assert iso_utc(ms) == text


# --- the five-minute snapshot -----------------------------------------------------------------


def oi(symbol, age_ms):
    return OiSample(symbol=symbol, open_interest=1.0, time_ms=T0 - age_ms, mark_price=2.0)


@pytest.mark.parametrize(
    ("latest", "reuse", "poll"),
    [
        ({}, (), ("AUSDT", "BUSDT", "CUSDT")),
        ({"AUSDT": oi("AUSDT", 0)}, ("AUSDT",), ("BUSDT", "CUSDT")),
        ({"AUSDT": oi("AUSDT", 30_000)}, ("AUSDT",), ("BUSDT", "CUSDT")),  # exactly max age
        ({"AUSDT": oi("AUSDT", 30_001)}, (), ("AUSDT", "BUSDT", "CUSDT")),
        ({"AUSDT": oi("AUSDT", -500)}, ("AUSDT",), ("BUSDT", "CUSDT")),  # clock skew
        ({"XUSDT": oi("XUSDT", 0)}, (), ("AUSDT", "BUSDT", "CUSDT")),  # not in the snapshot
    ],
    ids=["nothing", "fresh", "edge", "too-old", "future", "outsider"],
)
def test_the_snapshot_reuses_fresh_realtime_samples_and_polls_the_rest(latest, reuse, poll):
    plan = plan_snapshot(["CUSDT", "AUSDT", "BUSDT", "AUSDT"], latest, T0, max_age_ms=30_000)
    assert plan == SnapshotPlan(reuse=tuple(latest[s] for s in reuse), poll=poll)
